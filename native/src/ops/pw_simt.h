// The SIMT pointwise-GEMM kernel (pw_simt_tile.h): 1x1 convs and Linear layers of up to 192 output channels with their
// LayerNorm or input scale formed on the way in and their bias, gate or residual applied on the way out, in FP32 on
// CUDA cores. Opt-in (IRCONSTYLE_PW_SIMT=1); on the CPU backend IRCONSTYLE_EMULATE=pw_simt runs its phases thread by
// thread for the tests.
#pragma once
#include <cstdint>
#include <vector>

#include "op_api.h"
#include "ln_args.h"
#include "pw_simt_tile.h"

namespace irc {

// IRCONSTYLE_PW_SIMT=1: the CUDA ops take this kernel where it fits.
bool pw_simt_requested();

// The kernel's arguments for x [rows, K], w [K, N] (wt: [N, K], a Linear's), bias b and the LayerNorm ln (or none);
// rows 0 (not taken) for K or N beyond 4096.
inline pwsimt::Args pw_simt_args(const float* x, int64_t rows, int64_t K, const float* w, int64_t N, bool wt,
                                 const LnArgs* ln, const float* b) {
  pwsimt::Args p;
  if (K > 4096 || N > 4096) return p;
  p.x = x;
  p.rows = rows;
  p.K = static_cast<int>(K);
  p.w = w;
  p.N = static_cast<int>(N);
  p.wt = wt;
  p.b = b;
  if (ln) {
    p.lnw = ln->w;
    p.lnb = ln->b;
    p.mean_in = ln->mean_in;
    p.rstd_in = ln->rstd_in;
    p.mean_out = ln->mean_out;
    p.rstd_out = ln->rstd_out;
    p.eps = ln->eps;
  }
  return p;
}

// CUDA (pw_simt.cu): enqueues the kernel for `mode` (pwsimt::Mode); returns its number of blocks (the rows of dbp for
// kGateBwd, which the caller sizes as pw_simt_blocks_bound rows), or 0 having enqueued nothing when the shape, the
// alignment or the device's shared memory does not fit.
int64_t pw_simt_cuda(const KernelCtx& k, int mode, const pwsimt::Args& p);
// An upper bound of the blocks pw_simt_cuda launches for these rows (kGateBwd's dbp rows): 0 when it would not take it.
int64_t pw_simt_blocks_bound(int mode, const pwsimt::Args& p);
// pw_simt_cuda with its per-block sums laid out in scratch: kLnBwd's in p.dbp (slot 8, [2][grid][N], for the caller to
// sum), and given colsum, p.x's column sums summed in order into colsum [K] (per-block sums in slot 3). False, nothing
// enqueued, where the kernel does not take p; grid_out: its blocks.
bool pw_simt_run(const KernelCtx& k, int mode, pwsimt::Args& p, float* colsum, int64_t* grid_out = nullptr);

// conv1x1_add's dx: dy [rows, Co] times W_g^T with W_g = diag(a_g) w diag(s) (a Linear's: dy w), as the kernel's
// kPlain with s as its input scale (one group) and a as its output scale; rows 0 (not taken) beyond its limits.
inline pwsimt::Args pw_simt_dx_args(const float* dy, int64_t rows, int64_t Ci, int64_t Co, const float* w, bool lin,
                                    const float* s, const float* a, int64_t group_rows) {
  pwsimt::Args p = pw_simt_args(dy, rows, Co, w, Ci, !lin, nullptr, nullptr);
  p.a = s;
  p.group_rows = s ? rows : 0;
  p.os = a;
  p.os_group_rows = a ? group_rows : 0;
  return p;
}

// The input gradient of a 1x1 conv (or Linear) with no scales: dh = dy w^T for w [Ci, Co] (a Linear's [Co, Ci]:
// dy w), dy [rows, Co], as the kernel's kPlain.
inline pwsimt::Args pw_simt_dh_args(const float* dy, int64_t rows, int64_t Ci, int64_t Co, const float* w, bool lin) {
  return pw_simt_dx_args(dy, rows, Ci, Co, w, lin, nullptr, nullptr, 0);
}

// The same dh with the LayerNorm's backward behind it (kLnBwd): dx of the LayerNorm whose output h fed the 1x1, from
// its input x and ln's weight and given statistics, with acc (x's pending gradient, or null) added; p.dbp ([2][blocks]
// [Ci]: the per-block sums of the LayerNorm's weight and bias gradients) is set by pw_simt_run / pw_simt_emulate_sums.
inline pwsimt::Args pw_simt_dh_ln_args(const float* dy, int64_t rows, int64_t Ci, int64_t Co, const float* w, bool lin,
                                       const float* x, const LnArgs& ln, const float* acc, float* dx) {
  pwsimt::Args p = pw_simt_dh_args(dy, rows, Ci, Co, w, lin);
  p.lx = x;
  p.lg = ln.w;
  p.lmean = ln.mean_in;
  p.lrstd = ln.rstd_in;
  p.r = acc;
  p.y = dx;
  return p;
}

// CPU (pw_simt_host.cpp): the kernel's phases run block by block and thread by thread when IRCONSTYLE_EMULATE lists
// pw_simt and the shape fits (the rules of an H100: 227 KiB of shared memory per block); returns the number of blocks
// (dbp's rows for kGateBwd and kLnBwd, at most pw_simt_emulated_blocks), 0 when it did not run.
int64_t pw_simt_emulate(int mode, const pwsimt::Args& p);
constexpr int64_t pw_simt_emulated_blocks = 3;
// pw_simt_emulate as pw_simt_run on CUDA: kLnBwd's per-block sums into dbp ([2][blocks][N]), and given colsum,
// p.x's column sums summed in order into colsum [K]; the number of blocks, 0 when it did not run.
int64_t pw_simt_emulate_sums(int mode, pwsimt::Args& p, float* colsum, std::vector<float>& dbp);

}  // namespace irc
