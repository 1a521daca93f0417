// CUDA channel_attention (Restormer's MDTA core; the math and its backward are written out in attention.cpp).
// Forward: (1) the q / k column norms over the pixels (block partials in double, summed in a fixed order);
// (2) per head, the Gram Q^T K by cuBLAS straight from the NHWC qkv (rows 3C apart) into the cos output, split over
// pixel chunks (pixel_gram); (3) a warp per row of c normalises it into cosines and takes softmax(t cos) into
// scratch; (4) y = V A^T by cuBLAS into the head's channels of y. Backward: dA = dY^T V (cuBLAS); a warp per row recomputes A and forms dS, dC = t dS, α and
// the row's dt term; a thread per column forms β and scales its column of dC into M; dt summed in a fixed order;
// dQ, dK = α Q, β K, then += K M^T and Q M, and dV = dY A (cuBLAS, FP32 as matmul). The per-head GEMMs are strided
// batches over the samples, or over the heads when there are more heads than samples (one call at batch 1), or with
// IRCONSTYLE_MDTA=blockdiag at small pixel counts whole-width products, one call each (block_diag).
#include <climits>
#include <cstdint>
#include <string>

#include "../cuda/blas.cuh"
#include "../cuda/common.cuh"
#include "../cuda/warp.cuh"
#include "attention.h"
#include "switches.h"

