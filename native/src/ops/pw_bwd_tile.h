// The phases of the pointwise-conv backward tensor-core kernel (pw_bwd_k in pw_bwd.cu): for y = x w + b over rows,
// x [rows, Ci], w [Ci, Co], dy [rows, Co], in one pass over dy and x:
//   dx = dy w^T [rows, Ci],   dw partials = x^T dy per block [Ci, Co],   db partials = column sums of dy per block,
// instead of cuBLAS's three passes (dx GEMM, dw GEMM, column sums). Written once for the device and the host: the
// CUDA kernel runs the phases with nvcuda::wmma, the CPU backend with the host model of the WMMA calls (HostWmma of
// pw_gate_tile.h) when IRCONSTYLE_EMULATE=pw_bwd or pw_bwd_fp32 (conv2d.cpp), so the CPU tests check the kernel's
// arithmetic without a GPU.
//
// Channel counts that are not multiples of 16 are padded with zeros to Cip, Cop (multiples of 16): the tiles and the
// shared-memory rows use the padded counts; the global reads and writes of x, dy and dx the true Ci, Co; the caller
// passes w padded to [Cip, Cop] and takes dw from the padded partials.
// A block of 256 threads (8 warps) owns rows [rb0, rb1) and walks them in chunks of 16:
//   stage (every thread): the chunk's x and dy rows into shared memory xs [16][Cip + 4], dys [16][Cop + 4], rounded to
//     TF32, zeros past the end; pass 0 also sums dy (unrounded) per column into the thread's db accumulators
//     (columns tid, tid + 256, tid + 512);
//   dx_tiles (pass 0, every warp): for the 16-column tiles ti = warp, warp + 8, .. of dx: dy[16 rows] w^T over Cop in
//     steps of 8 (w^T read as a column-major matrix from global memory), staged in the warp's 16x16 tile and copied
//     out by its lanes for the rows and columns that exist (copy_dx);
//   dw_tiles (every warp): the block's dw is Ti x To tiles of 16x16 (Ti = Cip / 16, To = Cop / 16); pass p takes tiles
//     t = 72 p + warp + 8 s (s < 9), accumulated over the chunks in registers: x[16 rows]^T (column-major from xs)
//     times dy[16 rows] (from dys), two steps of 8 rows;
//   after the block's rows: write_dw_partials stores the pass's tiles to dwp [block][Cip][Cop]; pass 0 writes the db
//     accumulators to dbp [block][Co].
// The partials are summed in a fixed order afterwards (deterministic).
// FOLD (pw_backward_ln_fold: the conv's input is a LayerNorm's output h = LN(x)): the LayerNorm's backward follows in
// the same pass instead of dh = dx going to memory and a LayerNorm kernel reading it back. Pass 0 stores each chunk's
// dh tiles into shared memory dhs [16][Cip + 4]; after a barrier each warp turns its two rows into
// dx = rstd (g - mean(g) - xh mean(g xh)) (+ acc, x's pending gradient), g = dh lw, xh = (x - mean) rstd (x read
// again, from cache), and each thread adds its columns' dlw += dh xh and dlb += dh over the chunk into the block's
// sums in shared memory, written as partials [block][Ci] at the end.
#pragma once
#include <cstdint>

#include "pw_gate_tile.h"
#include "switches.h"

