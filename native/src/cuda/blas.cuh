// Row-major GEMM helpers over cuBLAS and cuBLASLt (defined in ops/matmul.cu), shared by the matmul, linear and
// conv2d kernels.
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
// For i < batch: C_i = op(A_i) op(B_i) + beta C_i with A_i = A + i sA (likewise B, C), one strided-batched call
// per 65,535 matrices.
void gemm_batched(const KernelCtx& k, const gpu::Cublas& b, bool tA, bool tB, int64_t M, int64_t N, int64_t K,
                  const float* A, int64_t lda, int64_t sA, const float* B, int64_t ldb, int64_t sB, float* C,
                  int64_t ldc, int64_t sC, int64_t batch, float beta);
// y[r, :] = bias for every row.
void fill_rows(const KernelCtx& k, float* y, int64_t rows, int64_t cols, const float* bias);
// out[c] = sum over rows of x[r, c] (deterministic two-pass), temporaries in scratch `slot`.
void column_sums(const KernelCtx& k, const float* x, int64_t rows, int64_t cols, float* out, int slot);

// ---- cuBLASLt, fused bias epilogue (ops/matmul.cu) --------------------------------------------------------------------
// Each returns false, having enqueued nothing, when cuBLASLt cannot run the call (library missing or disabled with
// IRCONSTYLE_CUBLASLT=0, a zero or beyond-int dimension, no algorithm for the shape, a failed call): the caller
// then takes its cuBLAS path. A shape that fails once is remembered and not tried again. tf32: TF32 tensor cores
// allowed (CUBLAS_COMPUTE_32F_FAST_TF32), else full FP32 (CUBLAS_COMPUTE_32F), as the cuBLAS math modes of bind().
// Row-major C[M,N] = op(A)[M,K] op(B)[K,N] + bias[N] (every row), beta = 0.
bool gemm_bias(const KernelCtx& k, bool tf32, bool tA, bool tB, int64_t M, int64_t N, int64_t K, const float* A,
               int64_t lda, const float* B, int64_t ldb, const float* bias, float* C, int64_t ldc);
// For i < batch, row-major C_i[M,N] = op(A_i)[M,K] op(B_i)[K,N] + bias[N] (every row; bias may be null) + R_i[M,N]
// (R stored as C, ldc; read, not written: beta = 1 with cuBLASLt's separate C and D matrices), with A_i = A + i sA,
// B_i = B + i sB, C_i = C + i sC, R_i = R + i sC.
bool gemm_bias_add(const KernelCtx& k, bool tf32, bool tA, bool tB, int64_t M, int64_t N, int64_t K, const float* A,
                   int64_t lda, int64_t sA, const float* B, int64_t ldb, int64_t sB, const float* bias,
                   const float* R, float* C, int64_t ldc, int64_t sC, int64_t batch);
}  // namespace blas
}  // namespace irc
