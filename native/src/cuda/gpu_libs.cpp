// cuBLAS, cuBLASLt and cuDNN loaded at run time (gpu_libs.h). Plain C++: no NVIDIA headers, compiled in every
// build. Search order for each library: $IRCONSTYLE_CUDA_LIBS, the system loader (soname), /usr/local/cuda, then the
// lib folders of Python `nvidia-*` wheels (nvidia/{cublas,cu13,cu12,cudnn}/lib under every site-packages found).
// A library whose file loads but lacks a symbol, or whose handle cannot be created, is reported unavailable with
// the reason; nothing here exits, aborts or throws. Handles are never destroyed (the driver may already be gone
// at process exit).
#include "gpu_libs.h"

#include <dlfcn.h>
#include <glob.h>
#include <link.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

namespace irc {
namespace gpu {
namespace {

std::vector<std::string> glob_dirs(const std::string& pattern) {
  std::vector<std::string> out;
  glob_t g{};
  if (glob(pattern.c_str(), GLOB_ONLYDIR | GLOB_NOSORT, nullptr, &g) == 0) {
    for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
  }
  globfree(&g);
  // Newest Python first when several match (python3.12 before python3.10): reverse lexical order is close enough.
  std::sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) { return a > b; });
  return out;
}

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

// Directories to try, in order. An empty string stands for "the system loader" (dlopen by soname).
std::vector<std::string> search_dirs() {
  std::vector<std::string> dirs;
  if (const char* d = env("IRCONSTYLE_CUDA_LIBS")) dirs.emplace_back(d);
  dirs.emplace_back("");
  dirs.emplace_back("/usr/local/cuda/lib64");
  dirs.emplace_back("/usr/local/cuda/targets/x86_64-linux/lib");
  std::vector<std::string> sites;
  auto add_sites = [&](const std::string& pattern) {
    for (auto& s : glob_dirs(pattern)) sites.push_back(s);
  };
  add_sites("/usr/lib/python3*/site-packages");
  add_sites("/usr/lib/python3*/dist-packages");
  add_sites("/usr/local/lib/python3*/site-packages");
  add_sites("/usr/local/lib/python3*/dist-packages");
  if (const char* h = env("HOME")) add_sites(std::string(h) + "/.local/lib/python3*/site-packages");
  if (const char* v = env("VIRTUAL_ENV")) add_sites(std::string(v) + "/lib/python3*/site-packages");
  if (const char* c = env("CONDA_PREFIX")) add_sites(std::string(c) + "/lib/python3*/site-packages");
  add_sites("/opt/conda/lib/python3*/site-packages");
  for (const auto& s : sites) {
    for (const char* sub : {"/nvidia/cublas/lib", "/nvidia/cu13/lib", "/nvidia/cu12/lib", "/nvidia/cudnn/lib"}) {
      const std::string d = s + sub;
      if (access(d.c_str(), F_OK) == 0) dirs.push_back(d);
    }
  }
  std::vector<std::string> uniq;  // keep the first occurrence of each
  for (auto& d : dirs) {
    bool seen = false;
    for (auto& u : uniq) seen = seen || u == d;
    if (!seen) uniq.push_back(d);
  }
  return uniq;
}

struct Opened {
  void* lib = nullptr;
  std::string path;    // absolute path when known
  std::string errors;  // why candidates failed (files that exist but did not load, and the loader's answer)
  std::string searched;
};

std::string loaded_path(void* lib, const std::string& fallback) {
  struct link_map* lm = nullptr;
  if (dlinfo(lib, RTLD_DI_LINKMAP, &lm) == 0 && lm && lm->l_name && lm->l_name[0]) return lm->l_name;
  return fallback;
}

Opened open_first(const std::vector<const char*>& names) {
  Opened o;
  for (const auto& dir : search_dirs()) {
    o.searched += (o.searched.empty() ? "" : ", ") + (dir.empty() ? std::string("system loader") : dir);
    for (const char* name : names) {
      const std::string cand = dir.empty() ? std::string(name) : dir + "/" + name;
      if (!dir.empty() && access(cand.c_str(), F_OK) != 0) continue;
      void* h = dlopen(cand.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (h) {
        o.lib = h;
        o.path = loaded_path(h, cand);
        return o;
      }
      const char* e = dlerror();
      // The system loader's "cannot open shared object file" for an absent soname is noise; keep the rest.
      if (e && (!dir.empty() || std::string(e).find("No such file") == std::string::npos)) {
        o.errors += std::string(o.errors.empty() ? "" : "; ") + e;
      }
    }
  }
  return o;
}

template <class F>
void sym(void* lib, const char* name, F& f, std::string& missing) {
  dlerror();
  void* p = dlsym(lib, name);
  if (!p) {
    missing += (missing.empty() ? "" : ", ") + std::string(name);
    f = nullptr;
    return;
  }
  f = reinterpret_cast<F>(p);
}

std::string version_str(long long v, long long major_div, long long minor_div) {
  const long long major = v / major_div, minor = (v % major_div) / minor_div, patch = v % minor_div;
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

struct CublasState {
  std::once_flag once;
  Cublas api;
  bool ok = false;
  std::string why, path;
} g_cublas;

struct CublasLtState {
  std::once_flag once;
  CublasLt api;
  bool ok = false;
  std::string why, path;
} g_cublaslt;

struct LtStats {
  std::mutex mu;
  int in_use = 0, refused = 0;
  std::string first;  // why the first refusal happened
} g_lt_stats;

struct CudnnState {
  std::once_flag once;
  Cudnn api;
  bool ok = false;
  std::string why, path;
} g_cudnn;

void load_cublas() {
  CublasState& s = g_cublas;
  Opened o = open_first({"libcublas.so.13", "libcublas.so.12", "libcublas.so"});
  if (!o.lib) {
    s.why = "cuBLAS not found (searched " + o.searched + ")" + (o.errors.empty() ? "" : ": " + o.errors);
    return;
  }
  s.path = o.path;
  Cublas& a = s.api;
  std::string missing;
  sym(o.lib, "cublasCreate_v2", a.Create, missing);
  sym(o.lib, "cublasDestroy_v2", a.Destroy, missing);
  sym(o.lib, "cublasSetStream_v2", a.SetStream, missing);
  sym(o.lib, "cublasSetMathMode", a.SetMathMode, missing);
  sym(o.lib, "cublasGetVersion_v2", a.GetVersion, missing);
  sym(o.lib, "cublasSgemm_v2", a.Sgemm, missing);
  sym(o.lib, "cublasSgemmStridedBatched", a.SgemmStridedBatched, missing);
  if (!missing.empty()) {
    s.why = "cuBLAS at " + o.path + " lacks " + missing;
    dlclose(o.lib);
    a = Cublas{};
    return;
  }
  a.lib = o.lib;
  const cublasStatus_t st = a.Create(&a.handle);
  if (st != 0 || !a.handle) {
    s.why = "cuBLAS at " + o.path + ": cublasCreate_v2 failed with status " + std::to_string(st) +
            " (no usable CUDA device or context?)";
    a.handle = nullptr;
    return;
  }
  int v = 0;
  if (a.GetVersion(a.handle, &v) == 0) a.version = v;
  s.ok = true;
}

// Searched exactly like cuBLAS (same folders, same IRCONSTYLE_CUDA_LIBS override); IRCONSTYLE_CUBLASLT=0 skips it.
void load_cublaslt() {
  CublasLtState& s = g_cublaslt;
  const char* off = env("IRCONSTYLE_CUBLASLT");
  if (off && std::strcmp(off, "0") == 0) {
    s.why = "cuBLASLt disabled (IRCONSTYLE_CUBLASLT=0)";
    return;
  }
  Opened o = open_first({"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"});
  if (!o.lib) {
    s.why = "cuBLASLt not found (searched " + o.searched + ")" + (o.errors.empty() ? "" : ": " + o.errors);
    return;
  }
  s.path = o.path;
  CublasLt& a = s.api;
  std::string m;
  sym(o.lib, "cublasLtCreate", a.Create, m);
  sym(o.lib, "cublasLtDestroy", a.Destroy, m);
  sym(o.lib, "cublasLtGetVersion", a.GetVersion, m);
  sym(o.lib, "cublasLtMatmulDescCreate", a.MatmulDescCreate, m);
  sym(o.lib, "cublasLtMatmulDescDestroy", a.MatmulDescDestroy, m);
  sym(o.lib, "cublasLtMatmulDescSetAttribute", a.MatmulDescSetAttribute, m);
  sym(o.lib, "cublasLtMatrixLayoutCreate", a.MatrixLayoutCreate, m);
  sym(o.lib, "cublasLtMatrixLayoutDestroy", a.MatrixLayoutDestroy, m);
  sym(o.lib, "cublasLtMatrixLayoutSetAttribute", a.MatrixLayoutSetAttribute, m);
  sym(o.lib, "cublasLtMatmulPreferenceCreate", a.MatmulPreferenceCreate, m);
  sym(o.lib, "cublasLtMatmulPreferenceSetAttribute", a.MatmulPreferenceSetAttribute, m);
  sym(o.lib, "cublasLtMatmulPreferenceDestroy", a.MatmulPreferenceDestroy, m);
  sym(o.lib, "cublasLtMatmulAlgoGetHeuristic", a.MatmulAlgoGetHeuristic, m);
  sym(o.lib, "cublasLtMatmul", a.Matmul, m);
  if (!m.empty()) {
    s.why = "cuBLASLt at " + o.path + " lacks " + m;
    dlclose(o.lib);
    a = CublasLt{};
    return;
  }
  a.lib = o.lib;
  a.version = a.GetVersion();
  if (a.version < 110000) {
    s.why = "cuBLASLt at " + o.path + " is version " + version_str(static_cast<long long>(a.version), 10000, 100) +
            ", need 11.x or later";
    return;
  }
  const cublasStatus_t st = a.Create(&a.handle);
  if (st != 0 || !a.handle) {
    s.why = "cuBLASLt at " + o.path + ": cublasLtCreate failed with status " + std::to_string(st);
    a.handle = nullptr;
    return;
  }
  s.ok = true;
}

void load_cudnn() {
  CudnnState& s = g_cudnn;
  Opened o = open_first({"libcudnn.so.9"});
  if (!o.lib) {
    s.why = "cuDNN not found (searched " + o.searched + ")" + (o.errors.empty() ? "" : ": " + o.errors);
    return;
  }
  s.path = o.path;
  Cudnn& a = s.api;
  std::string m;
  sym(o.lib, "cudnnGetVersion", a.GetVersion, m);
  sym(o.lib, "cudnnCreate", a.Create, m);
  sym(o.lib, "cudnnDestroy", a.Destroy, m);
  sym(o.lib, "cudnnSetStream", a.SetStream, m);
  sym(o.lib, "cudnnCreateTensorDescriptor", a.CreateTensorDescriptor, m);
  sym(o.lib, "cudnnDestroyTensorDescriptor", a.DestroyTensorDescriptor, m);
  sym(o.lib, "cudnnSetTensor4dDescriptor", a.SetTensor4dDescriptor, m);
  sym(o.lib, "cudnnCreateFilterDescriptor", a.CreateFilterDescriptor, m);
  sym(o.lib, "cudnnDestroyFilterDescriptor", a.DestroyFilterDescriptor, m);
  sym(o.lib, "cudnnSetFilter4dDescriptor", a.SetFilter4dDescriptor, m);
  sym(o.lib, "cudnnCreateConvolutionDescriptor", a.CreateConvolutionDescriptor, m);
  sym(o.lib, "cudnnDestroyConvolutionDescriptor", a.DestroyConvolutionDescriptor, m);
  sym(o.lib, "cudnnSetConvolution2dDescriptor", a.SetConvolution2dDescriptor, m);
  sym(o.lib, "cudnnSetConvolutionGroupCount", a.SetConvolutionGroupCount, m);
  sym(o.lib, "cudnnSetConvolutionMathType", a.SetConvolutionMathType, m);
  sym(o.lib, "cudnnGetConvolutionForwardAlgorithm_v7", a.GetConvolutionForwardAlgorithm_v7, m);
  sym(o.lib, "cudnnGetConvolutionBackwardDataAlgorithm_v7", a.GetConvolutionBackwardDataAlgorithm_v7, m);
  sym(o.lib, "cudnnGetConvolutionBackwardFilterAlgorithm_v7", a.GetConvolutionBackwardFilterAlgorithm_v7, m);
  sym(o.lib, "cudnnGetConvolutionForwardWorkspaceSize", a.GetConvolutionForwardWorkspaceSize, m);
  sym(o.lib, "cudnnGetConvolutionBackwardDataWorkspaceSize", a.GetConvolutionBackwardDataWorkspaceSize, m);
  sym(o.lib, "cudnnGetConvolutionBackwardFilterWorkspaceSize", a.GetConvolutionBackwardFilterWorkspaceSize, m);
  sym(o.lib, "cudnnConvolutionForward", a.ConvolutionForward, m);
  sym(o.lib, "cudnnConvolutionBackwardData", a.ConvolutionBackwardData, m);
  sym(o.lib, "cudnnConvolutionBackwardFilter", a.ConvolutionBackwardFilter, m);
  sym(o.lib, "cudnnGetErrorString", a.GetErrorString, m);
  std::string optional;  // autotuning only: without them the heuristics' choice stands
  sym(o.lib, "cudnnFindConvolutionForwardAlgorithmEx", a.FindConvolutionForwardAlgorithmEx, optional);
  sym(o.lib, "cudnnFindConvolutionBackwardDataAlgorithmEx", a.FindConvolutionBackwardDataAlgorithmEx, optional);
  sym(o.lib, "cudnnFindConvolutionBackwardFilterAlgorithmEx", a.FindConvolutionBackwardFilterAlgorithmEx, optional);
  if (!m.empty()) {
    s.why = "cuDNN at " + o.path + " lacks " + m;
    dlclose(o.lib);
    a = Cudnn{};
    return;
  }
  a.lib = o.lib;
  a.version = a.GetVersion();
  if (a.version < 90000) {
    s.why = "cuDNN at " + o.path + " is version " + std::to_string(a.version) + ", need 9.x";
    return;
  }
  const cudnnStatus_t st = a.Create(&a.handle);
  if (st != 0 || !a.handle) {
    const char* es = a.GetErrorString(st);
    s.why = "cuDNN at " + o.path + ": cudnnCreate failed with status " + std::to_string(st) + " (" +
            (es ? es : "?") + ")";
    a.handle = nullptr;
    return;
  }
  s.ok = true;
}

}  // namespace

const Cublas* cublas() {
  std::call_once(g_cublas.once, load_cublas);
  return g_cublas.ok ? &g_cublas.api : nullptr;
}

const CublasLt* cublaslt() {
  std::call_once(g_cublaslt.once, load_cublaslt);
  return g_cublaslt.ok ? &g_cublaslt.api : nullptr;
}

const Cudnn* cudnn() {
  std::call_once(g_cudnn.once, load_cudnn);
  return g_cudnn.ok ? &g_cudnn.api : nullptr;
}

std::string cublas_why_not() {
  cublas();
  return g_cublas.ok ? std::string() : g_cublas.why;
}

std::string cublaslt_why_not() {
  cublaslt();
  return g_cublaslt.ok ? std::string() : g_cublaslt.why;
}

void cublaslt_note_plan(bool ok, const std::string& why_not, bool demoted) {
  LtStats& t = g_lt_stats;
  std::lock_guard<std::mutex> lock(t.mu);
  if (demoted) --t.in_use;
  if (ok) {
    ++t.in_use;
    return;
  }
  ++t.refused;
  if (t.first.empty()) t.first = why_not;
}

std::string cudnn_why_not() {
  cudnn();
  return g_cudnn.ok ? std::string() : g_cudnn.why;
}

std::string report() {
  std::string r;
  if (const Cublas* b = cublas()) {
    r += "cuBLAS " + version_str(b->version, 10000, 100) + " from " + g_cublas.path;
  } else {
    r += g_cublas.why;
  }
  r += "\n";
  if (const CublasLt* l = cublaslt()) {
    r += "cuBLASLt " + version_str(static_cast<long long>(l->version), 10000, 100) + " from " + g_cublaslt.path;
    LtStats& t = g_lt_stats;
    std::lock_guard<std::mutex> lock(t.mu);
    if (t.in_use || t.refused) {
      r += " (GEMM plans: " + std::to_string(t.in_use) + " in use, " + std::to_string(t.refused) + " refused" +
           (t.first.empty() ? "" : "; first refusal: " + t.first) + ")";
    }
  } else {
    r += g_cublaslt.why;
  }
  r += "\n";
  if (const Cudnn* d = cudnn()) {
    r += "cuDNN " + version_str(static_cast<long long>(d->version), 10000, 100) + " from " + g_cudnn.path;
  } else {
    r += g_cudnn.why;
  }
  return r;
}

}  // namespace gpu
}  // namespace irc
