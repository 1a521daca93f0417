// Helpers shared by the CUDA kernel files that reduce over pixels with deterministic partial sums (nafnet.cu,
// depthwise3x3.cu): lane geometry of a 256-thread block, the in-block lane reduction, the pass that adds the
// partials in a fixed order, and the multiply-add of the CPU order for float, float2 and float4.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "../cuda/common.cuh"

namespace irc {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float2 operator+(float2 a, float2 b) { return make_float2(a.x + b.x, a.y + b.y); }
// acc + x * w (CPU: acc += x * w)
__device__ __forceinline__ float mac(float acc, float x, float w) { return acc + x * w; }
__device__ __forceinline__ float2 mac(float2 acc, float2 x, float2 w) {
  return make_float2(acc.x + x.x * w.x, acc.y + x.y * w.y);
}
__device__ __forceinline__ float4 mac(float4 acc, float4 x, float4 w) {
  return make_float4(acc.x + x.x * w.x, acc.y + x.y * w.y, acc.z + x.z * w.z, acc.w + x.w * w.w);
}

// Block geometry shared by the column reductions: 256 threads as L pixel lanes x CB channel vectors
// (CB = min(Cv, 256), L = 256 / CB); blockIdx.y picks the chunk of CB channel vectors. Consecutive threads read
// consecutive vectors of one pixel row (coalesced); lanes take rows lane, lane + L, ...
struct Lanes {
  int CB, L, chunks;
};
Lanes lanes_of(int64_t Cv) {
  Lanes l;
  l.CB = static_cast<int>(Cv < kThreads ? (Cv > 0 ? Cv : 1) : kThreads);
  l.L = kThreads / l.CB;
  l.chunks = static_cast<int>((Cv + l.CB - 1) / l.CB);
  return l;
}

// Sums each thread's VW doubles over the block's lanes in lane order; lane 0 threads write them to out[c .. c+VW).
template <int VW>
__device__ __forceinline__ void lane_reduce(double (&v)[VW], double* sh, int CB, int L, bool writer, double* out) {
  const int t = threadIdx.x;
#pragma unroll
  for (int j = 0; j < VW; ++j) sh[t * VW + j] = v[j];
  __syncthreads();
  if (writer) {
#pragma unroll
    for (int j = 0; j < VW; ++j) {
      double s = sh[t * VW + j];
      for (int l = 1; l < L; ++l) s += sh[(l * CB + t) * VW + j];
      out[j] = s;
    }
  }
  __syncthreads();
}

template <class V>
struct VecW {
  static constexpr int n = sizeof(V) / sizeof(float);
};
template <class V>
__device__ __forceinline__ float comp(const V& v, int j) {
  if constexpr (VecW<V>::n == 4) return j == 0 ? v.x : j == 1 ? v.y : j == 2 ? v.z : v.w;
  else if constexpr (VecW<V>::n == 2) return j == 0 ? v.x : v.y;
  else return v;
}

// dst[idx] (idx < split: dst1[idx], else dst2[idx - split]) = float(scale Σ_g part[(m G + g) L + l]),
// idx = m L + l, idx < M L. One warp per output: lane j sums g = j, j + 32, ... in order, then a fixed shuffle
// tree (deterministic; a thread per output would walk all G partials serially).
__global__ void finish_parts_k(const double* __restrict__ part, int64_t M, int64_t G, int64_t L, double scale,
                               float* __restrict__ dst1, int64_t split, float* __restrict__ dst2) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = (static_cast<int64_t>(gridDim.x) * blockDim.x) >> 5;
  for (int64_t idx = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) >> 5; idx < M * L; idx += warps) {
    const int64_t m = idx / L, l = idx % L;
    const double* p = part + m * G * L + l;
    double t = 0.0;
    for (int64_t g = lane; g < G; g += 32) t += p[g * L];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) t += __shfl_xor_sync(0xffffffffu, t, o);
    if (lane == 0) {
      const float v = static_cast<float>(t * scale);
      if (idx < split) dst1[idx] = v;
      else dst2[idx - split] = v;
    }
  }
}
// Launch of finish_parts_k for M L outputs.
void finish_parts(cudaStream_t s, const double* part, int64_t M, int64_t G, int64_t L, double scale, float* dst1,
                  int64_t split, float* dst2) {
  finish_parts_k<<<cu::blocks_for(M * L * 32), kThreads, 0, s>>>(part, M, G, L, scale, dst1, split, dst2);
}

}  // namespace
}  // namespace irc
