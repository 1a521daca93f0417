// CUDA LayerNorm ops (semantics: layer_norm2d.cpp, norm_bias_free.cpp; batch_norm1d's kernels: batch_norm1d.cu).
//   layer_norm2d, layer_norm_bias_free (+backward)   per row (pixel) over the last axis C. C <= 1024: one warp per
//       row, each lane holding ceil(C/32) rounded up to a power of two values in registers; row statistics in double
//       (warp shuffles). C > 1024: one block per row. Backward dw (/ db) are deterministic two-pass reductions:
//       C <= 512: the warp kernel accumulates them per lane in double over a fixed row range per block, the 8 warps
//       of a block are combined in warp order through shared memory into one partial per block; C > 512: a separate
//       column pass (32 channels x 8 row lanes per block, fixed row ranges). Pass 2: one warp per channel sums the
//       partials (fixed lane assignment + shuffle tree). C % 4 == 0 and C <= 512 (every NAFNet / Restormer /
//       MAXIM width): LPR = 1..32 lanes per row, float4 loads, both passes (ln_fwd_sub, ln_bwd_sub; the dw / db
//       partials per block added in group order).
#include <climits>
#include <cmath>
#include <cstdint>

#include "../cuda/common.cuh"
#include "../cuda/warp.cuh"
#include "layer_norm2d.h"

namespace irc {
namespace {

constexpr int kWarps = 8;  // warps per block in the row kernels (256 threads)
constexpr int kThreads = 32 * kWarps;

// Sum over a block of kThreads; every thread gets the result. sh: >= kWarps doubles.
__device__ double block_sum(double v, double* sh) {
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) sh[wid] = v;
  __syncthreads();
  double t = 0.0;
  for (int k = 0; k < kWarps; ++k) t += sh[k];
  return t;
}

// ---- LayerNorm forward ------------------------------------------------------------------------------------
// BF: bias-free (Restormer): y = x r w, no mean output.
template <int VPT, bool BF>
__global__ void __launch_bounds__(kThreads) ln_fwd_warp(const float* __restrict__ x, const float* __restrict__ w,
                                                        const float* __restrict__ b, float* __restrict__ y,
                                                        float* __restrict__ mean, float* __restrict__ rstd,
                                                        int64_t rows, int C, double eps) {
  constexpr bool CACHE = VPT <= 8;  // w, b in registers (wider rows read them per row, from L1)
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float wv[CACHE ? VPT : 1], bv[CACHE ? VPT : 1];
  if constexpr (CACHE) {
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
      const int j = lane + 32 * k;
      wv[k] = j < C ? w[j] : 0.f;
      bv[k] = (!BF && j < C) ? b[j] : 0.f;
    }
  }
  for (int64_t r = blockIdx.x * static_cast<int64_t>(kWarps) + warp; r < rows;
       r += static_cast<int64_t>(gridDim.x) * kWarps) {
    const float* xr = x + r * C;
    float v[VPT];
    double s = 0.0;
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
      const int j = lane + 32 * k;
      v[k] = j < C ? xr[j] : 0.f;
      s += static_cast<double>(v[k]);
    }
    const double mu = warp_sum(s) / C;
    double q = 0.0;
#pragma unroll
    for (int k = 0; k < VPT; ++k)
      if (lane + 32 * k < C) {
        const double d = static_cast<double>(v[k]) - mu;
        q += d * d;
      }
    q = warp_sum(q);
    const float rf = static_cast<float>(1.0 / sqrt(q / C + eps)), m = static_cast<float>(mu);
    if (lane == 0) {
      if (!BF) mean[r] = m;
      rstd[r] = rf;
    }
    float* yr = y + r * C;
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
      const int j = lane + 32 * k;
      if (j < C) {
        const float wj = CACHE ? wv[CACHE ? k : 0] : w[j];
        yr[j] = BF ? v[k] * rf * wj : (v[k] - m) * rf * wj + (CACHE ? bv[CACHE ? k : 0] : b[j]);
      }
    }
  }
}

// C > 1024: one block per row.
template <bool BF>
__global__ void __launch_bounds__(kThreads) ln_fwd_block(const float* __restrict__ x, const float* __restrict__ w,
                                                         const float* __restrict__ b, float* __restrict__ y,
                                                         float* __restrict__ mean, float* __restrict__ rstd,
                                                         int64_t rows, int64_t C, double eps) {
  __shared__ double sh[kWarps];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + r * C;
    double s = 0.0;
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) s += static_cast<double>(xr[j]);
    const double mu = block_sum(s, sh) / C;
    double q = 0.0;
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
      const double d = static_cast<double>(xr[j]) - mu;
      q += d * d;
    }
    q = block_sum(q, sh);
    const float rf = static_cast<float>(1.0 / sqrt(q / C + eps)), m = static_cast<float>(mu);
    if (threadIdx.x == 0) {
      if (!BF) mean[r] = m;
      rstd[r] = rf;
    }
    float* yr = y + r * C;
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x)
      yr[j] = BF ? xr[j] * rf * w[j] : (xr[j] - m) * rf * w[j] + b[j];
  }
}

