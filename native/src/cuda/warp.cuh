// Warp-wide reductions for CUDA kernels (every lane of the warp must take part; every lane gets the result, combined
// in a fixed butterfly order: deterministic).
#pragma once
#include <cuda_runtime.h>

namespace irc {

__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

}  // namespace irc
