// A pointwise convolution added to a residual in the same pass (ops.def), NHWC / any [..., C] rows, on the CPU:
//   conv1x1_add           (x[..., Ci], w[1,1,Ci,Co], r[..., Co], b?[Co], s?[Co]) -> y = r + (x w + b) s
//   conv1x1_add_backward  (dy, x, w, b?, s?) -> dx, dw, then db if b, then ds if s   (dr = dy)
// NAFBlock's conv3 + β skip and conv5 + γ skip (s = β, γ), Restormer's project_out + residual (no b, no s).
// Forward: y = r + b s (one pass), then the GEMM x (w s) accumulates into it, with w s = w scaled per output column.
// Backward, with G = x^T dy and S = Σ_rows dy (G and S are what a plain conv's dw and db would be):
//   dw = G s,  db = S s,  ds_c = Σ_k w_kc G_kc + b_c S_c,  dx = dy (w s)^T
// so the scaled output (x w + b), never stored, is not needed. Sums over rows in double over fixed parts
// (deterministic for any thread count).
#include <algorithm>
#include <string>
#include <vector>

#include "../cpu/gemm.h"
#include "conv1x1_add.h"
#include "op_api.h"

namespace irc {
namespace {

// Checks x, w and the optional b (at bi) and s (at bi + 1; only with b) of either op; returns the geometry.
PwGeom check_pw(InferCtx& c, size_t xi, size_t wi, size_t bi) {
  const std::string op = c.op;
  c.need_f32(xi);
  c.need_f32(wi);
  c.need_min_rank(xi, 1);
  c.need_rank(wi, 4);
  const Shape &x = c.in[xi].shape, &w = c.in[wi].shape;
  if (w[0] != 1 || w[1] != 1 || w[2] != x.back())
    op_fail("E_SHAPE", op + ": w must have shape [1, 1, " + std::to_string(x.back()) + ", Co] (a pointwise conv over x " +
                           shape_str(x) + "), got " + shape_str(w));
  const int64_t Co = w[3];
  if (bi < c.in.size()) {
    c.need_f32(bi);
    if (c.in[bi].shape != Shape{Co})
      op_fail("E_SHAPE", op + ": b must have shape [" + std::to_string(Co) + "], got " + shape_str(c.in[bi].shape));
  }
  if (bi + 1 < c.in.size()) {
    c.need_f32(bi + 1);
    if (numel(c.in[bi + 1].shape) != Co)
      op_fail("E_SHAPE", op + ": s must have " + std::to_string(Co) + " elements (one per output channel), got " +
                             shape_str(c.in[bi + 1].shape));
  }
  return pw_geom(x, w);
}

// out[c] = Σ_rows a[r, c] in double over fixed row parts added in order.
void column_sums(const float* a, int64_t rows, int64_t C, double* out) {
  const int64_t parts = std::clamp<int64_t>(rows / 1024, 1, 32);
  std::vector<double> part(static_cast<size_t>(parts * C), 0.0);
  parallel_for(parts, 1, [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) {
      double* s = part.data() + q * C;
      for (int64_t r = rows * q / parts; r < rows * (q + 1) / parts; ++r)
        for (int64_t c = 0; c < C; ++c) s[c] += a[r * C + c];
    }
  });
  std::fill(out, out + C, 0.0);
  for (int64_t q = 0; q < parts; ++q)
    for (int64_t c = 0; c < C; ++c) out[c] += part[q * C + c];
}

// w s (columns scaled), or w itself without s.
const float* scaled_weight(const PwGeom& g, const float* w, const float* s, std::vector<float>& buf) {
  if (!s) return w;
  buf.resize(static_cast<size_t>(g.Ci * g.Co));
  for (int64_t k = 0; k < g.Ci; ++k)
    for (int64_t c = 0; c < g.Co; ++c) buf[k * g.Co + c] = w[k * g.Co + c] * s[c];
  return buf.data();
}

}  // namespace

void infer_conv1x1_add(InferCtx& c) {
  c.op = "conv1x1_add";
  const PwGeom g = check_pw(c, 0, 1, 3);
  c.need_f32(2);
  Shape want = c.in[0].shape;
  want.back() = g.Co;
  if (c.in[2].shape != want)
    op_fail("E_SHAPE", "conv1x1_add: r must have shape " + shape_str(want) + " (x with Co channels), got " +
                           shape_str(c.in[2].shape));
  c.add_out(want);
}

