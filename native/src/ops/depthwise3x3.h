// A 3x3 depthwise convolution with padding 1 and stride 1 over x [N, H, W, C] (weight [3, 3, 1, C]), by
// sliding-window kernels (defined in depthwise3x3.cu; nafnet.cu uses them for dwconv_gate, conv2d.cu for its
// depthwise 3x3 convolutions):
//   depthwise3x3_forward: y (optional bias);
//   depthwise3x3_backward: dx, dw, db given dz, the gradient of its output (same shape as x): one pass over dz
//     that serves both the dx gather and the dw / db sums, then the partial sums added in a fixed order
//     (deterministic). dwconv_gate_backward calls it with dz = the gradient of the gate's two halves.
// Both return false, having enqueued nothing, when the tensor is too large for their 32-bit index math (the
// callers then take their general path).
#pragma once
#include <cstdint>

#include "op_api.h"

namespace irc {
bool depthwise3x3_forward(const KernelCtx& c, int64_t N, int64_t H, int64_t W, int64_t C, const float* x,
                          const float* w, const float* b, float* y);
// dwconv_gate with a 3x3 kernel and padding 1 (x [N, H, W, 2C], weight [3, 3, 1, 2C]): y [N, H, W, C] = a(z1) z2,
// and the gate's backward into dz [N, H, W, 2C] = [dy z2 a'(z1), dy a(z1)] (z recomputed); a = GELU when gelu,
// else the identity.
bool dwgate3x3_forward(const KernelCtx& c, int64_t N, int64_t H, int64_t W, int64_t C, bool gelu, const float* x,
                       const float* w, const float* b, float* y);
bool dwgate3x3_dz(const KernelCtx& c, int64_t N, int64_t H, int64_t W, int64_t C, bool gelu, const float* x,
                  const float* w, const float* b, const float* dy, float* dz);
// dwconv_gate's backward in one pass: dx, dw, db with dz computed where it is needed (never stored).
bool dwgate3x3_backward(const KernelCtx& c, int64_t N, int64_t H, int64_t W, int64_t C, bool gelu, const float* x,
                        const float* w, const float* b, const float* dy, float* dx, float* dw, float* db);
bool depthwise3x3_backward(const KernelCtx& c, int64_t N, int64_t H, int64_t W, int64_t C, const float* dz,
                           const float* x, const float* w, float* dx, float* dw, float* db);
}  // namespace irc
