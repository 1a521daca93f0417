// CUDA kernels for the creation / memory ops (CPU twins: memory.cpp, fill_inplace.cpp).
//   fill, fill_   constant fill of 4-byte words (memset when the bit pattern is 0), uint4 stores when aligned
//   clone, copy_  cudaMemcpyAsync device-to-device
//   add_          dst += src in place, float4 when both are 16-byte aligned
//   add_n_        every pair in one launch per 32 pairs (blockIdx.y = pair), grid-stride over each pair
//   permute       dims are merged as on the CPU; a 32x32 shared-memory tile transpose when the output's
//                 innermost dim is strided in the input (permute_plan.h: each tile axis over up to two dims, both
//                 at least 16 long), otherwise an index-decomposition gather (32-bit index math below 2^31 elements)
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "../cuda/common.cuh"
#include "permute_plan.h"
#include "switches.h"

namespace irc {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxDims = 8;


// ---- fill -------------------------------------------------------------------------------------------------
__global__ void k_fill(uint32_t* __restrict p, int64_t n, uint32_t v) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t n4 = n >> 2;
  uint4* p4 = reinterpret_cast<uint4*>(p);  // only used when p is 16-byte aligned (host checks)
  const uint4 v4 = make_uint4(v, v, v, v);
  for (int64_t i = t; i < n4; i += stride) p4[i] = v4;
  const int64_t tail = n - (n4 << 2);
  if (t < tail) p[(n4 << 2) + t] = v;
}

__global__ void k_fill_scalar(uint32_t* __restrict p, int64_t n, uint32_t v) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) p[i] = v;
}

void fill_words(const KernelCtx& c, void* ptr, int64_t n, DType dt, double value) {
  if (n <= 0) return;
  cudaStream_t s = cu::stream(c);
  uint32_t bits;
  if (dt == DType::f32) {
    const float f = static_cast<float>(value);
    std::memcpy(&bits, &f, 4);
  } else {
    const int32_t i = static_cast<int32_t>(value);
    std::memcpy(&bits, &i, 4);
  }
  if (bits == 0) {  // +0.0f and integer 0 (not -0.0f, whose sign bit is set)
    cu::check(cudaMemsetAsync(ptr, 0, static_cast<size_t>(n) * 4, s), c.op, "cudaMemsetAsync");
    return;
  }
  uint32_t* p = static_cast<uint32_t*>(ptr);
  if (aligned16(p)) {
    k_fill<<<cu::blocks_for((n + 3) / 4, kThreads), kThreads, 0, s>>>(p, n, bits);
  } else {
    k_fill_scalar<<<cu::blocks_for(n, kThreads), kThreads, 0, s>>>(p, n, bits);
  }
  cu::check_launch(c);
}

// ---- add_ -------------------------------------------------------------------------------------------------
// No __restrict: src may be dst (x += x); each element is read before it is written by the same thread.
__global__ void k_add_inplace4(float4* d, const float4* s, int64_t n4, float* dt, const float* st, int64_t tail) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int64_t i = t; i < n4; i += stride) {
    float4 a = d[i];
    const float4 b = s[i];
    a.x += b.x;
    a.y += b.y;
    a.z += b.z;
    a.w += b.w;
    d[i] = a;
  }
  if (t < tail) dt[t] += st[t];
}

__global__ void k_add_inplace(float* d, const float* s, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) d[i] += s[i];
}

// Up to kPairs (dst, src, n) per launch, passed by value (a kernel parameter block of ~800 bytes).
constexpr int kPairs = 32;
struct AddPairs {
  float* d[kPairs];
  const float* s[kPairs];
  int64_t n[kPairs];
};
__global__ void k_add_pairs(AddPairs p) {
  float* d = p.d[blockIdx.y];
  const float* s = p.s[blockIdx.y];
  const int64_t n = p.n[blockIdx.y], stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) d[i] += s[i];
}

// ---- permute ----------------------------------------------------------------------------------------------
// Gather: output element i (row-major over the merged output dims sz) reads input offset sum(idx_d * st_d).
template <class I>
struct PermGeom {
  int m;
  I sz[kMaxDims];
  I st[kMaxDims];
};

