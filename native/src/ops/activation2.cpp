// Activations of the Transformer/MLP backbones (PyTorch semantics) and their gradients.
//   relu                  x -> max(x, 0)   (NaN propagates, as torch.relu)
//   relu_backward         (dy, x) -> x > 0 ? dy : 0
//   sigmoid               x -> 1 / (1 + exp(-x))
//   sigmoid_backward      (dy, y) -> dy * y * (1 - y)            (y = forward OUTPUT)
//   softmax               last axis, max-subtracted
//   softmax_backward      (dy, y) -> y * (dy - sum(dy * y))      (y = forward OUTPUT)
//   l2_normalize          x / max(||x||_2, eps) over the last axis, attrs [eps]   (torch F.normalize)
//   l2_normalize_backward (dy, x), attrs [eps] -> dx
//       n >= eps: dx = dy / n - x (x . dy) / n^3;   n < eps: dx = dy / eps   (torch clamp_min passes the
//       gradient to n where n >= eps)
// Row reductions (softmax sums, norms, dot products) use 8 fixed double lanes: vectorisable, order fixed, so
// results never depend on the thread count. exp is a vectorisable float polynomial (rel. error ~2 ulp).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "../cpu/simd.h"
#include "op_api.h"

// Selects on float compares (clamps, relu, max) may be if-converted into vector blends: no FP traps are used.
#pragma GCC optimize("no-trapping-math")

namespace irc {
namespace {

constexpr int64_t kGrain = 1 << 15;

typedef float v8f __attribute__((vector_size(32), aligned(4), may_alias));

// exp(x) for float, branch-free (vectorises): x = k ln2 + r, |r| <= ln2/2, degree-6 polynomial for e^r, then
// scale by 2^k through the exponent bits. Inputs are clamped to [-87.3, 88.7]: below that the result is ~0
// (flushed to exactly 0 below -87.3 as e^-87.3 is already subnormal-adjacent), above it saturates near FLT_MAX.
inline float fast_exp(float x) {
  const bool under = x < -87.3f;
  x = x < -87.3f ? -87.3f : x;
  x = x > 88.7f ? 88.7f : x;
  const float k = (x * 1.44269504088896341f + 12582912.f) - 12582912.f;  // round to nearest (1.5 * 2^23 trick)
  float r = x - k * 0.693359375f;        // ln2 hi
  r = r - k * -2.12194440e-4f;           // ln2 lo
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  uint32_t bits;
  std::memcpy(&bits, &p, 4);
  bits += static_cast<uint32_t>(static_cast<int32_t>(k)) << 23;
  float out;
  std::memcpy(&out, &bits, 4);
  return under ? 0.f : out;
}

IRC_CLONES void relu_span(const float* __restrict x, float* __restrict y, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) y[i] = x[i] < 0.f ? 0.f : x[i];
}
IRC_CLONES void relu_back_span(const float* __restrict dy, const float* __restrict x, float* __restrict dx, int64_t b,
                               int64_t e) {
  for (int64_t i = b; i < e; ++i) dx[i] = x[i] > 0.f ? dy[i] : 0.f;
}
IRC_CLONES void sigmoid_span(const float* __restrict x, float* __restrict y, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) y[i] = 1.f / (1.f + fast_exp(-x[i]));
}
IRC_CLONES void sigmoid_back_span(const float* __restrict dy, const float* __restrict y, float* __restrict dx,
                                  int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) dx[i] = dy[i] * y[i] * (1.f - y[i]);
}

IRC_CLONES void softmax_rows(const float* __restrict x, float* __restrict y, int64_t C, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * C;
    float* yr = y + r * C;
    // Row max: 8-wide vector max (GCC vector extension: one AVX/AVX-512/SSE op per 8), then the tail.
    float m = xr[0];
    int64_t j = 0;
    if (C >= 8) {
      v8f mv = *reinterpret_cast<const v8f*>(xr);
      for (j = 8; j + 8 <= C; j += 8) {
        const v8f v = *reinterpret_cast<const v8f*>(xr + j);
        mv = v > mv ? v : mv;
      }
      for (int k = 0; k < 8; ++k) m = mv[k] > m ? mv[k] : m;
    }
    for (; j < C; ++j) m = xr[j] > m ? xr[j] : m;
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    j = 0;
    for (; j + 8 <= C; j += 8)
      for (int k = 0; k < 8; ++k) {
        const float v = fast_exp(xr[j + k] - m);
        yr[j + k] = v;
        s[k] += v;
      }
    for (; j < C; ++j) {
      const float v = fast_exp(xr[j] - m);
      yr[j] = v;
      s[j & 7] += v;
    }
    const float inv = static_cast<float>(1.0 / lane_sum(s));
    for (j = 0; j < C; ++j) yr[j] *= inv;
  }
}

