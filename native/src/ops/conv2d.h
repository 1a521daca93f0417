// conv2d internals shared by conv2d.cpp (dense / grouped, im2col + sgemm) and conv2d_depthwise.cpp.
//
// Forward (NHWC, weight [KH, KW, Ci/G, Co], group g owns input channels [g*cig, (g+1)*cig) and output channels
// [g*cog, (g+1)*cog)):
//   y[n,oh,ow,co] = b[co] + sum_{kh,kw,ci} x[n, oh*S-P+kh, ow*S-P+kw, g*cig+ci] * w[kh,kw,ci,co]
// (out-of-range input positions read as zero).
// Backward:
//   dx[n,ih,iw,g*cig+ci] = sum over (kh,kw) with oh = (ih+P-kh)/S, ow = (iw+P-kw)/S exact and in range of
//                          sum_co dy[n,oh,ow,co] * w[kh,kw,ci,co]      (col2im of dcol = dy . W^T, as a gather)
//   dw[kh,kw,ci,co]      = sum_{n,oh,ow} x[n, oh*S-P+kh, ow*S-P+kw, g*cig+ci] * dy[n,oh,ow,co]  (im2col^T . dy)
//   db[co]               = sum_{n,oh,ow} dy[n,oh,ow,co]
// Reductions over pixels use partial buffers over a FIXED split of the pixels (depends on the shape only) summed
// in order, so results are identical for any thread count.
#pragma once
#include "op_api.h"

namespace irc {
namespace conv {

struct Geom {
  int64_t N, H, W, Ci, KH, KW, Co, S, P, G, Ho, Wo, cig, cog;
};

// Number of fixed partial buffers for pixel reductions (shape-only, never the thread count).
inline int64_t num_parts(int64_t units) { return units < 16 ? units : 16; }

void depthwise_forward(const Geom& g, const float* x, const float* w, const float* b, float* y);
void depthwise_backward(const Geom& g, const float* dy, const float* x, const float* w, float* dx, float* dw,
                        float* db);

// A 1x1 stride-1 conv (weight [Ci, Co]) over `pix` rows of x[pix, Ci], by exactly conv2d's CPU path (same sums):
// y = x w + b (b may be null); the backward's dx, dw and db (db summed as conv2d's).
void pointwise_forward(int64_t pix, int64_t Ci, int64_t Co, const float* x, const float* w, const float* b,
                       float* y);
void pointwise_backward(int64_t pix, int64_t Ci, int64_t Co, const float* dy, const float* x, const float* w,
                        float* dx, float* dw, float* db);

}  // namespace conv
}  // namespace irc
