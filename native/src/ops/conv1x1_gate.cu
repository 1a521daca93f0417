// CUDA conv1x1_gate (the math in conv1x1_gate.cpp): y = z[:, :C] * z[:, C:] with z = x w + b over rows of x[rows, Ci],
// w [Ci, 2C] (row-major view of [1, 1, Ci, 2C]).
//
// With TF32 allowed (convolutions, as conv2d: IRCONSTYLE_TF32) and a shape the tensor-core kernel takes (Ci % 8 == 0,
// Ci <= 344, C % 16 == 0, w 32-byte aligned), one kernel computes each 64-row tile of z with WMMA (m16n16k8 TF32,
// FP32 accumulation) and applies the gate in its epilogue: z never reaches memory. Its phases are in
// pw_gate_tile.h, shared with a host model that the CPU tests run (IRCONSTYLE_EMULATE=pw_gate): the x tile (rounded
// to TF32) stays in shared memory; for each 16-column block j of y, each warp accumulates z1 and z2 of its 16 rows
// over Ci in steps of 8 (w's fragments from global memory: it is small and stays in L1 / L2), stores both 16x16
// tiles to its own staging, and its lanes add the bias and write y = z1 z2 (forward) or dz = (dy z2, dy z1)
// (backward).
// Otherwise: z = x w by cuBLAS (TF32 or FP32 as conv2d's 1x1 path) into scratch, then one elementwise pass.
// Backward: where the one-pass 1x1 backward takes it (pw_bwd.h: pw_backward_gate), one kernel forms z and dz per
// 16-row chunk from its staged input and goes on with dx, dw and db (dz never in memory). Else: dz [rows, 2C] in
// scratch (the same kernel, or the cuBLAS fallback, in place), then dx = dz w^T and
// dw = x^T dz in one pass over dz and x on tensor cores (pw_bwd.h) or by cuBLAS: conv2d's 1x1 backward on dz,
// without z or dz ever being activations. db: the kernel also
// writes the column sums of dz per warp (16 rows; lanes l and l + 16 of a column joined by one shuffle), which a
// fixed two-pass column sum finishes (the fallback sums dz itself): one pass fewer over dz.
#include <cstdint>
#include <cstdlib>

#include "../cuda/blas.cuh"
#include "../cuda/common.cuh"
#include "../cuda/wmma_tf32.cuh"
#include "layer_norm2d.h"
#include "pw_bwd.h"
#include "pw_gate_tile.h"
#include "pw_simt.h"
#include "switches.h"

