// The SIMT pointwise-GEMM kernel (pw_simt.h, phases in pw_simt_tile.h). Persistent blocks of 256 threads, as many as
// stay resident (at most two per SM by the launch bounds: up to 128 registers a thread), each staging w once and then
// taking row tiles in turn: load (float4), prologue, FP32 products from shared memory, epilogue straight to memory.
#include <cuda_runtime.h>

#include <map>
#include <mutex>

#include "../cuda/blas.cuh"
#include "../cuda/common.cuh"
#include "pw_simt.h"
#include "switches.h"

namespace irc {
namespace {

using namespace pwsimt;

struct DevLanes {
  static constexpr int kLanes = pwsimt::kLanes;
  // the sum over the 16 column lanes of a row (lanes 0-15 or 16-31 of the warp: xor offsets below 16 stay inside)
  __device__ static float sum(float v) {
#pragma unroll
    for (int o = 8; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
  }
};

template <int MODE, int NT>
__global__ void __launch_bounds__(kThreads, 2) pw_simt_k(Args p) {
  constexpr int TM = tm_of(NT), BM = kLanes * TM;
  extern __shared__ float4 smem4[];
  float* ws = reinterpret_cast<float*>(smem4);
  float* xs = ws + p.K * p.N;  // K % 4 == 0: 16-byte aligned
  const int tid = threadIdx.x, rl = tid / kLanes, cl = tid % kLanes;
  stage_w(tid, p, ws);
  const int64_t tiles = (p.rows + BM - 1) / BM;
  float acc[TM][NT];
  float psum[psum_n(MODE, NT)];
  float* xsum = xs + BM * ldx_of(p.K);  // [K]: the block's column sums of x (Args::xsum)
  for (int c = tid; c < p.K; c += kThreads) xsum[c] = 0.f;  // (each thread its own columns: no barrier needed)
#pragma unroll
  for (int i = 0; i < psum_n(MODE, NT); ++i) psum[i] = 0.f;
  for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
    const int64_t r0 = t * BM;
    __syncthreads();  // w staged; the previous tile's products read
    load_tile<NT>(tid, p, r0, xs);
    __syncthreads();
    if (p.xsum) {
      tile_colsums<NT>(tid, p, xs, xsum);
      if (p.lnw || p.a) __syncthreads();  // read before the prologue rewrites the tile
    }
    if (p.lnw || p.a) {
      prologue<NT, DevLanes>(rl, cl, p, r0, xs);
      __syncthreads();
    }
    compute<NT>(rl, cl, p.K, p.N, xs, ws, acc);
    if constexpr (MODE == kLnBwd) {  // the rows' sums over their 16 column lanes between the two halves
      float sg[TM], sx[TM];
      ln_bwd_parts<NT>(rl, cl, p, r0, acc, sg, sx);
#pragma unroll
      for (int j = 0; j < TM; ++j) {
        sg[j] = DevLanes::sum(sg[j]);
        sx[j] = DevLanes::sum(sx[j]);
      }
      ln_bwd_finish<NT>(rl, cl, p, r0, acc, sg, sx, psum);
    } else {
      epilogue<MODE, NT>(rl, cl, p, r0, acc, psum);
    }
  }
  if (p.xsum)
    for (int c = tid; c < p.K; c += kThreads) p.xsum[static_cast<int64_t>(blockIdx.x) * p.K + c] = xsum[c];
  if constexpr (MODE == kGateBwd || MODE == kLnBwd) {
    __syncthreads();
    float* red = ws;  // [16][psum_n N / NT] (K >= 16, K >= 32 for kLnBwd)
    stage_partials<MODE, NT>(rl, cl, p.N, psum, red);
    __syncthreads();
    write_partials(tid, psum_n(MODE, NT) / NT * p.N, p.N, gridDim.x, blockIdx.x, red, p.dbp);
  }
}

struct Device {
  int sms = 0;
  int smem_optin = 0;
};
const Device& device() {
  static Device d = [] {
    Device v;
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&v.sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&v.smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess) {
      cudaGetLastError();
      v = Device{};
    }
    return v;
  }();
  return d;
}

// Blocks resident per SM for this instantiation at `bytes` of shared memory (0: it cannot launch), cached per size;
// the first call also raises the kernel's dynamic shared memory limit to the device's opt-in maximum.
template <int MODE, int NT>
int per_sm(size_t bytes) {
  static std::mutex mu;
  static std::map<size_t, int> cache;
  static bool raised = false;
  std::lock_guard<std::mutex> lock(mu);
  if (!raised) {
    raised = true;
    if (cudaFuncSetAttribute(pw_simt_k<MODE, NT>, cudaFuncAttributeMaxDynamicSharedMemorySize, device().smem_optin) !=
        cudaSuccess)
      cudaGetLastError();
  }
  auto it = cache.find(bytes);
  if (it != cache.end()) return it->second;
  int n = 0;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, pw_simt_k<MODE, NT>, kThreads, bytes) != cudaSuccess) {
    cudaGetLastError();
    n = 0;
  }
  cache.emplace(bytes, n);
  return n;
}

