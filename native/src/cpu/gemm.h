// Single-precision GEMM for the CPU kernels (row-major).
//
//   C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C
//
// op(A) = A (stored M x K, row stride lda) or A^T (stored K x M) when transA; likewise for B.
// beta == 0 never reads C (it may hold garbage/NaN). Multithreaded with irc::parallel_for (runs serially when
// called from inside a parallel_for body), packed panels in irc::scratch slots 2 (B) and 3 (A): callers may keep
// their own data in scratch slots 0 and 1 across an sgemm call.
// Determinism: every C element is summed in an order fixed by (M, N, K) and the ISA's blocking; it does not
// depend on the thread count or on timing. Run-time ISA dispatch: AVX-512F, AVX2+FMA, portable scalar.
#pragma once
#include <cstdint>

namespace irc {

void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// batch independent GEMMs: A + i*strideA, B + i*strideB, C + i*strideC (strideB may be 0 to share B).
void sgemm_batched(int64_t batch, bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
                   const float* A, int64_t lda, int64_t strideA, const float* B, int64_t ldb, int64_t strideB,
                   float beta, float* C, int64_t ldc, int64_t strideC);

// Name of the micro-kernel in use: "avx512", "avx2" or "scalar". IRCONSTYLE_GEMM_ISA=avx2|scalar forces a lower one.
const char* sgemm_isa();

// Tight independent-FMA loop on every thread of the pool; returns the measured peak in GFLOP/s.
double measure_fma_peak_gflops();

namespace gemm_detail {
// Micro-kernel: acc[mr x nr] = sum_k a[k*mr + i] * b[k*bstride + j]; then
// C = alpha*acc (beta == 0), C += alpha*acc (beta == 1) or C = alpha*acc + beta*C, for the full mr x nr tile.
using MicroKernel = void (*)(int64_t kc, const float* a, const float* b, int64_t bstride, float* c, int64_t ldc,
                             float alpha, float beta);
struct KernelSet {
  const char* name;
  int mr, nr;
  MicroKernel full;   // mr x nr
  MicroKernel half;   // mr x nr/2 (reads the first nr/2 columns of each packed B row), may be null
};
bool have_avx2();
bool have_avx512();
KernelSet avx2_kernels();
KernelSet avx512_kernels();
// C[i*ldc + j] = sum_k A[i*lda + k] * B[j*ldb + k] (i < M, j < N): unpacked dot products for the split-K path of
// small M, N (gemm_dot.cpp); isa is a KernelSet name.
using DotKernel = void (*)(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                           float* C, int64_t ldc);
DotKernel dot_kernel(const char* isa);
double fma_loop_avx2(int64_t iters);    // returns flops done
double fma_loop_avx512(int64_t iters);
}  // namespace gemm_detail

}  // namespace irc