namespace irc {
namespace {

using pwgate::kMaxCi;
using pwgate::kRows;
using pwgate::kThreads;

size_t smem_bytes(int Ci) { return sizeof(float) * pwgate::smem_floats(Ci); }

// MODE 0: out = y [rows, C]; MODE 1: out = dz [rows, 2C] from dy [rows, C], and dbp [4 gridDim.x, 2C] the column
// sums of dz per warp (its 16 rows); MODE 2: out = z [rows, 2C]. The phases are pwgate's (pw_gate_tile.h); W is
// DeviceWmma (TF32 products: convolutions) or DeviceWmma3 (split-TF32: Linear layers, MODE 2).
template <class W, int MODE>
__global__ void __launch_bounds__(kThreads) gate_wmma_k(const float* __restrict__ x, pwgate::LnArgs ln,
                                                        const float* __restrict__ w, const float* __restrict__ b,
                                                        const float* __restrict__ dy, float* __restrict__ out,
                                                        float* __restrict__ dbp, int64_t rows, int Ci, int C) {
  extern __shared__ __align__(128) float sm[];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * kRows;
  pwgate::load_x_tile<W>(threadIdx.x, x, rows, r0, Ci, sm, !ln.w);
  __syncthreads();
  if (ln.w) pwgate::ln_prologue<W>(warp, lane, sm, Ci, r0, rows, ln);  // the warp's own rows
  float* st = sm + kRows * pwgate::ldx_of(Ci) + warp * 512;  // this warp's two 16x16 staging tiles
  for (int j = 0; j < C; j += 16) {
    pwgate::z_tiles<W>(sm, Ci, warp, w, C, j, st);
    __syncwarp();
    float s1 = 0.f, s2 = 0.f;
    pwgate::epilogue<MODE>(lane, warp, j, r0, rows, C, st, b, dy, out, s1, s2);
    if (MODE == 1) {  // lanes l and l + 16 hold the same column
      s1 += __shfl_down_sync(0xffffffffu, s1, 16);
      s2 += __shfl_down_sync(0xffffffffu, s2, 16);
      if (lane < 16) pwgate::write_db_partials(lane, warp, blockIdx.x, j, C, s1, s2, dbp);
    }
    __syncwarp();
  }
}

// The cuBLAS path's elementwise pass over z [rows, 2C] (without the bias): MODE 0 y = (z1 + b1)(z2 + b2);
// MODE 1 z <- dz = (dy (z2 + b2), dy (z1 + b1)) in place.
template <int MODE>
__global__ void gate_rows_k(float* __restrict__ z, const float* __restrict__ b, const float* __restrict__ dy,
                            float* __restrict__ y, int64_t rows, int64_t C) {
  IRC_GRID_LOOP(e, rows * C) {
    const int64_t r = e / C, c = e - r * C;
    float* zr = z + r * 2 * C;
    float z1 = zr[c], z2 = zr[C + c];
    if (b) {
      z1 += b[c];
      z2 += b[C + c];
    }
    if (MODE == 0) {
      y[e] = z1 * z2;
    } else {
      const float g = dy[e];
      zr[c] = g * z2;
      zr[C + c] = g * z1;
    }
  }
}

bool aligned32(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 31u) == 0; }

// Above the default 48 KiB of shared memory a kernel must opt in: once per instantiation, to the largest size it
// may use. False (and the error cleared, so no later launch check reports it) where the device refuses.
template <int MODE, class W = DeviceWmma>
bool smem_ready(size_t bytes) {
  static const bool ok = [] {
    const cudaError_t e = cudaFuncSetAttribute(gate_wmma_k<W, MODE>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               static_cast<int>(smem_bytes(kMaxCi)));
    if (e != cudaSuccess) cudaGetLastError();
    return e == cudaSuccess;
  }();
  return bytes <= 48 * 1024 || ok;
}

// The tensor-core kernel below takes the 1x1 convs of the gate ops' forwards, the gate backward's dz pass and
// ln_conv1x1 only with IRCONSTYLE_PW_FWD=wmma; by default cuBLAS(Lt) and the elementwise kernels (as fast or faster
// on the H100: BENCHMARKS.md, ninth session).
bool pw_fwd_cublas() { return !env_is("IRCONSTYLE_PW_FWD", "wmma"); }

// Whether the tensor-core kernel takes this call (w's fragments are loaded from global memory: 32-byte aligned).
template <int MODE>
bool wmma_ok(int64_t Ci, int64_t C, const float* w) {
  return !pw_fwd_cublas() && cu::tf32_convolutions() && Ci > 0 && Ci % 8 == 0 && Ci <= kMaxCi && C > 0 &&
         C % 16 == 0 && aligned32(w) && smem_ready<MODE>(smem_bytes(static_cast<int>(Ci)));
}

int64_t wmma_blocks(int64_t rows) { return (rows + kRows - 1) / kRows; }

template <int MODE, class W = DeviceWmma>
void launch_wmma(const KernelCtx& k, const float* x, const pwgate::LnArgs& ln, const float* w, const float* b,
                 const float* dy, float* out, float* dbp, int64_t rows, int64_t Ci, int64_t C) {
  gate_wmma_k<W, MODE><<<static_cast<unsigned>(wmma_blocks(rows)), kThreads, smem_bytes(static_cast<int>(Ci)),
                      cu::stream(k)>>>(x, ln, w, b, dy, out, dbp, rows, static_cast<int>(Ci), static_cast<int>(C));
  cu::check_launch(k);
}

// z = x w (no bias) by cuBLAS into z [rows, 2C].
void gemm_z(const KernelCtx& k, const float* x, const float* w, float* z, int64_t rows, int64_t Ci, int64_t C2) {
  if (Ci == 0) {
    cu::check(cudaMemsetAsync(z, 0, sizeof(float) * rows * C2, cu::stream(k)), k.op, "memset z");
    return;
  }
  blas::gemm(k, blas::bind(k, cu::tf32_convolutions()), false, false, rows, C2, Ci, 1.f, x, Ci, w, C2, 0.f, z, C2);
}

struct Geo {
  int64_t rows, Ci, C;
};

Geo geo_of(const Shape& x, const Shape& w) {
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < x.size(); ++i) rows *= x[i];
  return {rows, w[2], w[3] / 2};
}

