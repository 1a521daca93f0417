// LayerNorm2d of NAFNet in NHWC: normalise each pixel over its channels (the last axis).
//   layer_norm2d  (x[...,C], w[C], b[C]), attrs [eps] -> y, mean[rows], rstd[rows]   (rows = numel / C)
//     mu = mean_c x, var = mean_c (x - mu)^2 (biased), rstd = 1/sqrt(var + eps), y = (x - mu) rstd w + b
//   layer_norm2d_backward  (dy, x, w, mean, rstd, acc?) -> dx (+ acc: a gradient of x from elsewhere, added in the
//                          same pass), dw, db
//     xh = (x - mu) rstd, g = dy w:  dx = rstd (g - mean_c g - xh mean_c(g xh));  dw = sum_rows dy xh; db = sum_rows dy
// Row statistics use double accumulators in 8 fixed lanes (vectorisable, order fixed). dw/db use fixed row
// blocks with double partials combined in block order, so results never depend on the thread count.
#include <algorithm>
#include <cmath>
#include <vector>

#include "../cpu/simd.h"
#include "layer_norm2d.h"
#include "op_api.h"

namespace irc {
namespace {

IRC_CLONES
void ln_rows(const float* __restrict x, const float* __restrict w, const float* __restrict b, float* __restrict y,
             float* __restrict mean, float* __restrict rstd, int64_t C, int64_t r0, int64_t r1, double eps) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * C;
    float* yr = y + r * C;
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= C; j += 8)
      for (int k = 0; k < 8; ++k) s[k] += xr[j + k];
    for (; j < C; ++j) s[j & 7] += xr[j];
    const double mu = lane_sum(s) / C;
    double q[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (j = 0; j + 8 <= C; j += 8)
      for (int k = 0; k < 8; ++k) {
        const double d = xr[j + k] - mu;
        q[k] += d * d;
      }
    for (; j < C; ++j) {
      const double d = xr[j] - mu;
      q[j & 7] += d * d;
    }
    const double rs = 1.0 / std::sqrt(lane_sum(q) / C + eps);
    const float m = static_cast<float>(mu), rf = static_cast<float>(rs);
    mean[r] = m;
    rstd[r] = rf;
    for (j = 0; j < C; ++j) yr[j] = (xr[j] - m) * rf * w[j] + b[j];
  }
}

// y = (x - mean) rstd w + b from given statistics: ln_rows's last loop, the same expression.
IRC_CLONES
void ln_apply_rows(const float* __restrict x, const float* __restrict w, const float* __restrict b,
                   const float* __restrict mean, const float* __restrict rstd, float* __restrict y, int64_t C,
                   int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * C;
    float* yr = y + r * C;
    const float m = mean[r], rf = rstd[r];
    for (int64_t j = 0; j < C; ++j) yr[j] = (xr[j] - m) * rf * w[j] + b[j];
  }
}

IRC_CLONES
void ln_back_rows(const float* __restrict dy, const float* __restrict x, const float* __restrict w,
                  const float* __restrict mean, const float* __restrict rstd, const float* __restrict acc,
                  float* __restrict dx, double* __restrict dw, double* __restrict db, int64_t C, int64_t r0,
                  int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const float *xr = x + r * C, *dr = dy + r * C;
    float* o = dx + r * C;
    const float m = mean[r], rs = rstd[r];
    double sg[8] = {0, 0, 0, 0, 0, 0, 0, 0}, sx[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= C; j += 8)
      for (int k = 0; k < 8; ++k) {
        const float xh = (xr[j + k] - m) * rs;
        const float g = dr[j + k] * w[j + k];
        sg[k] += g;
        sx[k] += static_cast<double>(g) * xh;
      }
    for (; j < C; ++j) {
      const float xh = (xr[j] - m) * rs;
      const float g = dr[j] * w[j];
      sg[j & 7] += g;
      sx[j & 7] += static_cast<double>(g) * xh;
    }
    const float a = static_cast<float>(lane_sum(sg) / C), bm = static_cast<float>(lane_sum(sx) / C);
    for (j = 0; j < C; ++j) {
      const float xh = (xr[j] - m) * rs;
      const float v = rs * (dr[j] * w[j] - a - xh * bm);
      o[j] = acc ? v + acc[r * C + j] : v;
      dw[j] += static_cast<double>(dr[j]) * xh;
      db[j] += dr[j];
    }
  }
}

void need_chan_vec(InferCtx& c, size_t i, const char* name, size_t xi) {
  const Shape& xs = c.in[xi].shape;
  const Shape& s = c.in[i].shape;
  if (!(s.size() == 1 && s[0] == xs.back()))
    op_fail("E_SHAPE", std::string(c.op) + ": " + name + " must have shape [" + std::to_string(xs.back()) +
                           "] (channels of x " + shape_str(xs) + "), got " + shape_str(s));
}

}  // namespace

