// Spatial resampling of NHWC images.
//   subsample2d           x[N,H,W,C], attrs [r, offset] -> y[N,H/r,W/r,C], y[n,i,j] = x[n, r i + offset, r j + offset]
//   subsample2d_backward  (dy, x), attrs [r, offset] -> dx (zeros except the sampled pixels)
//   resize_bilinear       x[N,H,W,C], attrs [outH, outW, antialias] -> y[N,outH,outW,C]
//   resize_bilinear_backward (dy, x), attrs as resize_bilinear -> dx (the exact transpose)
// resize_bilinear follows torch F.interpolate(mode='bilinear', align_corners=False, antialias):
//   scale = in / out per axis.
//   antialias: centre = scale (i + 0.5), support = max(scale, 1), taps j in [max(trunc(centre - support + 0.5), 0),
//     min(trunc(centre + support + 0.5), in)), weight max(0, 1 - |(j - centre + 0.5) / max(scale, 1)|), normalised
//     to sum 1 over the valid taps. (For upscaling this equals plain bilinear with clamped borders.)
//   no antialias: src = max(scale (i + 0.5) - 0.5, 0), i0 = min(floor(src), in - 1), i1 = min(i0 + 1, in - 1),
//     weights (1 - l, l) with l = src - i0.
// The filter is separable: per output row, a vertical pass into a per-thread row buffer, then a horizontal pass.
// The backward gathers through the transposed (input -> outputs) tap tables, so every dx element is a sum in a
// fixed order: deterministic regardless of threads.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "../cpu/simd.h"
#include "op_api.h"

