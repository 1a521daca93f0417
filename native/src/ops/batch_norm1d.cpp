// BatchNorm1d over x[N, C] (PyTorch nn.BatchNorm1d on 2-D input).
//   batch_norm1d  (x, gamma, beta, running_mean, running_var), attrs [training, momentum, eps]
//                 -> y, save_mean[C], save_invstd[C]
//     training: mean/var over the batch (biased var normalises y); running stats updated in place:
//               rm = (1-mom) rm + mom*mean, rv = (1-mom) rv + mom*var*N/(N-1). save_* = batch mean, 1/sqrt(var+eps).
//     eval:     y uses running stats; save_* = rm, 1/sqrt(rv+eps).
//   batch_norm1d_backward  (dy, x, gamma, save_mean, save_invstd), attrs [training] -> dx, dgamma, dbeta
//     xhat = (x-mean)*invstd; dbeta = sum dy; dgamma = sum dy*xhat;
//     training: dx = gamma*invstd*(dy - dbeta/N - xhat*dgamma/N);  eval: dx = gamma*invstd*dy.
// Statistics are accumulated in double per channel; work is split over channels (deterministic).
#include <algorithm>
#include <cmath>
#include <vector>

#include "op_api.h"

namespace irc {
namespace {

void need_vec(InferCtx& c, size_t i, const char* name, int64_t C) {
  const Shape& s = c.in[i].shape;
  if (!(s.size() == 1 && s[0] == C))
    op_fail("E_SHAPE", std::string(c.op) + ": " + name + " must have shape [" + std::to_string(C) +
                           "] (channels of x " + shape_str(c.in[0].shape) + "), got " + shape_str(s));
}

int64_t chan_grain(int64_t N) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, N)); }

}  // namespace

void infer_batch_norm1d(InferCtx& c) {
  c.op = "batch_norm1d";
  for (size_t i = 0; i < 5; ++i) c.need_f32(i);
  c.need_attrs(3);
  if (c.in[0].shape.size() != 2)
    op_fail("E_SHAPE", "batch_norm1d: x must have shape [N, C], got " + shape_str(c.in[0].shape));
  const int64_t N = c.in[0].shape[0], C = c.in[0].shape[1];
  const char* names[] = {"x", "gamma", "beta", "running_mean", "running_var"};
  for (size_t i = 1; i < 5; ++i) need_vec(c, i, names[i], C);
  int64_t tr = c.ai(0);
  if (tr != 0 && tr != 1) op_fail("E_ATTR", "batch_norm1d: training must be 0 or 1, got " + std::to_string(tr));
  if (!(c.af(2) >= 0)) op_fail("E_ATTR", "batch_norm1d: eps must be >= 0, got " + std::to_string(c.af(2)));
  if (tr && N < 2)
    op_fail("E_SHAPE", "batch_norm1d: training needs more than 1 value per channel, got x " + shape_str(c.in[0].shape));
  c.add_out(c.in[0].shape);
  c.add_out({C});
  c.add_out({C});
}

void cpu_batch_norm1d(KernelCtx& c) {
  const TArg& X = c.in[0];
  const int64_t N = X.shape[0], C = X.shape[1];
  const float *x = X.f(), *g = c.in[1].f(), *b = c.in[2].f();
  float *rm = c.in[3].f(), *rv = c.in[4].f();
  float *y = c.out[0].f(), *sm = c.out[1].f(), *si = c.out[2].f();
  const bool training = c.ai(0) != 0;
  const double mom = c.af(1), eps = c.af(2);
  parallel_for(C, chan_grain(N), [&](int64_t c0, int64_t c1) {
    const int64_t w = c1 - c0;
    std::vector<double> mean(w), inv(w);
    if (training) {
      std::vector<double> s(w, 0.0), q(w, 0.0);
      for (int64_t n = 0; n < N; ++n)
        for (int64_t j = 0; j < w; ++j) s[j] += x[n * C + c0 + j];
      for (int64_t j = 0; j < w; ++j) mean[j] = s[j] / N;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t j = 0; j < w; ++j) {
          double d = x[n * C + c0 + j] - mean[j];
          q[j] += d * d;
        }
      for (int64_t j = 0; j < w; ++j) {
        double var = q[j] / N;
        inv[j] = 1.0 / std::sqrt(var + eps);
        const int64_t ch = c0 + j;
        rm[ch] = static_cast<float>((1.0 - mom) * rm[ch] + mom * mean[j]);
        rv[ch] = static_cast<float>((1.0 - mom) * rv[ch] + mom * (q[j] / (N - 1)));
      }
    } else {
      for (int64_t j = 0; j < w; ++j) {
        mean[j] = rm[c0 + j];
        inv[j] = 1.0 / std::sqrt(static_cast<double>(rv[c0 + j]) + eps);
      }
    }
    for (int64_t j = 0; j < w; ++j) {
      sm[c0 + j] = static_cast<float>(mean[j]);
      si[c0 + j] = static_cast<float>(inv[j]);
    }
    for (int64_t n = 0; n < N; ++n)
      for (int64_t j = 0; j < w; ++j) {
        const int64_t k = n * C + c0 + j;
        y[k] = static_cast<float>((x[k] - mean[j]) * inv[j] * g[c0 + j] + b[c0 + j]);
      }
  });
}