// h = LN(x) row by row (one warp per row; the statistics from ln.mean_in / rstd_in, or computed and written to
// ln.mean_out / rstd_out): the fallbacks' input when the tensor-core kernels cannot form h on the way in.
__global__ void ln_rows_k(const float* __restrict__ x, pwgate::LnArgs ln, float* __restrict__ h, int64_t rows,
                          int Ci) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = (static_cast<int64_t>(gridDim.x) * blockDim.x) >> 5;
  for (int64_t r = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) >> 5; r < rows; r += warps) {
    const float* xr = x + r * Ci;
    float m, rs;
    if (ln.mean_in) {
      m = ln.mean_in[r];
      rs = ln.rstd_in[r];
    } else {
      float sum = 0.f;
      for (int q = lane; q < Ci; q += 32) sum += xr[q];
      m = DeviceWmma::warp_sum(sum) / static_cast<float>(Ci);
      float v = 0.f;
      for (int q = lane; q < Ci; q += 32) {
        const float d = xr[q] - m;
        v += d * d;
      }
      rs = 1.f / sqrtf(DeviceWmma::warp_sum(v) / static_cast<float>(Ci) + ln.eps);
      if (lane == 0) {
        ln.mean_out[r] = m;
        ln.rstd_out[r] = rs;
      }
    }
    for (int q = lane; q < Ci; q += 32) h[r * Ci + q] = (xr[q] - m) * rs * ln.w[q] + ln.b[q];
  }
}

// h in scratch (slot 7 in the gate ops, 6 in ln_conv1x1; cuBLASLt's workspace has slot 9 to itself):
// the forwards by layer_norm2d's own kernels (statistics written), the backwards from the given statistics with
// that kernel's expression (the forward's h bit for bit), 4 channels per thread; the row kernel above where those
// do not take the shape (layer_norm2d's forward takes every shape: a LayerNorm kernel per C).
const float* materialize_h(const KernelCtx& k, const float* x, const pwgate::LnArgs& ln, const Geo& g, int slot = 7) {
  cudaStream_t st = cu::stream(k);
  float* h = static_cast<float*>(cu::scratch(st, sizeof(float) * g.rows * g.Ci, slot));
  if (!ln.mean_in) {
    // eps as the op's attribute (a double, as layer_norm2d's; ln.eps is its float)
    layer_norm2d_forward_cuda(k, x, ln.w, ln.b, h, ln.mean_out, ln.rstd_out, g.rows, g.Ci,
                              k.attrs.empty() ? ln.eps : k.af(0));
    return h;
  }
  if (layer_norm2d_apply_cuda(k, x, ln.w, ln.b, ln.mean_in, ln.rstd_in, h, g.rows, g.Ci)) return h;
  ln_rows_k<<<cu::blocks_for(g.rows * 32), 256, 0, st>>>(x, ln, h, g.rows, static_cast<int>(g.Ci));
  cu::check_launch(k);
  return h;
}