namespace irc {
namespace pwbwd {

constexpr int kThreads = 256, kWarps = 8, kChunk = 16, kTilesPerWarp = 9;
constexpr int kTilesPerPass = kWarps * kTilesPerWarp;
constexpr int kMaxCo = 768;  // db accumulators: 3 columns per thread

IRC_HD int ldx_of(int Ci) { return Ci + 4; }
IRC_HD int ldd_of(int Co) { return Co + 4; }
IRC_HD int ldh_of(int Ci) { return Ci + 4; }
// xs, dys, the warps' staging; with FOLD also dhs and the block's dlw / dlb sums.
inline size_t smem_floats(int Ci, int Co, bool fold = false) {
  return static_cast<size_t>(kChunk) * (ldx_of(Ci) + ldd_of(Co)) + static_cast<size_t>(kWarps) * 256 +
         (fold ? static_cast<size_t>(kChunk) * ldh_of(Ci) + 2 * static_cast<size_t>(Ci) : 0);
}

// FOLD's outputs: dx [rows, Ci] (+ acc [rows, Ci] when given), and the dlw / dlb partials [blocks][Ci] each.
struct LnFold {
  const float* acc = nullptr;
  float *dx = nullptr, *dlwp = nullptr, *dlbp = nullptr;
};
// GATE's inputs: the bias of z (may be null) and the gate's width C (z has 2C channels).
struct GateIn {
  const float* b = nullptr;
  int C = 0;
};
// Rows per block, a whole number of chunks: about two blocks per SM of an H100 (264 blocks), but no more blocks than
// keep the dW partials (blocks x Ci x Co) within an eighth of the inputs' size (few rows, wide channels), unless that
// leaves fewer than 32 blocks (small tensors: their partials are small in absolute terms).
inline int64_t rows_per_block(int64_t rows, int64_t Ci, int64_t Co) {
  int64_t blocks = rows * (Ci + Co) / (8 * Ci * Co);
  const int64_t floor = rows / kChunk < 32 ? rows / kChunk : 32;
  blocks = blocks < floor ? floor : blocks > 264 ? 264 : blocks;
  if (blocks < 1) blocks = 1;
  const int64_t r = (rows + blocks - 1) / blocks;
  return (r + kChunk - 1) / kChunk * kChunk;
}
IRC_HD int passes(int Cip, int Cop) { return ((Cip / 16) * (Cop / 16) + kTilesPerPass - 1) / kTilesPerPass; }
inline int64_t pad16(int64_t c) { return (c + 15) / 16 * 16; }

// Stage the chunk at r0 (rows < rb1 exist) into xs [16][Cip + 4] and dys [16][Cop + 4], zeros in the padding; with a
// LayerNorm (ln.w), the conv's input is h = LN(x) from the given statistics; with DB, dbacc[q] += dy[r, tid + 256 q]
// over the chunk's rows.
#ifdef __CUDACC__
#pragma nv_exec_check_disable
#endif
// (stage_x: xs alone; GATE stages dz itself.)
#ifdef __CUDACC__
#pragma nv_exec_check_disable
#endif
template <class W>
IRC_HD void stage_x(int tid, const float* __restrict__ x, const pwgate::LnArgs& ln, int64_t r0, int64_t rb1, int Ci,
                    int Cip, float* xs) {
  const int ldx = ldx_of(Cip);
  for (int e = tid; e < kChunk * Cip; e += kThreads) {
    const int r = e / Cip, q = e - r * Cip;
    const int64_t row = r0 + r;
    float v = 0.f;
    if (row < rb1 && q < Ci) {
      v = x[row * Ci + q];
      if (ln.w) v = (v - ln.mean_in[row]) * ln.rstd_in[row] * ln.w[q] + ln.b[q];  // x is a LayerNorm's input
    }
    xs[r * ldx + q] = W::to_tf32(v);
  }
}

#ifdef __CUDACC__
#pragma nv_exec_check_disable
#endif
template <class W, bool DB>
IRC_HD void stage(int tid, const float* __restrict__ x, const pwgate::LnArgs& ln, const float* __restrict__ dy,
                  int64_t r0, int64_t rb1, int Ci, int Co, int Cip, int Cop, float* xs, float* dys, float (&dbacc)[3]) {
  const int ldd = ldd_of(Cop);
  stage_x<W>(tid, x, ln, r0, rb1, Ci, Cip, xs);
  IRC_UNROLL
  for (int q = 0; q < 3; ++q) {
    const int co = tid + q * kThreads;
    if (co < Cop) {
      for (int r = 0; r < kChunk; ++r) {
        const float v = r0 + r < rb1 && co < Co ? dy[(r0 + r) * Co + co] : 0.f;
        dys[r * ldd + co] = W::to_tf32(v);
        if (DB) dbacc[q] += v;
      }
    }
  }
}

// dx tile ti of the chunk (warp `warp` takes ti = warp, warp + 8, ..) into st, row-major 16 x 16 with leading
// dimension ld (the warp's staging, ld 16: copy_dx then writes it out on the device after a __syncwarp; or FOLD's
// dhs + 16 ti, ld ldh_of(Cip)), from the padded weight wp [Cip, Cop].
#ifdef __CUDACC__
#pragma nv_exec_check_disable
#endif
template <class W>
IRC_HD void dx_tile(const float* dys, int Cop, const float* __restrict__ w, int ti, float* st, int ld = 16) {
  const int ldd = ldd_of(Cop);
  typename W::Acc acc;
  W::fill(acc);
  for (int k0 = 0; k0 < Cop; k0 += 8) {
    typename W::A a;
    typename W::Bc b;  // w^T [Cop, Cip] as column-major: element (k, n) = w[n Cop + k]
    W::load_a(a, dys + k0, ldd);
    W::load_bc(b, w + static_cast<int64_t>(ti) * 16 * Cop + k0, Cop);
    W::mma_c(acc, a, b);
  }
  W::store(st, acc, ld);
}

// FOLD, warp `warp` (lane `lane` of W::kLanes): the LayerNorm backward of the chunk's rows 2 warp and 2 warp + 1.
#ifdef __CUDACC__
#pragma nv_exec_check_disable
#endif
template <class W>
IRC_HD void ln_fold_rows(int warp, int lane, const float* dhs, int ldh, const float* __restrict__ x,
                         const pwgate::LnArgs& ln, const LnFold& f, int64_t r0, int64_t rb1, int Ci) {
  for (int i = 0; i < 2; ++i) {
    const int r = 2 * warp + i;
    const int64_t row = r0 + r;
    if (row >= rb1) continue;  // the same for every lane
    const float m = ln.mean_in[row], rs = ln.rstd_in[row];
    const float *xr = x + row * Ci, *dr = dhs + r * ldh;
    float s1 = 0.f, s2 = 0.f;
    for (int q = lane; q < Ci; q += W::kLanes) {
      const float xh = (xr[q] - m) * rs, g = dr[q] * ln.w[q];
      s1 += g;
      s2 += g * xh;
    }
    const float a = W::warp_sum(s1) / static_cast<float>(Ci), bm = W::warp_sum(s2) / static_cast<float>(Ci);
    for (int q = lane; q < Ci; q += W::kLanes) {
      const float xh = (xr[q] - m) * rs, v = rs * (dr[q] * ln.w[q] - a - xh * bm);
      f.dx[row * Ci + q] = f.acc ? v + f.acc[row * Ci + q] : v;
    }
  }
}

// GATE (pw_backward_gate: conv1x1_gate's backward, y = z[:, :C] z[:, C:] with z = h w + b): the conv's dy is dz,
// formed in the chunk instead of read. z_tile: warp `warp` takes the tiles to = warp, warp + 8, .. of z = xs w
// (without the bias) into dys (row-major, ld ldd_of(Cop)); then, after a barrier, gate_dz: thread tid takes the
// column pairs p = tid, tid + 256 (< C) of each row: dz = (du z2, du z1) with the bias added to z, du [rows, C] the
// gate's output gradient (zeros past rb1), rounded like staged operands, and their unrounded column sums in dg.
constexpr int kMaxGateC = 2 * kThreads;
// Whether GATE takes a gate of C pairs on Ci input channels: every pass of dw tiles (grid z) forms all of dz again,
// i.e. recomputes z = h w, so a weight of several passes (NAFNet from C = 192: 4 passes, C = 384: 16) would multiply
// that GEMM; there the two-kernel path (dz written once, then the one-pass 1x1 backward over it) is cheaper.
// IRCONSTYLE_GATE_BWD=one-pass takes GATE for those too (to time what it costs).
inline bool gate_fits(int64_t Ci, int64_t C) {
  if (C < 1 || C > kMaxGateC) return false;
  return env_is("IRCONSTYLE_GATE_BWD", "one-pass") ||
         passes(static_cast<int>(pad16(Ci)), static_cast<int>(pad16(2 * C))) == 1;
}
#ifdef __CUDACC__
#pragma nv_exec_check_disable
#endif
template <class W>
IRC_HD void z_tile(const float* xs, int Cip, const float* __restrict__ w, int Cop, int to, float* dys) {
  const int ldx = ldx_of(Cip);
  typename W::Acc acc;
  W::fill(acc);
  for (int k0 = 0; k0 < Cip; k0 += 8) {
    typename W::A a;
    typename W::B b;
    W::load_a(a, xs + k0, ldx);
    W::load_b(b, w + static_cast<int64_t>(k0) * Cop + to * 16, Cop);
    W::mma(acc, a, b);
  }
  W::store(dys + to * 16, acc, ldd_of(Cop));
}

#ifdef __CUDACC__
#pragma nv_exec_check_disable
#endif
template <class W>
IRC_HD void gate_dz(int tid, float* dys, int Cop, const float* __restrict__ du, const float* __restrict__ b,
                    int64_t r0, int64_t rb1, int C, float (&dg)[4]) {
  const int ldd = ldd_of(Cop);
  IRC_UNROLL
  for (int q = 0; q < 2; ++q) {
    const int p = tid + q * kThreads;
    if (p >= C) continue;
    for (int r = 0; r < kChunk; ++r) {
      float* dr = dys + r * ldd;
      float z1 = dr[p], z2 = dr[C + p];
      if (b) {
        z1 += b[p];
        z2 += b[C + p];
      }
      const float g = r0 + r < rb1 ? du[(r0 + r) * C + p] : 0.f, d1 = g * z2, d2 = g * z1;
      dg[2 * q] += d1;
      dg[2 * q + 1] += d2;
      dr[p] = W::to_tf32(d1);
      dr[C + p] = W::to_tf32(d2);
    }
  }
}

IRC_HD void write_gate_db_partials(int tid, int64_t block, int C, const float (&dg)[4], float* __restrict__ dbp) {
  IRC_UNROLL
  for (int q = 0; q < 2; ++q) {
    const int p = tid + q * kThreads;
    if (p < C) {
      dbp[block * 2 * C + p] = dg[2 * q];
      dbp[block * 2 * C + C + p] = dg[2 * q + 1];
    }
  }
}

// FOLD, thread tid: its columns' dlw += dh xh and dlb += dh over the chunk's rows, into the block's sums slw, slb.
IRC_HD void ln_fold_cols(int tid, const float* dhs, int ldh, const float* __restrict__ x, const pwgate::LnArgs& ln,
                         int64_t r0, int64_t rb1, int Ci, float* slw, float* slb) {
  for (int c = tid; c < Ci; c += kThreads) {
    float sw = slw[c], sb = slb[c];
    for (int r = 0; r < kChunk && r0 + r < rb1; ++r) {
      const int64_t row = r0 + r;
      const float d = dhs[r * ldh + c];
      sw += d * ((x[row * Ci + c] - ln.mean_in[row]) * ln.rstd_in[row]);
      sb += d;
    }
    slw[c] = sw;
    slb[c] = sb;
  }
}

// Lane `lane` copies its elements (lane, lane + 32, ..) of the staged dx tile ti to dx [rows, Ci] for the rows and
// columns that exist.
IRC_HD void copy_dx(int lane, const float* st, int ti, int64_t r0, int64_t rb1, int Ci, float* __restrict__ dx) {
  IRC_UNROLL
  for (int e = lane; e < 256; e += 32) {
    const int64_t row = r0 + (e >> 4);
    const int col = ti * 16 + (e & 15);
    if (row < rb1 && col < Ci) dx[row * Ci + col] = st[e];
  }
}

// The dw tiles of pass `pass` for warp `warp`, accumulated over this chunk's 16 rows.
#ifdef __CUDACC__
#pragma nv_exec_check_disable
#endif
template <class W>
IRC_HD void dw_tiles(const float* xs, const float* dys, int Cip, int Cop, int warp, int pass,
                     typename W::Acc (&acc)[kTilesPerWarp]) {
  const int ldx = ldx_of(Cip), ldd = ldd_of(Cop), To = Cop / 16, T = (Cip / 16) * To;
  IRC_UNROLL
  for (int s = 0; s < kTilesPerWarp; ++s) {
    const int t = pass * kTilesPerPass + warp + kWarps * s;
    if (t < T) {
      const int ti = t / To, to = t - ti * To;
      IRC_UNROLL
      for (int k0 = 0; k0 < kChunk; k0 += 8) {
        typename W::Ac a;  // x^T [Cip, rows] as column-major: element (i, k) = xs[k ldx + i]
        typename W::B b;
        W::load_ac(a, xs + k0 * ldx + ti * 16, ldx);
        W::load_b(b, dys + k0 * ldd + to * 16, ldd);
        W::mma_t(acc[s], a, b);
      }
    }
  }
}

#ifdef __CUDACC__
#pragma nv_exec_check_disable
#endif
template <class W>
IRC_HD void write_dw_partials(int warp, int pass, int64_t block, int Cip, int Cop,
                              const typename W::Acc (&acc)[kTilesPerWarp], float* __restrict__ dwp) {
  const int To = Cop / 16, T = (Cip / 16) * To;
  IRC_UNROLL
  for (int s = 0; s < kTilesPerWarp; ++s) {
    const int t = pass * kTilesPerPass + warp + kWarps * s;
    if (t < T) {
      const int ti = t / To, to = t - ti * To;
      W::store(dwp + block * Cip * Cop + static_cast<int64_t>(ti) * 16 * Cop + to * 16, acc[s], Cop);
    }
  }
}

IRC_HD void write_db_partials(int tid, int64_t block, int Co, const float (&dbacc)[3], float* __restrict__ dbp) {
  IRC_UNROLL
  for (int q = 0; q < 3; ++q) {
    const int co = tid + q * kThreads;
    if (co < Co) dbp[block * Co + co] = dbacc[q];
  }
}

}  // namespace pwbwd
}  // namespace irc
