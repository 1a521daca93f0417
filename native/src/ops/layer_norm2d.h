// LayerNorm2d's CPU forward and backward over rows (layer_norm2d.cpp), shared with the fused ops that normalise their
// input on the way in (ln_conv1x1_gate, ln_conv1x1): y = (x - mean) rstd w + b per row of C channels, the statistics
// written too.
#pragma once
#include <cstdint>

namespace irc {
struct KernelCtx;
void layer_norm_forward(const float* x, const float* w, const float* b, float* y, float* mean, float* rstd,
                        int64_t rows, int64_t C, double eps);
// The same normalisation from given statistics (the same expression: equal results for the forward's statistics).
void layer_norm_apply(const float* x, const float* w, const float* b, const float* mean, const float* rstd, float* y,
                      int64_t rows, int64_t C);
// layer_norm2d_backward's CPU code: dx (+ acc, the pending gradient of x, when given), dw, db from dy and the
// forward's statistics.
void layer_norm_backward(const float* dy, const float* x, const float* w, const float* mean, const float* rstd,
                         const float* acc, float* dx, float* dw, float* db, int64_t rows, int64_t C);
// The same on CUDA (norm.cu: layer_norm2d_backward's kernels), enqueued on k's stream.
void layer_norm2d_backward_cuda(const KernelCtx& k, const float* dy, const float* x, const float* w, const float* mean,
                                const float* rstd, const float* acc, float* dx, float* dw, float* db, int64_t rows,
                                int64_t C);
// layer_norm2d's CUDA forward over rows (the statistics written): the fused ops' h where they form it in memory.
void layer_norm2d_forward_cuda(const KernelCtx& k, const float* x, const float* w, const float* b, float* y,
                               float* mean, float* rstd, int64_t rows, int64_t C, double eps);
// h from given statistics on CUDA, 4 channels per thread with the forward's expression (its y bit for bit); false,
// nothing enqueued, unless C % 4 == 0, C <= 512 and the pointers are 16-byte aligned.
bool layer_norm2d_apply_cuda(const KernelCtx& k, const float* x, const float* w, const float* b, const float* mean,
                             const float* rstd, float* y, int64_t rows, int64_t C);
}  // namespace irc