// y = gate(h w + b), h = x or LN(x) (ln: its statistics written).
void gate_forward(const KernelCtx& k, const Geo& g, const float* x, const pwgate::LnArgs* ln, const float* w,
                  const float* b, float* y) {
  if (g.rows == 0) return;
  if (wmma_ok<0>(g.Ci, g.C, w)) {
    launch_wmma<0>(k, x, ln ? *ln : pwgate::LnArgs{}, w, b, nullptr, y, nullptr, g.rows, g.Ci, g.C);
    return;
  }
  if (pw_simt_requested()) {  // the LayerNorm, the 1x1 and the gate in one pass over x
    pwsimt::Args p = pw_simt_args(x, g.rows, g.Ci, w, 2 * g.C, false, ln, b);
    p.y = y;
    if (pw_simt_cuda(k, pwsimt::kGate, p)) return;
  }
  const float* h = ln ? materialize_h(k, x, *ln, g) : x;
  cudaStream_t st = cu::stream(k);
  float* z = static_cast<float*>(cu::scratch(st, sizeof(float) * g.rows * 2 * g.C, 6));
  gemm_z(k, h, w, z, g.rows, g.Ci, 2 * g.C);
  gate_rows_k<0><<<cu::blocks_for(g.rows * g.C), 256, 0, st>>>(z, b, nullptr, y, g.rows, g.C);
  cu::check_launch(k);
}

// The SIMT kernel's gate backward: z = h w + b formed again (h = LN(x) from ln's statistics, written to scratch slot
// 7, or x itself), dz = (dy z2, dy z1) into dz and its column sums into db (per-block sums in slot 5, then summed in
// order). Returns h, or nullptr having enqueued nothing when the kernel does not take the shape.
const float* simt_gate_dz(const KernelCtx& k, const Geo& g, const float* dy, const float* x, const pwgate::LnArgs* ln,
                          const float* w, const float* b, float* dz, float* db) {
  const int64_t C2 = 2 * g.C;
  pwsimt::Args p = pw_simt_args(x, g.rows, g.Ci, w, C2, false, ln, b);
  const int64_t grid = pw_simt_blocks_bound(pwsimt::kGateBwd, p);
  if (grid <= 0) return nullptr;
  cudaStream_t st = cu::stream(k);
  p.r = dy;
  p.y = dz;
  p.dbp = static_cast<float*>(cu::scratch(st, sizeof(float) * grid * C2, 5));
  if (ln) p.h_out = static_cast<float*>(cu::scratch(st, sizeof(float) * g.rows * g.Ci, 7));
  if (pw_simt_cuda(k, pwsimt::kGateBwd, p) != grid) return nullptr;  // (the same computation: cannot differ)
  blas::column_sums(k, p.dbp, grid, C2, db, 4);
  return ln ? p.h_out : x;
}

// IRCONSTYLE_PW_SIMT=1: dh = dy w^T (w [Ci, Co]; a Linear's [Co, Ci]: dy w) by the SIMT kernel, and with db dy's
// column sums; false when not asked for or not taken (nothing enqueued).
bool simt_dh(const KernelCtx& k, const float* dy, int64_t rows, int64_t Ci, int64_t Co, const float* w, bool lin,
             float* dh, float* db = nullptr) {
  if (!pw_simt_requested()) return false;
  pwsimt::Args p = pw_simt_dh_args(dy, rows, Ci, Co, w, lin);
  p.y = dh;
  return pw_simt_run(k, pwsimt::kPlain, p, db);
}

// IRCONSTYLE_PW_SIMT=1 with a LayerNorm before the 1x1: dh = dy w^T and the LayerNorm's backward in one pass (kLnBwd):
// f.dx (+ f.acc), and f.dlw, f.dlb summed in order from the kernel's per-block sums; with db, dy's column sums too;
// false when not asked for, kept apart (IRCONSTYLE_LN_FOLD=0) or not taken (nothing enqueued).
bool simt_dh_ln(const KernelCtx& k, const float* dy, int64_t rows, int64_t Ci, int64_t Co, const float* w, bool lin,
                const float* x, const pwgate::LnArgs& ln, const LnFoldOut& f, float* db = nullptr) {
  if (!pw_simt_requested() || env_is("IRCONSTYLE_LN_FOLD", "0")) return false;  // (=0: the LayerNorm's apart)
  pwsimt::Args p = pw_simt_dh_ln_args(dy, rows, Ci, Co, w, lin, x, ln, f.acc, f.dx);
  int64_t grid = 0;
  if (!pw_simt_run(k, pwsimt::kLnBwd, p, db, &grid)) return false;
  blas::column_sums(k, p.dbp, grid, Ci, f.dlw, 4);
  blas::column_sums(k, p.dbp + grid * Ci, grid, Ci, f.dlb, 4);
  return true;
}

