// Exact-erf GELU for CUDA kernels (activation.cu's gelu ops, depthwise3x3.cu's and nafnet.cu's GELU gate) and the
// host models of kernels (ops/dwgate_slide.h): compiled for both sides, no CUDA header needed.
// 1 + erf(z) is computed as erfc(-z): accurate in the left tail too, as the CPU's (cpu/gelu_math.h).
#pragma once
#include <cmath>

#include "../ops/host_device.h"

namespace irc {

constexpr float kGeluRsqrt2 = 0.70710678118654752440f;
constexpr float kGeluInvSqrt2Pi = 0.39894228040143267794f;

IRC_HD float gelu_f(float x) { return 0.5f * x * erfcf(-x * kGeluRsqrt2); }

// gelu(x), with d gelu / dx = Phi(x) + x phi(x) in dg.
IRC_HD float gelu_d_f(float x, float& dg) {
  const float cdf = 0.5f * erfcf(-x * kGeluRsqrt2);
  dg = cdf + x * (expf(-0.5f * x * x) * kGeluInvSqrt2Pi);
  return x * cdf;
}

}  // namespace irc