// ---- LayerNorm backward -----------------------------------------------------------------------------------
// Per row, given the row's values in registers: the two row sums the dx formula needs.
//   LN: A = mean_c(dy w), B = mean_c(dy w xh), xh = (x - m) rs;   dx = rs (dy w - A - xh B)
//   BF: M = mean_c x (recomputed), S = rs^3 Σ(dy w x) / C;        dx = rs dy w - (x - M) S
// NK: number of column sums (LN: dw, db; BF: dw). FUSE: accumulate them (grid = G blocks, block b owns the rows
// [rows b / G, rows (b+1) / G)) into part[(b NK + k) C + j]; otherwise a grid-stride loop, dx only.
template <int VPT, bool BF, bool FUSE>
__global__ void __launch_bounds__(kThreads) ln_bwd_warp(const float* __restrict__ dy, const float* __restrict__ x,
                                                        const float* __restrict__ w, const float* __restrict__ mean,
                                                        const float* __restrict__ rstd, const float* __restrict__ acc,
                                                        float* __restrict__ dx, double* __restrict__ part,
                                                        int64_t rows, int C) {
  constexpr int NK = BF ? 1 : 2;
  __shared__ double red[FUSE ? NK * VPT * 32 : 1];
  constexpr bool CACHE = VPT <= 8;  // w in registers (wider rows read it per row, from L1)
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float wc[CACHE ? VPT : 1];
  double aw[FUSE ? VPT : 1], ab[FUSE && !BF ? VPT : 1];
#pragma unroll
  for (int k = 0; k < VPT; ++k) {
    const int j = lane + 32 * k;
    if constexpr (CACHE) wc[k] = j < C ? w[j] : 0.f;
    if constexpr (FUSE) aw[k] = 0.0;
    if constexpr (FUSE && !BF) ab[k] = 0.0;
  }
  // w of lane element k (0 outside the row)
#define IRC_WV(k) (CACHE ? wc[CACHE ? (k) : 0] : (lane + 32 * (k) < C ? w[lane + 32 * (k)] : 0.f))
  int64_t r0, r1, step;
  if (FUSE) {
    r0 = rows * blockIdx.x / gridDim.x + warp;
    r1 = rows * (blockIdx.x + 1) / gridDim.x;
    step = kWarps;
  } else {
    r0 = blockIdx.x * static_cast<int64_t>(kWarps) + warp;
    r1 = rows;
    step = static_cast<int64_t>(gridDim.x) * kWarps;
  }
  for (int64_t r = r0; r < r1; r += step) {
    const float *xr = x + r * C, *dr = dy + r * C;
    const float rs = rstd[r];
    float v[VPT], d[VPT];
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
      const int j = lane + 32 * k;
      v[k] = j < C ? xr[j] : 0.f;
      d[k] = j < C ? dr[j] : 0.f;
    }
    float* o = dx + r * C;
    if (!BF) {
      const float m = mean[r];
      double sg = 0.0, sx = 0.0;
#pragma unroll
      for (int k = 0; k < VPT; ++k)
        if (lane + 32 * k < C) {
          const float xh = (v[k] - m) * rs;
          const float gk = d[k] * IRC_WV(k);
          sg += static_cast<double>(gk);
          sx += static_cast<double>(gk) * static_cast<double>(xh);
        }
      const float a = static_cast<float>(warp_sum(sg) / C), bm = static_cast<float>(warp_sum(sx) / C);
#pragma unroll
      for (int k = 0; k < VPT; ++k) {
        const int j = lane + 32 * k;
        if (j < C) {
          const float xh = (v[k] - m) * rs;
          const float g = rs * (d[k] * IRC_WV(k) - a - xh * bm);
          o[j] = acc ? g + acc[r * C + j] : g;
          if constexpr (FUSE) {
            aw[k] += static_cast<double>(d[k]) * static_cast<double>(xh);
            ab[k] += static_cast<double>(d[k]);
          }
        }
      }
    } else {
      double sm = 0.0, s = 0.0;
#pragma unroll
      for (int k = 0; k < VPT; ++k) {  // out-of-row lanes hold zeros: they add nothing
        sm += static_cast<double>(v[k]);
        s += static_cast<double>(d[k] * IRC_WV(k)) * static_cast<double>(v[k]);
      }
      const double rsd = rs;
      const float m = static_cast<float>(warp_sum(sm) / C);
      const float bb = static_cast<float>(rsd * rsd * rsd * warp_sum(s) / C);
#pragma unroll
      for (int k = 0; k < VPT; ++k) {
        const int j = lane + 32 * k;
        if (j < C) {
          const float g = rs * d[k] * IRC_WV(k) - (v[k] - m) * bb;
          o[j] = acc ? g + acc[r * C + j] : g;
          if constexpr (FUSE) aw[k] += static_cast<double>(d[k]) * static_cast<double>(v[k] * rs);
        }
      }
    }
  }