void infer_batch_norm1d_backward(InferCtx& c) {
  c.op = "batch_norm1d_backward";
  for (size_t i = 0; i < 5; ++i) c.need_f32(i);
  c.need_attrs(1);
  if (c.in[1].shape.size() != 2)
    op_fail("E_SHAPE", "batch_norm1d_backward: x must have shape [N, C], got " + shape_str(c.in[1].shape));
  if (c.in[0].shape != c.in[1].shape)
    op_fail("E_SHAPE", "batch_norm1d_backward: dy must have the shape of x " + shape_str(c.in[1].shape) + ", got " +
                           shape_str(c.in[0].shape));
  const int64_t C = c.in[1].shape[1];
  const char* names[] = {"dy", "x", "gamma", "save_mean", "save_invstd"};
  for (size_t i = 2; i < 5; ++i) {
    const Shape& s = c.in[i].shape;
    if (!(s.size() == 1 && s[0] == C))
      op_fail("E_SHAPE", std::string("batch_norm1d_backward: ") + names[i] + " must have shape [" + std::to_string(C) +
                             "] (channels of x " + shape_str(c.in[1].shape) + "), got " + shape_str(s));
  }
  int64_t tr = c.ai(0);
  if (tr != 0 && tr != 1) op_fail("E_ATTR", "batch_norm1d_backward: training must be 0 or 1, got " + std::to_string(tr));
  c.add_out(c.in[1].shape);
  c.add_out({C});
  c.add_out({C});
}

void cpu_batch_norm1d_backward(KernelCtx& c) {
  const TArg& X = c.in[1];
  const int64_t N = X.shape[0], C = X.shape[1];
  const float *dy = c.in[0].f(), *x = X.f(), *g = c.in[2].f(), *sm = c.in[3].f(), *si = c.in[4].f();
  float *dx = c.out[0].f(), *dg = c.out[1].f(), *db = c.out[2].f();
  const bool training = c.ai(0) != 0;
  parallel_for(C, chan_grain(N), [&](int64_t c0, int64_t c1) {
    const int64_t w = c1 - c0;
    std::vector<double> sdy(w, 0.0), sdx(w, 0.0);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t j = 0; j < w; ++j) {
        const int64_t k = n * C + c0 + j;
        const double xh = (static_cast<double>(x[k]) - sm[c0 + j]) * si[c0 + j];
        sdy[j] += dy[k];
        sdx[j] += dy[k] * xh;
      }
    for (int64_t j = 0; j < w; ++j) {
      dg[c0 + j] = static_cast<float>(sdx[j]);
      db[c0 + j] = static_cast<float>(sdy[j]);
    }
    for (int64_t n = 0; n < N; ++n)
      for (int64_t j = 0; j < w; ++j) {
        const int64_t k = n * C + c0 + j;
        const double gi = static_cast<double>(g[c0 + j]) * si[c0 + j];
        if (training) {
          const double xh = (static_cast<double>(x[k]) - sm[c0 + j]) * si[c0 + j];
          dx[k] = static_cast<float>(gi * (dy[k] - sdy[j] / N - xh * sdx[j] / N));
        } else {
          dx[k] = static_cast<float>(gi * dy[k]);
        }
      }
  });
}

}  // namespace irc