// dx (dh with ln: the gradient of h = LN(x), from ln's given statistics), dw, db. With fold (and ln): the LayerNorm's
// backward too, in the one-pass kernel, where it can (true; fold's dx, dlw, dlb written, dx untouched); false: dh in dx.
bool gate_backward(const KernelCtx& k, const Geo& g, const float* dy, const float* x, const pwgate::LnArgs* ln,
                   const float* w, const float* b, float* dx, float* dw, float* db, const LnFoldOut* fold = nullptr) {
  const int64_t C2 = 2 * g.C;
  cudaStream_t st = cu::stream(k);
  if (g.rows == 0) {
    cu::check(cudaMemsetAsync(dw, 0, sizeof(float) * g.Ci * C2, st), k.op, "memset dw");
    cu::check(cudaMemsetAsync(db, 0, sizeof(float) * C2, st), k.op, "memset db");
    return false;
  }
  // one pass: dz formed per chunk inside the one-pass 1x1 backward (and the LayerNorm's backward folded in)
  const pwgate::LnArgs none{};
  if (ln && fold && pw_backward_gate(k, x, *ln, fold, dy, w, b, nullptr, dw, db, g.rows, g.Ci, g.C)) return true;
  if (pw_backward_gate(k, x, ln ? *ln : none, nullptr, dy, w, b, dx, dw, db, g.rows, g.Ci, g.C)) return false;
  float* dz = static_cast<float*>(cu::scratch(st, sizeof(float) * g.rows * C2, 6));
  const float* h = nullptr;  // the conv's input, when it has to exist in memory
  if (wmma_ok<1>(g.Ci, g.C, w)) {  // dz and its per-warp column sums, then db from those
    const int64_t parts = 4 * wmma_blocks(g.rows);
    float* dbp = static_cast<float*>(cu::scratch(st, sizeof(float) * parts * C2, 5));
    launch_wmma<1>(k, x, ln ? *ln : pwgate::LnArgs{}, w, b, dy, dz, dbp, g.rows, g.Ci, g.C);
    blas::column_sums(k, dbp, parts, C2, db, 4);
    // dx and dw in one pass over dz (and x, normalised on the way in; the LayerNorm's backward too with fold)
    if (ln && fold && pw_backward_ln_fold(k, x, *ln, *fold, dz, w, dw, nullptr, g.rows, g.Ci, C2)) return true;
    if (ln ? pw_backward_ln(k, x, *ln, dz, w, dx, dw, nullptr, g.rows, g.Ci, C2)
           : pw_backward(k, x, dz, w, dx, dw, nullptr, g.rows, g.Ci, C2))
      return false;
    h = ln ? materialize_h(k, x, *ln, g) : x;
  } else if (pw_simt_requested() && (h = simt_gate_dz(k, g, dy, x, ln, w, b, dz, db))) {  // z formed again, dz, h, db
    if (pw_backward(k, h, dz, w, dx, dw, nullptr, g.rows, g.Ci, C2)) return false;
  } else {
    h = ln ? materialize_h(k, x, *ln, g) : x;
    gemm_z(k, h, w, dz, g.rows, g.Ci, C2);
    gate_rows_k<1><<<cu::blocks_for(g.rows * g.C), 256, 0, st>>>(dz, b, dy, nullptr, g.rows, g.C);
    cu::check_launch(k);
    blas::column_sums(k, dz, g.rows, C2, db, 4);
    if (pw_backward(k, h, dz, w, dx, dw, nullptr, g.rows, g.Ci, C2)) return false;
  }
  const gpu::Cublas& cb = blas::bind(k, cu::tf32_convolutions());
  bool folded = false;
  if (g.Ci > 0) {
    folded = ln && fold && simt_dh_ln(k, dz, g.rows, g.Ci, C2, w, false, x, *ln, *fold);
    if (!folded && !simt_dh(k, dz, g.rows, g.Ci, C2, w, false, dx))
      blas::gemm(k, cb, false, true, g.rows, g.Ci, C2, 1.f, dz, C2, w, C2, 0.f, dx, g.Ci);  // dx = dz w^T
    blas::gemm(k, cb, true, false, g.Ci, C2, g.rows, 1.f, h, g.Ci, dz, C2, 0.f, dw, C2);  // dw = h^T dz
  }
  return folded;
}

