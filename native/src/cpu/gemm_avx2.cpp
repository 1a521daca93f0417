// AVX2+FMA micro-kernels for sgemm (gemm.h): 6x16 (12 ymm accumulators) and 6x8 for narrow N edges.
// Compiled with function target attributes so the file builds without -march flags; only called after a
// run-time CPU check.
#include <immintrin.h>

#include "gemm.h"

namespace irc {
namespace gemm_detail {
namespace {

#define IRC_AVX2 __attribute__((target("avx2,fma")))

IRC_AVX2 inline void store_tile(float* p, __m256 acc, __m256 va, float beta, __m256 vb) {
  __m256 v = _mm256_mul_ps(acc, va);
  if (beta == 0.f) {
    _mm256_storeu_ps(p, v);
  } else if (beta == 1.f) {
    _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), v));
  } else {
    _mm256_storeu_ps(p, _mm256_fmadd_ps(vb, _mm256_loadu_ps(p), v));
  }
}

IRC_AVX2 void kern_6x16(int64_t kc, const float* a, const float* b, int64_t bs, float* c, int64_t ldc, float alpha,
                        float beta) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  // One k step in inline asm: pins the 12 accumulators + 3 temporaries to registers (no spills, no reordering
  // of the FMAs across steps by the compiler). AT&T: vfmadd231ps x, y, d  =>  d += y * x.
#define IRC_STEP(A, B)                                                                              \
  {                                                                                                 \
    __m256 b0, b1, t;                                                                               \
    __asm__("vmovups (%[pb]), %[b0]\n\t"                                                             \
            "vmovups 32(%[pb]), %[b1]\n\t"                                                           \
            "vbroadcastss (%[pa]), %[t]\n\t"                                                         \
            "vfmadd231ps %[b0], %[t], %[c00]\n\t"                                                    \
            "vfmadd231ps %[b1], %[t], %[c01]\n\t"                                                    \
            "vbroadcastss 4(%[pa]), %[t]\n\t"                                                        \
            "vfmadd231ps %[b0], %[t], %[c10]\n\t"                                                    \
            "vfmadd231ps %[b1], %[t], %[c11]\n\t"                                                    \
            "vbroadcastss 8(%[pa]), %[t]\n\t"                                                        \
            "vfmadd231ps %[b0], %[t], %[c20]\n\t"                                                    \
            "vfmadd231ps %[b1], %[t], %[c21]\n\t"                                                    \
            "vbroadcastss 12(%[pa]), %[t]\n\t"                                                       \
            "vfmadd231ps %[b0], %[t], %[c30]\n\t"                                                    \
            "vfmadd231ps %[b1], %[t], %[c31]\n\t"                                                    \
            "vbroadcastss 16(%[pa]), %[t]\n\t"                                                       \
            "vfmadd231ps %[b0], %[t], %[c40]\n\t"                                                    \
            "vfmadd231ps %[b1], %[t], %[c41]\n\t"                                                    \
            "vbroadcastss 20(%[pa]), %[t]\n\t"                                                       \
            "vfmadd231ps %[b0], %[t], %[c50]\n\t"                                                    \
            "vfmadd231ps %[b1], %[t], %[c51]\n\t"                                                    \
            : [c00] "+x"(c00), [c01] "+x"(c01), [c10] "+x"(c10), [c11] "+x"(c11), [c20] "+x"(c20),  \
              [c21] "+x"(c21), [c30] "+x"(c30), [c31] "+x"(c31), [c40] "+x"(c40), [c41] "+x"(c41),  \
              [c50] "+x"(c50), [c51] "+x"(c51), [b0] "=&x"(b0), [b1] "=&x"(b1), [t] "=&x"(t)         \
            : [pa] "r"(A), [pb] "r"(B)                                                              \
            : "memory");                                                                            \
  }
  int64_t k = 0;
  for (; k + 4 <= kc; k += 4) {
    _mm_prefetch(reinterpret_cast<const char*>(b + 8 * bs), _MM_HINT_T0);
    IRC_STEP(a, b);
    IRC_STEP(a + 6, b + bs);
    IRC_STEP(a + 12, b + 2 * bs);
    IRC_STEP(a + 18, b + 3 * bs);
    a += 24;
    b += 4 * bs;
  }
  for (; k < kc; ++k) {
    IRC_STEP(a, b);
    a += 6;
    b += bs;
  }