// The grid for p (0: not taken), and with launch, the launch itself.
template <int MODE, int NT>
int64_t run(const KernelCtx* k, const Args& p) {
  const size_t bytes = sizeof(float) * static_cast<size_t>(smem_floats(p.K, p.N, NT));
  const int n = per_sm<MODE, NT>(bytes);
  if (n <= 0) return 0;
  constexpr int BM = kLanes * tm_of(NT);
  const int64_t tiles = (p.rows + BM - 1) / BM;
  const int64_t cap = static_cast<int64_t>(n) * device().sms;
  const int64_t grid = tiles < cap ? tiles : cap;
  if (k && grid > 0) {
    pw_simt_k<MODE, NT><<<static_cast<unsigned>(grid), kThreads, bytes, cu::stream(*k)>>>(p);
    cu::check_launch(*k);
  }
  return grid;
}

struct Launch {
  const KernelCtx* k;
  const Args& p;
  template <int MODE, int NT>
  int64_t call() {
    return run<MODE, NT>(k, p);
  }
};

int64_t grid_for(const KernelCtx* k, int mode, const Args& p) {
  const bool sums = mode == kGateBwd || mode == kLnBwd;  // (their per-block sums need dbp)
  if (device().sms <= 0 || !takes(mode, p, device().smem_optin) || (sums && !p.dbp && k)) return 0;
  Launch f{k, p};
  return dispatch(mode, p.N, f);
}

}  // namespace

bool pw_simt_requested() { return env_is("IRCONSTYLE_PW_SIMT", "1") || env_is("IRCONSTYLE_PW_SIMT", "mem"); }

int64_t pw_simt_cuda(const KernelCtx& k, int mode, const Args& p) { return grid_for(&k, mode, p); }

int64_t pw_simt_blocks_bound(int mode, const Args& p) { return grid_for(nullptr, mode, p); }

bool pw_simt_run(const KernelCtx& k, int mode, Args& p, float* colsum, int64_t* grid_out) {
  const int64_t grid = pw_simt_blocks_bound(mode, p);
  if (grid <= 0) return false;
  cudaStream_t st = cu::stream(k);
  if (mode == kLnBwd) p.dbp = static_cast<float*>(cu::scratch(st, sizeof(float) * 2 * grid * p.N, 8));
  if (colsum) p.xsum = static_cast<float*>(cu::scratch(st, sizeof(float) * grid * p.K, 3));
  if (pw_simt_cuda(k, mode, p) != grid) return false;  // (the same computation: cannot differ)
  if (colsum) blas::column_sums(k, p.xsum, grid, p.K, colsum, 4);
  if (grid_out) *grid_out = grid;
  return true;
}

}  // namespace irc