void cpu_conv1x1_add(KernelCtx& k) {
  const PwGeom g = pw_geom(k.in[0].shape, k.in[1].shape);
  const float *x = k.in[0].f(), *w = k.in[1].f(), *r = k.in[2].f();
  const float* b = k.in.size() > 3 ? k.in[3].f() : nullptr;
  const float* s = k.in.size() > 4 ? k.in[4].f() : nullptr;
  float* y = k.out[0].f();
  if (g.rows == 0 || g.Co == 0) return;
  std::vector<float> bs(static_cast<size_t>(g.Co), 0.f), wbuf;
  if (b)
    for (int64_t c = 0; c < g.Co; ++c) bs[c] = s ? b[c] * s[c] : b[c];
  parallel_for(g.rows, std::max<int64_t>(1, 16384 / g.Co), [&](int64_t r0, int64_t r1) {
    for (int64_t q = r0; q < r1; ++q)
      for (int64_t c = 0; c < g.Co; ++c) y[q * g.Co + c] = r[q * g.Co + c] + bs[c];
  });
  if (g.Ci > 0) sgemm(false, false, g.rows, g.Co, g.Ci, 1.f, x, g.Ci, scaled_weight(g, w, s, wbuf), g.Co, 1.f, y, g.Co);
}

void infer_conv1x1_add_backward(InferCtx& c) {
  c.op = "conv1x1_add_backward";
  const PwGeom g = check_pw(c, 1, 2, 3);
  c.need_f32(0);
  Shape want = c.in[1].shape;
  want.back() = g.Co;
  if (c.in[0].shape != want)
    op_fail("E_SHAPE", "conv1x1_add_backward: dy must have shape " + shape_str(want) + ", got " +
                           shape_str(c.in[0].shape));
  c.add_out(c.in[1].shape);
  c.add_out(c.in[2].shape);
  if (c.in.size() > 3) c.add_out({g.Co});
  if (c.in.size() > 4) c.add_out(c.in[4].shape);
}

void cpu_conv1x1_add_backward(KernelCtx& k) {
  const PwGeom g = pw_geom(k.in[1].shape, k.in[2].shape);
  const float *dy = k.in[0].f(), *x = k.in[1].f(), *w = k.in[2].f();
  const float* b = k.in.size() > 3 ? k.in[3].f() : nullptr;
  const float* s = k.in.size() > 4 ? k.in[4].f() : nullptr;
  float *dx = k.out[0].f(), *dw = k.out[1].f();
  float* db = b ? k.out[2].f() : nullptr;
  float* ds = s ? k.out[3].f() : nullptr;
  const int64_t wsz = g.Ci * g.Co;
  // G = x^T dy (into dw, scaled below)
  if (g.rows > 0 && wsz > 0) {
    sgemm(true, false, g.Ci, g.Co, g.rows, 1.f, x, g.Ci, dy, g.Co, 0.f, dw, g.Co);
  } else {
    std::fill(dw, dw + wsz, 0.f);
  }
  std::vector<double> S(static_cast<size_t>(g.Co), 0.0);
  if (b) column_sums(dy, g.rows, g.Co, S.data());
  for (int64_t c = 0; s && c < g.Co; ++c) {
    double t = static_cast<double>(b[c]) * S[c];
    for (int64_t q = 0; q < g.Ci; ++q) t += static_cast<double>(w[q * g.Co + c]) * dw[q * g.Co + c];
    ds[c] = static_cast<float>(t);
  }
  std::vector<float> wbuf;
  const float* ws = scaled_weight(g, w, s, wbuf);
  if (s)
    for (int64_t q = 0; q < g.Ci; ++q)
      for (int64_t c = 0; c < g.Co; ++c) dw[q * g.Co + c] *= s[c];
  for (int64_t c = 0; b && c < g.Co; ++c) db[c] = static_cast<float>(s ? S[c] * s[c] : S[c]);
  if (g.rows > 0 && g.Ci > 0) {
    if (g.Co > 0) {
      sgemm(false, true, g.rows, g.Ci, g.Co, 1.f, dy, g.Co, ws, g.Co, 0.f, dx, g.Ci);
    } else {
      std::fill(dx, dx + g.rows * g.Ci, 0.f);
    }
  }
}

}  // namespace irc