IRC_CLONES void softmax_back_rows(const float* __restrict dy, const float* __restrict y, float* __restrict dx, int64_t C,
                                  int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const float *dr = dy + r * C, *yr = y + r * C;
    float* o = dx + r * C;
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= C; j += 8)
      for (int k = 0; k < 8; ++k) s[k] += static_cast<double>(dr[j + k]) * yr[j + k];
    for (; j < C; ++j) s[j & 7] += static_cast<double>(dr[j]) * yr[j];
    const float d = static_cast<float>(lane_sum(s));
    for (j = 0; j < C; ++j) o[j] = yr[j] * (dr[j] - d);
  }
}

IRC_CLONES void l2n_rows(const float* __restrict x, float* __restrict y, int64_t C, int64_t r0, int64_t r1, double eps) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * C;
    float* yr = y + r * C;
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= C; j += 8)
      for (int k = 0; k < 8; ++k) s[k] += static_cast<double>(xr[j + k]) * xr[j + k];
    for (; j < C; ++j) s[j & 7] += static_cast<double>(xr[j]) * xr[j];
    const double n = std::max(std::sqrt(lane_sum(s)), eps);
    const float inv = static_cast<float>(1.0 / n);
    for (j = 0; j < C; ++j) yr[j] = xr[j] * inv;
  }
}

IRC_CLONES void l2n_back_rows(const float* __restrict dy, const float* __restrict x, float* __restrict dx, int64_t C,
                              int64_t r0, int64_t r1, double eps) {
  for (int64_t r = r0; r < r1; ++r) {
    const float *dr = dy + r * C, *xr = x + r * C;
    float* o = dx + r * C;
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0}, d[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= C; j += 8)
      for (int k = 0; k < 8; ++k) {
        s[k] += static_cast<double>(xr[j + k]) * xr[j + k];
        d[k] += static_cast<double>(xr[j + k]) * dr[j + k];
      }
    for (; j < C; ++j) {
      s[j & 7] += static_cast<double>(xr[j]) * xr[j];
      d[j & 7] += static_cast<double>(xr[j]) * dr[j];
    }
    const double n = std::sqrt(lane_sum(s));
    if (n >= eps && n > 0) {
      const float a = static_cast<float>(1.0 / n);
      const float b = static_cast<float>(lane_sum(d) / (n * n * n));
      for (j = 0; j < C; ++j) o[j] = dr[j] * a - xr[j] * b;
    } else {
      const float a = static_cast<float>(1.0 / eps);
      for (j = 0; j < C; ++j) o[j] = dr[j] * a;
    }
  }
}

void need_pair(InferCtx& c, const char* a, const char* b) {
  c.need_f32(0);
  c.need_f32(1);
  if (c.in[0].shape != c.in[1].shape)
    op_fail("E_SHAPE", std::string(c.op) + ": " + a + " must have the shape of " + b + " " + shape_str(c.in[1].shape) +
                           ", got " + shape_str(c.in[0].shape));
}

double need_eps(InferCtx& c) {
  const double eps = c.af(0);
  if (!(eps >= 0) || !std::isfinite(eps))
    op_fail("E_ATTR", std::string(c.op) + ": eps must be a finite number >= 0, got " + std::to_string(eps));
  return eps;
}

void need_rows(InferCtx& c, size_t i) {
  if (c.in[i].shape.empty())
    op_fail("E_SHAPE", std::string(c.op) + ": input " + std::to_string(i) +
                           " must have rank >= 1 (the op works over the last axis), got a scalar []");
}

// Row-wise driver: fixed chunks of rows, independent of the thread count.
template <class F>
void for_rows(int64_t n, int64_t C, F&& f) {
  if (n == 0 || C == 0) return;
  const int64_t rows = n / C;
  parallel_for(rows, std::max<int64_t>(1, 16384 / C), [&](int64_t r0, int64_t r1) { f(r0, r1); });
}

}  // namespace

