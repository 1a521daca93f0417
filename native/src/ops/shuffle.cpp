// Pixel (un)shuffle in NHWC with PyTorch's channel order (so official weights keep their meaning).
//   pixel_shuffle    x[N,H,W,C*r*r], attrs [r] -> y[N,H*r,W*r,C];  y[n, r h + i, r w + j, c] = x[n, h, w, c r r + i r + j]
//   pixel_unshuffle  x[N,H,W,C],     attrs [r] -> y[N,H/r,W/r,C*r*r], the exact inverse
// Each is the other's gradient. Work is split over output rows (n, output row).
#include <algorithm>

#include "op_api.h"

namespace irc {
namespace {

int64_t need_factor(InferCtx& c, const char* op) {
  c.need_f32(0);
  if (c.in[0].shape.size() != 4)
    op_fail("E_SHAPE", std::string(op) + ": x must have shape [N, H, W, C], got " + shape_str(c.in[0].shape));
  int64_t r = c.ai(0);
  if (r < 1) op_fail("E_ATTR", std::string(op) + ": factor r must be >= 1, got " + std::to_string(r));
  return r;
}

}  // namespace

void infer_pixel_shuffle(InferCtx& c) {
  const int64_t r = need_factor(c, "pixel_shuffle");
  const Shape& s = c.in[0].shape;
  if (s[3] % (r * r) != 0)
    op_fail("E_SHAPE", "pixel_shuffle: channels of x " + shape_str(s) + " must be divisible by r*r = " +
                           std::to_string(r * r) + ", got " + std::to_string(s[3]));
  c.add_out({s[0], s[1] * r, s[2] * r, s[3] / (r * r)});
}

void cpu_pixel_shuffle(KernelCtx& c) {
  const Shape& xs = c.in[0].shape;
  const int64_t r = c.ai(0), N = xs[0], H = xs[1], W = xs[2], Ci = xs[3], rr = r * r, C = Ci / rr;
  const int64_t Ho = H * r, Wo = W * r;
  const float* x = c.in[0].f();
  float* y = c.out[0].f();
  if (c.out[0].n == 0) return;
  parallel_for(N * Ho, std::max<int64_t>(1, 32768 / (Wo * C)), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t n = t / Ho, oh = t % Ho, h = oh / r, i = oh % r;
      float* yr = y + t * Wo * C;
      const float* xr = x + (n * H + h) * W * Ci + i * r;
      for (int64_t w = 0; w < W; ++w)
        for (int64_t j = 0; j < r; ++j) {
          const float* src = xr + w * Ci + j;
          float* dst = yr + (w * r + j) * C;
          for (int64_t ch = 0; ch < C; ++ch) dst[ch] = src[ch * rr];
        }
    }
  });
}

void infer_pixel_unshuffle(InferCtx& c) {
  const int64_t r = need_factor(c, "pixel_unshuffle");
  const Shape& s = c.in[0].shape;
  if (s[1] % r != 0 || s[2] % r != 0)
    op_fail("E_SHAPE", "pixel_unshuffle: height and width of x " + shape_str(s) + " must be divisible by r = " +
                           std::to_string(r));
  c.add_out({s[0], s[1] / r, s[2] / r, s[3] * r * r});
}

void cpu_pixel_unshuffle(KernelCtx& c) {
  const Shape& xs = c.in[0].shape;
  const int64_t r = c.ai(0), N = xs[0], H = xs[1], W = xs[2], C = xs[3], rr = r * r;
  const int64_t Ho = H / r, Wo = W / r, Co = C * rr;
  const float* x = c.in[0].f();
  float* y = c.out[0].f();
  if (c.out[0].n == 0) return;
  // One task per input row: it scatters into one output row (a fixed i), disjoint from other tasks.
  parallel_for(N * H, std::max<int64_t>(1, 32768 / (W * C)), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t n = t / H, ih = t % H, h = ih / r, i = ih % r;
      const float* xr = x + t * W * C;
      float* yr = y + (n * Ho + h) * Wo * Co + i * r;
      for (int64_t w = 0; w < Wo; ++w)
        for (int64_t j = 0; j < r; ++j) {
          const float* src = xr + (w * r + j) * C;
          float* dst = yr + w * Co + j;
          for (int64_t ch = 0; ch < C; ++ch) dst[ch * rr] = src[ch];
        }
    }
  });
}

}  // namespace irc