namespace irc {
namespace {

__device__ __forceinline__ double clamped(float n, double eps) { return fmax(static_cast<double>(n), eps); }
__device__ __forceinline__ double norm_grad(float n, double eps) {
  return static_cast<double>(n) >= eps && n > 0.f ? -1.0 / (static_cast<double>(n) * n) : 0.0;
}

// part[(n G + g) C2 + a] = Σ_{p in part g} qkv[n, p, a]^2 for a < C2 = 2C: block (32 channels, 8 row lanes),
// grid (channel chunks, G, N); the lanes are added in order.
__global__ void __launch_bounds__(256) colsq_k(const float* __restrict__ qkv, int64_t P, int64_t C3, int64_t C2, int G,
                                               double* __restrict__ part) {
  __shared__ double sh[8][33];
  const int tx = threadIdx.x, ty = threadIdx.y, g = blockIdx.y, n = blockIdx.z;
  const int64_t a = blockIdx.x * int64_t(32) + tx;
  const int64_t p0 = P * g / G, p1 = P * (g + 1) / G;
  double s = 0.0;
  if (a < C2)
    for (int64_t p = p0 + ty; p < p1; p += 8) {
      const double v = qkv[(n * P + p) * C3 + a];
      s += v * v;
    }
  sh[ty][tx] = s;
  __syncthreads();
  if (ty == 0 && a < C2) {
    double t = sh[0][tx];
    for (int k = 1; k < 8; ++k) t += sh[k][tx];
    part[(int64_t(n) * G + g) * C2 + a] = t;
  }
}

__global__ void norms_finish_k(const double* __restrict__ part, int64_t N, int G, int64_t C2, float* __restrict__ norms) {
  IRC_GRID_LOOP(e, N * C2) {
    const int64_t n = e / C2, a = e % C2;
    double t = 0.0;
    for (int g = 0; g < G; ++g) t += part[(n * G + g) * C2 + a];
    norms[e] = static_cast<float>(sqrt(t));
  }
}

// Softmax of t cos over one row of c held by a warp (lane j takes j, j + 32, ...): writes A[j]; returns nothing.
__device__ __forceinline__ void softmax_row(const float* __restrict__ cr, float t, int c, float* __restrict__ ar,
                                            int lane) {
  float m = -INFINITY;
  for (int j = lane; j < c; j += 32) m = fmaxf(m, t * cr[j]);
  m = warp_max(m);
  double s = 0.0;
  for (int j = lane; j < c; j += 32) {
    const float e = expf(t * cr[j] - m);
    ar[j] = e;
    s += e;
  }
  const float inv = static_cast<float>(1.0 / warp_sum(s));
  __syncwarp();
  for (int j = lane; j < c; j += 32) ar[j] *= inv;
}

// Forward rows r = (n heads + h) c + i, a warp each: cos[r, :] (the raw Gram on entry) /= q̂_i k̂_j; A = softmax.
__global__ void fwd_rows_k(AttnGeom g, const float* __restrict__ t, const float* __restrict__ norms, float* __restrict__ cos,
                           float* __restrict__ A, int64_t rows) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = (int64_t(gridDim.x) * blockDim.x) >> 5;
  for (int64_t r = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5; r < rows; r += warps) {
    const int64_t n = r / (g.heads * g.c), h = (r / g.c) % g.heads, i = r % g.c;
    const double qi = clamped(norms[n * 2 * g.C + h * g.c + i], g.eps);
    const float* nk = norms + n * 2 * g.C + g.C + h * g.c;
    float* cr = cos + r * g.c;
    for (int j = lane; j < g.c; j += 32) cr[j] = static_cast<float>(cr[j] / (qi * clamped(nk[j], g.eps)));
    __syncwarp();
    softmax_row(cr, t[h], static_cast<int>(g.c), A + r * g.c, lane);
  }
}

// Backward rows, a warp each: A (recomputed), dS = A (dA - Σ dA A), rowdt[r] = Σ dS cos, M[r, :] = dC = t dS,
// ab[n, h c + i] = α_i = Σ_j dC cos · norm_grad(nq_i).
__global__ void bwd_rows_k(AttnGeom g, const float* __restrict__ t, const float* __restrict__ norms,
                           const float* __restrict__ cos, const float* __restrict__ dA, float* __restrict__ A,
                           float* __restrict__ M, double* __restrict__ rowdt, float* __restrict__ ab, int64_t rows) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = (int64_t(gridDim.x) * blockDim.x) >> 5;
  for (int64_t r = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5; r < rows; r += warps) {
    const int64_t n = r / (g.heads * g.c), h = (r / g.c) % g.heads, i = r % g.c;
    const float *cr = cos + r * g.c, *dr = dA + r * g.c;
    float *ar = A + r * g.c, *mr = M + r * g.c;
    const float th = t[h];
    softmax_row(cr, th, static_cast<int>(g.c), ar, lane);
    __syncwarp();
    double s = 0.0;
    for (int j = lane; j < g.c; j += 32) s += static_cast<double>(dr[j]) * ar[j];
    const float sf = static_cast<float>(warp_sum(s));
    double sdt = 0.0, sa = 0.0;
    for (int j = lane; j < g.c; j += 32) {
      const float dS = ar[j] * (dr[j] - sf);
      sdt += static_cast<double>(dS) * cr[j];
      const float dc = dS * th;
      mr[j] = dc;
      sa += static_cast<double>(dc) * cr[j];
    }
    sdt = warp_sum(sdt);
    sa = warp_sum(sa);
    if (lane == 0) {
      rowdt[r] = sdt;
      const int64_t a = n * 2 * g.C + h * g.c + i;
      ab[a] = static_cast<float>(sa * norm_grad(norms[a], g.eps));
    }
  }
}

// Backward columns, a thread each (n, h, j): β_j = Σ_i dC_ij cos_ij · norm_grad(nk_j) into ab[n, C + h c + j], then
// M[:, j] = dC[:, j] / (q̂_i k̂_j) (the thread owns its column).
__global__ void bwd_cols_k(AttnGeom g, const float* __restrict__ norms, const float* __restrict__ cos, float* __restrict__ M,
                           float* __restrict__ ab) {
  IRC_GRID_LOOP(e, g.N * g.heads * g.c) {
    const int64_t u = e / g.c, j = e % g.c, n = u / g.heads, h = u % g.heads;
    const float* nq = norms + n * 2 * g.C + h * g.c;
    const float nkj = nq[g.C + j];
    float* mb = M + u * g.c * g.c + j;
    const float* cb = cos + u * g.c * g.c + j;
    double s = 0.0;
    for (int64_t i = 0; i < g.c; ++i) s += static_cast<double>(mb[i * g.c]) * cb[i * g.c];
    ab[n * 2 * g.C + g.C + h * g.c + j] = static_cast<float>(s * norm_grad(nkj, g.eps));
    const double kj = clamped(nkj, g.eps);
    for (int64_t i = 0; i < g.c; ++i) mb[i * g.c] = static_cast<float>(mb[i * g.c] / (clamped(nq[i], g.eps) * kj));
  }
}

