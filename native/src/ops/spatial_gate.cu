// CUDA spatial_gate / spatial_gate_backward (ops.def; the tile programs and their layout in spatial_gate_tile.h).
// Forward: one kernel normalises v (act applied on the way in) and writes it in the mixing layout T, the linear op's
// kernels mix the positions (T's rows), one kernel reads the mixed values back into pixel rows times u. Backward: t
// and the mixed values g formed again (a kernel and the linear's forward: neither is kept between the passes), one
// kernel for the gate (the u half of dz, and dg in T), the linear op's backward, one kernel for the LayerNorm's
// backward (the v half of dz, dlw / dlb partials per tile summed in tile order). z's halves are read in place and dz
// is written in place, so the composition's split, concat, GELU and permute passes are gone. spatial_mix (the
// cross-gating's spatial gating weights) per half: z's half into the mixing layout (GELU on the way), the linear,
// and back into y's half; its backward likewise with dy, the linear's backward, and GELU' on the way back into dz.
#include <cuda_runtime.h>

#include "../cuda/blas.cuh"
#include "../cuda/common.cuh"
#include "linear.h"
#include "spatial_gate_tile.h"

namespace irc {
namespace {

using sgate::Geo;

struct DevX {
  sgate::Regs r;
  template <class F>
  __device__ __forceinline__ void each(F&& f) {
    f(static_cast<int>(threadIdx.x), r);
    __syncthreads();
  }
};

// one block per tile (grid-stride when there are more tiles than blocks)
#define SG_TILES(t) for (int64_t t = blockIdx.x; t < g.tiles(); t += gridDim.x)

__global__ void __launch_bounds__(sgate::kThreads) sg_norm_fwd_k(Geo g, const float* __restrict__ z,
                                                                 const float* __restrict__ lw, const float* __restrict__ lb,
                                                                 double eps, float* T, float* mean, float* rstd) {
  __shared__ sgate::Shared sh;
  DevX x;
  SG_TILES(t) sgate::norm_fwd_tile(x, sh, g, t, z, lw, lb, eps, T, mean, rstd);
}

__global__ void __launch_bounds__(sgate::kThreads) sg_norm_t_k(Geo g, const float* __restrict__ z,
                                                               const float* __restrict__ lw, const float* __restrict__ lb,
                                                               const float* __restrict__ mean,
                                                               const float* __restrict__ rstd, float* T) {
  __shared__ sgate::Shared sh;
  DevX x;
  SG_TILES(t) sgate::norm_t_tile(x, sh, g, t, z, lw, lb, mean, rstd, T);
}

__global__ void __launch_bounds__(sgate::kThreads) sg_gate_fwd_k(Geo g, const float* __restrict__ z,
                                                                 const float* __restrict__ Tg, float* y) {
  __shared__ sgate::Shared sh;
  DevX x;
  SG_TILES(t) sgate::gate_fwd_tile(x, sh, g, t, z, Tg, y);
}

__global__ void __launch_bounds__(sgate::kThreads) sg_gate_bwd_k(Geo g, const float* __restrict__ dy,
                                                                 const float* __restrict__ z, const float* __restrict__ Tg,
                                                                 float* dz, float* Tdg) {
  __shared__ sgate::Shared sh;
  DevX x;
  SG_TILES(t) sgate::gate_bwd_tile(x, sh, g, t, dy, z, Tg, dz, Tdg);
}

__global__ void __launch_bounds__(sgate::kThreads) sg_norm_bwd_k(Geo g, const float* __restrict__ Tdh,
                                                                 const float* __restrict__ z, const float* __restrict__ lw,
                                                                 const float* __restrict__ mean,
                                                                 const float* __restrict__ rstd, float* dz, float* partW,
                                                                 float* partB) {
  __shared__ sgate::Shared sh;
  DevX x;
  SG_TILES(t) sgate::norm_bwd_tile(x, sh, g, t, Tdh, z, lw, mean, rstd, dz, partW, partB);
}

// spatial_mix: src's half at `off` into T (act applied), and T back into dst's half (times act'(z) when z)
__global__ void __launch_bounds__(sgate::kThreads) sg_to_t_k(Geo g, const float* __restrict__ src, int64_t ld, int off,
                                                             int act, float* T) {
  __shared__ sgate::Shared sh;
  DevX x;
  SG_TILES(t) sgate::to_t_tile(x, sh, g, t, src, ld, off, act, T);
}

__global__ void __launch_bounds__(sgate::kThreads) sg_from_t_k(Geo g, const float* __restrict__ T, float* dst, int64_t ld,
                                                               int off, const float* __restrict__ z, int act) {
  __shared__ sgate::Shared sh;
  DevX x;
  SG_TILES(t) sgate::from_t_tile(x, sh, g, t, T, dst, ld, off, z, act);
}

#undef SG_TILES

unsigned blocks(const Geo& g) { return static_cast<unsigned>(g.tiles() < (1 << 20) ? g.tiles() : (1 << 20)); }

Geo geo_of(const KernelCtx& k, const Shape& z) {
  return sgate::make_geo(z[0], z[1], z[2], z[3] / 2, k.ai(1), k.ai(2), k.ai(0) == 1, k.ai(3) == 1);
}

// spatial_mix's half h (attrs [grid1, fh1, fw1, grid2, fh2, fw2, act])
Geo mix_geo(const KernelCtx& k, const Shape& z, int h) {
  return sgate::make_geo(z[0], z[1], z[2], z[3] / 2, k.ai(3 * h + 1), k.ai(3 * h + 2), k.ai(3 * h) == 1, k.ai(6) == 1);
}

}  // namespace

void cuda_spatial_gate(KernelCtx& k) {
  const Geo g = geo_of(k, k.in[0].shape);
  if (g.tiles() == 0) return;
  const cudaStream_t s = cu::stream(k);
  const float *z = k.in[0].f(), *lw = k.in[1].f(), *lb = k.in[2].f(), *w = k.in[3].f(), *b = k.in[4].f();
  float* y = k.out[0].f();
  // t and g in scratch slots 5 and 6 (the linear's forward uses 1 and 7): not kept, the backward forms them again
  // (g is an output instead with keep = 1)
  float* T = static_cast<float*>(cu::scratch(s, sizeof(float) * g.G * g.C * g.P, 5));
  float* Tg = k.out.size() > 3 ? k.out[3].f() : static_cast<float*>(cu::scratch(s, sizeof(float) * g.G * g.C * g.P, 6));
  sg_norm_fwd_k<<<blocks(g), sgate::kThreads, 0, s>>>(g, z, lw, lb, k.af(4), T, k.out[1].f(), k.out[2].f());
  cu::check_launch(k);
  linear_forward_cuda(k, T, w, b, Tg, g.G * g.C, g.P, g.P);
  sg_gate_fwd_k<<<blocks(g), sgate::kThreads, 0, s>>>(g, z, Tg, y);
  cu::check_launch(k);
}

void cuda_spatial_gate_backward(KernelCtx& k) {
  const Geo g = geo_of(k, k.in[1].shape);
  const cudaStream_t s = cu::stream(k);
  float *dz = k.out[0].f(), *dlw = k.out[1].f(), *dlb = k.out[2].f(), *dw = k.out[3].f(), *db = k.out[4].f();
  if (g.tiles() == 0) {  // the sums over no rows
    cu::check(cudaMemsetAsync(dlw, 0, sizeof(float) * g.C, s), k.op, "memset");
    cu::check(cudaMemsetAsync(dlb, 0, sizeof(float) * g.C, s), k.op, "memset");
    cu::check(cudaMemsetAsync(dw, 0, sizeof(float) * g.P * g.P, s), k.op, "memset");
    cu::check(cudaMemsetAsync(db, 0, sizeof(float) * g.P, s), k.op, "memset");
    return;
  }
  const float *dy = k.in[0].f(), *z = k.in[1].f(), *lw = k.in[2].f(), *lb = k.in[3].f(), *w = k.in[4].f(),
              *b = k.in[5].f(), *mean = k.in[6].f(), *rstd = k.in[7].f();
  const int64_t R = g.G * g.C;
  // Slots 5, 6 and 8: the linear's backward uses 0-4 and 7 (matmul.cu) while these are live. t is formed
  // again from z and the saved statistics (the forward's values: sgate::norm_t_tile), and g from t by the forward's
  // linear, in slot 6 (the linear's forward uses 1 and 7), where dh goes once the gate's backward has read g.
  float* Tdg = static_cast<float*>(cu::scratch(s, sizeof(float) * R * g.P, 5));
  float* Tdh = static_cast<float*>(cu::scratch(s, sizeof(float) * R * g.P, 6));
  float* T = static_cast<float*>(cu::scratch(s, sizeof(float) * R * g.P, 8));
  sg_norm_t_k<<<blocks(g), sgate::kThreads, 0, s>>>(g, z, lw, lb, mean, rstd, T);
  cu::check_launch(k);
  const float* Tg = k.in.size() > 8 ? k.in[8].f() : Tdh;  // the forward's g (keep = 1), else formed again
  if (k.in.size() <= 8) linear_forward_cuda(k, T, w, b, Tdh, R, g.P, g.P);
  sg_gate_bwd_k<<<blocks(g), sgate::kThreads, 0, s>>>(g, dy, z, Tg, dz, Tdg);
  cu::check_launch(k);
  linear_backward_cuda(k, Tdg, T, w, Tdh, dw, db, R, g.P, g.P);
  // The LayerNorm's partials in slot 4 (taken after the linear's last use of it), summed by column_sums (slot 0).
  float* partW = static_cast<float*>(cu::scratch(s, sizeof(float) * 2 * g.tiles() * g.C, 4));
  float* partB = partW + g.tiles() * g.C;
  sg_norm_bwd_k<<<blocks(g), sgate::kThreads, 0, s>>>(g, Tdh, z, lw, mean, rstd, dz, partW, partB);
  cu::check_launch(k);
  blas::column_sums(k, partW, g.tiles(), g.C, dlw, 0);
  blas::column_sums(k, partB, g.tiles(), g.C, dlb, 0);
}

void cuda_spatial_mix(KernelCtx& k) {
  const Shape& zs = k.in[0].shape;
  const cudaStream_t s = cu::stream(k);
  const float* z = k.in[0].f();
  for (int h = 0; h < 2; ++h) {
    const Geo g = mix_geo(k, zs, h);
    if (g.tiles() == 0) return;
    const float* b = k.in.size() == 5 ? k.in[3 + h].f() : nullptr;
    // a's half and the mixed half in scratch slots 6 and 5 (the linear's forward uses 1 and 7)
    float* T = static_cast<float*>(cu::scratch(s, sizeof(float) * g.G * g.C * g.P, 6));
    float* Tg = static_cast<float*>(cu::scratch(s, sizeof(float) * g.G * g.C * g.P, 5));
    sg_to_t_k<<<blocks(g), sgate::kThreads, 0, s>>>(g, z, zs[3], h * g.C, g.act, T);
    cu::check_launch(k);
    linear_forward_cuda(k, T, k.in[1 + h].f(), b, Tg, g.G * g.C, g.P, g.P);
    sg_from_t_k<<<blocks(g), sgate::kThreads, 0, s>>>(g, Tg, k.out[0].f(), zs[3], h * g.C, nullptr, 0);
    cu::check_launch(k);
  }
}

void cuda_spatial_mix_backward(KernelCtx& k) {
  const Shape& zs = k.in[1].shape;
  const cudaStream_t s = cu::stream(k);
  const float *dy = k.in[0].f(), *z = k.in[1].f();
  for (int h = 0; h < 2; ++h) {
    const Geo g = mix_geo(k, zs, h);
    float *dw = k.out[1 + 2 * h].f(), *db = k.out[2 + 2 * h].f();
    if (g.tiles() == 0) {  // the sums over no rows
      cu::check(cudaMemsetAsync(dw, 0, sizeof(float) * g.P * g.P, s), k.op, "memset");
      cu::check(cudaMemsetAsync(db, 0, sizeof(float) * g.P, s), k.op, "memset");
      continue;
    }
    const int64_t R = g.G * g.C;
    // slots 5, 6 and 8: the linear's backward uses 0-4 and 7 while these are live; a's half in the mixing layout
    // formed again from z (the forward's values)
    float* Tdg = static_cast<float*>(cu::scratch(s, sizeof(float) * R * g.P, 5));
    float* Tdh = static_cast<float*>(cu::scratch(s, sizeof(float) * R * g.P, 6));
    float* T = static_cast<float*>(cu::scratch(s, sizeof(float) * R * g.P, 8));
    sg_to_t_k<<<blocks(g), sgate::kThreads, 0, s>>>(g, z, zs[3], h * g.C, g.act, T);
    cu::check_launch(k);
    sg_to_t_k<<<blocks(g), sgate::kThreads, 0, s>>>(g, dy, zs[3], h * g.C, 0, Tdg);
    cu::check_launch(k);
    linear_backward_cuda(k, Tdg, T, k.in[2 + h].f(), Tdh, dw, db, R, g.P, g.P);
    sg_from_t_k<<<blocks(g), sgate::kThreads, 0, s>>>(g, Tdh, k.out[0].f(), zs[3], h * g.C, z, g.act);
    cu::check_launch(k);
  }
}

}  // namespace irc
