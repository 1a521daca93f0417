// Self-test of the CPU stand-ins for cuBLAS, cuBLASLt and cuDNN (cublas.cpp, cublaslt.cpp, cudnn.cpp), which are
// used only by the CUDA emulator build and its tests (never shipped). Usage: selftest <folder with libcublas.so.13,
// libcublasLt.so.13, libcudnn.so.9>. Checks against naive loops in double (synchronous: no enqueue attached), then
// the stream-order hook with a fake queue. One line per check; exit status 1 on any failure.
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "../../src/cuda/gpu_libs.h"

namespace {

namespace gg = irc::gpu;
using Enqueue = int (*)(void*, void (*)(void*), void*, void (*)(void*));
using Attach = void (*)(Enqueue);

const float kNaN = std::numeric_limits<float>::quiet_NaN();
int g_failures = 0, g_checks = 0;

void check(bool ok, const std::string& what, const std::string& detail = "") {
  ++g_checks;
  if (!ok) ++g_failures;
  std::printf("%s %s%s%s\n", ok ? "ok  " : "FAIL", what.c_str(), detail.empty() ? "" : ": ", detail.c_str());
}

std::mt19937 g_rng(12345);
std::vector<float> random_vec(size_t n) {
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = d(g_rng);
  return v;
}

// Worst |got - want| / (1 + |want|) over the pairs; NaN in got counts as infinite.
struct Compare {
  double worst = 0;
  void add(double got, double want) {
    const double e = std::isfinite(got) ? std::fabs(got - want) / (1 + std::fabs(want)) : INFINITY;
    if (e > worst) worst = e;
  }
  bool ok(double tol = 1e-5) const { return worst <= tol; }
  std::string str() const {
    char b[64];
    std::snprintf(b, sizeof b, "max rel err %.2e", worst);
    return b;
  }
};

bool close_rel(double a, double b, double tol) {
  return std::fabs(a - b) <= tol * std::max(std::fabs(a), std::fabs(b));
}

template <class F>
bool sym(void* lib, const char* name, F& f) {
  f = reinterpret_cast<F>(dlsym(lib, name));
  if (!f) check(false, std::string("symbol ") + name);
  return f != nullptr;
}

// ---- cuBLAS ----------------------------------------------------------------------------------------------------
// op(X)(i, j) of a column-major X with leading dim ld.
double op_at(const float* X, bool t, int64_t ld, int64_t i, int64_t j) { return t ? X[j + i * ld] : X[i + j * ld]; }

// Naive C = alpha op(A) op(B) + beta C0 (beta 0: C0 unread), in double.
std::vector<double> ref_gemm(bool ta, bool tb, int m, int n, int k, double alpha, const float* A, int lda,
                             const float* B, int ldb, double beta, const float* C0, int ldc) {
  std::vector<double> out(size_t(ldc) * n, 0.0);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double s = 0;
      for (int p = 0; p < k; ++p) s += op_at(A, ta, lda, i, p) * op_at(B, tb, ldb, p, j);
      out[i + size_t(j) * ldc] = alpha * s + (beta != 0 ? beta * C0[i + size_t(j) * ldc] : 0.0);
    }
  return out;
}

void test_cublas(const gg::Cublas& b) {
  void* h = nullptr;
  check(b.Create(&h) == 0 && h, "cublasCreate_v2");
  int ver = 0;
  const int st_ver = b.GetVersion(h, &ver);
  check(st_ver == 0 && ver >= 130000 && ver < 140000, "cublasGetVersion_v2", std::to_string(ver));
  check(b.SetStream(h, nullptr) == 0 && b.SetMathMode(h, gg::CUBLAS_TF32_TENSOR_OP_MATH) == 0 &&
            b.SetMathMode(h, gg::CUBLAS_DEFAULT_MATH) == 0,
        "cublasSetStream_v2 / cublasSetMathMode");
  const int m = 6, n = 5, k = 7;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (int with_beta = 0; with_beta < 2; ++with_beta) {
        const int lda = (ta ? k : m) + 3, ldb = (tb ? n : k) + 2, ldc = m + 4;
        const auto A = random_vec(size_t(lda) * (ta ? m : k)), B = random_vec(size_t(ldb) * (tb ? k : n));
        std::vector<float> C = random_vec(size_t(ldc) * n);
        for (int j = 0; j < n; ++j)
          for (int i = 0; i < ldc; ++i) C[i + size_t(j) * ldc] = i >= m ? 1234.5f : with_beta ? C[i + j * ldc] : kNaN;
        const std::vector<float> C0 = C;
        const float alpha = with_beta ? 1.25f : 0.75f, beta = with_beta ? 1.f : 0.f;
        const int st = b.Sgemm(h, ta, tb, m, n, k, &alpha, A.data(), lda, B.data(), ldb, &beta, C.data(), ldc);
        const auto want = ref_gemm(ta, tb, m, n, k, alpha, A.data(), lda, B.data(), ldb, beta, C0.data(), ldc);
        Compare cmp;
        bool pad_kept = true;
        for (int j = 0; j < n; ++j)
          for (int i = 0; i < ldc; ++i) {
            if (i < m) cmp.add(C[i + j * ldc], want[i + j * ldc]);
            else pad_kept = pad_kept && C[i + j * ldc] == 1234.5f;
          }
        char name[96];
        std::snprintf(name, sizeof name, "Sgemm op(A)=%c op(B)=%c %s", ta ? 'T' : 'N', tb ? 'T' : 'N',
                      with_beta ? "beta 1" : "beta 0 (C NaN)");
        check(st == 0 && cmp.ok() && pad_kept, name, cmp.str() + (pad_kept ? "" : ", rows past m written"));
      }
  {  // alpha 0: A and B unread (NaN there does not reach C), C = beta C
    std::vector<float> A(64, kNaN), B(64, kNaN), C = random_vec(16);
    const std::vector<float> C0 = C;
    const float alpha = 0.f, beta = 0.5f;
    const int st = b.Sgemm(h, 0, 0, 4, 4, 4, &alpha, A.data(), 4, B.data(), 4, &beta, C.data(), 4);
    Compare cmp;
    for (int i = 0; i < 16; ++i) cmp.add(C[i], 0.5 * C0[i]);
    check(st == 0 && cmp.ok(), "Sgemm alpha 0 (A, B NaN): C = beta C", cmp.str());
  }
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      const int batch = 3, lda = (ta ? k : m) + 1, ldb = (tb ? n : k) + 2, ldc = m + 1;
      const long long sA = lda * (ta ? m : k) + 5, sB = (ta + tb) % 2 ? 0 : ldb * (tb ? k : n) + 3;
      const long long sC = ldc * n + 7;
      const auto A = random_vec(size_t(sA) * batch), B = random_vec(size_t(sB ? sB : ldb * (tb ? k : n)) * batch);
      const bool with_beta = ta == tb;
      std::vector<float> C = random_vec(size_t(sC) * batch);
      if (!with_beta)
        for (float& v : C) v = kNaN;
      const std::vector<float> C0 = C;
      const float alpha = 0.5f, beta = with_beta ? 1.f : 0.f;
      const int st = b.SgemmStridedBatched(h, ta, tb, m, n, k, &alpha, A.data(), lda, sA, B.data(), ldb, sB, &beta,
                                           C.data(), ldc, sC, batch);
      Compare cmp;
      bool rest_kept = true;
      for (int bi = 0; bi < batch; ++bi) {
        const auto want = ref_gemm(ta, tb, m, n, k, alpha, A.data() + bi * sA, lda, B.data() + bi * sB, ldb, beta,
                                   C0.data() + bi * sC, ldc);
        for (int j = 0; j < n; ++j)
          for (int i = 0; i < m; ++i) cmp.add(C[bi * sC + i + j * ldc], want[i + j * ldc]);
      }
      for (size_t e = 0; e < C.size(); ++e) {  // elements outside every matrix keep their bits (NaN stays NaN)
        const long long bi = static_cast<long long>(e) / sC, off = static_cast<long long>(e) % sC;
        const bool inside = bi < batch && off < ldc * n && off % ldc < m;
        if (!inside) rest_kept = rest_kept && std::memcmp(&C[e], &C0[e], sizeof(float)) == 0;
      }
      char name[128];
      std::snprintf(name, sizeof name, "SgemmStridedBatched op(A)=%c op(B)=%c batch 3%s %s", ta ? 'T' : 'N',
                    tb ? 'T' : 'N', sB ? "" : " shared B", with_beta ? "beta 1" : "beta 0 (C NaN)");
      check(st == 0 && cmp.ok() && rest_kept, name, cmp.str() + (rest_kept ? "" : ", outside written"));
    }
  const float one = 1.f;
  float dummy[4] = {};
  check(b.Sgemm(h, 0, 0, 4, 1, 1, &one, dummy, 3, dummy, 1, &one, dummy, 4) != 0, "Sgemm lda < m refused");
  check(b.Sgemm(h, 5, 0, 1, 1, 1, &one, dummy, 1, dummy, 1, &one, dummy, 1) != 0, "Sgemm bad transa refused");
  check(b.Destroy(h) == 0, "cublasDestroy_v2");
}

