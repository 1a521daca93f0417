// Exact-erf GELU in float over GCC vector types (activation.cpp's gelu ops, nafnet_fused.cpp's GELU gate).
// Phi(x) = 0.5 (1 + erf(x / sqrt 2)) without std::erf, branch-free so that it vectorises.
// z = x / sqrt 2, h = z^2 = x^2 / 2, e = exp(-h) (shared with the pdf of the backward pass):
//   |z| <  1: erf(z) = z + z q(z^2)              q: degree 6 in z^2 (least-squares minimax fit, abs err 6e-10)
//   |z| >= 1: erfc(|z|) = e R(min(|z|, 4))     R: degree 8 in (|z| - 2.5) on [1, 4] (abs err of erfc 2.4e-9;
//             beyond 4 erfc < 1.6e-8 and the clamp keeps it in that range)
// and Phi = 0.5 + (z/2 + z/2 q) (small), 1 - 0.5 e R (z >= 1), 0.5 e R (z <= -1): the lower tail is computed directly,
// with no 1 + erf cancellation. Measured against double erf (every float with |z| < 5, and 2e7 points on
// [-10, 10]) the float erf built from these pieces is within 6.3e-8 absolute with FMA (AVX2 / AVX-512 variants)
// and 7.9e-8 without (SSE2 variant); Phi within 6.4e-8; gelu / gelu_backward within float rounding of the result.
// Written once over a vector type V of float lanes (vf4 baseline SSE2, vf8 AVX2+FMA, vf16 AVX-512): every lane
// takes the same branch-free path, so results never depend on how a span is split across threads.
#pragma once
#include <cstdint>

#include "simd.h"

namespace irc {
namespace vec {

constexpr float kRsqrt2 = 0.70710678118654752440f;
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;

template <class V>
using IntOf = decltype(V{} < V{});  // the same-width int32 lane vector

template <class V>
IRC_INL V splat(float v) {
  return V{} + v;
}

// exp(-h) for h >= 0 (NaN propagates): -h = k ln2 + r, |r| <= ln2/2, degree-6 polynomial (~2 ulp), 2^k through
// the exponent bits. h > 87 gives 0 (the true value is below the smallest normal float).
template <class V>
IRC_INL V exp_neg(V h) {
  using I = IntOf<V>;
  const I tiny = h > 87.f;
  const V t = tiny ? splat<V>(87.f) : h;
  const V kb = t * -1.44269504088896341f + 12582912.f;  // 1.5 * 2^23 + round(-t / ln2): k in the low bits
  const V k = kb - 12582912.f;
  V r = -t - k * 0.693359375f;
  r = r - k * -2.12194440e-4f;
  V p = splat<V>(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  const I bits = (I)p + (((I)kb - 0x4B400000) << 23);
  return tiny ? V{} : (V)bits;
}

// erf(z) / z - 1 for |z| < 1, as a polynomial in s = z^2 (erf = z + z q keeps the last rounding at 0.5 ulp).
template <class V>
IRC_INL V erf_small(V s) {
  V p = splat<V>(7.647168968e-05f);
  p = p * s - 7.942373632e-04f;
  p = p * s + 5.179751664e-03f;
  p = p * s - 2.684859373e-02f;
  p = p * s + 1.128343046e-01f;
  p = p * s - 3.761260509e-01f;
  return p * s + 1.2837915841e-01f;
}

// erfc(a) exp(a^2) for 1 <= a <= 4 (a clamped into that range).
template <class V>
IRC_INL V erfc_scaled(V a) {
  const V u = (a > 4.f ? splat<V>(4.f) : a) - 2.5f;
  V p = splat<V>(1.068406491e-04f);
  p = p * u + 2.250491816e-04f;
  p = p * u + 5.432940088e-04f;
  p = p * u - 6.611378049e-04f;
  p = p * u + 2.302509965e-03f;
  p = p * u - 8.132237010e-03f;
  p = p * u + 2.491463162e-02f;
  p = p * u - 7.434218377e-02f;
  return p * u + 2.108076066e-01f;
}

template <class V>
IRC_INL V vabs(V z) {
  using I = IntOf<V>;
  const I m = (I)z & 0x7fffffff;
  return (V)m;
}

// Phi(x) (the standard normal cdf); e receives exp(-x^2 / 2).
template <class V>
IRC_INL V norm_cdf(V x, V& e) {
  const V z = x * kRsqrt2;
  const V s = z * z;
  const V a = vabs(z);
  e = exp_neg(s);
  const V hz = z * 0.5f;
  const V small = (hz + hz * erf_small(s)) + 0.5f;
  const V tail = e * erfc_scaled(a) * 0.5f;
  const V big = z > 0.f ? 1.f - tail : tail;
  return a < 1.f ? small : big;
}

template <class V>
IRC_INL V gelu_v(V x) {
  V e;
  return x * norm_cdf(x, e);
}
// gelu(x), with d gelu / dx = Phi(x) + x phi(x) in dg.
template <class V>
IRC_INL V gelu_d(V x, V& dg) {
  V e;
  const V cdf = norm_cdf(x, e);
  dg = cdf + x * (e * kInvSqrt2Pi);
  return x * cdf;
}
template <class V>
IRC_INL V gelu_grad_v(V dy, V x) {
  V dg;
  gelu_d(x, dg);  // the unused gelu(x) is dropped by the compiler
  return dy * dg;
}

// gelu_d for one float, through the vf4 path (the same lane math as the vector variants' lanes).
IRC_INL float gelu_d_1(float x, float& dg) {
  vf4 d;
  const vf4 y = gelu_d<vf4>(vf4{} + x, d);
  dg = d[0];
  return y[0];
}

}  // namespace vec
}  // namespace irc
