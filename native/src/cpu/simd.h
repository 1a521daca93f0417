// Helpers shared by the auto-vectorised CPU kernels.
#pragma once
// Vector types are passed between force-inlined helpers only: the ABI note about them does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"
#include <cstdint>
#include <cstring>

// Compiles a function three times (AVX-512, AVX2, baseline) and picks one at load time (GCC function
// multiversioning), so plain loops vectorise for the running CPU without -march flags. Without contracting a * b + c
// into an FMA (fp-contract=off): the AVX2 and baseline clones have no FMA, so the AVX-512 clone would otherwise round
// differently from them, and, where the compiler versions a loop (a pending gradient added or not: v + acc), from
// itself — every clone gives the same bits on every machine.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define IRC_CLONES __attribute__((target_clones("avx512f", "avx2", "default"), optimize("fp-contract=off")))
#else
#define IRC_CLONES
#endif

// Force-inlined helpers (vector code must not be outlined across target boundaries).
#define IRC_INL inline __attribute__((always_inline))

namespace irc {

// GCC vector types for hand-vectorised kernels; ld/st are unaligned loads/stores.
namespace vec {
typedef float vf4 __attribute__((vector_size(16)));
typedef float vf8 __attribute__((vector_size(32)));
typedef float vf16 __attribute__((vector_size(64)));
template <class V>
IRC_INL V ld(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}
template <class V>
IRC_INL void st(float* p, const V& v) {
  std::memcpy(p, &v, sizeof(V));
}
template <class V>
constexpr int64_t width() {
  return static_cast<int64_t>(sizeof(V) / sizeof(float));
}
// One 3-tap kernel row for four outputs of a stride-1 depthwise conv: column j = p + j*s (j = 0..5) adds to
// output i with tap j - i (0..2), taps in increasing order for every output (a fixed summation order).
template <class V>
IRC_INL void row4(const float* p, int64_t s, const V& wa, const V& wb, const V& wc, V& a0, V& a1, V& a2, V& a3) {
  V c = ld<V>(p);
  a0 += c * wa;
  c = ld<V>(p + s);
  a0 += c * wb;
  a1 += c * wa;
  c = ld<V>(p + 2 * s);
  a0 += c * wc;
  a1 += c * wb;
  a2 += c * wa;
  c = ld<V>(p + 3 * s);
  a1 += c * wc;
  a2 += c * wb;
  a3 += c * wa;
  c = ld<V>(p + 4 * s);
  a2 += c * wc;
  a3 += c * wb;
  c = ld<V>(p + 5 * s);
  a3 += c * wc;
}
}  // namespace vec

// Sum of 8 double lanes in a fixed order (row reductions accumulate in 8 lanes so the loop vectorises and the
// result does not depend on the thread count).
inline double lane_sum(const double* s) { return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])); }
}  // namespace irc
