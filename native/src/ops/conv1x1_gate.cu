// CUDA conv1x1_gate (the math in conv1x1_gate.cpp): y = z[:, :C] * z[:, C:] with z = x w + b over rows of x[rows, Ci],
// w [Ci, 2C] (row-major view of [1, 1, Ci, 2C]), and the LayerNorm + 1x1 ops (ln_conv1x1_gate, ln_conv1x1).
//
// Forward: z = h w by cuBLAS(Lt) (TF32 or FP32 as conv2d's 1x1 path; h = x, or LN(x) formed in scratch by
// layer_norm2d's kernels) into scratch, then one elementwise pass for the bias and the gate; with
// IRCONSTYLE_PW_SIMT=1 the SIMT kernel (pw_simt.h) does the LayerNorm, the 1x1 and the gate in one pass over x.
// Backward: z formed again and dz = (dy z2, dy z1) [rows, 2C] in scratch (by the GEMM and the elementwise pass, or
// the SIMT kernel, which also writes h and dz's per-block column sums), db as dz's column sums, then dx = dz w^T
// (the SIMT kernel, with the LayerNorm's backward in the same pass where it folds, or cuBLAS) and dw = h^T dz by
// cuBLAS: neither z nor dz is ever an activation.
#include <cstdint>

#include "../cuda/blas.cuh"
#include "../cuda/common.cuh"
#include "layer_norm2d.h"
#include "ln_args.h"
#include "pw_simt.h"
#include "switches.h"

namespace irc {
namespace {

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

// h = LN(x) row by row from the given statistics (one warp per row), for the shapes layer_norm2d_apply_cuda does not
// take.
__global__ void ln_rows_k(const float* __restrict__ x, LnArgs ln, float* __restrict__ h, int64_t rows, int Ci) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = (static_cast<int64_t>(gridDim.x) * blockDim.x) >> 5;
  for (int64_t r = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) >> 5; r < rows; r += warps) {
    const float* xr = x + r * Ci;
    const float m = ln.mean_in[r], rs = ln.rstd_in[r];
    for (int q = lane; q < Ci; q += 32) h[r * Ci + q] = (xr[q] - m) * rs * ln.w[q] + ln.b[q];
  }
}