#undef IRC_WV
  if constexpr (FUSE) {
  // combine the warps in warp order, then one partial per block
  for (int wi = 0; wi < kWarps; ++wi) {
    if (warp == wi) {
#pragma unroll
      for (int k = 0; k < VPT; ++k) {
        const int j = lane + 32 * k;
        if (j < C) {
          red[j] = wi == 0 ? aw[k] : red[j] + aw[k];
          if constexpr (!BF) red[VPT * 32 + j] = wi == 0 ? ab[k] : red[VPT * 32 + j] + ab[k];
        }
      }
    }
    __syncthreads();
  }
  for (int e = threadIdx.x; e < NK * C; e += blockDim.x) {
    const int k = e / C, j = e % C;
    part[(blockIdx.x * static_cast<int64_t>(NK) + k) * C + j] = red[k * VPT * 32 + j];
  }
  }
}

// C > 1024: one block per row, dx only.
template <bool BF>
__global__ void __launch_bounds__(kThreads) ln_bwd_block(const float* __restrict__ dy, const float* __restrict__ x,
                                                         const float* __restrict__ w, const float* __restrict__ mean,
                                                         const float* __restrict__ rstd, const float* __restrict__ acc,
                                                         float* __restrict__ dx, int64_t rows, int64_t C) {
  __shared__ double sh[kWarps];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *xr = x + r * C, *dr = dy + r * C;
    float* o = dx + r * C;
    const float rs = rstd[r];
    if (!BF) {
      const float m = mean[r];
      double sg = 0.0, sx = 0.0;
      for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
        const float xh = (xr[j] - m) * rs;
        const float gk = dr[j] * w[j];
        sg += static_cast<double>(gk);
        sx += static_cast<double>(gk) * static_cast<double>(xh);
      }
      const float a = static_cast<float>(block_sum(sg, sh) / C);
      const float bm = static_cast<float>(block_sum(sx, sh) / C);
      for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
        const float xh = (xr[j] - m) * rs;
        const float g = rs * (dr[j] * w[j] - a - xh * bm);
        o[j] = acc ? g + acc[r * C + j] : g;
      }
    } else {
      double sm = 0.0, s = 0.0;
      for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
        sm += static_cast<double>(xr[j]);
        s += static_cast<double>(dr[j] * w[j]) * static_cast<double>(xr[j]);
      }
      const double rsd = rs;
      const float m = static_cast<float>(block_sum(sm, sh) / C);
      const float bb = static_cast<float>(rsd * rsd * rsd * block_sum(s, sh) / C);
      for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
        const float g = rs * dr[j] * w[j] - (xr[j] - m) * bb;
        o[j] = acc ? g + acc[r * C + j] : g;
      }
    }
  }
}

// Column partials for C > 512: block (32 channels, 8 row lanes), blockIdx.y = row group g of G.
//   LN: part[(g 2 + 0) C + c] = Σ dy xh, part[(g 2 + 1) C + c] = Σ dy;  BF: part[g C + c] = Σ dy (x rs)
template <bool BF>
__global__ void __launch_bounds__(256) ln_cols_k(const float* __restrict__ dy, const float* __restrict__ x,
                                                 const float* __restrict__ mean, const float* __restrict__ rstd,
                                                 double* __restrict__ part, int64_t rows, int64_t C, int64_t G) {
  constexpr int NK = BF ? 1 : 2;
  __shared__ double sh[8][33];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c = blockIdx.x * 32 + tx;
  for (int64_t g = blockIdx.y; g < G; g += gridDim.y) {
    double aw = 0.0, ab = 0.0;
    if (c < C) {
      const int64_t r1 = rows * (g + 1) / G;
      for (int64_t r = rows * g / G + ty; r < r1; r += 8) {
        const float d = dy[r * C + c], xv = x[r * C + c], rs = rstd[r];
        if (BF) {
          aw += static_cast<double>(d) * static_cast<double>(xv * rs);
        } else {
          const float xh = (xv - mean[r]) * rs;
          aw += static_cast<double>(d) * static_cast<double>(xh);
          ab += static_cast<double>(d);
        }
      }
    }
#pragma unroll
    for (int k = 0; k < NK; ++k) {
      sh[ty][tx] = k == 0 ? aw : ab;
      __syncthreads();
      if (ty == 0 && c < C) {
        double t = sh[0][tx];
        for (int i = 1; i < 8; ++i) t += sh[i][tx];
        part[(g * NK + k) * C + c] = t;
      }
      __syncthreads();
    }
  }
}

