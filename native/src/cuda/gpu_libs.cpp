// cuBLAS, cuBLASLt and cuDNN loaded at run time (gpu_libs.h). Plain C++: no NVIDIA headers, compiled in every
// build. Search order for each library: the folders of $IRCONSTYLE_CUDA_LIBS (':'-separated), the system loader
// (soname), /usr/local/cuda, then the lib folders of Python `nvidia-*` wheels (nvidia/{cublas,cu13,cu12,cudnn}/lib)
// under the site-packages of $PYTHONPATH, the active environments ($VIRTUAL_ENV, $CONDA_PREFIX), the environment of
// every python3 on $PATH, and the usual prefixes (/usr, /usr/local, ~/.local, the conda installs in ~, /opt/conda,
// /opt/*, /opt/*/.venv).
// A library taken from a folder rather than through the system loader gets the libraries it needs by soname loaded
// first from that folder (cuBLASLt for cuBLAS; cuDNN's sub-libraries), and cuDNN gets cuBLASLt and NVRTC, which it
// opens by soname at run time: the loader then finds them loaded, with no RPATH or LD_LIBRARY_PATH to reach them.
// A library whose file loads but lacks a symbol, or whose handle cannot be created, is reported unavailable with
// the reason; nothing here exits, aborts or throws. Handles are never destroyed (the driver may already be gone
// at process exit).
#include "gpu_libs.h"

#include <dlfcn.h>
#include <glob.h>
#include <limits.h>
#include <link.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

