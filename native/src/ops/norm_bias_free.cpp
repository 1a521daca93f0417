// Restormer's BiasFree_LayerNorm over the last axis (channels of NHWC).
//   layer_norm_bias_free  (x[...,C], w[C]), attrs [eps] -> y, rstd[rows]   (rows = numel / C)
//     mu = mean_c x, var = mean_c (x - mu)^2 (biased), r = 1/sqrt(var + eps), y = x r w   (numerator NOT centred)
//   layer_norm_bias_free_backward  (dy, x, w, rstd, acc?) -> dx (+ acc, added in the same pass), dw
//     g = dy w:  dx = r g - r^3 (x - mu) / C * sum_c(g x);   dw = sum_rows dy x r
// Row statistics use double accumulators in 8 fixed lanes (vectorisable, fixed order). dw uses fixed row blocks
// with double partials combined in block order, so results never depend on the thread count.
#include <algorithm>
#include <cmath>
#include <vector>

#include "../cpu/simd.h"
#include "op_api.h"

namespace irc {
namespace {

// Mean of a row in double (8 fixed lanes).
inline double row_mean(const float* __restrict xr, int64_t C) {
  double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= C; j += 8)
    for (int k = 0; k < 8; ++k) s[k] += xr[j + k];
  for (; j < C; ++j) s[j & 7] += xr[j];
  return lane_sum(s) / C;
}

IRC_CLONES
void lnbf_rows(const float* __restrict x, const float* __restrict w, float* __restrict y, float* __restrict rstd,
               int64_t C, int64_t r0, int64_t r1, double eps) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * C;
    float* yr = y + r * C;
    const double mu = row_mean(xr, C);
    double q[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= C; j += 8)
      for (int k = 0; k < 8; ++k) {
        const double d = xr[j + k] - mu;
        q[k] += d * d;
      }
    for (; j < C; ++j) {
      const double d = xr[j] - mu;
      q[j & 7] += d * d;
    }
    const float rf = static_cast<float>(1.0 / std::sqrt(lane_sum(q) / C + eps));
    rstd[r] = rf;
    for (j = 0; j < C; ++j) yr[j] = xr[j] * rf * w[j];
  }
}

IRC_CLONES
void lnbf_back_rows(const float* __restrict dy, const float* __restrict x, const float* __restrict w,
                    const float* __restrict rstd, const float* __restrict acc, float* __restrict dx,
                    double* __restrict dw, int64_t C, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const float *xr = x + r * C, *dr = dy + r * C;
    float* o = dx + r * C;
    const float rs = rstd[r];
    const double mu = row_mean(xr, C);
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= C; j += 8)
      for (int k = 0; k < 8; ++k) s[k] += static_cast<double>(dr[j + k] * w[j + k]) * xr[j + k];
    for (; j < C; ++j) s[j & 7] += static_cast<double>(dr[j] * w[j]) * xr[j];
    const double rsd = rs;
    const float b = static_cast<float>(rsd * rsd * rsd * lane_sum(s) / C);
    const float m = static_cast<float>(mu);
    for (j = 0; j < C; ++j) {
      const float v = rs * dr[j] * w[j] - (xr[j] - m) * b;
      o[j] = acc ? v + acc[r * C + j] : v;
      dw[j] += static_cast<double>(dr[j]) * (xr[j] * rs);
    }
  }
}

void need_weight(InferCtx& c, size_t wi, size_t xi) {
  const Shape& xs = c.in[xi].shape;
  const Shape& s = c.in[wi].shape;
  if (!(s.size() == 1 && s[0] == xs.back()))
    op_fail("E_SHAPE", std::string(c.op) + ": weight must have shape [" + std::to_string(xs.back()) +
                           "] (channels of x " + shape_str(xs) + "), got " + shape_str(s));
}

}  // namespace

void infer_layer_norm_bias_free(InferCtx& c) {
  c.op = "layer_norm_bias_free";
  c.need_f32(0);
  c.need_f32(1);
  c.need_min_rank(0, 1);
  need_weight(c, 1, 0);
  const double eps = c.af(0);
  if (!(eps >= 0) || !std::isfinite(eps))
    op_fail("E_ATTR", "layer_norm_bias_free: eps must be a finite number >= 0, got " + std::to_string(eps));
  const int64_t C = c.in[0].shape.back();
  if (C == 0)
    op_fail("E_SHAPE", "layer_norm_bias_free: x must have at least one channel, got " + shape_str(c.in[0].shape));
  c.add_out(c.in[0].shape);
  c.add_out({numel(c.in[0].shape) / C});
}

void cpu_layer_norm_bias_free(KernelCtx& c) {
  const TArg& X = c.in[0];
  const int64_t C = X.shape.back(), rows = X.n / C;
  const double eps = c.af(0);
  const float *x = X.f(), *w = c.in[1].f();
  float *y = c.out[0].f(), *rs = c.out[1].f();
  parallel_for(rows, std::max<int64_t>(1, 16384 / C),
               [&](int64_t r0, int64_t r1) { lnbf_rows(x, w, y, rs, C, r0, r1, eps); });
}

void infer_layer_norm_bias_free_backward(InferCtx& c) {
  c.op = "layer_norm_bias_free_backward";
  for (size_t i = 0; i < 4; ++i) c.need_f32(i);
  c.need_acc(4, 1);
  c.need_min_rank(1, 1);
  if (c.in[0].shape != c.in[1].shape)
    op_fail("E_SHAPE", "layer_norm_bias_free_backward: dy must have the shape of x " + shape_str(c.in[1].shape) +
                           ", got " + shape_str(c.in[0].shape));
  need_weight(c, 2, 1);
  const int64_t C = c.in[1].shape.back();
  if (C == 0)
    op_fail("E_SHAPE",
            "layer_norm_bias_free_backward: x must have at least one channel, got " + shape_str(c.in[1].shape));
  const int64_t rows = numel(c.in[1].shape) / C;
  if (c.in[3].shape != Shape{rows})
    op_fail("E_SHAPE", "layer_norm_bias_free_backward: rstd must have shape [" + std::to_string(rows) +
                           "] (rows of x " + shape_str(c.in[1].shape) + "), got " + shape_str(c.in[3].shape));
  c.add_out(c.in[1].shape);
  c.add_out({C});
}

void cpu_layer_norm_bias_free_backward(KernelCtx& c) {
  const TArg& X = c.in[1];
  const int64_t C = X.shape.back(), rows = X.n / C;
  const float *dy = c.in[0].f(), *x = X.f(), *w = c.in[2].f(), *rs = c.in[3].f();
  const float* acc = c.in.size() > 4 ? c.in[4].f() : nullptr;
  float *dx = c.out[0].f(), *dw = c.out[1].f();
  // Fixed number of row blocks (depends only on the shape), one double partial of dw per block.
  const int64_t G = std::max<int64_t>(1, std::min<int64_t>({std::max<int64_t>(1, X.n / 32768), 64, rows}));
  std::vector<double> part(static_cast<size_t>(G * C), 0.0);
  parallel_for(G, 1, [&](int64_t gb, int64_t ge) {
    for (int64_t g = gb; g < ge; ++g)
      lnbf_back_rows(dy, x, w, rs, acc, dx, part.data() + g * C, C, rows * g / G, rows * (g + 1) / G);
  });
  for (int64_t j = 0; j < C; ++j) {
    double sw = 0;
    for (int64_t g = 0; g < G; ++g) sw += part[g * C + j];
    dw[j] = static_cast<float>(sw);
  }
}

}  // namespace irc
