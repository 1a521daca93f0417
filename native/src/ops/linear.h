// The CPU linear layer (linear.cpp), shared with the ops that run one inside (ln_conv1x1 with a Linear's weight):
// y = x w^T + b over rows of x [rows, I], w [O, I]; the backward's dx, dw and db (the same sums as the linear ops).
#pragma once
#include <cstdint>

namespace irc {
void linear_forward_cpu(const float* x, const float* w, const float* b, float* y, int64_t rows, int64_t I, int64_t O);
void linear_backward_cpu(const float* dy, const float* x, const float* w, float* dx, float* dw, float* db, int64_t rows,
                         int64_t I, int64_t O);
}  // namespace irc