namespace irc {
namespace {

// CSR table: for destination d, taps idx[off[d] .. off[d+1]) with weights w[...].
struct Taps {
  std::vector<int64_t> off, idx;
  std::vector<float> w;
};

Taps build_taps(int64_t in, int64_t out, bool aa) {
  Taps t;
  t.off.reserve(out + 1);
  t.off.push_back(0);
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  std::vector<double> tmp;
  for (int64_t i = 0; i < out; ++i) {
    if (aa) {
      const double support = scale >= 1.0 ? scale : 1.0;
      const double inv = scale >= 1.0 ? 1.0 / scale : 1.0;
      const double centre = scale * (i + 0.5);
      const int64_t lo = std::max<int64_t>(static_cast<int64_t>(centre - support + 0.5), 0);
      const int64_t hi = std::min<int64_t>(static_cast<int64_t>(centre + support + 0.5), in);
      tmp.clear();
      double tot = 0;
      for (int64_t j = lo; j < hi; ++j) {
        const double v = std::max(0.0, 1.0 - std::fabs((j - centre + 0.5) * inv));
        tmp.push_back(v);
        tot += v;
      }
      for (int64_t j = lo; j < hi; ++j) {
        const double v = tmp[j - lo];
        if (v == 0.0) continue;
        t.idx.push_back(j);
        t.w.push_back(static_cast<float>(v / tot));
      }
    } else {
      double src = scale * (i + 0.5) - 0.5;
      if (src < 0) src = 0;
      const int64_t i0 = std::min<int64_t>(static_cast<int64_t>(std::floor(src)), in - 1);
      const int64_t i1 = std::min<int64_t>(i0 + 1, in - 1);
      const double l = std::min(std::max(src - i0, 0.0), 1.0);
      if (i1 == i0 || l == 0.0) {
        t.idx.push_back(i0);
        t.w.push_back(1.f);
      } else {
        t.idx.push_back(i0);
        t.w.push_back(static_cast<float>(1.0 - l));
        t.idx.push_back(i1);
        t.w.push_back(static_cast<float>(l));
      }
    }
    t.off.push_back(static_cast<int64_t>(t.idx.size()));
  }
  return t;
}

// The transpose: for each source index, the (destination, weight) pairs in increasing destination order.
Taps transpose_taps(const Taps& f, int64_t in) {
  Taps t;
  const int64_t out = static_cast<int64_t>(f.off.size()) - 1;
  t.off.assign(in + 1, 0);
  for (int64_t k : f.idx) ++t.off[k + 1];
  for (int64_t j = 0; j < in; ++j) t.off[j + 1] += t.off[j];
  t.idx.resize(f.idx.size());
  t.w.resize(f.idx.size());
  std::vector<int64_t> pos(t.off.begin(), t.off.end() - 1);
  for (int64_t i = 0; i < out; ++i)
    for (int64_t p = f.off[i]; p < f.off[i + 1]; ++p) {
      const int64_t q = pos[f.idx[p]]++;
      t.idx[q] = i;
      t.w[q] = f.w[p];
    }
  return t;
}

// dst[0..len) = sum_k w[k] * src_k[0..len), src_k = base + idx[k] * stride. Zero taps -> zeros.
IRC_CLONES
void combine(float* __restrict dst, const float* __restrict base, int64_t stride, const int64_t* idx, const float* w,
             int64_t ntaps, int64_t len) {
  if (ntaps == 0) {
    std::memset(dst, 0, sizeof(float) * len);
    return;
  }
  {
    const float* s = base + idx[0] * stride;
    const float a = w[0];
    for (int64_t e = 0; e < len; ++e) dst[e] = a * s[e];
  }
  for (int64_t k = 1; k < ntaps; ++k) {
    const float* s = base + idx[k] * stride;
    const float a = w[k];
    for (int64_t e = 0; e < len; ++e) dst[e] += a * s[e];
  }
}

// One destination row of the separable filter: vertical combination of source rows into tmp[srcW * C], then
// horizontal combination of tmp pixels into dst[dstW * C].
void filter_row(const float* src_img, float* dst_row, float* tmp, int64_t srcW, int64_t C, const Taps& v, int64_t r,
                const Taps& h, int64_t dstW) {
  const int64_t row = srcW * C;
  combine(tmp, src_img, row, v.idx.data() + v.off[r], v.w.data() + v.off[r], v.off[r + 1] - v.off[r], row);
  for (int64_t o = 0; o < dstW; ++o)
    combine(dst_row + o * C, tmp, C, h.idx.data() + h.off[o], h.w.data() + h.off[o], h.off[o + 1] - h.off[o], C);
}

void run_filter(const float* src, float* dst, int64_t N, int64_t srcH, int64_t srcW, int64_t dstH, int64_t dstW,
                int64_t C, const Taps& v, const Taps& h) {
  if (N == 0 || C == 0 || dstH == 0 || dstW == 0) return;
  const int64_t work = std::max<int64_t>(1, (srcW + dstW) * C * 4);
  parallel_for(N * dstH, std::max<int64_t>(1, 65536 / work), [&](int64_t b, int64_t e) {
    float* tmp = scratch(static_cast<size_t>(srcW * C), 0);
    for (int64_t q = b; q < e; ++q) {
      const int64_t n = q / dstH, r = q % dstH;
      filter_row(src + n * srcH * srcW * C, dst + q * dstW * C, tmp, srcW, C, v, r, h, dstW);
    }
  });
}

struct ResizeAttrs {
  int64_t oh, ow;
  bool aa;
};

ResizeAttrs resize_attrs(InferCtx& c) {
  const int64_t oh = c.ai(0), ow = c.ai(1), aa = c.ai(2);
  if (oh < 1 || ow < 1)
    op_fail("E_ATTR", std::string(c.op) + ": output size [outH, outW] must be >= 1, got [" + std::to_string(oh) +
                          ", " + std::to_string(ow) + "]");
  if (aa != 0 && aa != 1)
    op_fail("E_ATTR", std::string(c.op) + ": antialias must be 0 or 1, got " + std::to_string(aa));
  return {oh, ow, aa == 1};
}

void need_image(InferCtx& c, size_t i, const char* name) {
  c.need_f32(i);
  const Shape& s = c.in[i].shape;
  if (s.size() != 4)
    op_fail("E_SHAPE", std::string(c.op) + ": " + name + " must be an NHWC image [N, H, W, C], got " + shape_str(s));
}

struct SubAttrs {
  int64_t r, off;
};

SubAttrs sub_attrs(InferCtx& c, const Shape& xs) {
  const int64_t r = c.ai(0), off = c.ai(1);
  if (r < 1) op_fail("E_ATTR", std::string(c.op) + ": r must be >= 1, got " + std::to_string(r));
  if (off < 0) op_fail("E_ATTR", std::string(c.op) + ": offset must be >= 0, got " + std::to_string(off));
  for (int a = 1; a <= 2; ++a) {
    const int64_t n = xs[a], m = n / r;
    if (m > 0 && r * (m - 1) + off >= n)
      op_fail("E_ATTR", std::string(c.op) + ": offset " + std::to_string(off) + " with r " + std::to_string(r) +
                            " samples index " + std::to_string(r * (m - 1) + off) + " of an axis of size " +
                            std::to_string(n) + " (x " + shape_str(xs) + "); expected r*(floor(size/r)-1)+offset < size");
  }
  return {r, off};
}

}  // namespace

// ---- subsample2d ------------------------------------------------------------------------------------------
void infer_subsample2d(InferCtx& c) {
  c.op = "subsample2d";
  need_image(c, 0, "x");
  const Shape& xs = c.in[0].shape;
  const SubAttrs a = sub_attrs(c, xs);
  c.add_out({xs[0], xs[1] / a.r, xs[2] / a.r, xs[3]});
}

void cpu_subsample2d(KernelCtx& c) {
  const TArg& X = c.in[0];
  const int64_t N = X.shape[0], H = X.shape[1], W = X.shape[2], C = X.shape[3];
  const int64_t r = c.ai(0), off = c.ai(1), Ho = H / r, Wo = W / r;
  const float* x = X.f();
  float* y = c.out[0].f();
  if (N * Ho * Wo * C == 0) return;
  parallel_for(N * Ho, std::max<int64_t>(1, 16384 / (Wo * C)), [&](int64_t b, int64_t e) {
    for (int64_t q = b; q < e; ++q) {
      const int64_t n = q / Ho, i = q % Ho;
      const float* xr = x + ((n * H + r * i + off) * W + off) * C;
      float* yr = y + q * Wo * C;
      for (int64_t j = 0; j < Wo; ++j) std::memcpy(yr + j * C, xr + r * j * C, sizeof(float) * C);
    }
  });
}

void infer_subsample2d_backward(InferCtx& c) {
  c.op = "subsample2d_backward";
  need_image(c, 0, "dy");
  need_image(c, 1, "x");
  const Shape& xs = c.in[1].shape;
  const SubAttrs a = sub_attrs(c, xs);
  const Shape want{xs[0], xs[1] / a.r, xs[2] / a.r, xs[3]};
  if (c.in[0].shape != want)
    op_fail("E_SHAPE", "subsample2d_backward: dy must have shape " + shape_str(want) + " (x " + shape_str(xs) +
                           ", r " + std::to_string(a.r) + "), got " + shape_str(c.in[0].shape));
  c.add_out(xs);
}

void cpu_subsample2d_backward(KernelCtx& c) {
  const TArg& X = c.in[1];
  const int64_t N = X.shape[0], H = X.shape[1], W = X.shape[2], C = X.shape[3];
  const int64_t r = c.ai(0), off = c.ai(1), Ho = H / r, Wo = W / r;
  const float* dy = c.in[0].f();
  float* dx = c.out[0].f();
  if (X.n == 0) return;
  parallel_for(N * H, std::max<int64_t>(1, 16384 / (W * C)), [&](int64_t b, int64_t e) {
    for (int64_t q = b; q < e; ++q) {
      const int64_t n = q / H, h = q % H;
      float* o = dx + q * W * C;
      std::memset(o, 0, sizeof(float) * W * C);
      if (h < off || (h - off) % r != 0 || (h - off) / r >= Ho) continue;
      const float* dr = dy + (n * Ho + (h - off) / r) * Wo * C;
      for (int64_t j = 0; j < Wo; ++j) std::memcpy(o + (r * j + off) * C, dr + j * C, sizeof(float) * C);
    }
  });
}

// ---- resize_bilinear --------------------------------------------------------------------------------------
void infer_resize_bilinear(InferCtx& c) {
  c.op = "resize_bilinear";
  need_image(c, 0, "x");
  const ResizeAttrs a = resize_attrs(c);
  const Shape& xs = c.in[0].shape;
  if (xs[1] < 1 || xs[2] < 1)
    op_fail("E_SHAPE", "resize_bilinear: x must have H, W >= 1, got " + shape_str(xs));
  c.add_out({xs[0], a.oh, a.ow, xs[3]});
}

void cpu_resize_bilinear(KernelCtx& c) {
  const TArg& X = c.in[0];
  const int64_t N = X.shape[0], H = X.shape[1], W = X.shape[2], C = X.shape[3];
  const int64_t oh = c.ai(0), ow = c.ai(1);
  const bool aa = c.ai(2) == 1;
  const Taps v = build_taps(H, oh, aa), h = build_taps(W, ow, aa);
  run_filter(X.f(), c.out[0].f(), N, H, W, oh, ow, C, v, h);
}

void infer_resize_bilinear_backward(InferCtx& c) {
  c.op = "resize_bilinear_backward";
  need_image(c, 0, "dy");
  need_image(c, 1, "x");
  const ResizeAttrs a = resize_attrs(c);
  const Shape& xs = c.in[1].shape;
  if (xs[1] < 1 || xs[2] < 1)
    op_fail("E_SHAPE", "resize_bilinear_backward: x must have H, W >= 1, got " + shape_str(xs));
  const Shape want{xs[0], a.oh, a.ow, xs[3]};
  if (c.in[0].shape != want)
    op_fail("E_SHAPE", "resize_bilinear_backward: dy must have shape " + shape_str(want) + " (x " + shape_str(xs) +
                           " resized to [" + std::to_string(a.oh) + ", " + std::to_string(a.ow) + "]), got " +
                           shape_str(c.in[0].shape));
  c.add_out(xs);
}

void cpu_resize_bilinear_backward(KernelCtx& c) {
  const TArg& X = c.in[1];
  const int64_t N = X.shape[0], H = X.shape[1], W = X.shape[2], C = X.shape[3];
  const int64_t oh = c.ai(0), ow = c.ai(1);
  const bool aa = c.ai(2) == 1;
  const Taps vt = transpose_taps(build_taps(H, oh, aa), H), ht = transpose_taps(build_taps(W, ow, aa), W);
  run_filter(c.in[0].f(), c.out[0].f(), N, oh, ow, H, W, C, vt, ht);
}

}  // namespace irc