#undef IRC_STEP
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  store_tile(c, c00, va, beta, vb);
  store_tile(c + 8, c01, va, beta, vb);
  c += ldc;
  store_tile(c, c10, va, beta, vb);
  store_tile(c + 8, c11, va, beta, vb);
  c += ldc;
  store_tile(c, c20, va, beta, vb);
  store_tile(c + 8, c21, va, beta, vb);
  c += ldc;
  store_tile(c, c30, va, beta, vb);
  store_tile(c + 8, c31, va, beta, vb);
  c += ldc;
  store_tile(c, c40, va, beta, vb);
  store_tile(c + 8, c41, va, beta, vb);
  c += ldc;
  store_tile(c, c50, va, beta, vb);
  store_tile(c + 8, c51, va, beta, vb);
}

IRC_AVX2 void kern_6x8(int64_t kc, const float* a, const float* b, int64_t bs, float* c, int64_t ldc, float alpha,
                       float beta) {
  __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
  for (int64_t k = 0; k < kc; ++k) {
    __m256 b0 = _mm256_loadu_ps(b);
    c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 0), b0, c0);
    c1 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 1), b0, c1);
    c2 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 2), b0, c2);
    c3 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 3), b0, c3);
    c4 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 4), b0, c4);
    c5 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 5), b0, c5);
    a += 6;
    b += bs;
  }
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  store_tile(c, c0, va, beta, vb);
  store_tile(c + ldc, c1, va, beta, vb);
  store_tile(c + 2 * ldc, c2, va, beta, vb);
  store_tile(c + 3 * ldc, c3, va, beta, vb);
  store_tile(c + 4 * ldc, c4, va, beta, vb);
  store_tile(c + 5 * ldc, c5, va, beta, vb);
}

}  // namespace

bool have_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

KernelSet avx2_kernels() { return KernelSet{"avx2", 6, 16, &kern_6x16, &kern_6x8}; }

IRC_AVX2 double fma_loop_avx2(int64_t iters) {
  __m256 x[10];
  for (int i = 0; i < 10; ++i) x[i] = _mm256_set1_ps(1.0f + 1e-7f * i);
  const __m256 m = _mm256_set1_ps(0.9999999f), d = _mm256_set1_ps(1e-8f);
  for (int64_t it = 0; it < iters; ++it) {
    x[0] = _mm256_fmadd_ps(x[0], m, d);
    x[1] = _mm256_fmadd_ps(x[1], m, d);
    x[2] = _mm256_fmadd_ps(x[2], m, d);
    x[3] = _mm256_fmadd_ps(x[3], m, d);
    x[4] = _mm256_fmadd_ps(x[4], m, d);
    x[5] = _mm256_fmadd_ps(x[5], m, d);
    x[6] = _mm256_fmadd_ps(x[6], m, d);
    x[7] = _mm256_fmadd_ps(x[7], m, d);
    x[8] = _mm256_fmadd_ps(x[8], m, d);
    x[9] = _mm256_fmadd_ps(x[9], m, d);
  }
  __m256 s = x[0];
  for (int i = 1; i < 10; ++i) s = _mm256_add_ps(s, x[i]);
  alignas(32) float o[8];
  _mm256_store_ps(o, s);
  volatile float sink = o[0];
  (void)sink;
  return static_cast<double>(iters) * 10 * 8 * 2;
}

}  // namespace gemm_detail
}  // namespace irc
