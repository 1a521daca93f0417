// The CPU's exact GELU over a span (activation.cpp: the gelu ops' code, multithreaded), shared with the fused ops
// that apply it inside (spatial_gate, gelu_split): results equal the gelu / gelu_backward ops' bit for bit.
#pragma once
#include <cstdint>

namespace irc {
void gelu_cpu(const float* x, float* y, int64_t n);
// dx = dy * gelu'(x)
void gelu_backward_cpu(const float* dy, const float* x, float* dx, int64_t n);
// The same on the calling thread alone (for kernels that are parallel over rows themselves).
void gelu_span_cpu(const float* x, float* y, int64_t n);
void gelu_backward_span_cpu(const float* dy, const float* x, float* dx, int64_t n);
}  // namespace irc
