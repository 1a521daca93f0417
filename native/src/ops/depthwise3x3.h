// dx, dw, db of a 3x3 depthwise convolution with padding 1 and stride 1 over x [N, H, W, C] (weight [3, 3, 1, C]),
// given dz, the gradient of its output (same shape as x): one pass over dz that serves both the dx gather and the
// dw / db sums, then the partial sums added in a fixed order (deterministic). Defined in nafnet.cu, where
// dwconv_gate_backward uses it with dz = the gradient of the gate's two halves; conv2d.cu uses it for depthwise
// 3x3 convolutions (dz = dy). Returns false, having enqueued nothing, when the tensor is too large for its 32-bit
// pixel indexing (the callers then take their general path).
#pragma once
#include <cstdint>

#include "op_api.h"

namespace irc {
bool depthwise3x3_backward(const KernelCtx& c, int64_t N, int64_t H, int64_t W, int64_t C, const float* dz,
                           const float* x, const float* w, float* dx, float* dw, float* db);
}  // namespace irc
