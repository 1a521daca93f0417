// Helpers shared by the auto-vectorised CPU kernels.
#pragma once

// Compiles a function three times (AVX-512, AVX2, baseline) and picks one at load time (GCC function
// multiversioning), so plain loops vectorise for the running CPU without -march flags.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define IRC_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define IRC_CLONES
#endif

namespace irc {
// Sum of 8 double lanes in a fixed order (row reductions accumulate in 8 lanes so the loop vectorises and the
// result does not depend on the thread count).
inline double lane_sum(const double* s) { return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])); }
}  // namespace irc
