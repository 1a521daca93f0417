// Direct kernels for dense 3x3 convolutions (stride 1, padding 1, groups 1) with at most 4 input or at most 4 output
// channels — the image convs of every model (3 -> 48 intro, 3 -> 16 ConStyle stem, 48/64/96 -> 3 output), where
// cuDNN ran at 4-9 % of the memory bandwidth in run 7 (conv_thin.cu; conv2d.cu takes them first):
//   thin_conv_forward: y = conv(x, w) + b;
//   thin_conv_backward: dx as the convolution of dy with the flipped, transposed kernel (the same two kernels),
//     dw and db as per-block partial sums over pixel tiles, added in a fixed order (deterministic).
// Both return false, having enqueued nothing, when the shape is not theirs (thin_conv_fits) or the switch leaves the
// call to cuDNN. On the H100 (BENCHMARKS.md, run 9) only the forward to <= 4 output channels beat cuDNN (48 -> 3 at
// [16,128,128]: 249 against 598 µs; 3 -> 48: 287 against 235, the backwards 580 / 685 against 454 / 562), so that is
// the default; IRCONSTYLE_THIN_CONV=1 takes every call that fits, IRCONSTYLE_THIN_CONV=0 none.
#pragma once
#include <cstdint>

#include "op_api.h"

namespace irc {
bool thin_conv_fits(int64_t N, int64_t H, int64_t W, int64_t Ci, int64_t Co, bool backward);
bool thin_conv_forward(const KernelCtx& k, int64_t N, int64_t H, int64_t W, int64_t Ci, int64_t Co, const float* x,
                       const float* w, const float* b, float* y);
bool thin_conv_backward(const KernelCtx& k, int64_t N, int64_t H, int64_t W, int64_t Ci, int64_t Co, const float* dy,
                        const float* x, const float* w, float* dx, float* dw, float* db);
}  // namespace irc
