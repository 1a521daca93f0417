// Row-major GEMM helpers over cuBLAS (defined in ops/matmul.cu), shared by the matmul, linear and conv2d kernels.
#pragma once
#include "common.cuh"
#include "gpu_libs.h"

namespace irc {
namespace blas {
// The loaded cuBLAS bound to the op's stream, math mode FP32 or TF32 (throws E_CUDA when cuBLAS is missing).
const gpu::Cublas& bind(const KernelCtx& k, bool tf32);
// Row-major C[M,N] = alpha op(A)[M,K] op(B)[K,N] + beta C.
void gemm(const KernelCtx& k, const gpu::Cublas& b, bool tA, bool tB, int64_t M, int64_t N, int64_t K, float alpha,
          const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
// y[r, :] = bias for every row.
void fill_rows(const KernelCtx& k, float* y, int64_t rows, int64_t cols, const float* bias);
// out[c] = sum over rows of x[r, c] (deterministic two-pass), temporaries in scratch `slot`.
void column_sums(const KernelCtx& k, const float* x, int64_t rows, int64_t cols, float* out, int slot);
}  // namespace blas
}  // namespace irc