pwgate::LnArgs ln_args(const KernelCtx& k, size_t wi, size_t bi) {
  pwgate::LnArgs ln;
  ln.w = k.in[wi].f();
  ln.b = k.in[bi].f();
  ln.eps = k.attrs.empty() ? 0.f : static_cast<float>(k.af(0));  // the backwards use the given statistics
  return ln;
}

// dh, the gradient of the LayerNorm's output h, between the conv's backward and the LayerNorm's (scratch slot 1).
float* dh_scratch(const KernelCtx& k, int64_t rows, int64_t Ci) {
  return static_cast<float*>(cu::scratch(cu::stream(k), sizeof(float) * (rows * Ci > 0 ? rows * Ci : 1), 1));
}

// Both LayerNorm + 1x1 backwards end with layer_norm2d's: dx (+ acc), dlw, dlb (outputs 0, 3, 4) from dh.
void ln_input_grads(const KernelCtx& k, const float* dh, int64_t rows, int64_t Ci) {
  layer_norm2d_backward_cuda(k, dh, k.in[1].f(), k.in[2].f(), k.in[5].f(), k.in[6].f(), ln_bwd_acc(k), k.out[0].f(),
                             k.out[3].f(), k.out[4].f(), rows, Ci);
}

}  // namespace

void cuda_conv1x1_gate(KernelCtx& k) {
  gate_forward(k, geo_of(k.in[0].shape, k.in[1].shape), k.in[0].f(), nullptr, k.in[1].f(),
               k.in.size() > 2 ? k.in[2].f() : nullptr, k.out[0].f());
}

void cuda_conv1x1_gate_backward(KernelCtx& k) {
  gate_backward(k, geo_of(k.in[1].shape, k.in[2].shape), k.in[0].f(), k.in[1].f(), nullptr, k.in[2].f(),
                k.in.size() > 3 ? k.in[3].f() : nullptr, k.out[0].f(), k.out[1].f(), k.out[2].f());
}

void cuda_ln_conv1x1_gate(KernelCtx& k) {
  pwgate::LnArgs ln = ln_args(k, 1, 2);
  ln.mean_out = k.out[1].f();
  ln.rstd_out = k.out[2].f();
  gate_forward(k, geo_of(k.in[0].shape, k.in[3].shape), k.in[0].f(), &ln, k.in[3].f(),
               k.in.size() > 4 ? k.in[4].f() : nullptr, k.out[0].f());
}

void cuda_ln_conv1x1_gate_backward(KernelCtx& k) {
  pwgate::LnArgs ln = ln_args(k, 2, 3);
  ln.mean_in = k.in[5].f();
  ln.rstd_in = k.in[6].f();
  const Geo g = geo_of(k.in[1].shape, k.in[4].shape);
  const float* b = ln_bwd_gate_bias(k);
  float* dh = dh_scratch(k, g.rows, g.Ci);
  const LnFoldOut fold = ln_bwd_fold(k);
  if (!gate_backward(k, g, k.in[0].f(), k.in[1].f(), &ln, k.in[4].f(), b, dh, k.out[1].f(), k.out[2].f(), &fold))
    ln_input_grads(k, dh, g.rows, g.Ci);
}