// h in scratch (slot 7 in the gate ops, 6 in ln_conv1x1; cuBLASLt's workspace has slot 9 to itself):
// the forwards by layer_norm2d's own kernels (statistics written), the backwards from the given statistics with
// that kernel's expression (the forward's h bit for bit), 4 channels per thread; the row kernel above where those
// do not take the shape (layer_norm2d's forward takes every shape: a LayerNorm kernel per C).
const float* materialize_h(const KernelCtx& k, const float* x, const LnArgs& ln, const Geo& g, int slot = 7) {
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
void gate_forward(const KernelCtx& k, const Geo& g, const float* x, const LnArgs* ln, const float* w,
                  const float* b, float* y) {
  if (g.rows == 0) return;
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
const float* simt_gate_dz(const KernelCtx& k, const Geo& g, const float* dy, const float* x, const LnArgs* ln,
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
                const float* x, const LnArgs& ln, const LnFoldOut& f, float* db = nullptr) {
  if (!pw_simt_requested() || env_is("IRCONSTYLE_LN_FOLD", "0")) return false;  // (=0: the LayerNorm's apart)
  pwsimt::Args p = pw_simt_dh_ln_args(dy, rows, Ci, Co, w, lin, x, ln, f.acc, f.dx);
  int64_t grid = 0;
  if (!pw_simt_run(k, pwsimt::kLnBwd, p, db, &grid)) return false;
  blas::column_sums(k, p.dbp, grid, Ci, f.dlw, 4);
  blas::column_sums(k, p.dbp + grid * Ci, grid, Ci, f.dlb, 4);
  return true;
}

// dx (dh with ln: the gradient of h = LN(x), from ln's given statistics), dw, db. With fold (and ln): the LayerNorm's
// backward too, in the SIMT kernel's dh pass, where it takes it (true; fold's dx, dlw, dlb written, dx untouched);
// false: dh in dx.
bool gate_backward(const KernelCtx& k, const Geo& g, const float* dy, const float* x, const LnArgs* ln,
                   const float* w, const float* b, float* dx, float* dw, float* db, const LnFoldOut* fold = nullptr) {
  const int64_t C2 = 2 * g.C;
  cudaStream_t st = cu::stream(k);
  if (g.rows == 0) {
    cu::check(cudaMemsetAsync(dw, 0, sizeof(float) * g.Ci * C2, st), k.op, "memset dw");
    cu::check(cudaMemsetAsync(db, 0, sizeof(float) * C2, st), k.op, "memset db");
    return false;
  }
  float* dz = static_cast<float*>(cu::scratch(st, sizeof(float) * g.rows * C2, 6));
  const float* h = nullptr;  // the conv's input, when it has to exist in memory
  // z formed again, dz, h and db: by the SIMT kernel, else by the GEMM, the elementwise pass and dz's column sums
  if (!pw_simt_requested() || !(h = simt_gate_dz(k, g, dy, x, ln, w, b, dz, db))) {
    h = ln ? materialize_h(k, x, *ln, g) : x;
    gemm_z(k, h, w, dz, g.rows, g.Ci, C2);
    gate_rows_k<1><<<cu::blocks_for(g.rows * g.C), 256, 0, st>>>(dz, b, dy, nullptr, g.rows, g.C);
    cu::check_launch(k);
    blas::column_sums(k, dz, g.rows, C2, db, 4);
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

LnArgs ln_args(const KernelCtx& k, size_t wi, size_t bi) {
  LnArgs ln;
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
  LnArgs ln = ln_args(k, 1, 2);
  ln.mean_out = k.out[1].f();
  ln.rstd_out = k.out[2].f();
  gate_forward(k, geo_of(k.in[0].shape, k.in[3].shape), k.in[0].f(), &ln, k.in[3].f(),
               k.in.size() > 4 ? k.in[4].f() : nullptr, k.out[0].f());
}

void cuda_ln_conv1x1_gate_backward(KernelCtx& k) {
  LnArgs ln = ln_args(k, 2, 3);
  ln.mean_in = k.in[5].f();
  ln.rstd_in = k.in[6].f();
  const Geo g = geo_of(k.in[1].shape, k.in[4].shape);
  const float* b = ln_bwd_gate_bias(k);
  float* dh = dh_scratch(k, g.rows, g.Ci);
  const LnFoldOut fold = ln_bwd_fold(k);
  if (!gate_backward(k, g, k.in[0].f(), k.in[1].f(), &ln, k.in[4].f(), b, dh, k.out[1].f(), k.out[2].f(), &fold))
    ln_input_grads(k, dh, g.rows, g.Ci);
}

// ln_conv1x1: h in memory (materialize_h) and a cuBLAS(Lt) GEMM with the bias; with IRCONSTYLE_PW_SIMT=1 the SIMT
// kernel forms h on the way in.
void cuda_ln_conv1x1(KernelCtx& k) {
  const bool lin = k.in[3].shape.size() == 2;  // a Linear's weight [Co, Ci]: FP32-accurate, as the linear op
  const int64_t Ci = k.in[0].shape.back(), Co = lin ? k.in[3].shape[0] : k.in[3].shape[3], rows = k.out[1].n;
  const float *x = k.in[0].f(), *w = k.in[3].f(), *b = k.in.size() > 4 ? k.in[4].f() : nullptr;
  float* y = k.out[0].f();
  if (rows == 0) return;
  LnArgs ln = ln_args(k, 1, 2);
  ln.mean_out = k.out[1].f();
  ln.rstd_out = k.out[2].f();
  if (pw_simt_requested()) {  // the LayerNorm and the 1x1 (or Linear, FP32 either way) in one pass over x
    pwsimt::Args p = pw_simt_args(x, rows, Ci, w, Co, lin, &ln, b);
    p.y = y;
    if (pw_simt_cuda(k, pwsimt::kPlain, p) > 0) return;
  }
  // h, then the 1x1's GEMM (TF32 as conv2d's) or the linear op's (w^T, FP32)
  const float* h = materialize_h(k, x, ln, Geo{rows, Ci, 0}, 6);
  const bool tf32 = !lin && cu::tf32_convolutions();
  const int64_t ldw = lin ? Ci : Co;
  if (b && blas::gemm_bias(k, tf32, false, lin, rows, Co, Ci, h, Ci, w, ldw, b, y, Co)) return;
  const gpu::Cublas& cb = blas::bind(k, tf32);
  if (b) blas::fill_rows(k, y, rows, Co, b);
  blas::gemm(k, cb, false, lin, rows, Co, Ci, 1.f, h, Ci, w, ldw, b ? 1.f : 0.f, y, Co);
}

// h formed again from the given statistics (materialize_h), then the 1x1's (or Linear's) backward GEMMs and dy's
// column sums; with IRCONSTYLE_PW_SIMT=1 dh (and db) by the SIMT kernel, the LayerNorm's backward in the same pass
// where it folds.
void cuda_ln_conv1x1_backward(KernelCtx& k) {
  const bool lin = k.in[4].shape.size() == 2;  // a Linear's weight [Co, Ci]: FP32, as PyTorch's matmul
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
  LnArgs ln = ln_args(k, 2, 3);
  ln.mean_in = k.in[5].f();
  ln.rstd_in = k.in[6].f();
  const LnFoldOut fold = ln_bwd_fold(k);
  float* dh = dh_scratch(k, rows, Ci);
  const float* h = materialize_h(k, x, ln, Geo{rows, Ci, 0}, 6);
  const gpu::Cublas& cb = blas::bind(k, !lin && cu::tf32_convolutions());
  // dh and db (dy's column sums) in the SIMT pass, with the LayerNorm's backward where it folds
  const bool folded = simt_dh_ln(k, dy, rows, Ci, Co, w, lin, x, ln, fold, db);
  const bool simt = folded || simt_dh(k, dy, rows, Ci, Co, w, lin, dh, db);
  if (lin) {  // w [Co, Ci]
    if (!simt) blas::gemm(k, cb, false, false, rows, Ci, Co, 1.f, dy, Co, w, Ci, 0.f, dh, Ci);  // dh = dy w
    blas::gemm(k, cb, true, false, Co, Ci, rows, 1.f, dy, Co, h, Ci, 0.f, dw, Ci);            // dw = dy^T h
  } else {  // w [Ci, Co]
    if (!simt) blas::gemm(k, cb, false, true, rows, Ci, Co, 1.f, dy, Co, w, Co, 0.f, dh, Ci);  // dh = dy w^T
    blas::gemm(k, cb, true, false, Ci, Co, rows, 1.f, h, Ci, dy, Co, 0.f, dw, Co);            // dw = h^T dy
  }
  if (!simt) blas::column_sums(k, dy, rows, Co, db, 4);
  if (!folded) ln_input_grads(k, dh, rows, Ci);
}

}  // namespace irc
