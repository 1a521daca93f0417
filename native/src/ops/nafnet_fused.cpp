// Fused NAFBlock ops (ops.def): scaled_add (β/γ skip) and dwconv_gate (depthwise conv2 + SimpleGate).
// Temporary straightforward loops (correct, parallel over rows); vectorised versions follow.
#include <algorithm>
#include <vector>

#include "op_api.h"

namespace irc {
namespace {

int64_t s_numel(const Shape& s) { return numel(s); }

struct DG {
  int64_t N, H, W, C2, C, KH, KW, P, Ho, Wo;
};

DG dg_of(const Shape& x, const Shape& w, int64_t pad) {
  DG g{x[0], x[1], x[2], x[3], x[3] / 2, w[0], w[1], pad, 0, 0};
  g.Ho = g.H + 2 * pad - g.KH + 1;
  g.Wo = g.W + 2 * pad - g.KW + 1;
  return g;
}

DG check_dg(InferCtx& c, size_t xi, size_t wi, size_t bi) {
  c.need_attrs(1);
  c.need_f32(xi);
  c.need_f32(wi);
  c.need_rank(xi, 4);
  c.need_rank(wi, 4);
  const Shape &x = c.in[xi].shape, &w = c.in[wi].shape;
  const std::string op = c.op;
  if (x[3] % 2 != 0) op_fail("E_SHAPE", op + ": x must have an even channel count (2C), got x " + shape_str(x));
  if (w[2] != 1 || w[3] != x[3] || w[0] < 1 || w[1] < 1)
    op_fail("E_SHAPE", op + ": w must have shape [KH, KW, 1, " + std::to_string(x[3]) + "] (depthwise, x " +
                           shape_str(x) + "), got " + shape_str(w));
  const int64_t pad = c.ai(0);
  if (pad < 0) op_fail("E_ATTR", op + ": pad must be >= 0, got " + std::to_string(pad));
  if (bi < c.in.size()) {
    c.need_f32(bi);
    if (c.in[bi].shape != Shape{x[3]})
      op_fail("E_SHAPE", op + ": b must have shape [" + std::to_string(x[3]) + "], got " + shape_str(c.in[bi].shape));
  }
  DG g = dg_of(x, w, pad);
  if (g.Ho < 1 || g.Wo < 1)
    op_fail("E_SHAPE", op + ": kernel " + shape_str(w) + " with pad " + std::to_string(pad) +
                           " does not fit x " + shape_str(x));
  return g;
}

// z[n,oh,ow,ch] for all channels of one output pixel
void z_pixel(const DG& g, const float* x, const float* w, const float* b, int64_t n, int64_t oh, int64_t ow, float* z) {
  for (int64_t ch = 0; ch < g.C2; ++ch) z[ch] = b ? b[ch] : 0.f;
  for (int64_t kh = 0; kh < g.KH; ++kh) {
    const int64_t ih = oh - g.P + kh;
    if (ih < 0 || ih >= g.H) continue;
    for (int64_t kw = 0; kw < g.KW; ++kw) {
      const int64_t iw = ow - g.P + kw;
      if (iw < 0 || iw >= g.W) continue;
      const float* xp = x + ((n * g.H + ih) * g.W + iw) * g.C2;
      const float* wp = w + (kh * g.KW + kw) * g.C2;
      for (int64_t ch = 0; ch < g.C2; ++ch) z[ch] += xp[ch] * wp[ch];
    }
  }
}

}  // namespace

void infer_scaled_add(InferCtx& c) {
  c.op = "scaled_add";
  c.need_f32(0);
  c.need_f32(1);
  c.need_f32(2);
  c.need_min_rank(0, 1);
  c.need_same_shape(0, 1);
  const int64_t C = c.in[0].shape.back();
  if (s_numel(c.in[2].shape) != C)
    op_fail("E_SHAPE", "scaled_add: s must have " + std::to_string(C) + " elements (last dim of a " +
                           shape_str(c.in[0].shape) + "), got " + shape_str(c.in[2].shape));
  c.add_out(c.in[0].shape);
}

void cpu_scaled_add(KernelCtx& c) {
  const int64_t C = c.in[0].shape.back(), n = c.in[0].n;
  if (C == 0 || n == 0) return;
  const float *a = c.in[0].f(), *b = c.in[1].f(), *s = c.in[2].f();
  float* y = c.out[0].f();
  parallel_for(n / C, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t j = 0; j < C; ++j) y[r * C + j] = a[r * C + j] + b[r * C + j] * s[j];
  });
}

void infer_scaled_add_backward(InferCtx& c) {
  c.op = "scaled_add_backward";
  c.need_f32(0);
  c.need_f32(1);
  c.need_f32(2);
  c.need_min_rank(1, 1);
  c.need_same_shape(0, 1);
  const int64_t C = c.in[1].shape.back();
  if (s_numel(c.in[2].shape) != C)
    op_fail("E_SHAPE", "scaled_add_backward: s must have " + std::to_string(C) + " elements (last dim of b " +
                           shape_str(c.in[1].shape) + "), got " + shape_str(c.in[2].shape));
  c.add_out(c.in[1].shape);
  c.add_out(c.in[2].shape);
}

