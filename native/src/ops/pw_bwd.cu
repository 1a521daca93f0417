// pw_backward (pw_bwd.h): one kernel walks each block's rows once for dx, the dw partials and the db partials
// (phases in pw_bwd_tile.h, shared with the host model the CPU tests run), then fixed-order column sums of the
// partials give dw and db (deterministic). TF32 products for convolutions (DeviceWmma), split-TF32 ones for Linear
// layers (DeviceWmma3: FP32-accurate, as PyTorch's FP32 matmul). Wide weights need several passes of dw tiles over
// the rows (72 tiles of 16x16 per pass): they run as separate blocks (grid z), in parallel.
#include <cstdint>
#include <cstdlib>

#include "../cuda/blas.cuh"
#include "../cuda/common.cuh"
#include "../cuda/wmma_tf32.cuh"
#include "pw_bwd.h"
#include "pw_bwd_tile.h"

namespace irc {
namespace {

using namespace pwbwd;

constexpr size_t kMaxSmem = 96 * 1024;
constexpr size_t kMaxSmemFold = 160 * 1024;  // FOLD's dhs on top (an A100 / H100 allows it; smaller parts refuse)

// blockIdx.y: the group (rows [g rows, (g + 1) rows) of x, dy and dx; weight w + g wstride); the partials of block b
// of group g at index b groups + g ([blocks][groups][..]: one column sum over the blocks gives every group's sums).
// GATE: dy is the gate's output gradient du [rows, gate.C] and the kernel forms dz itself (pw_bwd_tile.h).
template <class W, bool DX, bool DB, bool FOLD = false, bool GATE = false>
__global__ void __launch_bounds__(kThreads) pw_bwd_k(const float* __restrict__ x, pwgate::LnArgs ln,
                                                     const float* __restrict__ dy,
                                                     const float* __restrict__ w, int64_t wstride,
                                                     float* __restrict__ dx, float* __restrict__ dwp,
                                                     float* __restrict__ dbp, int64_t rows, int64_t rpb, int Ci,
                                                     int Co, int Cip, int Cop, LnFold fold, GateIn gate) {
  extern __shared__ __align__(128) float sm[];
  float* xs = sm;
  float* dys = xs + kChunk * ldx_of(Cip);
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  float* st = dys + kChunk * ldd_of(Cop) + warp * 256;
  // FOLD: dh of the chunk, then the block's dlw / dlb sums
  float* dhs = dys + kChunk * ldd_of(Cop) + kWarps * 256;
  float* slw = dhs + kChunk * ldh_of(Cip);
  float* slb = slw + Ci;
  if (FOLD)
    for (int c = tid; c < Ci; c += kThreads) slw[c] = slb[c] = 0.f;  // (read after the chunk loop's first barrier)
  const int64_t grp = blockIdx.y, part = static_cast<int64_t>(blockIdx.x) * gridDim.y + grp;
  x += grp * rows * Ci;
  dy += grp * rows * (GATE ? gate.C : Co);
  if (DX) dx += grp * rows * Ci;
  w += grp * wstride;
  const int64_t blk = blockIdx.x, rb0 = blk * rpb;
  const int64_t rb1 = rb0 + rpb < rows ? rb0 + rpb : rows;
  const int Ti = Cip / 16;
  {
    // blockIdx.z: the pass of dw tiles (passes(Cip, Cop) of them for wide weights) this block takes over its rows,
    // the passes side by side in the grid rather than one after another; pass 0 also does dx, db and FOLD
    const int pass = static_cast<int>(blockIdx.z);
    typename W::Acc acc[kTilesPerWarp];
#pragma unroll
    for (int s = 0; s < kTilesPerWarp; ++s) W::fill(acc[s]);
    float dbacc[3] = {0.f, 0.f, 0.f}, dg[4] = {0.f, 0.f, 0.f, 0.f};
    for (int64_t r0 = rb0; r0 < rb1; r0 += kChunk) {
      __syncthreads();  // the previous chunk's shared memory is no longer read
      if (GATE) {
        stage_x<W>(tid, x, ln, r0, rb1, Ci, Cip, xs);
        __syncthreads();
        for (int to = warp; to < Cop / 16; to += kWarps) z_tile<W>(xs, Cip, w, Cop, to, dys);
        __syncthreads();  // z complete: the pairs read both halves
        gate_dz<W>(tid, dys, Cop, dy, gate.b, r0, rb1, gate.C, dg);
      } else if (DB && pass == 0) {
        stage<W, true>(tid, x, ln, dy, r0, rb1, Ci, Co, Cip, Cop, xs, dys, dbacc);
      } else {
        stage<W, false>(tid, x, ln, dy, r0, rb1, Ci, Co, Cip, Cop, xs, dys, dbacc);
      }
      __syncthreads();
      if (DX && pass == 0) {
        for (int ti = warp; ti < Ti; ti += kWarps) {
          if (FOLD) {
            dx_tile<W>(dys, Cop, w, ti, dhs + ti * 16, ldh_of(Cip));
          } else {
            dx_tile<W>(dys, Cop, w, ti, st);
            __syncwarp();
            copy_dx(lane, st, ti, r0, rb1, Ci, dx);
            __syncwarp();
          }
        }
      }
      dw_tiles<W>(xs, dys, Cip, Cop, warp, pass, acc);
      if (FOLD && pass == 0) {
        __syncthreads();  // every dh tile of the chunk is in dhs
        ln_fold_rows<W>(warp, lane, dhs, ldh_of(Cip), x, ln, fold, r0, rb1, Ci);
        ln_fold_cols(tid, dhs, ldh_of(Cip), x, ln, r0, rb1, Ci, slw, slb);
      }
    }
    write_dw_partials<W>(warp, pass, part, Cip, Cop, acc, dwp);
    if (DB && pass == 0) {
      if (GATE) write_gate_db_partials(tid, part, gate.C, dg, dbp);
      else write_db_partials(tid, part, Co, dbacc, dbp);
    }
    if (FOLD && pass == 0) {
      __syncthreads();
      for (int c = tid; c < Ci; c += kThreads) {
        fold.dlwp[part * Ci + c] = slw[c];
        fold.dlbp[part * Ci + c] = slb[c];
      }
    }
  }
}

template <class W, bool DX, bool DB, bool FOLD, bool GATE>
bool smem_ready() {
  static const bool ok = [] {
    const cudaError_t e = cudaFuncSetAttribute(pw_bwd_k<W, DX, DB, FOLD, GATE>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               static_cast<int>(FOLD ? kMaxSmemFold : kMaxSmem));
    if (e != cudaSuccess) cudaGetLastError();
    return e == cudaSuccess;
  }();
  return ok;
}

template <class W, bool DX, bool DB, bool FOLD = false, bool GATE = false>
bool launch(const KernelCtx& k, const float* x, const pwgate::LnArgs& ln, const float* dy, const float* w,
            int64_t wstride, float* dx, float* dwp, float* dbp, int64_t rows, int64_t rpb, int64_t blocks,
            int64_t groups, int Ci, int Co, int Cip, int Cop, const LnFold& fold = LnFold{},
            const GateIn& gate = GateIn{}) {
  const size_t bytes = sizeof(float) * smem_floats(Cip, Cop, FOLD);
  if (bytes > (FOLD ? kMaxSmemFold : kMaxSmem) || (bytes > 48 * 1024 && !smem_ready<W, DX, DB, FOLD, GATE>()))
    return false;
  const dim3 grid(static_cast<unsigned>(blocks), static_cast<unsigned>(groups), static_cast<unsigned>(passes(Cip, Cop)));
  pw_bwd_k<W, DX, DB, FOLD, GATE><<<grid, kThreads, bytes, cu::stream(k)>>>(x, ln, dy, w, wstride, dx, dwp, dbp, rows,
                                                                            rpb, Ci, Co, Cip, Cop, fold, gate);
  return true;
}

// wp [Cip, Cop] = w [Ci, Co] (trans: a Linear's w [Co, Ci]) with zeros around; and back for the weight gradient.
__global__ void pad_k(const float* __restrict__ w, float* __restrict__ wp, int64_t Ci, int64_t Co, int64_t Cip,
                      int64_t Cop, bool trans) {
  IRC_GRID_LOOP(e, Cip * Cop) {
    const int64_t i = e / Cop, o = e - i * Cop;
    wp[e] = i < Ci && o < Co ? w[trans ? o * Ci + i : i * Co + o] : 0.f;
  }
}
__global__ void unpad_k(const float* __restrict__ wp, float* __restrict__ w, int64_t Ci, int64_t Co, int64_t Cop,
                        bool trans) {
  IRC_GRID_LOOP(e, Ci * Co) {
    const int64_t a = trans ? e / Ci : e / Co, b = trans ? e - a * Ci : e - a * Co;  // (o, i) or (i, o)
    w[e] = trans ? wp[b * Cop + a] : wp[a * Cop + b];
  }
}

}  // namespace

namespace {
bool pw_backward_impl(const KernelCtx& k, const float* x, const pwgate::LnArgs& ln, const float* dy, const float* w,
                      int64_t wstride, float* dx, float* dw, float* db, int64_t rows, int64_t Ci, int64_t Co,
                      int64_t groups, bool linear, const LnFoldOut* fold = nullptr, const GateIn* gate = nullptr);
bool shape_fits(int64_t Ci, int64_t Co) {
  const int64_t Cip = pad16(Ci), Cop = pad16(Co);
  return Ci >= 8 && Co >= 8 && Cop <= kMaxCo &&
         sizeof(float) * smem_floats(static_cast<int>(Cip), static_cast<int>(Cop)) <= kMaxSmem;
}
}  // namespace

bool pw_backward(const KernelCtx& k, const float* x, const float* dy, const float* w, float* dx, float* dw, float* db,
                 int64_t rows, int64_t Ci, int64_t Co) {
  return pw_backward_impl(k, x, pwgate::LnArgs{}, dy, w, 0, dx, dw, db, rows, Ci, Co, 1, false);
}

bool pw_backward_ln(const KernelCtx& k, const float* x, const pwgate::LnArgs& ln, const float* dy, const float* w,
                    float* dx, float* dw, float* db, int64_t rows, int64_t Ci, int64_t Co) {
  return pw_backward_impl(k, x, ln, dy, w, 0, dx, dw, db, rows, Ci, Co, 1, false);
}

bool pw_backward_groups(const KernelCtx& k, const float* x, const float* dy, const float* w, int64_t wstride,
                        float* dx, float* dw, float* db, int64_t rows, int64_t Ci, int64_t Co, int64_t groups) {
  return pw_backward_impl(k, x, pwgate::LnArgs{}, dy, w, wstride, dx, dw, db, rows, Ci, Co, groups, false);
}

bool pw_backward_ln_fold(const KernelCtx& k, const float* x, const pwgate::LnArgs& ln, const LnFoldOut& f,
                         const float* dy, const float* w, float* dw, float* db, int64_t rows, int64_t Ci, int64_t Co) {
  return !env_is("IRCONSTYLE_LN_FOLD", "0") &&
         pw_backward_impl(k, x, ln, dy, w, 0, f.dx, dw, db, rows, Ci, Co, 1, false, &f);
}

bool pw_backward_gate(const KernelCtx& k, const float* x, const pwgate::LnArgs& ln, const LnFoldOut* fold,
                      const float* du, const float* w, const float* b, float* dx, float* dw, float* db, int64_t rows,
                      int64_t Ci, int64_t C) {
  if (env_is("IRCONSTYLE_GATE_BWD", "two-kernel") || !gate_fits(Ci, C) || !db || (fold && env_is("IRCONSTYLE_LN_FOLD", "0")))
    return false;
  const GateIn gate{b, static_cast<int>(C)};
  return pw_backward_impl(k, x, ln, du, w, 0, fold ? fold->dx : dx, dw, db, rows, Ci, 2 * C, 1, false, fold, &gate);
}

bool pw_backward_linear(const KernelCtx& k, const float* x, const float* dy, const float* w, float* dx, float* dw,
                        float* db, int64_t rows, int64_t I, int64_t O, const pwgate::LnArgs* ln, const LnFoldOut* fold) {
  if (rows < kLinearMinRows || (fold && env_is("IRCONSTYLE_LN_FOLD", "0"))) return false;
  return pw_backward_impl(k, x, ln ? *ln : pwgate::LnArgs{}, dy, w, 0, fold ? fold->dx : dx, dw, db, rows, I, O, 1,
                          true, fold);
}

bool pw_backward_takes(int64_t Ci, int64_t Co) {
  return env_is("IRCONSTYLE_PW_BWD", "one-pass") && cu::tf32_convolutions() && shape_fits(Ci, Co);
}

bool pw_backward_linear_takes(int64_t I, int64_t O) {
  return env_is("IRCONSTYLE_LINEAR_BWD", "split-tf32") && shape_fits(I, O);
}

namespace {
bool pw_backward_impl(const KernelCtx& k, const float* x, const pwgate::LnArgs& ln, const float* dy, const float* w,
                      int64_t wstride, float* dx, float* dw, float* db, int64_t rows, int64_t Ci, int64_t Co,
                      int64_t groups, bool linear, const LnFoldOut* fold, const GateIn* gate) {
  const int64_t Cip = pad16(Ci), Cop = pad16(Co);
  // the kernel's weight [Cip, Cop] is a copy when padded, or transposed (a Linear's [O, I])
  const bool padded = Cip != Ci || Cop != Co || linear;
  // the weights of every group 32-byte aligned (wstride a multiple of 8 floats when there are several); padded
  // channel counts with one group only
  if (!(linear ? pw_backward_linear_takes(Ci, Co) : pw_backward_takes(Ci, Co)) || rows < 1 || groups < 1 ||
      groups > 65535 || (padded && groups > 1) || (!padded && (reinterpret_cast<uintptr_t>(w) & 31u) != 0) ||
      (groups > 1 && wstride % 8 != 0))
    return false;
  // what each variant needs, checked before anything is enqueued (launch() itself refuses only where the device
  // refuses the shared-memory opt-in, after the padded weight's copy: harmless, scratch only)
  if ((fold && (!ln.w || !dx || groups != 1)) || (gate && (!dx || !db || groups != 1)) || (linear && !dx) ||
      sizeof(float) * smem_floats(static_cast<int>(Cip), static_cast<int>(Cop), fold != nullptr) >
          (fold ? kMaxSmemFold : kMaxSmem))
    return false;
  const int64_t rpb = rows_per_block(rows, Cip, Cop), blocks = (rows + rpb - 1) / rpb;
  cudaStream_t s = cu::stream(k);
  // slot 3: the dw partials, then (padded) the padded weight and its gradient
  const int64_t np = blocks * groups * Cip * Cop;
  float* dwp = static_cast<float*>(cu::scratch(s, sizeof(float) * (np + (padded ? 2 * Cip * Cop : 0)), 3));
  float* dbp = db ? static_cast<float*>(cu::scratch(s, sizeof(float) * blocks * groups * Co, 2)) : nullptr;
  const float* wk = w;
  float *wp = nullptr, *dwpad = nullptr;
  if (padded) {
    wp = dwp + np;
    dwpad = wp + Cip * Cop;
    pad_k<<<cu::blocks_for(Cip * Cop), 256, 0, s>>>(w, wp, Ci, Co, Cip, Cop, linear);
    wk = wp;
  }
  const int ci = static_cast<int>(Ci), co = static_cast<int>(Co), cip = static_cast<int>(Cip), cop = static_cast<int>(Cop);
  bool ok;
  float* foldp = nullptr;  // FOLD: the dlw, then the dlb partials [blocks][Ci] (slot 0: the callers keep dh in 1)
  if (fold) {
    foldp = static_cast<float*>(cu::scratch(s, sizeof(float) * 2 * blocks * Ci, 0));
    const LnFold lf{fold->acc, dx, foldp, foldp + blocks * Ci};
    if (gate)
      ok = launch<DeviceWmma, true, true, true, true>(k, x, ln, dy, wk, 0, dx, dwp, dbp, rows, rpb, blocks, 1, ci, co, cip, cop, lf, *gate);
    else if (linear)
      ok = db ? launch<DeviceWmma3, true, true, true>(k, x, ln, dy, wk, 0, dx, dwp, dbp, rows, rpb, blocks, 1, ci, co, cip, cop, lf)
              : launch<DeviceWmma3, true, false, true>(k, x, ln, dy, wk, 0, dx, dwp, dbp, rows, rpb, blocks, 1, ci, co, cip, cop, lf);
    else if (db)
      ok = launch<DeviceWmma, true, true, true>(k, x, ln, dy, wk, 0, dx, dwp, dbp, rows, rpb, blocks, 1, ci, co, cip, cop, lf);
    else
      ok = launch<DeviceWmma, true, false, true>(k, x, ln, dy, wk, 0, dx, dwp, dbp, rows, rpb, blocks, 1, ci, co, cip, cop, lf);
  } else if (gate) {
    ok = launch<DeviceWmma, true, true, false, true>(k, x, ln, dy, wk, 0, dx, dwp, dbp, rows, rpb, blocks, 1, ci, co, cip, cop, LnFold{}, *gate);
  } else if (linear) {  // (a Linear's backward computes dx and dw, and db with a bias)
    ok = db ? launch<DeviceWmma3, true, true>(k, x, ln, dy, wk, 0, dx, dwp, dbp, rows, rpb, blocks, 1, ci, co, cip, cop)
            : launch<DeviceWmma3, true, false>(k, x, ln, dy, wk, 0, dx, dwp, dbp, rows, rpb, blocks, 1, ci, co, cip, cop);
  } else if (dx && db) {
    ok = launch<DeviceWmma, true, true>(k, x, ln, dy, wk, wstride, dx, dwp, dbp, rows, rpb, blocks, groups, ci, co, cip, cop);
  } else if (dx) {
    ok = launch<DeviceWmma, true, false>(k, x, ln, dy, wk, wstride, dx, dwp, dbp, rows, rpb, blocks, groups, ci, co, cip, cop);
  } else if (db) {
    ok = launch<DeviceWmma, false, true>(k, x, ln, dy, wk, wstride, dx, dwp, dbp, rows, rpb, blocks, groups, ci, co, cip, cop);
  } else {
    ok = launch<DeviceWmma, false, false>(k, x, ln, dy, wk, wstride, dx, dwp, dbp, rows, rpb, blocks, groups, ci, co, cip, cop);
  }
  if (!ok) return false;  // (a padded weight was written to scratch for nothing: harmless)
  cu::check_launch(k);
  if (padded) {
    blas::column_sums(k, dwp, blocks, Cip * Cop, dwpad, 4);
    unpad_k<<<cu::blocks_for(Ci * Co), 256, 0, s>>>(dwpad, dw, Ci, Co, Cop, linear);
    cu::check_launch(k);
  } else {
    blas::column_sums(k, dwp, blocks, groups * Ci * Co, dw, 4);
  }
  if (db) blas::column_sums(k, dbp, blocks, groups * Co, db, 4);
  if (fold) {
    blas::column_sums(k, foldp, blocks, Ci, fold->dlw, 4);
    blas::column_sums(k, foldp + blocks * Ci, blocks, Ci, fold->dlb, 4);
  }
  return true;
}
}  // namespace

}  // namespace irc