// out_k[j] = float(Σ_g part[(g NK + k) C + j]): one warp per (k, j); lanes take g = lane, lane + 32, ...
__global__ void finish_cols_k(const double* __restrict__ part, int64_t G, int NK, int64_t C, float* __restrict__ o0,
                              float* __restrict__ o1) {
  const int lane = threadIdx.x & 31;
  const int64_t nw = static_cast<int64_t>(gridDim.x) * (blockDim.x >> 5);
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x >> 5) + (threadIdx.x >> 5); e < NK * C; e += nw) {
    const int64_t k = e / C, j = e % C;
    double t = 0.0;
    for (int64_t g = lane; g < G; g += 32) t += part[(g * NK + k) * C + j];
    t = warp_sum(t);
    if (lane == 0) (k == 0 ? o0 : o1)[j] = static_cast<float>(t);
  }
}

// ---- LayerNorm, rows of C % 4 == 0 and C <= 512: LPR lanes per row ---------------------------------------
// A warp holds 32 / LPR rows; each lane holds NV float4 of its row (slots j = sub + LPR k), so a row's sums take
// log2(LPR) shuffles instead of a warp's five, and a row of 48 channels uses 4 lanes instead of 64 lane slots.
// Lane partial sums in float (at most 16 values), across lanes in double. Loops are uniform per warp (rows past
// the end load zeros and store nothing) so the shuffles always have all 32 lanes.
__device__ __forceinline__ double sub_sum(double v, int LPR) {
  for (int o = LPR >> 1; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float hsum(float4 v) { return (v.x + v.y) + (v.z + v.w); }
__device__ __forceinline__ float4 f4(float a) { return make_float4(a, a, a, a); }
__device__ __forceinline__ float4 operator-(float4 a, float4 b) {
  return make_float4(a.x - b.x, a.y - b.y, a.z - b.z, a.w - b.w);
}
__device__ __forceinline__ float4 operator*(float4 a, float4 b) {
  return make_float4(a.x * b.x, a.y * b.y, a.z * b.z, a.w * b.w);
}
__device__ __forceinline__ float4 operator+(float4 a, float4 b) {
  return make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
}

// A thread's place in its block: lane `sub` of row group `group`; rpb row groups (rows per step) per block.
struct SubRows {
  int LPR, sub, group, rpb;
  __device__ SubRows(int lpr)
      : LPR(lpr), sub(threadIdx.x & (lpr - 1)), group(threadIdx.x / lpr), rpb(kThreads / lpr) {}
};

template <int NV, bool BF>
__global__ void __launch_bounds__(kThreads) ln_fwd_sub(const float4* __restrict__ x, const float4* __restrict__ w,
                                                       const float4* __restrict__ b, float4* __restrict__ y,
                                                       float* __restrict__ mean, float* __restrict__ rstd,
                                                       int64_t rows, int C4, int LPR, double eps) {
  const SubRows R(LPR);
  const int warp_first = (threadIdx.x >> 5) * (32 / LPR);  // the first group of this warp
  float4 wv[NV], bv[NV];
#pragma unroll
  for (int k = 0; k < NV; ++k) {
    const int j = R.sub + LPR * k;
    wv[k] = j < C4 ? w[j] : f4(0.f);
    bv[k] = !BF && j < C4 ? b[j] : f4(0.f);
  }
  const double C = 4.0 * C4;
  for (int64_t base = blockIdx.x * static_cast<int64_t>(R.rpb); base + warp_first < rows;
       base += static_cast<int64_t>(gridDim.x) * R.rpb) {
    const int64_t r = base + R.group;
    const bool live = r < rows;
    float4 v[NV];
    float s = 0.f;
#pragma unroll
    for (int k = 0; k < NV; ++k) {
      const int j = R.sub + LPR * k;
      v[k] = live && j < C4 ? x[r * C4 + j] : f4(0.f);
      s += hsum(v[k]);
    }
    const double mu = sub_sum(static_cast<double>(s), LPR) / C;
    const float m = static_cast<float>(mu);
    float q = 0.f;
#pragma unroll
    for (int k = 0; k < NV; ++k)
      if (R.sub + LPR * k < C4) {
        const float4 d = v[k] - f4(m);
        q += hsum(d * d);
      }
    const double var = sub_sum(static_cast<double>(q), LPR) / C;
    const float rf = static_cast<float>(1.0 / sqrt(var + eps));
    if (!live) continue;
    if (R.sub == 0) {
      if (!BF) mean[r] = m;
      rstd[r] = rf;
    }
#pragma unroll
    for (int k = 0; k < NV; ++k) {
      const int j = R.sub + LPR * k;
      if (j < C4) y[r * C4 + j] = BF ? v[k] * f4(rf) * wv[k] : (v[k] - f4(m)) * f4(rf) * wv[k] + bv[k];
    }
  }
}

// Backward with the dw (/ db) partials: block b owns rows [rows b / G, rows (b + 1) / G); each thread
// accumulates its slots in float over its rows, the block's groups are added in group order (double) into
// part[(b NK + k) C + c].
template <int NV, bool BF>
__global__ void __launch_bounds__(kThreads) ln_bwd_sub(const float4* __restrict__ dy, const float4* __restrict__ x,
                                                       const float4* __restrict__ w, const float* __restrict__ mean,
                                                       const float* __restrict__ rstd, const float4* __restrict__ acc,
                                                       float4* __restrict__ dx, double* __restrict__ part,
                                                       int64_t rows, int C4, int LPR) {
  constexpr int NK = BF ? 1 : 2;
  __shared__ float4 red[kThreads * NV * NK];  // [group][k][slot] in float4 slots of the row
  const SubRows R(LPR);
  const int warp_first = (threadIdx.x >> 5) * (32 / LPR);
  float4 wv[NV], aw[NV], ab[NV];
#pragma unroll
  for (int k = 0; k < NV; ++k) {
    const int j = R.sub + LPR * k;
    wv[k] = j < C4 ? w[j] : f4(0.f);
    aw[k] = ab[k] = f4(0.f);
  }
  const double C = 4.0 * C4;
  const int64_t r0 = rows * blockIdx.x / gridDim.x, r1 = rows * (blockIdx.x + 1) / gridDim.x;
  for (int64_t base = r0; base + warp_first < r1; base += R.rpb) {
    const int64_t r = base + R.group;
    const bool live = r < r1;
    float4 v[NV], d[NV];
#pragma unroll
    for (int k = 0; k < NV; ++k) {
      const int j = R.sub + LPR * k;
      const bool in = live && j < C4;
      v[k] = in ? x[r * C4 + j] : f4(0.f);
      d[k] = in ? dy[r * C4 + j] : f4(0.f);
    }
    const float rs = live ? rstd[r] : 0.f;
    if (!BF) {
      const float m = live ? mean[r] : 0.f;
      float sg = 0.f, sx = 0.f;
#pragma unroll
      for (int k = 0; k < NV; ++k)
        if (R.sub + LPR * k < C4) {
          const float4 xh = (v[k] - f4(m)) * f4(rs), g = d[k] * wv[k];
          sg += hsum(g);
          sx += hsum(g * xh);
        }
      const float a = static_cast<float>(sub_sum(static_cast<double>(sg), LPR) / C);
      const float bm = static_cast<float>(sub_sum(static_cast<double>(sx), LPR) / C);
      if (!live) continue;
#pragma unroll
      for (int k = 0; k < NV; ++k) {
        const int j = R.sub + LPR * k;
        if (j < C4) {
          const float4 xh = (v[k] - f4(m)) * f4(rs);
          const float4 g = f4(rs) * (d[k] * wv[k] - f4(a) - xh * f4(bm));
          dx[r * C4 + j] = acc ? g + acc[r * C4 + j] : g;
          aw[k] = aw[k] + d[k] * xh;
          ab[k] = ab[k] + d[k];
        }
      }
    } else {
      float sm = 0.f, sd = 0.f;
#pragma unroll
      for (int k = 0; k < NV; ++k) {  // slots outside the row hold zeros: they add nothing
        sm += hsum(v[k]);
        sd += hsum(d[k] * wv[k] * v[k]);
      }
      const double rsd = rs;
      const float m = static_cast<float>(sub_sum(static_cast<double>(sm), LPR) / C);
      const float bb = static_cast<float>(rsd * rsd * rsd * sub_sum(static_cast<double>(sd), LPR) / C);
      if (!live) continue;
#pragma unroll
      for (int k = 0; k < NV; ++k) {
        const int j = R.sub + LPR * k;
        if (j < C4) {
          const float4 g = f4(rs) * d[k] * wv[k] - (v[k] - f4(m)) * f4(bb);
          dx[r * C4 + j] = acc ? g + acc[r * C4 + j] : g;
          aw[k] = aw[k] + d[k] * (v[k] * f4(rs));
        }
      }
    }
  }
  // per-thread slots to shared, then one thread per (k, float4 slot) adds the groups in order
#pragma unroll
  for (int k = 0; k < NV; ++k) {
    const int j = R.sub + LPR * k;
    if (j < C4) {
      red[(R.group * NK + 0) * C4 + j] = aw[k];
      if constexpr (!BF) red[(R.group * NK + 1) * C4 + j] = ab[k];
    }
  }
  __syncthreads();
  for (int e = threadIdx.x; e < NK * C4; e += kThreads) {
    const int kk = e / C4, j = e % C4;
    double t0 = 0.0, t1 = 0.0, t2 = 0.0, t3 = 0.0;
    for (int gi = 0; gi < R.rpb; ++gi) {
      const float4 u = red[(gi * NK + kk) * C4 + j];
      t0 += u.x;
      t1 += u.y;
      t2 += u.z;
      t3 += u.w;
    }
    double* o = part + (blockIdx.x * static_cast<int64_t>(NK) + kk) * (4 * C4) + 4 * j;
    o[0] = t0;
    o[1] = t1;
    o[2] = t2;
    o[3] = t3;
  }
}

// Lanes per row for the sub-warp kernels: the fewest (a power of two) that hold a row in at most 4 float4 each.
int lanes_per_row(int64_t C4) {
  int l = 1;
  while (l < 32 && (C4 + l - 1) / l > 4) l <<= 1;
  return l;
}
bool sub_rows_ok(int64_t C, int64_t rows, const void* a, const void* b, const void* c2, const void* d) {
  return C % 4 == 0 && C > 0 && C <= 512 && rows < INT_MAX && aligned16(a) && aligned16(b) && (!c2 || aligned16(c2)) &&
         aligned16(d);
}
#define IRC_NV_SWITCH(nv, KERN, ...)            \
  switch (nv) {                                 \
    case 1: KERN<1, BF>__VA_ARGS__; break;      \
    case 2: KERN<2, BF>__VA_ARGS__; break;      \
    case 3: KERN<3, BF>__VA_ARGS__; break;      \
    default: KERN<4, BF>__VA_ARGS__; break;     \
  }

// y = (x - mean) rstd w + b from given row statistics, 4 channels per thread: ln_fwd_sub's expression, so the
// forward's statistics give its y bit for bit (the LayerNorm + 1x1 backwards form h again with it).
__global__ void ln_apply4_k(const float4* __restrict__ x, const float4* __restrict__ w, const float4* __restrict__ b,
                            const float* __restrict__ mean, const float* __restrict__ rstd, float4* __restrict__ y,
                            int64_t n4, int C4) {
  IRC_GRID_LOOP(e, n4) {
    const int64_t r = e / C4;
    const int j = static_cast<int>(e - r * C4);
    y[e] = (x[e] - f4(mean[r])) * f4(rstd[r]) * w[j] + b[j];
  }
}

// ---- launchers --------------------------------------------------------------------------------------------
template <bool BF>
void ln_forward_rows(const KernelCtx& c, const float* x, const float* w, const float* b, float* y, float* mean,
                     float* rstd, int64_t rows, int64_t C, double eps) {
  if (rows == 0) return;
  cudaStream_t s = cu::stream(c);
  if (sub_rows_ok(C, rows, x, w, b, y)) {
    const int C4 = static_cast<int>(C / 4), L = lanes_per_row(C4), nv = (C4 + L - 1) / L;
    const unsigned grid = cu::blocks_for(rows, kThreads / L);
    const float4 *x4 = reinterpret_cast<const float4*>(x), *w4 = reinterpret_cast<const float4*>(w),
                 *b4 = reinterpret_cast<const float4*>(b);
    float4* y4 = reinterpret_cast<float4*>(y);
    IRC_NV_SWITCH(nv, ln_fwd_sub, <<<grid, kThreads, 0, s>>>(x4, w4, b4, y4, mean, rstd, rows, C4, L, eps))
    cu::check_launch(c);
    return;
  }
  const unsigned grid = cu::blocks_for(rows, kWarps);
  const int Ci = static_cast<int>(C);
  if (C <= 32) ln_fwd_warp<1, BF><<<grid, kThreads, 0, s>>>(x, w, b, y, mean, rstd, rows, Ci, eps);
  else if (C <= 64) ln_fwd_warp<2, BF><<<grid, kThreads, 0, s>>>(x, w, b, y, mean, rstd, rows, Ci, eps);
  else if (C <= 128) ln_fwd_warp<4, BF><<<grid, kThreads, 0, s>>>(x, w, b, y, mean, rstd, rows, Ci, eps);
  else if (C <= 256) ln_fwd_warp<8, BF><<<grid, kThreads, 0, s>>>(x, w, b, y, mean, rstd, rows, Ci, eps);
  else if (C <= 512) ln_fwd_warp<16, BF><<<grid, kThreads, 0, s>>>(x, w, b, y, mean, rstd, rows, Ci, eps);
  else if (C <= 1024) ln_fwd_warp<32, BF><<<grid, kThreads, 0, s>>>(x, w, b, y, mean, rstd, rows, Ci, eps);
  else ln_fwd_block<BF><<<cu::blocks_for(rows, 1), kThreads, 0, s>>>(x, w, b, y, mean, rstd, rows, C, eps);
  cu::check_launch(c);
}

template <bool BF>
void ln_forward(KernelCtx& c, const float* w, const float* b, float* mean, float* rstd) {
  const TArg& X = c.in[0];
  const int64_t C = X.shape.back();
  ln_forward_rows<BF>(c, X.f(), w, b, c.out[0].f(), mean, rstd, C ? X.n / C : 0, C, c.af(0));
}

// Fused row groups for C <= 512 (shape only): about 32 rows per group, at most 2048 groups.
int64_t fused_groups(int64_t rows) {
  int64_t g = (rows + 31) / 32;
  if (g > 2048) g = 2048;
  if (g < 1) g = 1;
  return g;
}

// acc: the optional gradient of x from elsewhere, added to dx in the same pass (null: none).
template <bool BF>
void ln_backward(const KernelCtx& c, const float* dy, const float* x, const float* w, const float* mean,
                 const float* rstd, const float* acc, float* dx, float* dw, float* db, int64_t rows, int64_t C) {
  if (C == 0) return;
  constexpr int NK = BF ? 1 : 2;
  cudaStream_t s = cu::stream(c);
  if (rows == 0) {  // sums over no rows
    cu::check(cudaMemsetAsync(dw, 0, sizeof(float) * C, s), c.op, "memset dw");
    if (!BF) cu::check(cudaMemsetAsync(db, 0, sizeof(float) * C, s), c.op, "memset db");
    return;
  }
  const int Ci = static_cast<int>(C);
  int64_t G;
  double* part;
  if (sub_rows_ok(C, rows, dy, x, w, dx) && (!acc || aligned16(acc))) {
    const int C4 = static_cast<int>(C / 4), L = lanes_per_row(C4), nv = (C4 + L - 1) / L;
    // each group of lanes takes at least 4 rows; at most 2048 blocks
    G = rows / (int64_t(kThreads / L) * 4);
    if (G > 2048) G = 2048;
    if (G < 1) G = 1;
    part = static_cast<double*>(cu::scratch(s, sizeof(double) * G * NK * C, 0));
    const float4 *dy4 = reinterpret_cast<const float4*>(dy), *x4 = reinterpret_cast<const float4*>(x),
                 *w4 = reinterpret_cast<const float4*>(w);
    float4* dx4 = reinterpret_cast<float4*>(dx);
    const float4* acc4 = reinterpret_cast<const float4*>(acc);
    const unsigned grid = static_cast<unsigned>(G);
    IRC_NV_SWITCH(nv, ln_bwd_sub, <<<grid, kThreads, 0, s>>>(dy4, x4, w4, mean, rstd, acc4, dx4, part, rows, C4, L))
  } else if (C <= 512) {
    G = fused_groups(rows);
    part = static_cast<double*>(cu::scratch(s, sizeof(double) * G * NK * C, 0));
    const unsigned grid = static_cast<unsigned>(G);
    if (C <= 32) ln_bwd_warp<1, BF, true><<<grid, kThreads, 0, s>>>(dy, x, w, mean, rstd, acc, dx, part, rows, Ci);
    else if (C <= 64) ln_bwd_warp<2, BF, true><<<grid, kThreads, 0, s>>>(dy, x, w, mean, rstd, acc, dx, part, rows, Ci);
    else if (C <= 128) ln_bwd_warp<4, BF, true><<<grid, kThreads, 0, s>>>(dy, x, w, mean, rstd, acc, dx, part, rows, Ci);
    else if (C <= 256) ln_bwd_warp<8, BF, true><<<grid, kThreads, 0, s>>>(dy, x, w, mean, rstd, acc, dx, part, rows, Ci);
    else ln_bwd_warp<16, BF, true><<<grid, kThreads, 0, s>>>(dy, x, w, mean, rstd, acc, dx, part, rows, Ci);
  } else {
    if (C <= 1024)
      ln_bwd_warp<32, BF, false><<<cu::blocks_for(rows, kWarps), kThreads, 0, s>>>(dy, x, w, mean, rstd, acc, dx,
                                                                                   nullptr, rows, Ci);
    else
      ln_bwd_block<BF><<<cu::blocks_for(rows, 1), kThreads, 0, s>>>(dy, x, w, mean, rstd, acc, dx, rows, C);
    const int64_t tiles = (C + 31) / 32;
    G = (1024 + tiles - 1) / tiles;
    if (G > (rows + 63) / 64) G = (rows + 63) / 64;
    if (G < 1) G = 1;
    part = static_cast<double*>(cu::scratch(s, sizeof(double) * G * NK * C, 0));
    ln_cols_k<BF><<<dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(G < 65535 ? G : 65535)), dim3(32, 8), 0,
                    s>>>(dy, x, mean, rstd, part, rows, C, G);
  }
  finish_cols_k<<<cu::blocks_for(NK * C, kWarps), kThreads, 0, s>>>(part, G, NK, C, dw, db);
  cu::check_launch(c);
}

}  // namespace