// ---- cuBLASLt --------------------------------------------------------------------------------------------------
struct LtCase {
  int epilogue = gg::CUBLASLT_EPILOGUE_DEFAULT;
  bool ta = false, tb = false;
  int m = 0, n = 0, k = 0, batch = 1;
  int64_t lda = 0, ldb = 0, ldc = 0, ldd = 0, sA = 0, sB = 0, sC = 0, sD = 0;
  float alpha = 1, beta = 0;
  const float *A = nullptr, *B = nullptr, *C = nullptr;
  float* D = nullptr;
  void* bias = nullptr;
  int layout_type = gg::CUDA_R_32F, bias_type = gg::CUDA_R_32F, compute = gg::CUBLAS_COMPUTE_32F;
  int heuristic_status = -1, returned = 0;
  size_t workspace = 1;
  int result_state = -1;
};

// Builds descriptors and layouts, asks the heuristic, runs the matmul on `stream`, destroys everything (before the
// work runs when it is queued). Returns the first non-zero status.
int lt_run(const gg::CublasLt& lt, void* h, LtCase& c, void* stream = nullptr) {
  void *op = nullptr, *la = nullptr, *lb = nullptr, *lc = nullptr, *ld = nullptr, *pref = nullptr;
  int st = lt.MatmulDescCreate(&op, c.compute, gg::CUDA_R_32F);
  auto layout = [&](void** l, int64_t rows, int64_t cols, int64_t ldx, int64_t stride) {
    if (st == 0) st = lt.MatrixLayoutCreate(l, c.layout_type, uint64_t(rows), uint64_t(cols), ldx);
    if (st == 0 && c.batch > 1) {
      const int32_t cnt = c.batch;
      st = lt.MatrixLayoutSetAttribute(*l, gg::CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &cnt, sizeof cnt);
      if (st == 0) st = lt.MatrixLayoutSetAttribute(*l, gg::CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                                    sizeof stride);
    }
  };
  const int32_t ta = c.ta, tb = c.tb;
  const uint32_t epi = uint32_t(c.epilogue);
  if (st == 0) st = lt.MatmulDescSetAttribute(op, gg::CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
  if (st == 0) st = lt.MatmulDescSetAttribute(op, gg::CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
  if (st == 0) st = lt.MatmulDescSetAttribute(op, gg::CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
  if (st == 0 && c.bias) {
    st = lt.MatmulDescSetAttribute(op, gg::CUBLASLT_MATMUL_DESC_BIAS_POINTER, &c.bias, sizeof c.bias);
    const int32_t bt = c.bias_type;
    if (st == 0) st = lt.MatmulDescSetAttribute(op, gg::CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt);
  }
  layout(&la, c.ta ? c.k : c.m, c.ta ? c.m : c.k, c.lda, c.sA);
  layout(&lb, c.tb ? c.n : c.k, c.tb ? c.k : c.n, c.ldb, c.sB);
  layout(&lc, c.m, c.n, c.ldc, c.sC);
  layout(&ld, c.m, c.n, c.ldd, c.sD);
  if (st == 0) st = lt.MatmulPreferenceCreate(&pref);
  const uint64_t cap = 32u << 20;
  if (st == 0) st = lt.MatmulPreferenceSetAttribute(pref, gg::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &cap, 8);
  gg::CublasLtHeuristicResult res[8] = {};
  if (st == 0) {
    st = c.heuristic_status = lt.MatmulAlgoGetHeuristic(h, op, la, lb, lc, ld, pref, 8, res, &c.returned);
    c.workspace = res[0].workspaceSize;
    c.result_state = res[0].state;
  }
  float alpha = c.alpha, beta = c.beta;
  if (st == 0)
    st = lt.Matmul(h, op, &alpha, c.A, la, c.B, lb, &beta, c.C, lc, c.D, ld, &res[0].algo, nullptr, 0, stream);
  alpha = beta = kNaN;  // the call must have copied them
  if (pref) lt.MatmulPreferenceDestroy(pref);
  for (void* l : {la, lb, lc, ld})
    if (l) lt.MatrixLayoutDestroy(l);
  if (op) lt.MatmulDescDestroy(op);
  return st;
}

// Expected D (whole buffer: untouched elements keep D0) and bias output of a case, in double.
void lt_expect(const LtCase& c, const std::vector<float>& D0, const std::vector<float>& bias0,
               std::vector<double>& D, std::vector<double>& bias) {
  D.assign(D0.begin(), D0.end());
  bias.assign(bias0.begin(), bias0.end());
  for (int b = 0; b < c.batch; ++b) {
    const float *A = c.A + b * c.sA, *B = c.B + b * c.sB;
    const float* C = c.C == c.D ? D0.data() + b * c.sD : c.C ? c.C + b * c.sC : nullptr;
    for (int i = 0; i < c.m; ++i)
      for (int j = 0; j < c.n; ++j) {
        double s = 0;
        for (int p = 0; p < c.k; ++p) s += op_at(A, c.ta, c.lda, i, p) * op_at(B, c.tb, c.ldb, p, j);
        double v = c.alpha * s + (c.beta != 0 ? c.beta * C[i + j * c.ldc] : 0.0);
        if (c.epilogue == gg::CUBLASLT_EPILOGUE_BIAS) v += bias0[size_t(i)];
        D[size_t(b * c.sD + i + j * c.ldd)] = v;
      }
  }
  if (c.epilogue == gg::CUBLASLT_EPILOGUE_BGRADA)
    for (int i = 0; i < c.m; ++i) {
      double s = 0;
      for (int p = 0; p < c.k; ++p) s += op_at(c.A, c.ta, c.lda, i, p);
      bias[size_t(i)] = s;
    }
  if (c.epilogue == gg::CUBLASLT_EPILOGUE_BGRADB)
    for (int j = 0; j < c.n; ++j) {
      double s = 0;
      for (int p = 0; p < c.k; ++p) s += op_at(c.B, c.tb, c.ldb, p, j);
      bias[size_t(j)] = s;
    }
}

const char* epi_name(int e) {
  return e == gg::CUBLASLT_EPILOGUE_BIAS ? "BIAS" : e == gg::CUBLASLT_EPILOGUE_BGRADA ? "BGRADA"
         : e == gg::CUBLASLT_EPILOGUE_BGRADB ? "BGRADB" : "DEFAULT";
}

// Runs one configuration and compares D (and the bias gradient) with lt_expect. c_mode: 0 C = D with beta 0 (D
// NaN-filled), 1 C = D in place with beta 1, 2 a separate C (other leading dim) with beta 0.5.
void lt_check(const gg::CublasLt& lt, void* h, int epilogue, bool ta, bool tb, int batch, int c_mode) {
  LtCase c;
  c.epilogue = epilogue, c.ta = ta, c.tb = tb, c.m = 5, c.n = 6, c.k = 7, c.batch = batch;
  c.lda = (ta ? c.k : c.m) + 2, c.ldb = (tb ? c.n : c.k) + 1, c.ldd = c.m + 3;
  c.ldc = c_mode == 2 ? c.m + 1 : c.ldd;
  c.sA = c.lda * (ta ? c.m : c.k) + 3, c.sB = c.ldb * (tb ? c.k : c.n) + 5;
  c.sD = c.ldd * c.n + 2, c.sC = c_mode == 2 ? c.ldc * c.n + 4 : c.sD;
  const auto A = random_vec(size_t(c.sA) * batch), B = random_vec(size_t(c.sB) * batch);
  const auto C = random_vec(size_t(c.sC) * batch);
  std::vector<float> D = random_vec(size_t(c.sD) * batch);
  if (c_mode == 0)
    for (float& v : D) v = kNaN;
  const int blen = epilogue == gg::CUBLASLT_EPILOGUE_BGRADB ? c.n : c.m;
  std::vector<float> bias = epilogue == gg::CUBLASLT_EPILOGUE_BIAS ? random_vec(size_t(blen))
                                                                   : std::vector<float>(size_t(blen), kNaN);
  const std::vector<float> D0 = D, bias0 = bias;
  c.alpha = 0.75f;
  c.beta = c_mode == 0 ? 0.f : c_mode == 1 ? 1.f : 0.5f;
  c.A = A.data(), c.B = B.data(), c.D = D.data();
  c.C = c_mode == 2 ? C.data() : D.data();
  c.bias = epilogue == gg::CUBLASLT_EPILOGUE_DEFAULT ? nullptr : bias.data();
  const int st = lt_run(lt, h, c);
  std::vector<double> wantD, wantBias;
  lt_expect(c, D0, bias0, wantD, wantBias);
  Compare cmp;
  bool rest_kept = true;
  for (size_t e = 0; e < D.size(); ++e) {
    const int64_t off = int64_t(e) % c.sD;
    if (off < c.ldd * c.n && off % c.ldd < c.m) cmp.add(D[e], wantD[e]);
    else rest_kept = rest_kept && std::memcmp(&D[e], &D0[e], sizeof(float)) == 0;
  }
  Compare bcmp;
  if (epilogue == gg::CUBLASLT_EPILOGUE_BGRADA || epilogue == gg::CUBLASLT_EPILOGUE_BGRADB)
    for (int i = 0; i < blen; ++i) bcmp.add(bias[size_t(i)], wantBias[size_t(i)]);
  char name[160];
  std::snprintf(name, sizeof name, "cublasLtMatmul %s op(A)=%c op(B)=%c batch %d, %s", epi_name(epilogue),
                ta ? 'T' : 'N', tb ? 'T' : 'N', batch,
                c_mode == 0 ? "C = D, beta 0 (D NaN)" : c_mode == 1 ? "in place, beta 1" : "separate C, beta 0.5");
  const bool heur_ok = c.heuristic_status == 0 && c.returned == 1 && c.workspace == 0 && c.result_state == 0;
  check(st == 0 && heur_ok && cmp.ok() && bcmp.ok() && rest_kept, name,
        cmp.str() + (bcmp.worst > 0 ? ", bias " + bcmp.str() : "") + (rest_kept ? "" : ", outside D written") +
            (heur_ok ? "" : ", heuristic result wrong"));
}

void test_cublaslt(const gg::CublasLt& lt) {
  const size_t ver = lt.GetVersion();
  check(ver >= 110000, "cublasLtGetVersion >= 110000", std::to_string(ver));
  void* h = nullptr;
  check(lt.Create(&h) == 0 && h, "cublasLtCreate");
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      for (int c_mode = 0; c_mode < 3; ++c_mode) {
        lt_check(lt, h, gg::CUBLASLT_EPILOGUE_DEFAULT, ta, tb, 2, c_mode);
        lt_check(lt, h, gg::CUBLASLT_EPILOGUE_BIAS, ta, tb, 2, c_mode);
      }
      lt_check(lt, h, gg::CUBLASLT_EPILOGUE_BIAS, ta, tb, 1, 2);
      lt_check(lt, h, gg::CUBLASLT_EPILOGUE_BGRADA, ta, tb, 1, 0);
      lt_check(lt, h, gg::CUBLASLT_EPILOGUE_BGRADB, ta, tb, 1, 2);
    }
  // Refusals: each must give a non-zero status (the addon then falls back to cuBLAS).
  std::vector<float> buf(256, 0.f), bias(16, 0.f);
  auto refused = [&](const char* what, auto&& tweak) {
    LtCase c;
    c.m = c.n = c.k = 4, c.lda = c.ldb = c.ldc = c.ldd = 4, c.sA = c.sB = c.sC = c.sD = 16;
    c.A = c.B = c.C = c.D = buf.data();
    tweak(c);
    const int st = lt_run(lt, h, c);
    check(st != 0, std::string("cublasLt refuses ") + what, "status " + std::to_string(st));
  };
  refused("epilogue RELU", [](LtCase& c) { c.epilogue = 2; });
  refused("BGRADA with batch 2", [&](LtCase& c) {
    c.epilogue = gg::CUBLASLT_EPILOGUE_BGRADA, c.batch = 2, c.bias = bias.data();
  });
  refused("BGRADB with batch 2", [&](LtCase& c) {
    c.epilogue = gg::CUBLASLT_EPILOGUE_BGRADB, c.batch = 2, c.bias = bias.data();
  });
  refused("CUDA_R_16F layouts", [](LtCase& c) { c.layout_type = 2; });
  refused("a CUDA_R_16F bias", [&](LtCase& c) {
    c.epilogue = gg::CUBLASLT_EPILOGUE_BIAS, c.bias = bias.data(), c.bias_type = 2;
  });
  refused("BIAS without a bias pointer", [](LtCase& c) { c.epilogue = gg::CUBLASLT_EPILOGUE_BIAS; });
  refused("compute type 32F_FAST_16F", [](LtCase& c) { c.compute = 74; });
  refused("ld < rows", [](LtCase& c) { c.ldd = c.ldc = 3; });
  check(lt.Destroy(h) == 0, "cublasLtDestroy");
}

// ---- cuDNN -----------------------------------------------------------------------------------------------------
struct ConvCase {
  const char* name;
  int N, C, H, W, K, R, S, G, ph, pw, u, v, dh, dw;
};

const ConvCase kConvCases[] = {
    {"dense 3x3 pad 1", 2, 3, 6, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1},
    {"dense 3x2 K=11 pad 1 stride 2 dilation 2", 2, 4, 11, 10, 11, 3, 2, 1, 1, 1, 2, 2, 2, 2},
    {"groups 2 pad 1 stride 2", 1, 4, 9, 8, 6, 3, 3, 2, 1, 1, 2, 2, 1, 1},
    {"groups 2 K=18 pad 1 stride 2 dilation 2", 1, 4, 10, 10, 18, 3, 3, 2, 1, 1, 2, 2, 2, 2},
    {"depthwise pad 1 dilation 2", 2, 5, 8, 7, 5, 3, 3, 5, 1, 1, 1, 1, 2, 2},
    {"depthwise x2 pad 1 stride 2", 1, 3, 7, 9, 6, 3, 3, 3, 1, 1, 2, 2, 1, 1},
    {"uneven pad/stride/dilation 2x3", 1, 2, 7, 6, 3, 2, 3, 1, 0, 2, 1, 3, 3, 1},
};

int64_t tidx(int fmt, const int (&d)[4], int n, int c, int h, int w) {  // d = {N, C, H, W}
  return fmt == gg::CUDNN_TENSOR_NHWC ? ((int64_t(n) * d[2] + h) * d[3] + w) * d[1] + c
                                      : ((int64_t(n) * d[1] + c) * d[2] + h) * d[3] + w;
}

struct Conv {
  ConvCase k;
  int fmt, mode, Ho, Wo;
  int xd[4], yd[4], wd[4];  // {N, C, H, W}; the filter as {K, C/G, R, S}
  size_t xn, yn, wn;
  Conv(const ConvCase& c, int fmt_, int mode_) : k(c), fmt(fmt_), mode(mode_) {
    Ho = (c.H + 2 * c.ph - ((c.R - 1) * c.dh + 1)) / c.u + 1;
    Wo = (c.W + 2 * c.pw - ((c.S - 1) * c.dw + 1)) / c.v + 1;
    const int x4[4] = {c.N, c.C, c.H, c.W}, y4[4] = {c.N, c.K, Ho, Wo}, w4[4] = {c.K, c.C / c.G, c.R, c.S};
    std::memcpy(xd, x4, sizeof xd), std::memcpy(yd, y4, sizeof yd), std::memcpy(wd, w4, sizeof wd);
    xn = size_t(c.N) * c.C * c.H * c.W, yn = size_t(c.N) * c.K * Ho * Wo, wn = size_t(c.K) * (c.C / c.G) * c.R * c.S;
  }
  // Naive forward (double), walking every (output, input pixel) pair and deciding whether the pixel is a tap.
  std::vector<double> reference(const std::vector<float>& x, const std::vector<float>& w) const {
    std::vector<double> y(yn, 0.0);
    const int Cg = k.C / k.G, Kg = k.K / k.G;
    for (int n = 0; n < k.N; ++n)
      for (int o = 0; o < k.K; ++o)
        for (int oh = 0; oh < Ho; ++oh)
          for (int ow = 0; ow < Wo; ++ow) {
            double s = 0;
            for (int ci = 0; ci < Cg; ++ci)
              for (int ih = 0; ih < k.H; ++ih) {
                const int dr = ih + k.ph - oh * k.u;  // = r * dh for tap r
                if (dr < 0 || dr % k.dh || dr / k.dh >= k.R) continue;
                for (int iw = 0; iw < k.W; ++iw) {
                  const int ds = iw + k.pw - ow * k.v;
                  if (ds < 0 || ds % k.dw || ds / k.dw >= k.S) continue;
                  int r = dr / k.dh, sx = ds / k.dw;
                  if (mode == gg::CUDNN_CONVOLUTION) r = k.R - 1 - r, sx = k.S - 1 - sx;
                  const double xv = x[size_t(tidx(fmt, xd, n, (o / Kg) * Cg + ci, ih, iw))];
                  s += xv * w[size_t(tidx(fmt, wd, o, ci, r, sx))];
                }
              }
            y[size_t(tidx(fmt, yd, n, o, oh, ow))] = s;
          }
    return y;
  }
};

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += double(a[i]) * b[i];
  return s;
}

struct Dnn {
  const gg::Cudnn& d;
  void* h;
  void *xd = nullptr, *yd = nullptr, *wd = nullptr, *cd = nullptr;
  Dnn(const gg::Cudnn& d_, void* h_, const Conv& c) : d(d_), h(h_) {
    d.CreateTensorDescriptor(&xd), d.CreateTensorDescriptor(&yd), d.CreateFilterDescriptor(&wd);
    d.CreateConvolutionDescriptor(&cd);
    st = d.SetTensor4dDescriptor(xd, c.fmt, gg::CUDNN_DATA_FLOAT, c.k.N, c.k.C, c.k.H, c.k.W);
    if (!st) st = d.SetTensor4dDescriptor(yd, c.fmt, gg::CUDNN_DATA_FLOAT, c.k.N, c.k.K, c.Ho, c.Wo);
    if (!st) st = d.SetFilter4dDescriptor(wd, gg::CUDNN_DATA_FLOAT, c.fmt, c.k.K, c.k.C / c.k.G, c.k.R, c.k.S);
    if (!st) st = d.SetConvolution2dDescriptor(cd, c.k.ph, c.k.pw, c.k.u, c.k.v, c.k.dh, c.k.dw, c.mode,
                                               gg::CUDNN_DATA_FLOAT);
    if (!st) st = d.SetConvolutionGroupCount(cd, c.k.G);
    if (!st) st = d.SetConvolutionMathType(cd, gg::CUDNN_FMA_MATH);
  }
  ~Dnn() {
    d.DestroyTensorDescriptor(xd), d.DestroyTensorDescriptor(yd), d.DestroyFilterDescriptor(wd);
    d.DestroyConvolutionDescriptor(cd);
  }
  int st = 0;
  int fwd(float alpha, const std::vector<float>& x, const std::vector<float>& w, float beta, std::vector<float>& y,
          int algo = 1) {
    return d.ConvolutionForward(h, &alpha, xd, x.data(), wd, w.data(), cd, algo, nullptr, 0, &beta, yd, y.data());
  }
  int bwd_data(float alpha, const std::vector<float>& w, const std::vector<float>& dy, float beta,
               std::vector<float>& dx, int algo = 1) {
    return d.ConvolutionBackwardData(h, &alpha, wd, w.data(), yd, dy.data(), cd, algo, nullptr, 0, &beta, xd,
                                     dx.data());
  }
  int bwd_filter(float alpha, const std::vector<float>& x, const std::vector<float>& dy, float beta,
                 std::vector<float>& dw, int algo = 1) {
    return d.ConvolutionBackwardFilter(h, &alpha, xd, x.data(), yd, dy.data(), cd, algo, nullptr, 0, &beta, wd,
                                       dw.data());
  }
};

// What conv2d.cu accepts with TF32 off (first_usable): succeeded, deterministic, no FFT / Winograd transform.
int first_usable(const gg::CudnnAlgoPerf* p, int n, int dir) {
  for (int i = 0; i < n; ++i) {
    const int a = p[i].algo;
    const bool transform = dir == 0 ? a >= 4 : dir == 1 ? a >= 2 : (a == 2 || a >= 4);
    if (p[i].status == 0 && p[i].determinism == 1 && !transform) return i;
  }
  return -1;
}

void test_queries(const gg::Cudnn& d, void* h, Dnn& dn) {
  gg::CudnnAlgoPerf perf[16] = {};
  const char* dirs[3] = {"forward", "backward data", "backward filter"};
  for (int dir = 0; dir < 3; ++dir) {
    for (int find = 0; find < 2; ++find) {
      int n = 0, st;
      std::vector<float> a(4096, 0.f);
      if (dir == 0)
        st = find ? d.FindConvolutionForwardAlgorithmEx(h, dn.xd, a.data(), dn.wd, a.data(), dn.cd, dn.yd, a.data(),
                                                        16, &n, perf, nullptr, 0)
                  : d.GetConvolutionForwardAlgorithm_v7(h, dn.xd, dn.wd, dn.cd, dn.yd, 16, &n, perf);
      else if (dir == 1)
        st = find ? d.FindConvolutionBackwardDataAlgorithmEx(h, dn.wd, a.data(), dn.yd, a.data(), dn.cd, dn.xd,
                                                             a.data(), 16, &n, perf, nullptr, 0)
                  : d.GetConvolutionBackwardDataAlgorithm_v7(h, dn.wd, dn.yd, dn.cd, dn.xd, 16, &n, perf);
      else
        st = find ? d.FindConvolutionBackwardFilterAlgorithmEx(h, dn.xd, a.data(), dn.yd, a.data(), dn.cd, dn.wd,
                                                               a.data(), 16, &n, perf, nullptr, 0)
                  : d.GetConvolutionBackwardFilterAlgorithm_v7(h, dn.xd, dn.yd, dn.cd, dn.wd, 16, &n, perf);
      const int pick = st == 0 ? first_usable(perf, n, dir) : -1;
      size_t ws = 1;
      int st2 = -1;
      if (pick >= 0) {
        const int algo = perf[pick].algo;
        st2 = dir == 0   ? d.GetConvolutionForwardWorkspaceSize(h, dn.xd, dn.wd, dn.cd, dn.yd, algo, &ws)
              : dir == 1 ? d.GetConvolutionBackwardDataWorkspaceSize(h, dn.wd, dn.yd, dn.cd, dn.xd, algo, &ws)
                         : d.GetConvolutionBackwardFilterWorkspaceSize(h, dn.xd, dn.yd, dn.cd, dn.wd, algo, &ws);
      }
      std::string list;
      for (int i = 0; i < n; ++i) list += (i ? "," : "") + std::to_string(perf[i].algo);
      check(st == 0 && pick >= 0 && st2 == 0 && ws == 0 && perf[pick].memory == 0,
            std::string(find ? "cudnnFind*AlgorithmEx " : "cudnnGet*Algorithm_v7 ") + dirs[dir] +
                ": a usable FP32 algorithm, workspace 0",
            "algorithms " + list + (pick >= 0 ? ", picks " + std::to_string(perf[pick].algo) : ""));
    }
  }
}

void test_cudnn(const gg::Cudnn& d) {
  check(d.GetVersion() >= 90000 && d.GetVersion() < 100000, "cudnnGetVersion 9.x", std::to_string(d.GetVersion()));
  void* h = nullptr;
  check(d.Create(&h) == 0 && h && d.SetStream(h, nullptr) == 0, "cudnnCreate / cudnnSetStream");
  bool queried = false;
  for (int fmt : {gg::CUDNN_TENSOR_NCHW, gg::CUDNN_TENSOR_NHWC})
    for (int mode : {gg::CUDNN_CROSS_CORRELATION, gg::CUDNN_CONVOLUTION})
      for (const ConvCase& cc : kConvCases) {
        const Conv c(cc, fmt, mode);
        Dnn dn(d, h, c);
        const std::string tag = std::string(fmt == gg::CUDNN_TENSOR_NHWC ? "NHWC " : "NCHW ") +
                                (mode == gg::CUDNN_CONVOLUTION ? "conv " : "xcorr ") + cc.name;
        if (dn.st != 0) {
          check(false, tag + ": descriptors", "status " + std::to_string(dn.st));
          continue;
        }
        if (!queried) test_queries(d, h, dn), queried = true;
        const auto x = random_vec(c.xn), w = random_vec(c.wn), dy = random_vec(c.yn);
        const auto ref = c.reference(x, w);
        // forward, beta 0 over NaN, then beta 1 onto existing values
        std::vector<float> y(c.yn, kNaN);
        int st = dn.fwd(1.5f, x, w, 0.f, y, 0);
        Compare cmp;
        for (size_t i = 0; i < c.yn; ++i) cmp.add(y[i], 1.5 * ref[i]);
        check(st == 0 && cmp.ok(), tag + ": forward, beta 0 (y NaN)", cmp.str());
        std::vector<float> y1 = random_vec(c.yn);
        const std::vector<float> y0 = y1;
        st = dn.fwd(1.f, x, w, 1.f, y1);
        Compare cmp1;
        for (size_t i = 0; i < c.yn; ++i) cmp1.add(y1[i], ref[i] + y0[i]);
        check(st == 0 && cmp1.ok(), tag + ": forward, beta 1 accumulates", cmp1.str());
        // adjoints: <conv(x, w), dy> = <x, bwd_data(dy, w)> = <w, bwd_filter(x, dy)>
        std::vector<float> yc(c.yn, kNaN), dx(c.xn, kNaN), dw(c.wn, kNaN);
        st = dn.fwd(1.f, x, w, 0.f, yc);
        const int st_d = dn.bwd_data(1.f, w, dy, 0.f, dx, 1), st_f = dn.bwd_filter(1.f, x, dy, 0.f, dw, 1);
        const double a = dot(yc, dy), b = dot(x, dx), f = dot(w, dw);
        char nums[128];
        std::snprintf(nums, sizeof nums, "<y,dy> %.9g <x,dx> %.9g <w,dw> %.9g", a, b, f);
        check(st == 0 && st_d == 0 && close_rel(a, b, 1e-5), tag + ": backward data adjoint", nums);
        check(st == 0 && st_f == 0 && close_rel(a, f, 1e-5), tag + ": backward filter adjoint", nums);
        // beta 1: alpha * gradient added to what is there
        std::vector<float> dx1 = random_vec(c.xn), dw1 = random_vec(c.wn);
        const std::vector<float> dx0 = dx1, dw0 = dw1;
        const int st_d1 = dn.bwd_data(0.5f, w, dy, 1.f, dx1, 0), st_f1 = dn.bwd_filter(0.5f, x, dy, 1.f, dw1, 3);
        Compare cd, cf;
        for (size_t i = 0; i < c.xn; ++i) cd.add(dx1[i], 0.5 * dx[i] + dx0[i]);
        for (size_t i = 0; i < c.wn; ++i) cf.add(dw1[i], 0.5 * dw[i] + dw0[i]);
        check(st_d1 == 0 && st_f1 == 0 && cd.ok() && cf.ok(), tag + ": backward data / filter, beta 1 accumulates",
              "data " + cd.str() + ", filter " + cf.str());
      }
  {  // refusals
    const Conv c(kConvCases[0], gg::CUDNN_TENSOR_NHWC, gg::CUDNN_CROSS_CORRELATION);
    Dnn dn(d, h, c);
    void* t = nullptr;
    d.CreateTensorDescriptor(&t);
    const int st_half = d.SetTensor4dDescriptor(t, gg::CUDNN_TENSOR_NHWC, 2, 1, 1, 1, 1);
    d.DestroyTensorDescriptor(t);
    check(st_half != 0, "cudnnSetTensor4dDescriptor refuses half", "status " + std::to_string(st_half));
    std::vector<float> x(c.xn), w(c.wn), y(c.yn);
    const int st_algo = dn.fwd(1.f, x, w, 0.f, y, 6);
    check(st_algo != 0, "cudnnConvolutionForward refuses algorithm 6 (Winograd)", "status " + std::to_string(st_algo));
    d.SetTensor4dDescriptor(dn.yd, c.fmt, gg::CUDNN_DATA_FLOAT, c.k.N, c.k.K, c.Ho + 1, c.Wo);
    const int st_shape = dn.fwd(1.f, x, w, 0.f, y);
    const char* es = d.GetErrorString(st_shape);
    check(st_shape != 0 && es && *es, "cudnnConvolutionForward refuses a wrong output shape", es ? es : "null");
  }
  {  // speed: N=2, 32x32, 64 -> 64, 3x3, pad 1, NHWC
    const ConvCase big{"speed", 2, 64, 32, 32, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1};
    const Conv c(big, gg::CUDNN_TENSOR_NHWC, gg::CUDNN_CROSS_CORRELATION);
    Dnn dn(d, h, c);
    const auto x = random_vec(c.xn), w = random_vec(c.wn), dy = random_vec(c.yn);
    std::vector<float> y(c.yn), dx(c.xn), dw(c.wn);
    auto ms = [](auto&& f) {
      const auto t0 = std::chrono::steady_clock::now();
      f();
      return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    };
    const double t_f = ms([&] { dn.fwd(1.f, x, w, 0.f, y); });
    const double t_d = ms([&] { dn.bwd_data(1.f, w, dy, 0.f, dx); });
    const double t_w = ms([&] { dn.bwd_filter(1.f, x, dy, 0.f, dw); });
    char b[160];
    std::snprintf(b, sizeof b, "forward %.1f ms, backward data %.1f ms, backward filter %.1f ms", t_f, t_d, t_w);
    std::printf("info N=2 32x32 64->64 3x3 conv: %s\n", b);
  }
  check(d.Destroy(h) == 0, "cudnnDestroy");
}

// ---- stream order: a fake queue --------------------------------------------------------------------------------
struct Queued {
  void* stream;
  void (*fn)(void*);
  void* ctx;
  void (*release)(void*);
};
std::vector<Queued> g_queue;
bool g_refuse = false;
int fake_enqueue(void* stream, void (*fn)(void*), void* ctx, void (*release)(void*)) {
  if (g_refuse) return 1;
  g_queue.push_back({stream, fn, ctx, release});
  return 0;
}
void drain() {  // each piece of work twice (as a graph's replays would), then released
  for (const Queued& q : g_queue) q.fn(q.ctx);
  for (const Queued& q : g_queue) q.fn(q.ctx);
  for (const Queued& q : g_queue) q.release(q.ctx);
  g_queue.clear();
}

void* const kStream = reinterpret_cast<void*>(0x5eed);

void test_queued(const gg::Cublas& b, const gg::CublasLt& lt, const gg::Cudnn& d, Attach at_b, Attach at_lt,
                 Attach at_d) {
  at_b(fake_enqueue), at_lt(fake_enqueue), at_d(fake_enqueue);
  {  // cuBLAS: queued on the handle's stream, scalars copied at call time
    void* h = nullptr;
    b.Create(&h);
    b.SetStream(h, kStream);
    const auto A = random_vec(12), B = random_vec(12);
    std::vector<float> C(16, kNaN);
    float alpha = 2.f, beta = 0.f;
    const int st = b.Sgemm(h, 0, 0, 4, 4, 3, &alpha, A.data(), 4, B.data(), 3, &beta, C.data(), 4);
    const bool queued = g_queue.size() == 1 && g_queue[0].stream == kStream && std::isnan(C[0]);
    alpha = beta = kNaN;
    b.Destroy(h);
    drain();
    const float two = 2.f, zero = 0.f;
    const auto want = ref_gemm(false, false, 4, 4, 3, two, A.data(), 4, B.data(), 3, zero, nullptr, 4);
    Compare cmp;
    for (int i = 0; i < 16; ++i) cmp.add(C[i], want[i]);
    check(st == 0 && queued && cmp.ok(), "cublasSgemm_v2 queued on its stream, runs at drain with the call's alpha",
          cmp.str());
    g_refuse = true;
    b.Create(&h);
    alpha = 1.f, beta = 0.f;
    const int st2 = b.Sgemm(h, 0, 0, 4, 4, 3, &alpha, A.data(), 4, B.data(), 3, &beta, C.data(), 4);
    b.Destroy(h);
    g_refuse = false;
    check(st2 != 0, "cublasSgemm_v2 reports a refused enqueue", "status " + std::to_string(st2));
  }
  {  // cuBLASLt: descriptors destroyed before the work runs
    void* h = nullptr;
    lt.Create(&h);
    const auto A = random_vec(20), B = random_vec(20), bias = random_vec(4);
    std::vector<float> D(16, kNaN);
    LtCase c;
    c.epilogue = gg::CUBLASLT_EPILOGUE_BIAS, c.m = c.n = 4, c.k = 5, c.lda = 4, c.ldb = 5, c.ldc = c.ldd = 4;
    c.alpha = 1.f, c.A = A.data(), c.B = B.data(), c.C = c.D = D.data();
    c.bias = const_cast<float*>(bias.data());
    const int st = lt_run(lt, h, c, kStream);
    const bool queued = g_queue.size() == 1 && g_queue[0].stream == kStream && std::isnan(D[0]);
    drain();
    std::vector<double> want, wb;
    lt_expect(c, std::vector<float>(16, kNaN), bias, want, wb);
    Compare cmp;
    for (int i = 0; i < 16; ++i) cmp.add(D[i], want[i]);
    check(st == 0 && queued && cmp.ok(), "cublasLtMatmul queued on its stream, descriptors gone before it runs",
          cmp.str());
    lt.Destroy(h);
  }
  {  // cuDNN: descriptors destroyed and alpha changed before the work runs
    void* h = nullptr;
    d.Create(&h);
    d.SetStream(h, kStream);
    const Conv c(kConvCases[2], gg::CUDNN_TENSOR_NHWC, gg::CUDNN_CONVOLUTION);
    const auto x = random_vec(c.xn), w = random_vec(c.wn);
    std::vector<float> y(c.yn, kNaN);
    int st;
    bool queued;
    {
      Dnn dn(d, h, c);
      float alpha = 1.f, beta = 0.f;
      st = d.ConvolutionForward(h, &alpha, dn.xd, x.data(), dn.wd, w.data(), dn.cd, 1, nullptr, 0, &beta, dn.yd,
                                y.data());
      alpha = beta = kNaN;
      queued = g_queue.size() == 1 && g_queue[0].stream == kStream && std::isnan(y[0]);
    }
    drain();
    const auto ref = c.reference(x, w);
    Compare cmp;
    for (size_t i = 0; i < c.yn; ++i) cmp.add(y[i], ref[i]);
    check(st == 0 && queued && cmp.ok(),
          "cudnnConvolutionForward queued on its stream, descriptors gone before it runs", cmp.str());
    d.Destroy(h);
  }
  at_b(nullptr), at_lt(nullptr), at_d(nullptr);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s <folder with libcublas.so.13, libcublasLt.so.13, libcudnn.so.9>\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  void* lb = dlopen((dir + "/libcublas.so.13").c_str(), RTLD_NOW | RTLD_LOCAL);
  void* ll = dlopen((dir + "/libcublasLt.so.13").c_str(), RTLD_NOW | RTLD_LOCAL);
  void* ld = dlopen((dir + "/libcudnn.so.9").c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lb || !ll || !ld) {
    std::fprintf(stderr, "dlopen failed: %s\n", dlerror());
    return 2;
  }
  gg::Cublas b;
  gg::CublasLt lt;
  gg::Cudnn d;
  Attach at_b = nullptr, at_lt = nullptr, at_d = nullptr;
  bool all = sym(lb, "cublasCreate_v2", b.Create) & sym(lb, "cublasDestroy_v2", b.Destroy) &
             sym(lb, "cublasSetStream_v2", b.SetStream) & sym(lb, "cublasSetMathMode", b.SetMathMode) &
             sym(lb, "cublasGetVersion_v2", b.GetVersion) & sym(lb, "cublasSgemm_v2", b.Sgemm) &
             sym(lb, "cublasSgemmStridedBatched", b.SgemmStridedBatched) & sym(lb, "ircEmuAttach", at_b);
  all = all & sym(ll, "cublasLtCreate", lt.Create) & sym(ll, "cublasLtDestroy", lt.Destroy) &
        sym(ll, "cublasLtGetVersion", lt.GetVersion) & sym(ll, "cublasLtMatmulDescCreate", lt.MatmulDescCreate) &
        sym(ll, "cublasLtMatmulDescDestroy", lt.MatmulDescDestroy) &
        sym(ll, "cublasLtMatmulDescSetAttribute", lt.MatmulDescSetAttribute) &
        sym(ll, "cublasLtMatrixLayoutCreate", lt.MatrixLayoutCreate) &
        sym(ll, "cublasLtMatrixLayoutDestroy", lt.MatrixLayoutDestroy) &
        sym(ll, "cublasLtMatrixLayoutSetAttribute", lt.MatrixLayoutSetAttribute) &
        sym(ll, "cublasLtMatmulPreferenceCreate", lt.MatmulPreferenceCreate) &
        sym(ll, "cublasLtMatmulPreferenceSetAttribute", lt.MatmulPreferenceSetAttribute) &
        sym(ll, "cublasLtMatmulPreferenceDestroy", lt.MatmulPreferenceDestroy) &
        sym(ll, "cublasLtMatmulAlgoGetHeuristic", lt.MatmulAlgoGetHeuristic) & sym(ll, "cublasLtMatmul", lt.Matmul) &
        sym(ll, "ircEmuAttach", at_lt);
  all = all & sym(ld, "cudnnGetVersion", d.GetVersion) & sym(ld, "cudnnCreate", d.Create) &
        sym(ld, "cudnnDestroy", d.Destroy) & sym(ld, "cudnnSetStream", d.SetStream) &
        sym(ld, "cudnnCreateTensorDescriptor", d.CreateTensorDescriptor) &
        sym(ld, "cudnnDestroyTensorDescriptor", d.DestroyTensorDescriptor) &
        sym(ld, "cudnnSetTensor4dDescriptor", d.SetTensor4dDescriptor) &
        sym(ld, "cudnnCreateFilterDescriptor", d.CreateFilterDescriptor) &
        sym(ld, "cudnnDestroyFilterDescriptor", d.DestroyFilterDescriptor) &
        sym(ld, "cudnnSetFilter4dDescriptor", d.SetFilter4dDescriptor) &
        sym(ld, "cudnnCreateConvolutionDescriptor", d.CreateConvolutionDescriptor) &
        sym(ld, "cudnnDestroyConvolutionDescriptor", d.DestroyConvolutionDescriptor) &
        sym(ld, "cudnnSetConvolution2dDescriptor", d.SetConvolution2dDescriptor) &
        sym(ld, "cudnnSetConvolutionGroupCount", d.SetConvolutionGroupCount) &
        sym(ld, "cudnnSetConvolutionMathType", d.SetConvolutionMathType) &
        sym(ld, "cudnnGetConvolutionForwardAlgorithm_v7", d.GetConvolutionForwardAlgorithm_v7) &
        sym(ld, "cudnnGetConvolutionBackwardDataAlgorithm_v7", d.GetConvolutionBackwardDataAlgorithm_v7) &
        sym(ld, "cudnnGetConvolutionBackwardFilterAlgorithm_v7", d.GetConvolutionBackwardFilterAlgorithm_v7) &
        sym(ld, "cudnnGetConvolutionForwardWorkspaceSize", d.GetConvolutionForwardWorkspaceSize) &
        sym(ld, "cudnnGetConvolutionBackwardDataWorkspaceSize", d.GetConvolutionBackwardDataWorkspaceSize) &
        sym(ld, "cudnnGetConvolutionBackwardFilterWorkspaceSize", d.GetConvolutionBackwardFilterWorkspaceSize) &
        sym(ld, "cudnnFindConvolutionForwardAlgorithmEx", d.FindConvolutionForwardAlgorithmEx) &
        sym(ld, "cudnnFindConvolutionBackwardDataAlgorithmEx", d.FindConvolutionBackwardDataAlgorithmEx) &
        sym(ld, "cudnnFindConvolutionBackwardFilterAlgorithmEx", d.FindConvolutionBackwardFilterAlgorithmEx) &
        sym(ld, "cudnnConvolutionForward", d.ConvolutionForward) &
        sym(ld, "cudnnConvolutionBackwardData", d.ConvolutionBackwardData) &
        sym(ld, "cudnnConvolutionBackwardFilter", d.ConvolutionBackwardFilter) &
        sym(ld, "cudnnGetErrorString", d.GetErrorString) & sym(ld, "ircEmuAttach", at_d);
  check(all, "every symbol gpu_libs.cpp looks up, and ircEmuAttach, is exported");
  if (!all) return 1;
  test_cublas(b);
  test_cublaslt(lt);
  test_cudnn(d);
  test_queued(b, lt, d, at_b, at_lt, at_d);
  std::printf("%d checks, %d failed\n", g_checks, g_failures);
  return g_failures ? 1 : 0;
}