void cpu_scaled_add_backward(KernelCtx& c) {
  const int64_t C = c.in[1].shape.back(), n = c.in[1].n;
  float *db = c.out[0].f(), *ds = c.out[1].f();
  if (C == 0) return;
  const float *dy = c.in[0].f(), *b = c.in[1].f(), *s = c.in[2].f();
  const int64_t rows = n / C;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < C; ++j) db[r * C + j] = dy[r * C + j] * s[j];
  std::vector<double> acc(C, 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < C; ++j) acc[j] += static_cast<double>(dy[r * C + j]) * b[r * C + j];
  for (int64_t j = 0; j < C; ++j) ds[j] = static_cast<float>(acc[j]);
}

void infer_dwconv_gate(InferCtx& c) {
  c.op = "dwconv_gate";
  DG g = check_dg(c, 0, 1, 2);
  c.add_out({g.N, g.Ho, g.Wo, g.C});
}

void cpu_dwconv_gate(KernelCtx& c) {
  const DG g = dg_of(c.in[0].shape, c.in[1].shape, c.ai(0));
  const float *x = c.in[0].f(), *w = c.in[1].f(), *b = c.in.size() > 2 ? c.in[2].f() : nullptr;
  float* y = c.out[0].f();
  parallel_for(g.N * g.Ho, 1, [&](int64_t r0, int64_t r1) {
    std::vector<float> z(g.C2);
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t ow = 0; ow < g.Wo; ++ow) {
        z_pixel(g, x, w, b, r / g.Ho, r % g.Ho, ow, z.data());
        float* yp = y + (r * g.Wo + ow) * g.C;
        for (int64_t j = 0; j < g.C; ++j) yp[j] = z[j] * z[j + g.C];
      }
  });
}

void infer_dwconv_gate_backward(InferCtx& c) {
  c.op = "dwconv_gate_backward";
  DG g = check_dg(c, 1, 2, 3);
  c.need_f32(0);
  const Shape want{g.N, g.Ho, g.Wo, g.C};
  if (c.in[0].shape != want)
    op_fail("E_SHAPE", "dwconv_gate_backward: dy must have shape " + shape_str(want) + ", got " + shape_str(c.in[0].shape));
  c.add_out(c.in[1].shape);
  c.add_out(c.in[2].shape);
  c.add_out({g.C2});
}

void cpu_dwconv_gate_backward(KernelCtx& c) {
  const DG g = dg_of(c.in[1].shape, c.in[2].shape, c.ai(0));
  const float *dy = c.in[0].f(), *x = c.in[1].f(), *w = c.in[2].f(), *b = c.in.size() > 3 ? c.in[3].f() : nullptr;
  float *dx = c.out[0].f(), *dw = c.out[1].f(), *db = c.out[2].f();
  std::fill(dx, dx + c.out[0].n, 0.f);
  std::vector<double> adw(g.KH * g.KW * g.C2, 0.0), adb(g.C2, 0.0);
  std::vector<float> z(g.C2), dz(g.C2);
  for (int64_t r = 0; r < g.N * g.Ho; ++r) {
    const int64_t n = r / g.Ho, oh = r % g.Ho;
    for (int64_t ow = 0; ow < g.Wo; ++ow) {
      z_pixel(g, x, w, b, n, oh, ow, z.data());
      const float* d = dy + (r * g.Wo + ow) * g.C;
      for (int64_t j = 0; j < g.C; ++j) {
        dz[j] = d[j] * z[j + g.C];
        dz[j + g.C] = d[j] * z[j];
      }
      for (int64_t ch = 0; ch < g.C2; ++ch) adb[ch] += dz[ch];
      for (int64_t kh = 0; kh < g.KH; ++kh) {
        const int64_t ih = oh - g.P + kh;
        if (ih < 0 || ih >= g.H) continue;
        for (int64_t kw = 0; kw < g.KW; ++kw) {
          const int64_t iw = ow - g.P + kw;
          if (iw < 0 || iw >= g.W) continue;
          const int64_t o = ((n * g.H + ih) * g.W + iw) * g.C2;
          const int64_t t = (kh * g.KW + kw) * g.C2;
          for (int64_t ch = 0; ch < g.C2; ++ch) {
            dx[o + ch] += dz[ch] * w[t + ch];
            adw[t + ch] += static_cast<double>(dz[ch]) * x[o + ch];
          }
        }
      }
    }
  }
  for (size_t i = 0; i < adw.size(); ++i) dw[i] = static_cast<float>(adw[i]);
  for (int64_t ch = 0; ch < g.C2; ++ch) db[ch] = static_cast<float>(adb[ch]);
}

}  // namespace irc
