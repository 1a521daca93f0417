// The linear layer's code (CPU: linear.cpp; CUDA: linear.cu, enqueued on k's stream), shared with the ops that run one
// inside (ln_conv1x1 with a Linear's weight, spatial_gate): y = x w^T + b over rows of x [rows, I], w [O, I] (b may be
// null); the backward's dx, dw and db (the same sums as the linear ops).
#pragma once
#include <cstdint>

namespace irc {
void linear_forward_cpu(const float* x, const float* w, const float* b, float* y, int64_t rows, int64_t I, int64_t O);
void linear_backward_cpu(const float* dy, const float* x, const float* w, float* dx, float* dw, float* db, int64_t rows,
                         int64_t I, int64_t O);
struct KernelCtx;
void linear_forward_cuda(const KernelCtx& k, const float* x, const float* w, const float* b, float* y, int64_t rows,
                         int64_t I, int64_t O);
void linear_backward_cuda(const KernelCtx& k, const float* dy, const float* x, const float* w, float* dx, float* dw,
                          float* db, int64_t rows, int64_t I, int64_t O);
}  // namespace irc
