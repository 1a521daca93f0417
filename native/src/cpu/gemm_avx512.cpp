// AVX-512F micro-kernels for sgemm (gemm.h): 12x32 (24 zmm accumulators) and 12x16 for narrow N edges.
// Compiled with function target attributes so the file builds without -march flags; only called after a
// run-time CPU check.
#include <immintrin.h>

#include "gemm.h"

namespace irc {
namespace gemm_detail {
namespace {

#define IRC_AVX512 __attribute__((target("avx512f")))

IRC_AVX512 inline void store_tile(float* p, __m512 acc, __m512 va, float beta, __m512 vb) {
  __m512 v = _mm512_mul_ps(acc, va);
  if (beta == 0.f) {
    _mm512_storeu_ps(p, v);
  } else if (beta == 1.f) {
    _mm512_storeu_ps(p, _mm512_add_ps(_mm512_loadu_ps(p), v));
  } else {
    _mm512_storeu_ps(p, _mm512_fmadd_ps(vb, _mm512_loadu_ps(p), v));
  }
}

constexpr int MR = 12;

IRC_AVX512 void kern_12x32(int64_t kc, const float* a, const float* b, int64_t bs, float* c, int64_t ldc,
                           float alpha, float beta) {
  __m512 acc0[MR], acc1[MR];
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) acc0[i] = acc1[i] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) {
      const __m512 t = _mm512_set1_ps(a[i]);
      acc0[i] = _mm512_fmadd_ps(t, b0, acc0[i]);
      acc1[i] = _mm512_fmadd_ps(t, b1, acc1[i]);
    }
    a += MR;
    b += bs;
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) {
    store_tile(c + i * ldc, acc0[i], va, beta, vb);
    store_tile(c + i * ldc + 16, acc1[i], va, beta, vb);
  }
}

IRC_AVX512 void kern_12x16(int64_t kc, const float* a, const float* b, int64_t bs, float* c, int64_t ldc,
                           float alpha, float beta) {
  __m512 acc[MR];
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_loadu_ps(b);
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(a[i]), b0, acc[i]);
    a += MR;
    b += bs;
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) store_tile(c + i * ldc, acc[i], va, beta, vb);
}

}  // namespace

bool have_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f");
}

KernelSet avx512_kernels() { return KernelSet{"avx512", MR, 32, &kern_12x32, &kern_12x16}; }

IRC_AVX512 double fma_loop_avx512(int64_t iters) {
  __m512 x[12];
#pragma GCC unroll 12
  for (int i = 0; i < 12; ++i) x[i] = _mm512_set1_ps(1.0f + 1e-7f * i);
  const __m512 m = _mm512_set1_ps(0.9999999f), d = _mm512_set1_ps(1e-8f);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) x[i] = _mm512_fmadd_ps(x[i], m, d);
  }
  __m512 s = x[0];
#pragma GCC unroll 12
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, x[i]);
  alignas(64) float lanes[16];  // (summed by hand: GCC 12's _mm512_reduce_add_ps warns about its own header)
  _mm512_store_ps(lanes, s);
  volatile float sink = 0.f;
  for (float v : lanes) sink = sink + v;
  return static_cast<double>(iters) * 12 * 16 * 2;
}

}  // namespace gemm_detail
}  // namespace irc
