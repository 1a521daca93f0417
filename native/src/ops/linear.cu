// CUDA linear / linear_backward (ops.def) at FP32 accuracy (PyTorch's default for linear layers):
// y = x . w^T + b over the rows of x[..., I], w[O, I]. Forward: with a bias one cuBLASLt GEMM adds it in its epilogue;
// where cuBLASLt cannot (missing, IRCONSTYLE_CUBLASLT=0, no algorithm for the shape): cuBLAS with the bias written
// first (row fill) and the GEMM adding onto it with beta = 1, as on the CPU. Backward: dx and dw from cuBLAS and db as
// column sums of dy (fixed two-pass reduction).
#include <cuda_runtime.h>

#include "../cuda/blas.cuh"
#include "../cuda/common.cuh"
#include "../cuda/gpu_libs.h"
#include "linear.h"

namespace irc {

void linear_forward_cuda(const KernelCtx& k, const float* x, const float* w, const float* b, float* y, int64_t rows,
                         int64_t I, int64_t O) {
  if (rows == 0 || O == 0) return;
  if (b && blas::gemm_bias(k, false, false, true, rows, O, I, x, I, w, I, b, y, O)) return;
  const gpu::Cublas& cb = blas::bind(k, false);
  if (b) blas::fill_rows(k, y, rows, O, b);
  blas::gemm(k, cb, false, true, rows, O, I, 1.f, x, I, w, I, b ? 1.f : 0.f, y, O);
}

void linear_backward_cuda(const KernelCtx& k, const float* dy, const float* x, const float* w, float* dx, float* dw,
                          float* db, int64_t rows, int64_t I, int64_t O) {
  const gpu::Cublas& cb = blas::bind(k, false);
  blas::gemm(k, cb, false, false, rows, I, O, 1.f, dy, O, w, I, 0.f, dx, I);  // dx[rows, I] = dy . w
  // dw[O, I] = dy^T . x (K = rows) and db[O] = sums of dy over the rows. (cuBLASLt's bias-gradient epilogue was
  // measured slower on an H100 than this GEMM + column sums: see BENCHMARKS.md.)
  blas::gemm(k, cb, true, false, O, I, rows, 1.f, dy, O, x, I, 0.f, dw, I);
  blas::column_sums(k, dy, rows, O, db, 0);
}

void cuda_linear(KernelCtx& k) {
  const int64_t I = k.in[1].shape[1], O = k.in[1].shape[0];
  const int64_t rows = O ? k.out[0].n / O : 0;
  linear_forward_cuda(k, k.in[0].f(), k.in[1].f(), k.in.size() > 2 ? k.in[2].f() : nullptr, k.out[0].f(), rows, I, O);
}

void cuda_linear_backward(KernelCtx& k) {
  const int64_t I = k.in[2].shape[1], O = k.in[2].shape[0];
  const int64_t rows = I ? k.in[1].n / I : (O ? k.in[0].n / O : 0);
  linear_backward_cuda(k, k.in[0].f(), k.in[1].f(), k.in[2].f(), k.out[0].f(), k.out[1].f(), k.out[2].f(), rows, I, O);
}

}  // namespace irc
