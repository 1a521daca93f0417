// CUDA matmul (ops.def) through cuBLAS, plus the cuBLAS helpers shared with linear.cu and conv2d.cu (namespace
// irc::blas, declared again at the top of those files): row-major GEMM on cuBLAS's column-major API, bias row
// fill, and deterministic column sums (fixed two-pass reduction, no atomics).
// Row-major trick: a row-major [r, c] matrix with leading dim ld is the column-major [c, r] matrix with the same
// ld, so C = op(A) op(B) (row-major) is computed as C^T = op(B)^T op(A)^T (column-major) by swapping the operands.
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>
#include <string>

#include "../cuda/blas.cuh"
#include "../cuda/common.cuh"
#include "../cuda/gpu_libs.h"

namespace irc {
namespace blas {

namespace {

void status(const KernelCtx& k, int st, const char* what) {
  if (st != 0) op_fail("E_CUDA", std::string(k.op) + ": " + what + " failed with cuBLAS status " + std::to_string(st));
}

int as_int(const KernelCtx& k, int64_t v, const char* what) {
  if (v < 0 || v > INT_MAX)
    op_fail("E_CUDA", std::string(k.op) + ": " + what + " = " + std::to_string(v) + " exceeds cuBLAS's int range");
  return static_cast<int>(v);
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// C[r, c] (leading dim ldc) = 0 for r < rows, c < cols.
__global__ void zero_rows_k(float* __restrict__ C, int64_t rows, int64_t cols, int64_t ldc) {
  const int64_t n = rows * cols;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    C[(i / cols) * ldc + i % cols] = 0.f;
}

__global__ void fill_rows_k(float* __restrict__ y, const float* __restrict__ b, int64_t rows, int64_t cols) {
  const int64_t n = rows * cols;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = b[i % cols];
}

__global__ void fill_rows4_k(float4* __restrict__ y, const float4* __restrict__ b, int64_t rows, int64_t cols4) {
  const int64_t n = rows * cols4;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = b[i % cols4];
}

// Pass 1: block (32 columns x 8 row lanes) sums the rows [rows*q/parts, rows*(q+1)/parts) of its 32 columns
// (q = blockIdx.y); lanes combine in a fixed order. out = part sums [parts, cols].
__global__ void colsum_part_k(const float* __restrict__ x, int64_t rows, int64_t cols, int parts,
                              float* __restrict__ out) {
  __shared__ float sm[8][33];
  const int64_t c = blockIdx.x * int64_t(32) + threadIdx.x;
  const int q = blockIdx.y;
  const int64_t r0 = rows * q / parts, r1 = rows * (q + 1) / parts;
  float s = 0.f;
  if (c < cols)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += 8) s += x[r * cols + c];
  sm[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    float t = sm[0][threadIdx.x];
    for (int j = 1; j < 8; ++j) t += sm[j][threadIdx.x];
    out[int64_t(q) * cols + c] = t;
  }
}

// Pass 2: out[c] = sum over parts in order.
__global__ void colsum_final_k(const float* __restrict__ part, int parts, int64_t cols, float* __restrict__ out) {
  for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < cols; c += int64_t(gridDim.x) * blockDim.x) {
    float t = 0.f;
    for (int q = 0; q < parts; ++q) t += part[int64_t(q) * cols + c];
    out[c] = t;
  }
}

}  // namespace

const gpu::Cublas& bind(const KernelCtx& k, bool tf32) {
  const gpu::Cublas* b = gpu::cublas();
  if (!b) op_fail("E_CUDA", std::string(k.op) + ": cuBLAS is unavailable: " + gpu::cublas_why_not());
  status(k, b->SetStream(b->handle, k.stream), "cublasSetStream_v2");
  status(k, b->SetMathMode(b->handle, tf32 ? gpu::CUBLAS_TF32_TENSOR_OP_MATH : gpu::CUBLAS_DEFAULT_MATH),
         "cublasSetMathMode");
  return *b;
}

void gemm(const KernelCtx& k, const gpu::Cublas& b, bool tA, bool tB, int64_t M, int64_t N, int64_t K, float alpha,
          const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {  // C = beta * C with beta 0 or 1
    if (beta == 0.f) {
      zero_rows_k<<<cu::blocks_for(M * N), 256, 0, cu::stream(k)>>>(C, M, N, ldc);
      cu::check_launch(k);
    }
    return;
  }
  status(k,
         b.Sgemm(b.handle, tB ? gpu::CUBLAS_OP_T : gpu::CUBLAS_OP_N, tA ? gpu::CUBLAS_OP_T : gpu::CUBLAS_OP_N,
                 as_int(k, N, "N"), as_int(k, M, "M"), as_int(k, K, "K"), &alpha, B, as_int(k, ldb, "ldb"), A,
                 as_int(k, lda, "lda"), &beta, C, as_int(k, ldc, "ldc")),
         "cublasSgemm_v2");
}

void gemm_batched(const KernelCtx& k, const gpu::Cublas& b, bool tA, bool tB, int64_t M, int64_t N, int64_t K,
                  const float* A, int64_t lda, int64_t sA, const float* B, int64_t ldb, int64_t sB, float* C,
                  int64_t ldc, int64_t sC, int64_t batch) {
  if (M == 0 || N == 0 || batch == 0) return;
  if (K == 0) {  // C is contiguous [batch, M, ldc]
    zero_rows_k<<<cu::blocks_for(batch * M * N), 256, 0, cu::stream(k)>>>(C, batch * M, N, ldc);
    cu::check_launch(k);
    return;
  }
  const float one = 1.f, zero = 0.f;
  const int64_t chunk = 65535;
  for (int64_t b0 = 0; b0 < batch; b0 += chunk) {
    const int64_t nb = batch - b0 < chunk ? batch - b0 : chunk;
    status(k,
           b.SgemmStridedBatched(b.handle, tB ? gpu::CUBLAS_OP_T : gpu::CUBLAS_OP_N,
                                 tA ? gpu::CUBLAS_OP_T : gpu::CUBLAS_OP_N, as_int(k, N, "N"), as_int(k, M, "M"),
                                 as_int(k, K, "K"), &one, B + b0 * sB, as_int(k, ldb, "ldb"), sB, A + b0 * sA,
                                 as_int(k, lda, "lda"), sA, &zero, C + b0 * sC, as_int(k, ldc, "ldc"), sC,
                                 static_cast<int>(nb)),
           "cublasSgemmStridedBatched");
  }
}

void fill_rows(const KernelCtx& k, float* y, int64_t rows, int64_t cols, const float* bias) {
  const int64_t n = rows * cols;
  if (n == 0) return;
  if (cols % 4 == 0 && aligned16(y) && aligned16(bias)) {
    fill_rows4_k<<<cu::blocks_for(n / 4), 256, 0, cu::stream(k)>>>(reinterpret_cast<float4*>(y),
                                                                    reinterpret_cast<const float4*>(bias), rows,
                                                                    cols / 4);
  } else {
    fill_rows_k<<<cu::blocks_for(n), 256, 0, cu::stream(k)>>>(y, bias, rows, cols);
  }
  cu::check_launch(k);
}

void column_sums(const KernelCtx& k, const float* x, int64_t rows, int64_t cols, float* out, int slot) {
  if (cols == 0) return;
  const int64_t tiles = (cols + 31) / 32;
  int64_t parts = (2048 + tiles - 1) / tiles;         // about 2048 blocks in all ...
  const int64_t by_rows = (rows + 63) / 64;           // ... each summing at least 64 rows
  if (parts > by_rows) parts = by_rows;
  if (parts > 1024) parts = 1024;
  if (parts < 1) parts = 1;
  if (tiles > INT_MAX) op_fail("E_CUDA", std::string(k.op) + ": too many columns for column_sums");
  const cudaStream_t s = cu::stream(k);
  float* part = parts == 1 ? out : static_cast<float*>(cu::scratch(s, sizeof(float) * parts * cols, slot));
  colsum_part_k<<<dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(parts)), dim3(32, 8), 0, s>>>(
      x, rows, cols, static_cast<int>(parts), part);
  cu::check_launch(k);
  if (parts > 1) {
    colsum_final_k<<<cu::blocks_for(cols), 256, 0, s>>>(part, static_cast<int>(parts), cols, out);
    cu::check_launch(k);
  }
}

}  // namespace blas