// ---- relu -------------------------------------------------------------------------------------------------
void infer_relu(InferCtx& c) {
  c.op = "relu";
  c.need_f32(0);
  c.add_out(c.in[0].shape);
}
void cpu_relu(KernelCtx& c) {
  const float* x = c.in[0].f();
  float* y = c.out[0].f();
  parallel_for(c.in[0].n, kGrain, [&](int64_t b, int64_t e) { relu_span(x, y, b, e); });
}
void infer_relu_backward(InferCtx& c) {
  c.op = "relu_backward";
  need_pair(c, "dy", "x");
  c.add_out(c.in[1].shape);
}
void cpu_relu_backward(KernelCtx& c) {
  const float *dy = c.in[0].f(), *x = c.in[1].f();
  float* dx = c.out[0].f();
  parallel_for(c.in[0].n, kGrain, [&](int64_t b, int64_t e) { relu_back_span(dy, x, dx, b, e); });
}

// ---- sigmoid ----------------------------------------------------------------------------------------------
void infer_sigmoid(InferCtx& c) {
  c.op = "sigmoid";
  c.need_f32(0);
  c.add_out(c.in[0].shape);
}
void cpu_sigmoid(KernelCtx& c) {
  const float* x = c.in[0].f();
  float* y = c.out[0].f();
  parallel_for(c.in[0].n, kGrain / 2, [&](int64_t b, int64_t e) { sigmoid_span(x, y, b, e); });
}
void infer_sigmoid_backward(InferCtx& c) {
  c.op = "sigmoid_backward";
  need_pair(c, "dy", "y");
  c.add_out(c.in[1].shape);
}
void cpu_sigmoid_backward(KernelCtx& c) {
  const float *dy = c.in[0].f(), *y = c.in[1].f();
  float* dx = c.out[0].f();
  parallel_for(c.in[0].n, kGrain, [&](int64_t b, int64_t e) { sigmoid_back_span(dy, y, dx, b, e); });
}

// ---- softmax ----------------------------------------------------------------------------------------------
void infer_softmax(InferCtx& c) {
  c.op = "softmax";
  c.need_f32(0);
  need_rows(c, 0);
  c.add_out(c.in[0].shape);
}
void cpu_softmax(KernelCtx& c) {
  const TArg& X = c.in[0];
  const int64_t C = X.shape.back();
  const float* x = X.f();
  float* y = c.out[0].f();
  for_rows(X.n, C, [&](int64_t r0, int64_t r1) { softmax_rows(x, y, C, r0, r1); });
}
void infer_softmax_backward(InferCtx& c) {
  c.op = "softmax_backward";
  need_pair(c, "dy", "y");
  need_rows(c, 1);
  c.add_out(c.in[1].shape);
}
void cpu_softmax_backward(KernelCtx& c) {
  const TArg& Y = c.in[1];
  const int64_t C = Y.shape.back();
  const float *dy = c.in[0].f(), *y = Y.f();
  float* dx = c.out[0].f();
  for_rows(Y.n, C, [&](int64_t r0, int64_t r1) { softmax_back_rows(dy, y, dx, C, r0, r1); });
}

// ---- l2_normalize -----------------------------------------------------------------------------------------
void infer_l2_normalize(InferCtx& c) {
  c.op = "l2_normalize";
  c.need_f32(0);
  need_rows(c, 0);
  need_eps(c);
  c.add_out(c.in[0].shape);
}
void cpu_l2_normalize(KernelCtx& c) {
  const TArg& X = c.in[0];
  const int64_t C = X.shape.back();
  const double eps = c.af(0);
  const float* x = X.f();
  float* y = c.out[0].f();
  for_rows(X.n, C, [&](int64_t r0, int64_t r1) { l2n_rows(x, y, C, r0, r1, eps); });
}
void infer_l2_normalize_backward(InferCtx& c) {
  c.op = "l2_normalize_backward";
  need_pair(c, "dy", "x");
  need_rows(c, 1);
  need_eps(c);
  c.add_out(c.in[1].shape);
}
void cpu_l2_normalize_backward(KernelCtx& c) {
  const TArg& X = c.in[1];
  const int64_t C = X.shape.back();
  const double eps = c.af(0);
  const float *dy = c.in[0].f(), *x = X.f();
  float* dx = c.out[0].f();
  for_rows(X.n, C, [&](int64_t r0, int64_t r1) { l2n_back_rows(dy, x, dx, C, r0, r1, eps); });
}

}  // namespace irc
