// CPU stand-in for cuBLAS (built as libcublas.so.13): the entry points native/src/cuda/gpu_libs.cpp looks up, with
// cuBLAS's column-major semantics, computed on the host ("device memory" is host memory in the emulator) in stream
// order. Used only by the CUDA emulator build (native/emu) and its tests; never shipped.
#include <cstdint>
#include <memory>
#include <new>

#include "stand_in.h"

namespace irc_stand_in {
namespace {

enum : int {  // cublasStatus_t
  kOk = 0,
  kNotInitialized = 1,
  kAllocFailed = 3,
  kInvalidValue = 7,
  kExecutionFailed = 13
};
enum : int { kOpN = 0, kOpT = 1, kOpC = 2 };  // cublasOperation_t (C = T for real data)

struct Handle {
  void* stream = nullptr;
  int math = 0;
};

// One (strided-batched) Sgemm, everything copied at call time: C_b = alpha op(A_b) op(B_b) + beta C_b.
struct GemmTask {
  GemmCore core;
  const float *A = nullptr, *B = nullptr;
  float* C = nullptr;
  int64_t ldc = 0, sA = 0, sB = 0, sC = 0;
  int batch = 1;
  double alpha = 1, beta = 0;
  std::vector<double> acc;

  void run() {
    for (int b = 0; b < batch; ++b) {
      core.begin(A + b * sA, B + b * sB);
      float* Cb = C + b * sC;
      for (int64_t j = 0; j < core.n; ++j) {
        core.column(j, acc.data());
        float* cj = Cb + j * ldc;
        for (int64_t i = 0; i < core.m; ++i) {
          const double v = alpha * acc[static_cast<size_t>(i)];
          cj[i] = static_cast<float>(beta == 0.0 ? v : v + beta * static_cast<double>(cj[i]));  // beta 0: C unread
        }
      }
    }
  }
};

bool op_ok(int op) { return op == kOpN || op == kOpT || op == kOpC; }
int64_t at_least_1(int64_t v) { return v < 1 ? 1 : v; }

int gemm(void* handle, int transa, int transb, int m, int n, int k, const float* alpha, const float* A, int lda,
         long long sA, const float* B, int ldb, long long sB, const float* beta, float* C, int ldc, long long sC,
         int batch) {
  if (!handle) return kNotInitialized;
  const bool ta = transa != kOpN, tb = transb != kOpN;
  if (!op_ok(transa) || !op_ok(transb) || m < 0 || n < 0 || k < 0 || batch < 0 || !alpha || !beta ||
      lda < at_least_1(ta ? k : m) || ldb < at_least_1(tb ? n : k) || ldc < at_least_1(m))
    return kInvalidValue;
  if (m == 0 || n == 0 || batch == 0) return kOk;
  try {
    auto t = std::make_unique<GemmTask>();
    GemmCore& c = t->core;
    c.ta = ta;
    c.tb = tb;
    c.m = m;
    c.n = n;
    c.k = k;
    c.lda = lda;
    c.ldb = ldb;
    c.zero = *alpha == 0.f || k == 0;
    c.reserve();
    t->A = A;
    t->B = B;
    t->C = C;
    t->ldc = ldc;
    t->sA = sA;
    t->sB = sB;
    t->sC = sC;
    t->batch = batch;
    t->alpha = *alpha;
    t->beta = *beta;
    t->acc.resize(static_cast<size_t>(m));
    return submit(static_cast<Handle*>(handle)->stream, std::move(t)) ? kOk : kExecutionFailed;
  } catch (const std::bad_alloc&) {
    return kAllocFailed;
  }
}

}  // namespace
}  // namespace irc_stand_in

using namespace irc_stand_in;

IRC_STAND_IN_EXPORT void ircEmuAttach(Enqueue enqueue) { g_enqueue.store(enqueue, std::memory_order_release); }

IRC_STAND_IN_EXPORT int cublasCreate_v2(void** handle) {
  if (!handle) return kInvalidValue;
  *handle = new (std::nothrow) Handle();
  return *handle ? kOk : kAllocFailed;
}

IRC_STAND_IN_EXPORT int cublasDestroy_v2(void* handle) {
  if (!handle) return kNotInitialized;
  delete static_cast<Handle*>(handle);
  return kOk;
}

IRC_STAND_IN_EXPORT int cublasSetStream_v2(void* handle, void* stream) {
  if (!handle) return kNotInitialized;
  static_cast<Handle*>(handle)->stream = stream;
  return kOk;
}

// Every mode computes in FP32 with double accumulation (at least as exact as TF32): the mode is only recorded.
IRC_STAND_IN_EXPORT int cublasSetMathMode(void* handle, int mode) {
  if (!handle) return kNotInitialized;
  const int base = mode & ~16;  // 16: CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION
  if (base < 0 || base > 3) return kInvalidValue;
  static_cast<Handle*>(handle)->math = mode;
  return kOk;
}

IRC_STAND_IN_EXPORT int cublasGetVersion_v2(void* handle, int* version) {
  if (!handle) return kNotInitialized;
  if (!version) return kInvalidValue;
  *version = 130100;  // 13.1.0
  return kOk;
}

IRC_STAND_IN_EXPORT int cublasSgemm_v2(void* handle, int transa, int transb, int m, int n, int k, const float* alpha,
                                       const float* A, int lda, const float* B, int ldb, const float* beta, float* C,
                                       int ldc) {
  return gemm(handle, transa, transb, m, n, k, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
}

IRC_STAND_IN_EXPORT int cublasSgemmStridedBatched(void* handle, int transa, int transb, int m, int n, int k,
                                                  const float* alpha, const float* A, int lda, long long strideA,
                                                  const float* B, int ldb, long long strideB, const float* beta,
                                                  float* C, int ldc, long long strideC, int batchCount) {
  return gemm(handle, transa, transb, m, n, k, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc, strideC,
              batchCount);
}