// dt[h] = Σ_n Σ_i rowdt[(n heads + h) c + i], in that order.
__global__ void dt_finish_k(AttnGeom g, const double* __restrict__ rowdt, float* __restrict__ dt) {
  IRC_GRID_LOOP(h, g.heads) {
    double s = 0.0;
    for (int64_t n = 0; n < g.N; ++n)
      for (int64_t i = 0; i < g.c; ++i) s += rowdt[(n * g.heads + h) * g.c + i];
    dt[h] = static_cast<float>(s);
  }
}

// dqkv[n, p, a] = ab[n, a] qkv[n, p, a] for a < 2C (the q / k thirds; V's third is written by a GEMM).
template <class I>
__global__ void scale_qk_k(const float* __restrict__ qkv, const float* __restrict__ ab, float* __restrict__ dqkv,
                           I total, I P, I C2, I C3) {
  for (I e = blockIdx.x * I(blockDim.x) + threadIdx.x; e < total; e += I(gridDim.x) * I(blockDim.x)) {
    const I row = e / C2, a = e - row * C2;
    const I o = row * C3 + a;
    dqkv[o] = ab[(row / P) * C2 + a] * qkv[o];
  }
}

// One operand of the per-head GEMMs: base pointer, row stride, stride between samples and between heads.
struct HM {
  const float* p;
  int64_t ld, sn, sh;
};

// For every (n, h): C[n, h] = op(A[n, h]) op(B[n, h]) + beta C[n, h], as strided batches over the samples (one call
// per head) or, with more heads than samples, over the heads (one call per sample).
void head_gemms(const KernelCtx& k, const gpu::Cublas& cb, const AttnGeom& g, bool tA, bool tB, int64_t M, int64_t N,
                int64_t K, const HM& A, const HM& B, float beta, float* C, int64_t ldc, int64_t sCn, int64_t sCh) {
  if (g.heads <= g.N) {
    for (int64_t h = 0; h < g.heads; ++h)
      blas::gemm_batched(k, cb, tA, tB, M, N, K, A.p + h * A.sh, A.ld, A.sn, B.p + h * B.sh, B.ld, B.sn, C + h * sCh,
                         ldc, sCn, g.N, beta);
  } else {
    for (int64_t n = 0; n < g.N; ++n)
      blas::gemm_batched(k, cb, tA, tB, M, N, K, A.p + n * A.sn, A.ld, A.sh, B.p + n * B.sn, B.ld, B.sh, C + n * sCn,
                         ldc, sCh, g.heads, beta);
  }
}

// C[n, h c c] += the S partial Grams part[(h N + n) S + s] in order (double), the split-K finish of pixel_gram.
__global__ void sum_gram_parts_k(const float* __restrict__ part, AttnGeom g, int64_t S, float* __restrict__ C,
                                 int64_t ldc, int64_t sCn, int64_t sCh) {
  const int64_t cc = g.c * g.c;
  IRC_GRID_LOOP(e, g.heads * g.N * cc) {
    const int64_t u = e / cc, ij = e % cc, h = u / g.N, n = u % g.N;
    const float* p = part + u * S * cc + ij;
    double t = 0.0;
    for (int64_t q = 0; q < S; ++q) t += p[q * cc];
    C[n * sCn + h * sCh + (ij / g.c) * ldc + ij % g.c] = static_cast<float>(t);
  }
}

