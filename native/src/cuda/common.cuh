// Shared helpers for CUDA kernel files (see README.md in this folder).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "../ops/op_api.h"

// A grid-stride loop over [0, n) with 64-bit indices.
#define IRC_GRID_LOOP(i, n)                                                                        \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n);           \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

namespace irc {

// Whether p may be read / written as float4 (aligned16) or float2 (aligned8).
inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }
inline bool aligned8(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 7u) == 0; }

// Zero of a kernel's vector type (float, float2 or float4).
template <class V>
__device__ __forceinline__ V vzero();
template <>
__device__ __forceinline__ float vzero<float>() { return 0.f; }
template <>
__device__ __forceinline__ float2 vzero<float2>() { return make_float2(0.f, 0.f); }
template <>
__device__ __forceinline__ float4 vzero<float4>() { return make_float4(0.f, 0.f, 0.f, 0.f); }

namespace cu {

inline cudaStream_t stream(const KernelCtx& ctx) { return static_cast<cudaStream_t>(ctx.stream); }

// Throws OpError("E_CUDA", "<op>: <what>: <cuda error>") when e != cudaSuccess.
void check(cudaError_t e, const char* op, const char* what);

// After a kernel launch: turns cudaGetLastError() into an OpError naming the op.
inline void check_launch(const KernelCtx& ctx) { check(cudaGetLastError(), ctx.op, "kernel launch"); }

// Whether the host may wait for s now (an autotuner's synchronous timing): no graph capture open on it, and not held
// by exact profiling (cudev::hold_stream), where a wait would last until the release.
bool host_may_wait(cudaStream_t s);

// Stream-ordered device scratch (grows; reused). Valid until the next call with the same slot on this stream.
constexpr int kScratchSlots = 10;  // slot 9: the cuBLASLt workspace (matmul.cu) alone
void* scratch(cudaStream_t s, size_t bytes, int slot = 0);

// Grid for a grid-stride loop over n elements with `threads` per block.
inline unsigned blocks_for(int64_t n, int threads = 256) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > 65535LL * 32) b = 65535LL * 32;
  return static_cast<unsigned>(b);
}

// Whether a kernel over n elements may take its 32-bit index variant (or a path that indexes with int): n below
// `bound` (2^30 where an index plus a grid stride must stay below 2^31; 2^31 for unsigned indices). In the emulator
// build IRCONSTYLE_EMU_WIDE_INDEX=1 answers no for every n, so that the 64-bit variants, which only tensors of 2^30
// elements and more reach on a GPU, run on the op cases' small tensors (scripts/check-emu.mjs).
inline bool index32(int64_t n, int64_t bound = int64_t(1) << 30) {
#ifdef IRC_CUDA_EMU
  static const bool wide = [] {
    const char* v = std::getenv("IRCONSTYLE_EMU_WIDE_INDEX");
    return v && v[0] == '1';
  }();
  if (wide) return false;
#endif
  return n < bound;
}

// Whether TF32 tensor cores may be used for convolutions (PyTorch's default: yes; IRCONSTYLE_TF32=0 turns off).
bool tf32_convolutions();

}  // namespace cu
}  // namespace irc