// ---- layer_norm2d -----------------------------------------------------------------------------------------
void cuda_layer_norm2d(KernelCtx& c) { ln_forward<false>(c, c.in[1].f(), c.in[2].f(), c.out[1].f(), c.out[2].f()); }

// (dy, x, w, mean, rstd, acc?) of layer_norm2d_backward / layer_norm_bias_free_backward (no mean there)
template <bool BF>
void ln_backward_op(KernelCtx& c, const float* mean, const float* rstd, const float* acc, float* db) {
  const TArg& X = c.in[1];
  const int64_t C = X.shape.back(), rows = C ? X.n / C : 0;
  ln_backward<BF>(c, c.in[0].f(), X.f(), c.in[2].f(), mean, rstd, acc, c.out[0].f(), c.out[1].f(), db, rows, C);
}

void cuda_layer_norm2d_backward(KernelCtx& c) {
  ln_backward_op<false>(c, c.in[3].f(), c.in[4].f(), c.in.size() > 5 ? c.in[5].f() : nullptr, c.out[2].f());
}

void layer_norm2d_backward_cuda(const KernelCtx& c, const float* dy, const float* x, const float* w, const float* mean,
                                const float* rstd, const float* acc, float* dx, float* dw, float* db, int64_t rows,
                                int64_t C) {
  ln_backward<false>(c, dy, x, w, mean, rstd, acc, dx, dw, db, rows, C);
}

