// Spatial padding and cropping of NHWC tensors.
//   pad2d           x[N,H,W,C], attrs [top, bottom, left, right, mode] -> y[N, H+top+bottom, W+left+right, C]
//                   mode 0: zeros; mode 1: reflect as torch ReflectionPad2d (mirror without repeating the edge,
//                   each pad must be < the padded dim)
//   pad2d_backward  dy, attrs as pad2d -> dx[N,H,W,C]; reflect folds each mirrored gradient back onto its source
//   crop2d          x[N,H,W,C], attrs [top, left, h, w] -> y[N,h,w,C] = x[:, top:top+h, left:left+w, :]
//                   (its gradient is pad2d with zeros)
#include <algorithm>
#include <cstring>
#include <vector>

#include "op_api.h"

namespace irc {
namespace {

struct Pads {
  int64_t t, b, l, r, mode;
};

Pads read_pads(InferCtx& c, const char* op) {
  c.need_attrs(5);
  Pads p{c.ai(0), c.ai(1), c.ai(2), c.ai(3), c.ai(4)};
  if (p.t < 0 || p.b < 0 || p.l < 0 || p.r < 0)
    op_fail("E_ATTR", std::string(op) + ": pads [top, bottom, left, right] must be >= 0, got [" + std::to_string(p.t) +
                          ", " + std::to_string(p.b) + ", " + std::to_string(p.l) + ", " + std::to_string(p.r) + "]");
  if (p.mode != 0 && p.mode != 1)
    op_fail("E_ATTR", std::string(op) + ": mode must be 0 (zero) or 1 (reflect), got " + std::to_string(p.mode));
  return p;
}

void check_reflect(const char* op, const Pads& p, int64_t H, int64_t W, const Shape& xs) {
  if (p.mode == 1 && (p.t >= H || p.b >= H || p.l >= W || p.r >= W))
    op_fail("E_ATTR", std::string(op) + ": reflect padding must be smaller than the padded dim: pads [" +
                          std::to_string(p.t) + ", " + std::to_string(p.b) + ", " + std::to_string(p.l) + ", " +
                          std::to_string(p.r) + "] for an input of height " + std::to_string(H) + " and width " +
                          std::to_string(W) + " (x " + shape_str(xs) + ")");
}

Pads kpads(KernelCtx& c) { return Pads{c.ai(0), c.ai(1), c.ai(2), c.ai(3), c.ai(4)}; }

// source index of padded position o (in [0, n + lo + hi)) in an input of length n, or -1 for a zero
inline int64_t src_index(int64_t o, int64_t lo, int64_t n, bool reflect) {
  int64_t i = o - lo;
  if (i >= 0 && i < n) return i;
  if (!reflect) return -1;
  return i < 0 ? -i : 2 * (n - 1) - i;
}

// padded positions whose gradient lands on input index i (fixed order: itself, then mirrors)
int sources(int64_t i, int64_t lo, int64_t hi, int64_t n, bool reflect, int64_t out[3]) {
  int k = 0;
  out[k++] = i + lo;
  if (reflect) {
    if (i >= 1 && i <= lo) out[k++] = lo - i;
    if (i <= n - 2 && i >= n - 1 - hi) out[k++] = lo + 2 * (n - 1) - i;
  }
  return k;
}

}  // namespace

void infer_pad2d(InferCtx& c) {
  c.need_f32(0);
  if (c.in[0].shape.size() != 4)
    op_fail("E_SHAPE", "pad2d: x must have shape [N, H, W, C], got " + shape_str(c.in[0].shape));
  const Pads p = read_pads(c, "pad2d");
  const Shape& s = c.in[0].shape;
  check_reflect("pad2d", p, s[1], s[2], s);
  c.add_out({s[0], s[1] + p.t + p.b, s[2] + p.l + p.r, s[3]});
}

void cpu_pad2d(KernelCtx& c) {
  const Pads p = kpads(c);
  const Shape& s = c.in[0].shape;
  const int64_t N = s[0], H = s[1], W = s[2], C = s[3], Ho = H + p.t + p.b, Wo = W + p.l + p.r;
  const bool refl = p.mode == 1;
  const float* x = c.in[0].f();
  float* y = c.out[0].f();
  if (c.out[0].n == 0) return;
  parallel_for(N * Ho, std::max<int64_t>(1, 32768 / (Wo * C)), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t n = t / Ho, oh = t % Ho;
      float* yr = y + t * Wo * C;
      const int64_t ih = src_index(oh, p.t, H, refl);
      if (ih < 0) {
        std::fill(yr, yr + Wo * C, 0.f);
        continue;
      }
      const float* xr = x + (n * H + ih) * W * C;
      for (int64_t ow = 0; ow < p.l; ++ow) {
        const int64_t iw = src_index(ow, p.l, W, refl);
        if (iw < 0) std::fill(yr + ow * C, yr + (ow + 1) * C, 0.f);
        else std::memcpy(yr + ow * C, xr + iw * C, C * 4);
      }
      if (W * C > 0) std::memcpy(yr + p.l * C, xr, W * C * 4);
      for (int64_t ow = p.l + W; ow < Wo; ++ow) {
        const int64_t iw = src_index(ow, p.l, W, refl);
        if (iw < 0) std::fill(yr + ow * C, yr + (ow + 1) * C, 0.f);
        else std::memcpy(yr + ow * C, xr + iw * C, C * 4);
      }
    }
  });
}

