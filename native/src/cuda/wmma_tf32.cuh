// The WMMA calls of the tensor-core tile phases (ops/pw_gate_tile.h, ops/pw_bwd_tile.h) on the device: m16n16k8
// TF32 fragments with FP32 accumulation. Their host model, with the same names, is pwgate::HostWmma; DeviceWmma3
// (FP32-accurate products from three TF32 ones) has pwgate::HostWmma3.
#pragma once
#include <mma.h>

namespace irc {

struct DeviceWmma {
  using A = nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, 16, 16, 8, nvcuda::wmma::precision::tf32,
                                   nvcuda::wmma::row_major>;
  using Ac = nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, 16, 16, 8, nvcuda::wmma::precision::tf32,
                                    nvcuda::wmma::col_major>;
  using B = nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, 16, 16, 8, nvcuda::wmma::precision::tf32,
                                   nvcuda::wmma::row_major>;
  using Bc = nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, 16, 16, 8, nvcuda::wmma::precision::tf32,
                                    nvcuda::wmma::col_major>;
  using Acc = nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 8, float>;
  static __device__ __forceinline__ float to_tf32(float v) { return nvcuda::wmma::__float_to_tf32(v); }
  // warp-wide phases: every lane takes part
  static constexpr int kLanes = 32;
  static __device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
  }
  static __device__ __forceinline__ void sync_warp() { __syncwarp(); }
  static __device__ __forceinline__ void fill(Acc& c) { nvcuda::wmma::fill_fragment(c, 0.f); }
  // A operands come from shared memory already rounded to TF32; B operands are rounded after the load.
  static __device__ __forceinline__ void load_a(A& a, const float* p, int ld) { nvcuda::wmma::load_matrix_sync(a, p, ld); }
  static __device__ __forceinline__ void load_ac(Ac& a, const float* p, int ld) {
    nvcuda::wmma::load_matrix_sync(a, p, ld);
  }
  template <class F>
  static __device__ __forceinline__ void round_(F& f) {
#pragma unroll
    for (int i = 0; i < f.num_elements; ++i) f.x[i] = nvcuda::wmma::__float_to_tf32(f.x[i]);
  }
  static __device__ __forceinline__ void load_b(B& b, const float* p, int ld) {
    nvcuda::wmma::load_matrix_sync(b, p, ld);
    round_(b);
  }
  static __device__ __forceinline__ void load_bc(Bc& b, const float* p, int ld) {
    nvcuda::wmma::load_matrix_sync(b, p, ld);
    round_(b);
  }
  static __device__ __forceinline__ void mma(Acc& c, const A& a, const B& b) { nvcuda::wmma::mma_sync(c, a, b, c); }
  static __device__ __forceinline__ void mma_c(Acc& c, const A& a, const Bc& b) { nvcuda::wmma::mma_sync(c, a, b, c); }
  static __device__ __forceinline__ void mma_t(Acc& c, const Ac& a, const B& b) { nvcuda::wmma::mma_sync(c, a, b, c); }
  static __device__ __forceinline__ void store(float* p, const Acc& c, int ld) {
    nvcuda::wmma::store_matrix_sync(p, c, ld, nvcuda::wmma::mem_row_major);
  }
};

// Split-TF32 ("3xTF32"): each operand v = hi + lo with hi = tf32(v), lo = tf32(v - hi) (v - hi is exact), and
// a b ~ a_lo b_hi + a_hi b_lo + a_hi b_hi: about 21 bits of each operand take part instead of TF32's 11, so the
// products are as accurate as FP32's to within a few units in the last place, at three tensor-core products each.
// For layers PyTorch runs in full FP32 (Linear). The staging keeps FP32 values (to_tf32 is the identity). An
// infinite operand gives NaN (inf - inf, inf times a zero low part) where FP32 gives an infinity: non-finite either way.
struct DeviceWmma3 : DeviceWmma {
  template <class F>
  struct Pair {
    F hi, lo;
  };
  using A = Pair<DeviceWmma::A>;
  using Ac = Pair<DeviceWmma::Ac>;
  using B = Pair<DeviceWmma::B>;
  using Bc = Pair<DeviceWmma::Bc>;
  static __device__ __forceinline__ float to_tf32(float v) { return v; }
  // tf32 rounding as an FP32 value with its 13 low mantissa bits cleared: the CUDA guide leaves the bits below TF32's
  // mantissa in __float_to_tf32's result unspecified (the MMA ignores them), and the split's v - hi needs hi exact
  static __device__ __forceinline__ float tf32_exact(float v) {
    return __uint_as_float(__float_as_uint(nvcuda::wmma::__float_to_tf32(v)) & 0xffffe000u);
  }
  template <class F>
  static __device__ __forceinline__ void load_split(Pair<F>& f, const float* p, int ld) {
    nvcuda::wmma::load_matrix_sync(f.hi, p, ld);
#pragma unroll
    for (int i = 0; i < f.hi.num_elements; ++i) {
      const float v = f.hi.x[i], h = tf32_exact(v);
      f.hi.x[i] = h;
      f.lo.x[i] = tf32_exact(v - h);
    }
  }
  static __device__ __forceinline__ void load_a(A& a, const float* p, int ld) { load_split(a, p, ld); }
  static __device__ __forceinline__ void load_ac(Ac& a, const float* p, int ld) { load_split(a, p, ld); }
  static __device__ __forceinline__ void load_b(B& b, const float* p, int ld) { load_split(b, p, ld); }
  static __device__ __forceinline__ void load_bc(Bc& b, const float* p, int ld) { load_split(b, p, ld); }
  template <class X, class Y>
  static __device__ __forceinline__ void mma3(Acc& c, const X& a, const Y& b) {
    nvcuda::wmma::mma_sync(c, a.lo, b.hi, c);  // the small terms first
    nvcuda::wmma::mma_sync(c, a.hi, b.lo, c);
    nvcuda::wmma::mma_sync(c, a.hi, b.hi, c);
  }
  static __device__ __forceinline__ void mma(Acc& c, const A& a, const B& b) { mma3(c, a, b); }
  static __device__ __forceinline__ void mma_c(Acc& c, const A& a, const Bc& b) { mma3(c, a, b); }
  static __device__ __forceinline__ void mma_t(Acc& c, const Ac& a, const B& b) { mma3(c, a, b); }
};

}  // namespace irc