// ln_conv1x1: the gate kernel in MODE 2 (z itself, both halves of 2C = Co outputs) with the LayerNorm formed on the
// way in (IRCONSTYLE_PW_FWD=wmma); by default h in memory (materialize_h) and a cuBLAS(Lt) GEMM with the bias.
void cuda_ln_conv1x1(KernelCtx& k) {
  const bool lin = k.in[3].shape.size() == 2;  // a Linear's weight [Co, Ci]: FP32-accurate, as the linear op
  const int64_t Ci = k.in[0].shape.back(), Co = lin ? k.in[3].shape[0] : k.in[3].shape[3], rows = k.out[1].n;
  const float *x = k.in[0].f(), *w = k.in[3].f(), *b = k.in.size() > 4 ? k.in[4].f() : nullptr;
  float* y = k.out[0].f();
  if (rows == 0) return;
  pwgate::LnArgs ln = ln_args(k, 1, 2);
  ln.mean_out = k.out[1].f();
  ln.rstd_out = k.out[2].f();
  // IRCONSTYLE_PW_SIMT=1: the LayerNorm and the 1x1 (or Linear, FP32 either way) in one pass over x
  const auto simt = [&] {
    if (!pw_simt_requested()) return false;
    pwsimt::Args p = pw_simt_args(x, rows, Ci, w, Co, lin, &ln, b);
    p.y = y;
    return pw_simt_cuda(k, pwsimt::kPlain, p) > 0;
  };
  if (lin) {  // the split-TF32 kernel with the LayerNorm formed in it; else h, then the linear op's GEMMs
    if (linear_forward(k, x, w, b, nullptr, y, rows, Ci, Co, &ln) || simt()) return;
    const float* h = materialize_h(k, x, ln, Geo{rows, Ci, 0}, 6);
    if (b && blas::gemm_bias(k, false, false, true, rows, Co, Ci, h, Ci, w, Ci, b, y, Co)) return;
    const gpu::Cublas& cb = blas::bind(k, false);
    if (b) blas::fill_rows(k, y, rows, Co, b);
    blas::gemm(k, cb, false, true, rows, Co, Ci, 1.f, h, Ci, w, Ci, b ? 1.f : 0.f, y, Co);
    return;
  }
  if (Co % 2 == 0 && wmma_ok<2>(Ci, Co / 2, w)) {
    launch_wmma<2>(k, x, ln, w, b, nullptr, y, nullptr, rows, Ci, Co / 2);
    return;
  }
  if (simt()) return;
  const float* h = materialize_h(k, x, ln, Geo{rows, Ci, 0}, 6);
  const bool tf32 = cu::tf32_convolutions();
  if (b && blas::gemm_bias(k, tf32, false, false, rows, Co, Ci, h, Ci, w, Co, b, y, Co)) return;
  const gpu::Cublas& cb = blas::bind(k, tf32);
  if (b) blas::fill_rows(k, y, rows, Co, b);
  blas::gemm(k, cb, false, false, rows, Co, Ci, 1.f, h, Ci, w, Co, b ? 1.f : 0.f, y, Co);
}