void layer_norm2d_forward_cuda(const KernelCtx& c, const float* x, const float* w, const float* b, float* y,
                               float* mean, float* rstd, int64_t rows, int64_t C, double eps) {
  ln_forward_rows<false>(c, x, w, b, y, mean, rstd, rows, C, eps);
}

bool layer_norm2d_apply_cuda(const KernelCtx& c, const float* x, const float* w, const float* b, const float* mean,
                             const float* rstd, float* y, int64_t rows, int64_t C) {
  if (!sub_rows_ok(C, rows, x, w, b, y) || !cu::index32(rows * C)) return false;
  if (rows == 0) return true;
  const int64_t n4 = rows * C / 4;
  ln_apply4_k<<<cu::blocks_for(n4), 256, 0, cu::stream(c)>>>(
      reinterpret_cast<const float4*>(x), reinterpret_cast<const float4*>(w), reinterpret_cast<const float4*>(b),
      mean, rstd, reinterpret_cast<float4*>(y), n4, static_cast<int>(C / 4));
  cu::check_launch(c);
  return true;
}

// ---- layer_norm_bias_free ---------------------------------------------------------------------------------
void cuda_layer_norm_bias_free(KernelCtx& c) { ln_forward<true>(c, c.in[1].f(), nullptr, nullptr, c.out[1].f()); }

void cuda_layer_norm_bias_free_backward(KernelCtx& c) {
  ln_backward_op<true>(c, nullptr, c.in[3].f(), c.in.size() > 4 ? c.in[4].f() : nullptr, nullptr);
}

}  // namespace irc