void infer_layer_norm2d(InferCtx& c) {
  c.op = "layer_norm2d";
  for (size_t i = 0; i < 3; ++i) c.need_f32(i);
  c.need_min_rank(0, 1);
  need_chan_vec(c, 1, "weight", 0);
  need_chan_vec(c, 2, "bias", 0);
  const double eps = c.af(0);
  if (!(eps >= 0)) op_fail("E_ATTR", "layer_norm2d: eps must be >= 0, got " + std::to_string(eps));
  const int64_t C = c.in[0].shape.back();
  if (C == 0) op_fail("E_SHAPE", "layer_norm2d: x must have at least one channel, got " + shape_str(c.in[0].shape));
  const int64_t rows = numel(c.in[0].shape) / C;
  c.add_out(c.in[0].shape);
  c.add_out({rows});
  c.add_out({rows});
}

void layer_norm_forward(const float* x, const float* w, const float* b, float* y, float* mean, float* rstd,
                        int64_t rows, int64_t C, double eps) {
  parallel_for(rows, std::max<int64_t>(1, 16384 / C),
               [&](int64_t r0, int64_t r1) { ln_rows(x, w, b, y, mean, rstd, C, r0, r1, eps); });
}

void layer_norm_apply(const float* x, const float* w, const float* b, const float* mean, const float* rstd, float* y,
                      int64_t rows, int64_t C) {
  parallel_for(rows, std::max<int64_t>(1, 16384 / C),
               [&](int64_t r0, int64_t r1) { ln_apply_rows(x, w, b, mean, rstd, y, C, r0, r1); });
}

void cpu_layer_norm2d(KernelCtx& c) {
  const TArg& X = c.in[0];
  const int64_t C = X.shape.back(), rows = X.n / C;
  layer_norm_forward(X.f(), c.in[1].f(), c.in[2].f(), c.out[0].f(), c.out[1].f(), c.out[2].f(), rows, C, c.af(0));
}

void infer_layer_norm2d_backward(InferCtx& c) {
  c.op = "layer_norm2d_backward";
  for (size_t i = 0; i < c.in.size(); ++i) c.need_f32(i);
  c.need_min_rank(1, 1);
  if (c.in[0].shape != c.in[1].shape)
    op_fail("E_SHAPE", "layer_norm2d_backward: dy must have the shape of x " + shape_str(c.in[1].shape) + ", got " +
                           shape_str(c.in[0].shape));
  need_chan_vec(c, 2, "weight", 1);
  const int64_t C = c.in[1].shape.back();
  const int64_t rows = C ? numel(c.in[1].shape) / C : 0;
  const char* names[] = {"", "", "", "mean", "rstd"};
  for (size_t i = 3; i < 5; ++i)
    if (c.in[i].shape != Shape{rows})
      op_fail("E_SHAPE", std::string("layer_norm2d_backward: ") + names[i] + " must have shape [" +
                             std::to_string(rows) + "] (rows of x " + shape_str(c.in[1].shape) + "), got " +
                             shape_str(c.in[i].shape));
  c.need_acc(5, 1);
  c.add_out(c.in[1].shape);
  c.add_out({C});
  c.add_out({C});
}

void cpu_layer_norm2d_backward(KernelCtx& c) {
  const TArg& X = c.in[1];
  const int64_t C = X.shape.back(), rows = C ? X.n / C : 0;
  layer_norm_backward(c.in[0].f(), X.f(), c.in[2].f(), c.in[3].f(), c.in[4].f(), c.in.size() > 5 ? c.in[5].f() : nullptr,
                      c.out[0].f(), c.out[1].f(), c.out[2].f(), rows, C);
}

void layer_norm_backward(const float* dy, const float* x, const float* w, const float* mu, const float* rs,
                         const float* acc, float* dx, float* dw, float* db, int64_t rows, int64_t C) {
  const int64_t G = std::max<int64_t>(1, std::min<int64_t>({std::max<int64_t>(1, rows * C / 32768), 64, rows}));
  std::vector<double> part(static_cast<size_t>(2 * G * C), 0.0);
  parallel_for(G, 1, [&](int64_t gb, int64_t ge) {
    for (int64_t g = gb; g < ge; ++g)
      ln_back_rows(dy, x, w, mu, rs, acc, dx, part.data() + 2 * g * C, part.data() + (2 * g + 1) * C, C, rows * g / G,
                   rows * (g + 1) / G);
  });
  for (int64_t j = 0; j < C; ++j) {
    double sw = 0, sb = 0;
    for (int64_t g = 0; g < G; ++g) {
      sw += part[2 * g * C + j];
      sb += part[(2 * g + 1) * C + j];
    }
    dw[j] = static_cast<float>(sw);
    db[j] = static_cast<float>(sb);
  }
}

}  // namespace irc