namespace irc {
namespace gpu {
namespace {

std::vector<std::string> glob_paths(const std::string& pattern, bool dirs_only) {
  std::vector<std::string> out;
  glob_t g{};
  if (glob(pattern.c_str(), (dirs_only ? GLOB_ONLYDIR : 0) | GLOB_NOSORT, nullptr, &g) == 0) {
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

std::vector<std::string> split_list(const char* v) {
  std::vector<std::string> out;
  std::string cur;
  for (const char* p = v; p && *p; ++p) {
    if (*p == ':') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += *p;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

std::string parent_dir(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

// site-packages folders that may hold the nvidia-* wheels, the environments in use first.
std::vector<std::string> python_sites() {
  std::vector<std::string> sites;
  auto add = [&](const std::string& pattern) {
    for (auto& s : glob_paths(pattern, true)) sites.push_back(s);
  };
  for (const auto& d : split_list(env("PYTHONPATH"))) sites.push_back(d);
  if (const char* v = env("VIRTUAL_ENV")) add(std::string(v) + "/lib/python3*/site-packages");
  if (const char* c = env("CONDA_PREFIX")) add(std::string(c) + "/lib/python3*/site-packages");
  // the environment of each python3 on PATH (<env>/bin/python3 -> <env>/lib/python3.X/site-packages), and of the
  // interpreter it links to when it is a link (/usr/bin/python3 -> /opt/env/bin/python3)
  for (const auto& dir : split_list(env("PATH"))) {
    const std::string exe = dir + "/python3";
    if (access(exe.c_str(), X_OK) != 0) continue;
    add(dir + "/../lib/python3*/site-packages");
    char target[PATH_MAX];
    const ssize_t n = readlink(exe.c_str(), target, sizeof(target) - 1);
    if (n > 0) {
      target[n] = '\0';
      const std::string t = target[0] == '/' ? std::string(target) : dir + "/" + target;
      add(parent_dir(t) + "/../lib/python3*/site-packages");
    }
  }
  add("/usr/lib/python3*/site-packages");
  add("/usr/lib/python3*/dist-packages");
  add("/usr/local/lib/python3*/site-packages");
  add("/usr/local/lib/python3*/dist-packages");
  if (const char* h = env("HOME")) {
    for (const char* d : {"/.local", "/miniconda3", "/miniforge3", "/anaconda3"})
      add(std::string(h) + d + "/lib/python3*/site-packages");
  }
  add("/opt/conda/lib/python3*/site-packages");
  add("/opt/*/lib/python3*/site-packages");
  add("/opt/*/.venv/lib/python3*/site-packages");
  return sites;
}

// Directories to try, in order, each once (as its real path). An empty string stands for "the system loader"
// (dlopen by soname).
std::vector<std::string> find_search_dirs() {
  std::vector<std::string> dirs = split_list(env("IRCONSTYLE_CUDA_LIBS"));
#ifdef IRC_CUDA_EMU
  // The CUDA emulator build takes only its CPU stand-ins (built beside the addon, native/emu/stand_in): a real
  // library would compute on device memory, which the emulator does not have.
  dirs.emplace_back(IRC_EMU_LIBS_DIR);
  return dirs;
#endif
  dirs.emplace_back("");
  dirs.emplace_back("/usr/local/cuda/lib64");
  dirs.emplace_back("/usr/local/cuda/targets/x86_64-linux/lib");
  for (const auto& s : python_sites()) {
    for (const char* sub : {"/nvidia/cublas/lib", "/nvidia/cu13/lib", "/nvidia/cu12/lib", "/nvidia/cudnn/lib"}) {
      const std::string d = s + sub;
      if (access(d.c_str(), F_OK) == 0) dirs.push_back(d);
    }
  }
  std::vector<std::string> uniq;  // keep the first occurrence of each
  for (auto& d : dirs) {
    char real[PATH_MAX];
    if (!d.empty() && realpath(d.c_str(), real)) d = real;
    if (std::find(uniq.begin(), uniq.end(), d) == uniq.end()) uniq.push_back(d);
  }
  return uniq;
}

// Loads, each by its absolute path, the files in dir that match the patterns (in passes, until a pass loads nothing
// more: one may need another of them). The loader then satisfies a need of a library, or its dlopen by bare soname,
// with what is loaded under that soname. Failures are silent: whoever needs a library reports its absence.
void preload_from(const std::string& dir, const std::vector<const char*>& patterns) {
  if (dir.empty()) return;
  std::vector<std::string> files;
  for (const char* p : patterns) {
    for (auto& f : glob_paths(dir + "/" + p, false)) files.push_back(f);
  }
  for (bool more = true; more && !files.empty();) {
    more = false;
    for (auto it = files.begin(); it != files.end();) {
      if (dlopen(it->c_str(), RTLD_NOW | RTLD_LOCAL)) {
        it = files.erase(it);
        more = true;
      } else {
        dlerror();
        ++it;
      }
    }
  }
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

// The folders of find_search_dirs, found once per process (from the environment at the first library's load).
const std::vector<std::string>& search_dirs() {
  static const std::vector<std::string> dirs = find_search_dirs();
  return dirs;
}

#ifdef IRC_CUDA_EMU
extern "C" int irc_emu_enqueue(void* stream, void (*run)(void*), void* ctx, void (*release)(void*));  // native/emu
// Gives a stand-in library the emulator's stream queue (its work runs in stream order); false for any other library.
bool attach_emulator(void* lib) {
  using Attach = void (*)(int (*)(void*, void (*)(void*), void*, void (*)(void*)));
  auto attach = reinterpret_cast<Attach>(dlsym(lib, "ircEmuAttach"));
  if (!attach) return false;
  attach(irc_emu_enqueue);
  return true;
}
#endif

// The first of names found, folder by folder (search_dirs); in a folder, the files matching needs are loaded first
// (preload_from).
Opened open_first(const std::vector<const char*>& names, const std::vector<const char*>& needs = {}) {
  Opened o;
  for (const auto& dir : search_dirs()) {
    o.searched += (o.searched.empty() ? "" : ", ") + (dir.empty() ? std::string("system loader") : dir);
    for (const char* name : names) {
      const std::string cand = dir.empty() ? std::string(name) : dir + "/" + name;
      if (!dir.empty() && access(cand.c_str(), F_OK) != 0) continue;
      preload_from(dir, needs);
      void* h = dlopen(cand.c_str(), RTLD_NOW | RTLD_LOCAL);
#ifdef IRC_CUDA_EMU
      if (h && !attach_emulator(h)) {
        o.errors += std::string(o.errors.empty() ? "" : "; ") + cand + " is not a stand-in of the CUDA emulator";
        dlclose(h);
        continue;
      }
#endif
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
  Opened o = open_first({"libcublas.so.13", "libcublas.so.12", "libcublas.so"}, {"libcublasLt.so.1[23]"});
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

// What cuDNN 9 opens by soname besides its sub-libraries: cuBLASLt (legacy convolution APIs, some engines) and NVRTC
// (the runtime-compiled engines' library needs it), loaded from wherever they are found unless already loaded; before
// cuDNN's sub-libraries, so that those needing them load too.
void preload_cudnn_runtime_needs() {
  const auto loaded = [](const char* a, const char* b) {
    return dlopen(a, RTLD_NOW | RTLD_NOLOAD) || dlopen(b, RTLD_NOW | RTLD_NOLOAD);
  };
  if (!loaded("libcublasLt.so.13", "libcublasLt.so.12")) open_first({"libcublasLt.so.13", "libcublasLt.so.12"});
  if (!loaded("libnvrtc.so.13", "libnvrtc.so.12"))
    open_first({"libnvrtc.so.13", "libnvrtc.so.12"}, {"libnvrtc-builtins.so.1[23]*"});
  dlerror();
}

void load_cudnn() {
  CudnnState& s = g_cudnn;
  preload_cudnn_runtime_needs();
  Opened o = open_first({"libcudnn.so.9"}, {"libcudnn_*.so.9"});
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