void infer_pad2d_backward(InferCtx& c) {
  c.need_f32(0);
  if (c.in[0].shape.size() != 4)
    op_fail("E_SHAPE", "pad2d_backward: dy must have shape [N, H, W, C], got " + shape_str(c.in[0].shape));
  const Pads p = read_pads(c, "pad2d_backward");
  const Shape& s = c.in[0].shape;
  const int64_t H = s[1] - p.t - p.b, W = s[2] - p.l - p.r;
  if (H < 0 || W < 0)
    op_fail("E_SHAPE", "pad2d_backward: dy " + shape_str(s) + " is smaller than the pads [" + std::to_string(p.t) +
                           ", " + std::to_string(p.b) + ", " + std::to_string(p.l) + ", " + std::to_string(p.r) + "]");
  check_reflect("pad2d_backward", p, H, W, s);
  c.add_out({s[0], H, W, s[3]});
}

void cpu_pad2d_backward(KernelCtx& c) {
  const Pads p = kpads(c);
  const Shape& s = c.out[0].shape;
  const int64_t N = s[0], H = s[1], W = s[2], C = s[3], Ho = H + p.t + p.b, Wo = W + p.l + p.r;
  const bool refl = p.mode == 1;
  const float* dy = c.in[0].f();
  float* dx = c.out[0].f();
  if (c.out[0].n == 0) return;
  std::vector<int64_t> cs(3 * W);
  std::vector<int> cn(W);
  for (int64_t w = 0; w < W; ++w) cn[w] = sources(w, p.l, p.r, W, refl, &cs[3 * w]);
  parallel_for(N * H, std::max<int64_t>(1, 32768 / (W * C + 1)), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t n = t / H, h = t % H;
      int64_t rs[3];
      const int nr = sources(h, p.t, p.b, H, refl, rs);
      float* o = dx + t * W * C;
      for (int64_t w = 0; w < W; ++w) {
        float* ow = o + w * C;
        bool first = true;
        for (int a = 0; a < nr; ++a)
          for (int k = 0; k < cn[w]; ++k) {
            const float* src = dy + ((n * Ho + rs[a]) * Wo + cs[3 * w + k]) * C;
            if (first) std::memcpy(ow, src, C * 4);
            else
              for (int64_t j = 0; j < C; ++j) ow[j] += src[j];
            first = false;
          }
      }
    }
  });
}

void infer_crop2d(InferCtx& c) {
  c.need_f32(0);
  if (c.in[0].shape.size() != 4)
    op_fail("E_SHAPE", "crop2d: x must have shape [N, H, W, C], got " + shape_str(c.in[0].shape));
  c.need_attrs(4);
  const int64_t t = c.ai(0), l = c.ai(1), h = c.ai(2), w = c.ai(3);
  const Shape& s = c.in[0].shape;
  if (t < 0 || l < 0 || h < 0 || w < 0 || t + h > s[1] || l + w > s[2])
    op_fail("E_ATTR", "crop2d: window [top " + std::to_string(t) + ", left " + std::to_string(l) + ", h " +
                          std::to_string(h) + ", w " + std::to_string(w) + "] must lie inside x " + shape_str(s));
  c.add_out({s[0], h, w, s[3]});
}

void cpu_crop2d(KernelCtx& c) {
  const Shape& s = c.in[0].shape;
  const int64_t t = c.ai(0), l = c.ai(1), h = c.ai(2), w = c.ai(3), N = s[0], H = s[1], W = s[2], C = s[3];
  const float* x = c.in[0].f();
  float* y = c.out[0].f();
  if (c.out[0].n == 0) return;
  parallel_for(N * h, std::max<int64_t>(1, 32768 / (w * C)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t n = r / h, i = r % h;
      std::memcpy(y + r * w * C, x + ((n * H + t + i) * W + l) * C, w * C * 4);
    }
  });
}

}  // namespace irc