// C[n, h] = A[n, h]^T B[n, h]: the c x c sums over the P pixel rows (the Gram Q^T K, and dA = dY^T V). cuBLAS gives
// such products (c ~ 48-96 outputs a side, K = P in the tens of thousands) a handful of thread blocks: in run 7 the
// equivalent matmul [8, 1, 96, 16384] -> [8, 1, 96, 96] took 490 us. Here the rows are split into S chunks of
// R = P / S rows (S a power of two dividing P, R >= 256, at most 256 GEMMs per head), one strided batch per head
// over (sample, chunk) — a uniform stride R ld since P ld = S R ld — and the partials are summed in a fixed order.
void pixel_gram(const KernelCtx& k, const gpu::Cublas& cb, const AttnGeom& g, const HM& A, const HM& B, float* C,
                int64_t ldc, int64_t sCn, int64_t sCh) {
  int64_t S = 1;
  while (g.P % (2 * S) == 0 && g.P / (2 * S) >= 256 && g.N * 2 * S <= 256) S *= 2;
  if (S == 1) {
    head_gemms(k, cb, g, true, false, g.c, g.c, g.P, A, B, 0.f, C, ldc, sCn, sCh);
    return;
  }
  const int64_t R = g.P / S, cc = g.c * g.c;
  cudaStream_t s = cu::stream(k);
  float* part = static_cast<float*>(cu::scratch(s, sizeof(float) * g.heads * g.N * S * cc, 5));
  for (int64_t h = 0; h < g.heads; ++h)
    blas::gemm_batched(k, cb, true, false, g.c, g.c, R, A.p + h * A.sh, A.ld, R * A.ld, B.p + h * B.sh, B.ld,
                       R * B.ld, part + h * g.N * S * cc, g.c, cc, g.N * S, 0.f);
  sum_gram_parts_k<<<cu::blocks_for(g.heads * g.N * cc), 256, 0, s>>>(part, g, S, C, ldc, sCn, sCh);
  cu::check_launch(k);
}

unsigned warp_blocks(int64_t rows) { return cu::blocks_for(rows * 32); }

// IRCONSTYLE_MDTA=blockdiag: with several heads, several samples and at most 1024 pixels (Restormer's deepest levels
// in training), each group of per-head GEMMs as one strided batch over the samples of a whole-width product: the Gram
// over all C channels, whose diagonal c × c blocks are the heads' Grams, and the products with A (or M) through a
// block-diagonal [C, C] matrix, zero off the heads' blocks. heads times the FLOPs of the per-head GEMMs, small at these
// sizes, in one call instead of one per head: run 9 measured 246 / 204 µs per forward / backward at [8,16,16,576]
// (8 heads), where the work is a few µs and the per-head calls' launches are the time.
bool block_diag(const AttnGeom& g) {
  return g.heads > 1 && g.N > 1 && g.P <= 1024 && env_is("IRCONSTYLE_MDTA", "blockdiag");
}

// out[n, h, i, j] = full[n, h c + i, h c + j]: the heads' diagonal blocks of the per-sample [C, C] products.
__global__ void diag_blocks_k(const float* __restrict__ full, AttnGeom g, float* __restrict__ out) {
  IRC_GRID_LOOP(e, g.N * g.heads * g.c * g.c) {
    const int64_t j = e % g.c, i = (e / g.c) % g.c, u = e / (g.c * g.c), h = u % g.heads, n = u / g.heads;
    out[e] = full[(n * g.C + h * g.c + i) * g.C + h * g.c + j];
  }
}

// full[n, r, t] = blocks[n, r / c, r % c, t % c] where r and t fall in the same head's block, else 0.
__global__ void block_diag_k(const float* __restrict__ blocks, AttnGeom g, float* __restrict__ full) {
  IRC_GRID_LOOP(e, g.N * g.C * g.C) {
    const int64_t t = e % g.C, r = (e / g.C) % g.C, n = e / (g.C * g.C), h = r / g.c;
    full[e] = t / g.c == h ? blocks[((n * g.heads + h) * g.c + r % g.c) * g.c + t % g.c] : 0.f;
  }
}

// The heads' blocks in a [N, C, C] scratch `slot` as one block-diagonal matrix per sample.
float* block_diag_of(const KernelCtx& k, const AttnGeom& g, const float* blocks, int slot) {
  cudaStream_t s = cu::stream(k);
  float* full = static_cast<float*>(cu::scratch(s, sizeof(float) * g.N * g.C * g.C, slot));
  block_diag_k<<<cu::blocks_for(g.N * g.C * g.C), 256, 0, s>>>(blocks, g, full);
  cu::check_launch(k);
  return full;
}

