// In-place dot-product kernels for sgemm's split-K path (gemm.h, gemm_detail::dot_kernel): C = A . B^T with A
// [M, K] and B [N, K] both row-major (attention q k^T: small M, N, long K). Each K sub-block of DOT_SUB is copied
// row by row into scratch slot 3 (the source rows, often 2^k floats apart, would share cache sets), then a 4 x 3
// tile of rows keeps twelve vector accumulators over the sub-block, lanes are
// reduced in a fixed pairwise order, the scalar k tail of each sub-block follows, and sub-block sums are added in
// order. Every result depends only on (M, N, K, ISA). GCC vector extensions instantiated for AVX-512, AVX2+FMA and
// the baseline through target attributes; the caller picks by the sgemm ISA.
#include <algorithm>
#include <cstring>

#include "gemm.h"

#include "../ops/op_api.h"
#include "simd.h"

namespace irc {
namespace gemm_detail {
namespace {

using namespace irc::vec;

constexpr int64_t DOT_SUB = 512;
constexpr int64_t LDP = DOT_SUB + 16;  // row stride of the sub-block copies: rows fall on different cache sets

template <class V>
IRC_INL float hsum(const V& v) {
  float t[width<V>()];
  std::memcpy(t, &v, sizeof(V));
  for (int w = width<V>() / 2; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) t[l] += t[l + w];
  return t[0];
}

template <class V>
IRC_INL void dot_impl(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                      float* C, int64_t ldc) {
  constexpr int MI = 4, NJ = 3, W = width<V>();
  float* pa = scratch(static_cast<size_t>((M + N) * LDP), 3);
  float* pb = pa + M * LDP;
  for (int64_t k0 = 0; k0 < K; k0 += DOT_SUB) {
    const int64_t kl = std::min(DOT_SUB, K - k0), kv = kl / W * W;
    for (int64_t i = 0; i < M; ++i) std::memcpy(pa + i * LDP, A + i * lda + k0, sizeof(float) * kl);
    for (int64_t j = 0; j < N; ++j) std::memcpy(pb + j * LDP, B + j * ldb + k0, sizeof(float) * kl);
    for (int64_t i0 = 0; i0 < M; i0 += MI) {
      const float* a[MI];
      for (int i = 0; i < MI; ++i) a[i] = pa + std::min<int64_t>(i0 + i, M - 1) * LDP;
      for (int64_t j0 = 0; j0 < N; j0 += NJ) {
        const float* b[NJ];
        for (int j = 0; j < NJ; ++j) b[j] = pb + std::min<int64_t>(j0 + j, N - 1) * LDP;
        V acc[MI][NJ];
        for (int i = 0; i < MI; ++i)
          for (int j = 0; j < NJ; ++j) acc[i][j] = V{} * 0.f;
        for (int64_t k = 0; k < kv; k += W) {
          const V b0 = ld<V>(b[0] + k), b1 = ld<V>(b[1] + k), b2 = ld<V>(b[2] + k);
          for (int i = 0; i < MI; ++i) {
            const V av = ld<V>(a[i] + k);
            acc[i][0] += av * b0;
            acc[i][1] += av * b1;
            acc[i][2] += av * b2;
          }
        }
        for (int i = 0; i < MI && i0 + i < M; ++i)
          for (int j = 0; j < NJ && j0 + j < N; ++j) {
            float s = hsum<V>(acc[i][j]);
            for (int64_t k = kv; k < kl; ++k) s += a[i][k] * b[j][k];
            float* c = C + (i0 + i) * ldc + j0 + j;
            *c = k0 == 0 ? s : *c + s;
          }
      }
    }
  }
}

void dot_base(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
              int64_t ldc) {
  dot_impl<vf4>(M, N, K, A, lda, B, ldb, C, ldc);
}
__attribute__((target("avx2,fma"))) void dot_avx2(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                                                  const float* B, int64_t ldb, float* C, int64_t ldc) {
  dot_impl<vf8>(M, N, K, A, lda, B, ldb, C, ldc);
}
__attribute__((target("avx512f"))) void dot_avx512(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                                                   const float* B, int64_t ldb, float* C, int64_t ldc) {
  dot_impl<vf16>(M, N, K, A, lda, B, ldb, C, ldc);
}

}  // namespace

DotKernel dot_kernel(const char* isa) {
  if (std::strcmp(isa, "avx512") == 0) return &dot_avx512;
  if (std::strcmp(isa, "avx2") == 0) return &dot_avx2;
  return &dot_base;
}

}  // namespace gemm_detail
}  // namespace irc