// The one-pass backward with x normalised while staging; else h by the row kernel and conv2d's cuBLAS passes.
void cuda_ln_conv1x1_backward(KernelCtx& k) {
  const bool lin = k.in[4].shape.size() == 2;  // a Linear's weight [Co, Ci]
  const int64_t Ci = k.in[1].shape.back(), Co = lin ? k.in[4].shape[0] : k.in[4].shape[3], rows = k.in[5].n;
  const float *dy = k.in[0].f(), *x = k.in[1].f(), *w = k.in[4].f();
  float *dw = k.out[1].f(), *db = k.out[2].f();
  cudaStream_t st = cu::stream(k);
  if (rows == 0) {
    cu::check(cudaMemsetAsync(dw, 0, sizeof(float) * Ci * Co, st), k.op, "memset dw");
    cu::check(cudaMemsetAsync(db, 0, sizeof(float) * Co, st), k.op, "memset db");
    ln_input_grads(k, nullptr, 0, Ci);
    return;
  }
  pwgate::LnArgs ln = ln_args(k, 2, 3);
  ln.mean_in = k.in[5].f();
  ln.rstd_in = k.in[6].f();
  if (lin) {  // the split-TF32 one-pass kernel (the LayerNorm folded in, or dh), else the linear op's FP32 passes
    const LnFoldOut fold = ln_bwd_fold(k);
    if (pw_backward_linear(k, x, dy, w, nullptr, dw, db, rows, Ci, Co, &ln, &fold)) return;
    float* dh = dh_scratch(k, rows, Ci);
    bool folded = false;
    if (!pw_backward_linear(k, x, dy, w, dh, dw, db, rows, Ci, Co, &ln)) {
      const float* h = materialize_h(k, x, ln, Geo{rows, Ci, 0}, 6);
      const gpu::Cublas& cb = blas::bind(k, false);
      // dh and db (dy's column sums) in the SIMT pass, with the LayerNorm's backward where it folds
      folded = simt_dh_ln(k, dy, rows, Ci, Co, w, true, x, ln, fold, db);
      const bool simt = folded || simt_dh(k, dy, rows, Ci, Co, w, true, dh, db);
      if (!simt) blas::gemm(k, cb, false, false, rows, Ci, Co, 1.f, dy, Co, w, Ci, 0.f, dh, Ci);  // dh = dy w
      blas::gemm(k, cb, true, false, Co, Ci, rows, 1.f, dy, Co, h, Ci, 0.f, dw, Ci);  // dw = dy^T h
      if (!simt) blas::column_sums(k, dy, rows, Co, db, 4);
    }
    if (!folded) ln_input_grads(k, dh, rows, Ci);
    return;
  }
  const LnFoldOut fold = ln_bwd_fold(k);
  if (pw_backward_ln_fold(k, x, ln, fold, dy, w, dw, db, rows, Ci, Co)) return;
  float* dh = dh_scratch(k, rows, Ci);
  bool folded = false;
  if (!pw_backward_ln(k, x, ln, dy, w, dh, dw, db, rows, Ci, Co)) {
    const float* h = materialize_h(k, x, ln, Geo{rows, Ci, 0}, 6);
    const gpu::Cublas& cb = blas::bind(k, cu::tf32_convolutions());
    folded = simt_dh_ln(k, dy, rows, Ci, Co, w, false, x, ln, fold, db);  // (as the Linear's above)
    const bool simt = folded || simt_dh(k, dy, rows, Ci, Co, w, false, dh, db);
    if (!simt) blas::gemm(k, cb, false, true, rows, Ci, Co, 1.f, dy, Co, w, Co, 0.f, dh, Ci);  // dh = dy w^T
    blas::gemm(k, cb, true, false, Ci, Co, rows, 1.f, h, Ci, dy, Co, 0.f, dw, Co);  // dw = h^T dy
    if (!simt) blas::column_sums(k, dy, rows, Co, db, 4);
  }
  if (!folded) ln_input_grads(k, dh, rows, Ci);
}

namespace {
__global__ void transpose_k(const float* __restrict__ w, float* __restrict__ wt, int64_t O, int64_t I) {
  IRC_GRID_LOOP(e, O * I) {
    const int64_t i = e / O, o = e - i * O;
    wt[e] = w[o * I + i];  // wt [I, O] = w^T
  }
}
}  // namespace

bool linear_forward_takes(int64_t I, int64_t O) {
  return env_is("IRCONSTYLE_LINEAR_FWD", "split-tf32") && I > 0 && I % 8 == 0 && I <= kMaxCi && O > 0 && O % 32 == 0 &&
         smem_ready<2, DeviceWmma3>(smem_bytes(static_cast<int>(I)));
}

bool linear_forward(const KernelCtx& k, const float* x, const float* w, const float* b, const float* r, float* y,
                    int64_t rows, int64_t I, int64_t O, const pwgate::LnArgs* ln) {
  if (rows < kLinearMinRows || !linear_forward_takes(I, O) || (r && !smem_ready<3, DeviceWmma3>(smem_bytes(static_cast<int>(I)))))
    return false;
  cudaStream_t st = cu::stream(k);
  float* wt = static_cast<float*>(cu::scratch(st, sizeof(float) * I * O, 1));
  transpose_k<<<cu::blocks_for(I * O), 256, 0, st>>>(w, wt, O, I);
  cu::check_launch(k);
  const pwgate::LnArgs l = ln ? *ln : pwgate::LnArgs{};
  if (r) launch_wmma<3, DeviceWmma3>(k, x, l, wt, b, r, y, nullptr, rows, I, O / 2);
  else launch_wmma<2, DeviceWmma3>(k, x, l, wt, b, nullptr, y, nullptr, rows, I, O / 2);
  return true;
}

}  // namespace irc