// C[n, h] = A[n, h]^T B[n, h] for every head as the diagonal blocks of A[n]^T B[n] over all C channels (P rows, row
// strides lda / ldb, sample strides sA / sB), the [N, C, C] products in scratch `slot`.
void gram_blocks(const KernelCtx& k, const gpu::Cublas& cb, const AttnGeom& g, const float* A, int64_t lda,
                 int64_t sA, const float* B, int64_t ldb, int64_t sB, float* out, int slot) {
  cudaStream_t s = cu::stream(k);
  float* full = static_cast<float*>(cu::scratch(s, sizeof(float) * g.N * g.C * g.C, slot));
  blas::gemm_batched(k, cb, true, false, g.C, g.C, g.P, A, lda, sA, B, ldb, sB, full, g.C, g.C * g.C, g.N, 0.f);
  diag_blocks_k<<<cu::blocks_for(g.N * g.heads * g.c * g.c), 256, 0, s>>>(full, g, out);
  cu::check_launch(k);
}

}  // namespace

void cuda_channel_attention(KernelCtx& k) {
  const AttnGeom g = attn_geom(k.in[0].shape, k.attrs);
  const float *qkv = k.in[0].f(), *t = k.in[1].f();
  float *y = k.out[0].f(), *cos = k.out[1].f(), *norms = k.out[2].f();
  if (g.N == 0) return;
  cudaStream_t s = cu::stream(k);
  const int64_t C = g.C, c = g.c, C2 = 2 * C, C3 = 3 * C, hc2 = g.heads * c * c, rows = g.N * g.heads * c;
  // (1) norms: about 4 blocks per SM of an H100, at least 32 rows per block
  const int64_t chunks = (C2 + 31) / 32;
  int64_t G = 528 / (g.N * chunks);
  if (G > g.P / 32) G = g.P / 32;
  if (G < 1) G = 1;
  double* part = static_cast<double*>(cu::scratch(s, sizeof(double) * g.N * G * C2, 1));
  colsq_k<<<dim3(static_cast<unsigned>(chunks), static_cast<unsigned>(G), static_cast<unsigned>(g.N)), dim3(32, 8), 0,
            s>>>(qkv, g.P, C3, C2, static_cast<int>(G), part);
  norms_finish_k<<<cu::blocks_for(g.N * C2), 256, 0, s>>>(part, g.N, static_cast<int>(G), C2, norms);
  cu::check_launch(k);
  // (2) the raw Gram into cos, (3) cosines and A, (4) y
  const gpu::Cublas& cb = blas::bind(k, false);
  const int64_t sq = g.P * C3;
  const bool bd = block_diag(g);
  if (g.P > 0 && bd)
    gram_blocks(k, cb, g, qkv, C3, sq, qkv + C, C3, sq, cos, 2);
  else if (g.P > 0)
    pixel_gram(k, cb, g, {qkv, C3, sq, c}, {qkv + C, C3, sq, c}, cos, c, hc2, c * c);
  else
    cu::check(cudaMemsetAsync(cos, 0, sizeof(float) * g.N * hc2, s), k.op, "memset cos");
  float* A = static_cast<float*>(cu::scratch(s, sizeof(float) * g.N * hc2, 0));
  fwd_rows_k<<<warp_blocks(rows), 256, 0, s>>>(g, t, norms, cos, A, rows);
  cu::check_launch(k);
  if (bd)  // y = V A^T with A block-diagonal
    blas::gemm_batched(k, cb, false, true, g.P, C, C, qkv + 2 * C, C3, sq, block_diag_of(k, g, A, 3), C, C * C, y, C,
                       g.P * C, g.N, 0.f);
  else
    head_gemms(k, cb, g, false, true, g.P, c, c, {qkv + 2 * C, C3, sq, c}, {A, c, hc2, c * c}, 0.f, y, C, g.P * C, c);
}