void cuda_matmul(KernelCtx& k) {
  const bool tA = k.ai(0) != 0, tB = k.ai(1) != 0;
  const Shape &as = k.in[0].shape, &bs = k.in[1].shape;
  const size_t ra = as.size(), rb = bs.size();
  const int64_t M = tA ? as[ra - 1] : as[ra - 2], K = tA ? as[ra - 2] : as[ra - 1], N = tB ? bs[rb - 2] : bs[rb - 1];
  int64_t batch = 1;
  for (size_t i = 0; i + 2 < ra; ++i) batch *= as[i];
  if (k.out[0].n == 0) return;
  const bool shared_b = rb == 2;
  const int64_t lda = tA ? M : K, ldb = tB ? K : N;
  const float *a = k.in[0].f(), *b = k.in[1].f();
  float* y = k.out[0].f();
  const gpu::Cublas& cb = blas::bind(k, false);  // full FP32, as PyTorch's default for matmul
  if (batch == 1 || (shared_b && !tA)) {          // one (tall) GEMM over all rows
    blas::gemm(k, cb, tA, tB, batch * M, N, K, 1.f, a, lda, b, ldb, 0.f, y, N);
    return;
  }
  blas::gemm_batched(k, cb, tA, tB, M, N, K, a, lda, M * K, b, ldb, shared_b ? 0 : K * N, y, N, M * N, batch);
}

}  // namespace irc