template <class I>
__global__ void k_permute_gather(const uint32_t* __restrict x, uint32_t* __restrict y, I n, PermGeom<I> g) {
  const I stride = static_cast<I>(gridDim.x) * blockDim.x;
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    I rem = i, off = 0;
#pragma unroll
    for (int d = kMaxDims - 1; d >= 0; --d) {
      if (d < g.m) {
        const I q = rem / g.sz[d];
        off += (rem - q * g.sz[d]) * g.st[d];
        rem = q;
      }
    }
    y[i] = x[off];
  }
}

// Tile transpose (permute_plan.h): a tile's loads run along b (contiguous in x), its stores along a (contiguous in y),
// each axis possibly over two merged dims.
using permute_plan::kTile;
using permute_plan::kTileRows;

// Blocks per SM the registers must allow: all 2048 threads of an sm_80 / sm_90 SM (32 registers, no spills); 6
// elsewhere: all 1536 threads of sm_86 / sm_89 / sm_120, and 3/4 of sm_100's 2048, whose code spills at 32.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ != 800 && __CUDA_ARCH__ != 900
constexpr int kTileBlocksPerSm = 6;
#else
constexpr int kTileBlocksPerSm = 8;
#endif

__global__ void __launch_bounds__(kTile* kTileRows, kTileBlocksPerSm)
    k_permute_tile(const uint32_t* __restrict x, uint32_t* __restrict y, permute_plan::Geo g) {
  __shared__ uint32_t tile[kTile][kTile + 1];  // [a][b], padded against bank conflicts
  const int tx = threadIdx.x, ty = threadIdx.y;
  for (int64_t t = blockIdx.x; t < g.total; t += gridDim.x) {  // block-uniform loop: __syncthreads is safe
    const permute_plan::Base p = permute_plan::base(g, t);
    // Load: threads along b (contiguous in x).
    const int64_t bi = p.b0 + tx;
#pragma unroll
    for (int r = 0; r < kTile; r += kTileRows) {
      const int64_t ai = p.a0 + ty + r;
      if (ai < g.A && bi < g.B) tile[ty + r][tx] = x[p.xo + permute_plan::a_in(g, ai) + bi];
    }
    __syncthreads();
    // Store: threads along a (contiguous in y).
    const int64_t ai = p.a0 + tx;
#pragma unroll
    for (int r = 0; r < kTile; r += kTileRows) {
      const int64_t bj = p.b0 + ty + r;
      if (ai < g.A && bj < g.B) y[p.yo + permute_plan::b_out(g, bj) + ai] = tile[tx][ty + r];
    }
    __syncthreads();
  }
}

}  // namespace

// ---- fill / fill_ -----------------------------------------------------------------------------------------
void cuda_fill(KernelCtx& c) {
  const TArg& y = c.out[0];
  fill_words(c, y.ptr, y.n, y.dtype, c.af(0));
}

void cuda_fill_(KernelCtx& c) {
  const TArg& x = c.in[0];
  fill_words(c, x.ptr, x.n, x.dtype, c.af(0));
}

// ---- clone / copy_ / add_ ---------------------------------------------------------------------------------
void cuda_clone(KernelCtx& c) {
  const int64_t n = c.in[0].n;
  if (n <= 0) return;
  cu::check(cudaMemcpyAsync(c.out[0].ptr, c.in[0].ptr, static_cast<size_t>(n) * 4, cudaMemcpyDeviceToDevice,
                            cu::stream(c)),
            c.op, "cudaMemcpyAsync");
}

void cuda_copy_(KernelCtx& c) {
  const int64_t n = c.in[0].n;
  if (n <= 0 || c.in[0].ptr == c.in[1].ptr) return;
  cu::check(cudaMemcpyAsync(c.in[0].ptr, c.in[1].ptr, static_cast<size_t>(n) * 4, cudaMemcpyDeviceToDevice,
                            cu::stream(c)),
            c.op, "cudaMemcpyAsync");
}

void cuda_add_(KernelCtx& c) {
  const int64_t n = c.in[0].n;
  if (n <= 0) return;
  float* d = c.in[0].f();
  const float* s = c.in[1].f();
  cudaStream_t st = cu::stream(c);
  if (aligned16(d) && aligned16(s)) {
    const int64_t n4 = n / 4, done = n4 * 4;
    k_add_inplace4<<<cu::blocks_for(n4 > 0 ? n4 : 1, kThreads), kThreads, 0, st>>>(
        reinterpret_cast<float4*>(d), reinterpret_cast<const float4*>(s), n4, d + done, s + done, n - done);
  } else {
    k_add_inplace<<<cu::blocks_for(n, kThreads), kThreads, 0, st>>>(d, s, n);
  }
  cu::check_launch(c);
}