void cuda_channel_attention_backward(KernelCtx& k) {
  const AttnGeom g = attn_geom(k.in[1].shape, k.attrs);
  const float *dy = k.in[0].f(), *qkv = k.in[1].f(), *t = k.in[2].f(), *cos = k.in[3].f(), *norms = k.in[4].f();
  float *dqkv = k.out[0].f(), *dt = k.out[1].f();
  cudaStream_t s = cu::stream(k);
  if (g.N == 0 || g.P == 0) {
    cu::check(cudaMemsetAsync(dt, 0, sizeof(float) * g.heads, s), k.op, "memset dt");
    return;
  }
  const int64_t C = g.C, c = g.c, C2 = 2 * C, C3 = 3 * C, hc2 = g.heads * c * c, rows = g.N * g.heads * c;
  const int64_t sq = g.P * C3, sy = g.P * C;
  float* A = static_cast<float*>(cu::scratch(s, sizeof(float) * g.N * hc2, 0));
  float* dA = static_cast<float*>(cu::scratch(s, sizeof(float) * g.N * hc2, 1));
  float* M = static_cast<float*>(cu::scratch(s, sizeof(float) * g.N * hc2, 2));
  float* ab = static_cast<float*>(cu::scratch(s, sizeof(float) * g.N * C2, 3));
  double* rowdt = static_cast<double*>(cu::scratch(s, sizeof(double) * rows, 4));
  const gpu::Cublas& cb = blas::bind(k, false);
  const bool bd = block_diag(g);
  if (bd)
    gram_blocks(k, cb, g, dy, C, sy, qkv + 2 * C, C3, sq, dA, 5);
  else
    pixel_gram(k, cb, g, {dy, C, sy, c}, {qkv + 2 * C, C3, sq, c}, dA, c, hc2, c * c);
  bwd_rows_k<<<warp_blocks(rows), 256, 0, s>>>(g, t, norms, cos, dA, A, M, rowdt, ab, rows);
  bwd_cols_k<<<cu::blocks_for(rows), 256, 0, s>>>(g, norms, cos, M, ab);
  dt_finish_k<<<1, 32, 0, s>>>(g, rowdt, dt);
  const int64_t total = g.N * g.P * C2;
  if (cu::index32(total))
    scale_qk_k<int><<<cu::blocks_for(total), 256, 0, s>>>(qkv, ab, dqkv, int(total), int(g.P), int(C2), int(C3));
  else
    scale_qk_k<int64_t><<<cu::blocks_for(total), 256, 0, s>>>(qkv, ab, dqkv, total, g.P, C2, C3);
  cu::check_launch(k);
  if (bd) {  // dQ += K M^T, dK += Q M, dV = dY A with M and A block-diagonal (M after bwd_cols_k scaled it)
    const float *Mf = block_diag_of(k, g, M, 6), *Af = block_diag_of(k, g, A, 7);
    blas::gemm_batched(k, cb, false, true, g.P, C, C, qkv + C, C3, sq, Mf, C, C * C, dqkv, C3, sq, g.N, 1.f);
    blas::gemm_batched(k, cb, false, false, g.P, C, C, qkv, C3, sq, Mf, C, C * C, dqkv + C, C3, sq, g.N, 1.f);
    blas::gemm_batched(k, cb, false, false, g.P, C, C, dy, C, sy, Af, C, C * C, dqkv + 2 * C, C3, sq, g.N, 0.f);
    return;
  }
  head_gemms(k, cb, g, false, true, g.P, c, c, {qkv + C, C3, sq, c}, {M, c, hc2, c * c}, 1.f, dqkv, C3, sq, c);
  head_gemms(k, cb, g, false, false, g.P, c, c, {qkv, C3, sq, c}, {M, c, hc2, c * c}, 1.f, dqkv + C, C3, sq, c);
  head_gemms(k, cb, g, false, false, g.P, c, c, {dy, C, sy, c}, {A, c, hc2, c * c}, 0.f, dqkv + 2 * C, C3, sq, c);
}

}  // namespace irc