void cuda_add_n_(KernelCtx& c) {
  cudaStream_t st = cu::stream(c);
  AddPairs p{};
  int k = 0;
  int64_t most = 0;
  const size_t pairs = c.in.size() / 2;
  for (size_t i = 0; i < pairs; ++i) {
    if (c.in[2 * i].n > 0) {
      p.d[k] = c.in[2 * i].f();
      p.s[k] = c.in[2 * i + 1].f();
      p.n[k] = c.in[2 * i].n;
      most = p.n[k] > most ? p.n[k] : most;
      ++k;
    }
    if (k == kPairs || (i + 1 == pairs && k > 0)) {
      // enough blocks for the largest pair (at most 256 per pair; grid-stride beyond)
      const unsigned bx = static_cast<unsigned>(std::min<int64_t>((most + kThreads - 1) / kThreads, 256));
      k_add_pairs<<<dim3(bx, static_cast<unsigned>(k)), kThreads, 0, st>>>(p);
      cu::check_launch(c);
      k = 0;
      most = 0;
    }
  }
}

// ---- permute ----------------------------------------------------------------------------------------------
void cuda_permute(KernelCtx& c) {
  const TArg& x = c.in[0];
  const TArg& y = c.out[0];
  if (y.n <= 0) return;
  cudaStream_t s = cu::stream(c);
  std::vector<int64_t> perm(x.shape.size());
  for (size_t i = 0; i < perm.size(); ++i) perm[i] = c.ai(i);
  const permute_plan::Dims dims = permute_plan::merge(x.shape, perm);
  const std::vector<int64_t>&sz = dims.sz, &st = dims.st;
  if (sz.empty() || (sz.size() == 1 && st[0] == 1)) {
    cu::check(cudaMemcpyAsync(y.ptr, x.ptr, static_cast<size_t>(y.n) * 4, cudaMemcpyDeviceToDevice, s), c.op,
              "cudaMemcpyAsync");
    return;
  }
  const int m = static_cast<int>(sz.size());
  const uint32_t* src = static_cast<const uint32_t*>(x.ptr);
  uint32_t* dst = static_cast<uint32_t*>(y.ptr);
  permute_plan::Geo tg;
  if (permute_plan::plan(dims, tg, !env_is("IRCONSTYLE_PERMUTE_TILE", "1"))) {
    const int64_t blocks = tg.total < (int64_t(1) << 20) ? tg.total : (int64_t(1) << 20);
    k_permute_tile<<<static_cast<unsigned>(blocks), dim3(kTile, kTileRows), 0, s>>>(src, dst, tg);
    cu::check_launch(c);
    return;
  }
  if (m > kMaxDims)  // (the gather kernel's limit; the tile transpose takes up to 4 + kOuterDims)
    op_fail("E_SHAPE", "permute: the CUDA gather kernel supports at most " + std::to_string(kMaxDims) +
                           " non-mergeable dims, got " + std::to_string(m) + " for x " + shape_str(x.shape));
  if (cu::index32(x.n, int64_t(1) << 31)) {
    PermGeom<uint32_t> g{};
    g.m = m;
    for (int d = 0; d < m; ++d) {
      g.sz[d] = static_cast<uint32_t>(sz[d]);
      g.st[d] = static_cast<uint32_t>(st[d]);
    }
    k_permute_gather<uint32_t><<<cu::blocks_for(y.n, kThreads), kThreads, 0, s>>>(src, dst, static_cast<uint32_t>(y.n), g);
  } else {
    PermGeom<int64_t> g{};
    g.m = m;
    for (int d = 0; d < m; ++d) {
      g.sz[d] = sz[d];
      g.st[d] = st[d];
    }
    k_permute_gather<int64_t><<<cu::blocks_for(y.n, kThreads), kThreads, 0, s>>>(src, dst, y.n, g);
  }
  cu::check_launch(c);
}

}  // namespace irc
