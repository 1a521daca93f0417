// The per-tile code of spatial_gate's CUDA kernels (spatial_gate.cu), written once for the device and the host: the
// kernels run it with one block per tile and a barrier after each phase; the CPU backend runs the same phases over
// all 256 threads of a tile, one phase after the other, when IRCONSTYLE_EMULATE lists `spatial_gate`
// (spatial_gate.cpp), so the CPU tests check the kernels' index arithmetic, tails and reductions without a GPU.
//
// spatial_gate is MAXIM's gating unit on z [N, H, W, 2C] (its in_project's output, before the activation):
//   a = act(z) (identity or GELU), u = a[..., :C], v = a[..., C:],
//   t = LayerNorm(v) written in the mixing layout T = [G, C, P] (the official block_images + swapaxes),
//   g = t · wᵀ + b over T's last axis (the linear op's kernels, rows G·C), y = u ⊙ g read back from T.
// Groups and positions (the image cut into gh × gw patches of fh × fw pixels): `block` mixes the P = fh·fw pixels
// of a patch, groups (n, i, j) → (n gh + i) gw + j, position p = a fw + b; `grid` mixes the P = gh·gw patches,
// groups (n, a, b) → (n fh + a) fw + b, position p = i gw + j; pixel (n, i fh + a, j fw + b) either way.
//
// A tile is kTP consecutive positions of one group (tiles = G · ceil(P / kTP)). Pixel rows are read and written
// along the channels (coalesced, kTC channels per chunk); T along the positions, through a padded kTP × (kTC + 1)
// shared tile (conflict-free both ways). Thread tid is warp w = tid / 32, lane l = tid % 32; in the row phases warp w
// takes the tile's rows w, w + 8, w + 16, w + 24 at channel l, in the T phases channels w + 8k at position l.
#pragma once
#include <cmath>
#include <cstdint>

#include "../cuda/gelu.cuh"
#include "host_device.h"

namespace irc {
namespace sgate {

constexpr int kTP = 32;       // positions per tile
constexpr int kTC = 32;       // channels per chunk
constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kRows = kTP / kWarps;  // rows per warp in the row phases
constexpr int kStatLanes = kThreads / kTP;  // threads per row for the statistics (8: the CPU's channel lanes)

struct Geo {
  int H = 0, W = 0, C = 0;
  int fh = 1, fw = 1, gh = 1, gw = 1;
  int grid = 0;  // 0 block, 1 grid
  int act = 0;   // 0 identity, 1 GELU
  int P = 0;     // positions per group
  int PT = 0;    // tiles per group
  int64_t G = 0; // groups
  IRC_HD int64_t tiles() const { return G * PT; }
};

// A tile's group and its first position there (g.PT tiles of kTP positions per group).
struct At {
  int64_t group;
  int p0;
};
IRC_HD At at(const Geo& g, int64_t tile) {
  const int64_t group = tile / g.PT;
  return {group, static_cast<int>(tile - group * g.PT) * kTP};
}

inline Geo make_geo(int64_t N, int64_t H, int64_t W, int64_t C, int64_t fh, int64_t fw, bool grid, bool gelu) {
  Geo g;
  g.H = static_cast<int>(H), g.W = static_cast<int>(W), g.C = static_cast<int>(C);
  g.fh = static_cast<int>(fh), g.fw = static_cast<int>(fw);
  g.gh = static_cast<int>(H / fh), g.gw = static_cast<int>(W / fw);
  g.grid = grid ? 1 : 0, g.act = gelu ? 1 : 0;
  g.P = grid ? g.gh * g.gw : g.fh * g.fw;
  g.G = N * (grid ? fh * fw : (H / fh) * (W / fw));
  g.PT = (g.P + kTP - 1) / kTP;
  return g;
}

// The pixel (row of the NHWC map) at position p of group `group`.
IRC_HD int64_t pixel(const Geo& g, int64_t group, int p) {
  int64_t n;
  int i, j, a, b;
  if (g.grid) {
    const int64_t per = static_cast<int64_t>(g.fh) * g.fw;
    n = group / per;
    const int r = static_cast<int>(group - n * per);
    a = r / g.fw, b = r - a * g.fw;
    i = p / g.gw, j = p - i * g.gw;
  } else {
    const int64_t per = static_cast<int64_t>(g.gh) * g.gw;
    n = group / per;
    const int r = static_cast<int>(group - n * per);
    i = r / g.gw, j = r - i * g.gw;
    a = p / g.fw, b = p - a * g.fw;
  }
  return (n * g.H + static_cast<int64_t>(i) * g.fh + a) * g.W + static_cast<int64_t>(j) * g.fw + b;
}

IRC_HD float act_f(int act, float z) { return act ? gelu_f(z) : z; }
// act(z), with act'(z) in d
IRC_HD float act_d(int act, float z, float& d) {
  if (!act) {
    d = 1.f;
    return z;
  }
  return gelu_d_f(z, d);
}

struct Shared {
  float tile[kTP][kTC + 1];
  float tile2[kTP][kTC + 1];
  double part[kTP][kStatLanes];
  float rowpart[2][kTP][kTC + 1];
  float red[2][kWarps][kTC];
  float mean[kTP], rstd[kTP], s1[kTP], s2[kTP];
  int64_t pix[kTP];  // -1 past the group's positions
};

struct Regs {
  float s1[kRows], s2[kRows];
};

// The tile's pixels (and, with stats, their saved statistics).
IRC_HD void ph_pix(const Geo& g, Shared& sh, int tid, int64_t group, int p0, const float* mean, const float* rstd) {
  if (tid >= kTP) return;
  const int p = p0 + tid;
  const int64_t px = p < g.P ? pixel(g, group, p) : -1;
  sh.pix[tid] = px;
  if (mean) {
    sh.mean[tid] = px >= 0 ? mean[px] : 0.f;
    sh.rstd[tid] = px >= 0 ? rstd[px] : 0.f;
  }
}

// Statistics of v = act(z[..., C:]) per row, as the CPU's LayerNorm: 8 lanes over channels c ≡ lane (mod 8) in
// double, lane sums ((0+1)+(2+3))+((4+5)+(6+7)); pass 0 the sum, pass 1 the squares about the mean.
IRC_HD void ph_stats(const Geo& g, Shared& sh, int tid, const float* z, int pass) {
  const int r = tid / kStatLanes, s = tid % kStatLanes;
  double acc = 0;
  const int64_t px = sh.pix[r];
  if (px >= 0) {
    const float* zr = z + px * 2 * g.C + g.C;
    const double mu = pass ? static_cast<double>(sh.s1[r]) : 0.0;  // pass 1: the mean as s1 + s2 (to ~2^-48)
    for (int c = s; c < g.C; c += kStatLanes) {
      const double d = act_f(g.act, zr[c]) - (pass ? mu + static_cast<double>(sh.s2[r]) : 0.0);
      acc += pass ? d * d : d;
    }
  }
  sh.part[r][s] = acc;
}

IRC_HD double lane8(const double* s) { return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])); }

// Pass 0: the mean (double, split into s1 = float(mu) and s2 = float(mu - s1): pass 1 subtracts s1 + s2, within
// ~2^-48 of mu);
// pass 1: rstd = 1 / sqrt(var + eps), both written for the backward.
IRC_HD void ph_stats_sum(const Geo& g, Shared& sh, int tid, int pass, double eps, float* mean, float* rstd) {
  if (tid >= kTP) return;
  const double sum = lane8(sh.part[tid]);
  if (pass == 0) {
    const double mu = sum / g.C;
    const float hi = static_cast<float>(mu);
    sh.s1[tid] = hi;
    sh.s2[tid] = static_cast<float>(mu - hi);
    sh.mean[tid] = hi;
    return;
  }
  const float rs = static_cast<float>(1.0 / sqrt(sum / g.C + eps));
  sh.rstd[tid] = rs;
  if (sh.pix[tid] >= 0) {
    mean[sh.pix[tid]] = sh.mean[tid];
    rstd[sh.pix[tid]] = rs;
  }
}

// tile[r][l] = LN(v)[row r, channel c0 + l] (zeros outside)
IRC_HD void ph_norm(const Geo& g, Shared& sh, int tid, int c0, const float* z, const float* lw, const float* lb) {
  const int w = tid / 32, l = tid % 32, c = c0 + l;
  for (int k = 0; k < kRows; ++k) {
    const int r = w + kWarps * k;
    const int64_t px = sh.pix[r];
    float v = 0.f;
    if (px >= 0 && c < g.C) v = (act_f(g.act, z[px * 2 * g.C + g.C + c]) - sh.mean[r]) * sh.rstd[r] * lw[c] + lb[c];
    sh.tile[r][l] = v;
  }
}

// T[group, c0 + cc, p0 + l] <- src[l][cc]
IRC_HD void ph_store_t(const Geo& g, const float (&src)[kTP][kTC + 1], int tid, int64_t group, int p0, int c0, float* T) {
  const int w = tid / 32, l = tid % 32;
  if (p0 + l >= g.P) return;
  for (int k = 0; k < kTC / kWarps; ++k) {
    const int cc = w + kWarps * k, c = c0 + cc;
    if (c < g.C) T[(group * g.C + c) * g.P + p0 + l] = src[l][cc];
  }
}

// dst[l][cc] <- T[group, c0 + cc, p0 + l] (zeros outside)
IRC_HD void ph_load_t(const Geo& g, float (&dst)[kTP][kTC + 1], int tid, int64_t group, int p0, int c0, const float* T) {
  const int w = tid / 32, l = tid % 32;
  for (int k = 0; k < kTC / kWarps; ++k) {
    const int cc = w + kWarps * k, c = c0 + cc;
    dst[l][cc] = c < g.C && p0 + l < g.P ? T[(group * g.C + c) * g.P + p0 + l] : 0.f;
  }
}

// y[row, c] = act(z[row, c]) · g (g in tile)
IRC_HD void ph_gate(const Geo& g, Shared& sh, int tid, int c0, const float* z, float* y) {
  const int w = tid / 32, l = tid % 32, c = c0 + l;
  if (c >= g.C) return;
  for (int k = 0; k < kRows; ++k) {
    const int r = w + kWarps * k;
    const int64_t px = sh.pix[r];
    if (px >= 0) y[px * g.C + c] = act_f(g.act, z[px * 2 * g.C + c]) * sh.tile[r][l];
  }
}

// The gate's backward at (row r, channel c): dz[row, c] = dy g act'(z_u) (the u half of dz), tile2 = dy act(z_u)
// (the gradient of g, stored to T next).
IRC_HD void ph_gate_bwd(const Geo& g, Shared& sh, int tid, int c0, const float* dy, const float* z, float* dz) {
  const int w = tid / 32, l = tid % 32, c = c0 + l;
  for (int k = 0; k < kRows; ++k) {
    const int r = w + kWarps * k;
    const int64_t px = sh.pix[r];
    float dg = 0.f;
    if (px >= 0 && c < g.C) {
      const float d = dy[px * g.C + c];
      float ad;
      const float u = act_d(g.act, z[px * 2 * g.C + c], ad);
      dz[px * 2 * g.C + c] = d * sh.tile[r][l] * ad;
      dg = d * u;
    }
    sh.tile2[r][l] = dg;
  }
}

// LayerNorm backward, first pass: with dh = dT in tile, each thread's running sums over its channels of
// gw = dh lw and gw x̂ for its rows.
IRC_HD void ph_ln_sums(const Geo& g, Shared& sh, Regs& rg, int tid, int c0, const float* z, const float* lw) {
  const int w = tid / 32, l = tid % 32, c = c0 + l;
  if (c0 == 0)
    for (int k = 0; k < kRows; ++k) rg.s1[k] = rg.s2[k] = 0.f;
  if (c >= g.C) return;
  for (int k = 0; k < kRows; ++k) {
    const int r = w + kWarps * k;
    const int64_t px = sh.pix[r];
    if (px < 0) continue;
    const float xh = (act_f(g.act, z[px * 2 * g.C + g.C + c]) - sh.mean[r]) * sh.rstd[r];
    const float gw = sh.tile[r][l] * lw[c];
    rg.s1[k] += gw;
    rg.s2[k] += gw * xh;
  }
}

IRC_HD void ph_ln_rowpart(Shared& sh, const Regs& rg, int tid) {
  const int w = tid / 32, l = tid % 32;
  for (int k = 0; k < kRows; ++k) {
    sh.rowpart[0][w + kWarps * k][l] = rg.s1[k];
    sh.rowpart[1][w + kWarps * k][l] = rg.s2[k];
  }
}

// Row r's means of gw and gw x̂ (lanes added in order, in double as the CPU's row sums).
IRC_HD void ph_ln_rowsum(const Geo& g, Shared& sh, int tid) {
  if (tid >= kTP) return;
  double a = 0, b = 0;
  for (int l = 0; l < 32; ++l) {
    a += sh.rowpart[0][tid][l];
    b += sh.rowpart[1][tid][l];
  }
  sh.s1[tid] = static_cast<float>(a / g.C);
  sh.s2[tid] = static_cast<float>(b / g.C);
}

// Second pass: dx = rstd (gw - mean(gw) - x̂ mean(gw x̂)), the v half of dz = dx act'(z_v); the per-warp sums over
// the thread's rows of dh x̂ (dlw) and dh (dlb) into red.
IRC_HD void ph_ln_dx(const Geo& g, Shared& sh, int tid, int c0, const float* z, const float* lw, float* dz) {
  const int w = tid / 32, l = tid % 32, c = c0 + l;
  float pw = 0.f, pb = 0.f;
  if (c < g.C)
    for (int k = 0; k < kRows; ++k) {
      const int r = w + kWarps * k;
      const int64_t px = sh.pix[r];
      if (px < 0) continue;
      float ad;
      const float x = act_d(g.act, z[px * 2 * g.C + g.C + c], ad);
      const float xh = (x - sh.mean[r]) * sh.rstd[r];
      const float dh = sh.tile[r][l];
      dz[px * 2 * g.C + g.C + c] = sh.rstd[r] * (dh * lw[c] - sh.s1[r] - xh * sh.s2[r]) * ad;
      pw += dh * xh;
      pb += dh;
    }
  sh.red[0][w][l] = pw;
  sh.red[1][w][l] = pb;
}

// The tile's dlw, dlb partials for channels c0 .. c0 + 31 (warps added in order): row `tile` of partW / partB [tiles, C].
IRC_HD void ph_ln_part(const Geo& g, Shared& sh, int tid, int c0, int64_t tile, float* partW, float* partB) {
  if (tid >= kTC || c0 + tid >= g.C) return;
  float a = 0.f, b = 0.f;
  for (int w = 0; w < kWarps; ++w) {
    a += sh.red[0][w][tid];
    b += sh.red[1][w][tid];
  }
  partW[tile * g.C + c0 + tid] = a;
  partB[tile * g.C + c0 + tid] = b;
}

// spatial_mix (the cross-gating's spatial gating weights: one half of z mixed over positions, no LayerNorm or
// product): rows of a [rows, ld] map at channel offset `off` (g.C channels) in and out of the tile.
// tile[r][l] = act(src[row r, off + c0 + l]) (act 0: as it is; zeros outside)
IRC_HD void ph_rows_in(const Geo& g, Shared& sh, int tid, int c0, const float* src, int64_t ld, int off, int act) {
  const int w = tid / 32, l = tid % 32, c = c0 + l;
  for (int k = 0; k < kRows; ++k) {
    const int r = w + kWarps * k;
    const int64_t px = sh.pix[r];
    sh.tile[r][l] = px >= 0 && c < g.C ? act_f(act, src[px * ld + off + c]) : 0.f;
  }
}

// dst[row r, off + c0 + l] = tile[r][l], times act'(z[row r, off + c0 + l]) when z is given
IRC_HD void ph_rows_out(const Geo& g, Shared& sh, int tid, int c0, float* dst, int64_t ld, int off, const float* z,
                        int act) {
  const int w = tid / 32, l = tid % 32, c = c0 + l;
  if (c >= g.C) return;
  for (int k = 0; k < kRows; ++k) {
    const int r = w + kWarps * k;
    const int64_t px = sh.pix[r];
    if (px < 0) continue;
    float d = 1.f;
    if (z) act_d(act, z[px * ld + off + c], d);
    dst[px * ld + off + c] = z ? sh.tile[r][l] * d : sh.tile[r][l];
  }
}

// ---- the kernels' tile programs over an executor X: X::each(f) runs f(tid, regs) for every thread of the
// block, then a barrier (the device: this thread, then __syncthreads; the host model: all 256 threads in turn).

#ifdef __CUDACC__
#pragma nv_exec_check_disable
#endif
template <class X>
IRC_HD void norm_store_chunks(X& x, Shared& sh, const Geo& g, int64_t group, int p0, const float* z, const float* lw,
                              const float* lb, float* T) {
  for (int c0 = 0; c0 < g.C; c0 += kTC) {
    x.each([&](int tid, Regs&) { ph_norm(g, sh, tid, c0, z, lw, lb); });
    x.each([&](int tid, Regs&) { ph_store_t(g, sh.tile, tid, group, p0, c0, T); });
  }
}

#ifdef __CUDACC__
#pragma nv_exec_check_disable
#endif
template <class X>
IRC_HD void norm_fwd_tile(X& x, Shared& sh, const Geo& g, int64_t tile, const float* z, const float* lw,
                          const float* lb, double eps, float* T, float* mean, float* rstd) {
  const At a = at(g, tile);
  x.each([&](int tid, Regs&) { ph_pix(g, sh, tid, a.group, a.p0, nullptr, nullptr); });
  for (int pass = 0; pass < 2; ++pass) {
    x.each([&](int tid, Regs&) { ph_stats(g, sh, tid, z, pass); });
    x.each([&](int tid, Regs&) { ph_stats_sum(g, sh, tid, pass, eps, mean, rstd); });
  }
  norm_store_chunks(x, sh, g, a.group, a.p0, z, lw, lb, T);
}

// T again in the backward from the forward's statistics (ph_stats_sum left the same floats in sh.mean / sh.rstd), so
// the same values as norm_fwd_tile's: the backward keeps z and the statistics instead of T.
#ifdef __CUDACC__
#pragma nv_exec_check_disable
#endif
template <class X>
IRC_HD void norm_t_tile(X& x, Shared& sh, const Geo& g, int64_t tile, const float* z, const float* lw, const float* lb,
                        const float* mean, const float* rstd, float* T) {
  const At a = at(g, tile);
  x.each([&](int tid, Regs&) { ph_pix(g, sh, tid, a.group, a.p0, mean, rstd); });
  norm_store_chunks(x, sh, g, a.group, a.p0, z, lw, lb, T);
}

#ifdef __CUDACC__
#pragma nv_exec_check_disable
#endif
template <class X>
IRC_HD void gate_fwd_tile(X& x, Shared& sh, const Geo& g, int64_t tile, const float* z, const float* Tg, float* y) {
  const At a = at(g, tile);
  x.each([&](int tid, Regs&) { ph_pix(g, sh, tid, a.group, a.p0, nullptr, nullptr); });
  for (int c0 = 0; c0 < g.C; c0 += kTC) {
    x.each([&](int tid, Regs&) { ph_load_t(g, sh.tile, tid, a.group, a.p0, c0, Tg); });
    x.each([&](int tid, Regs&) { ph_gate(g, sh, tid, c0, z, y); });
  }
}

#ifdef __CUDACC__
#pragma nv_exec_check_disable
#endif
template <class X>
IRC_HD void gate_bwd_tile(X& x, Shared& sh, const Geo& g, int64_t tile, const float* dy, const float* z,
                          const float* Tg, float* dz, float* Tdg) {
  const At a = at(g, tile);
  x.each([&](int tid, Regs&) { ph_pix(g, sh, tid, a.group, a.p0, nullptr, nullptr); });
  for (int c0 = 0; c0 < g.C; c0 += kTC) {
    x.each([&](int tid, Regs&) { ph_load_t(g, sh.tile, tid, a.group, a.p0, c0, Tg); });
    x.each([&](int tid, Regs&) { ph_gate_bwd(g, sh, tid, c0, dy, z, dz); });
    x.each([&](int tid, Regs&) { ph_store_t(g, sh.tile2, tid, a.group, a.p0, c0, Tdg); });
  }
}

#ifdef __CUDACC__
#pragma nv_exec_check_disable
#endif
template <class X>
IRC_HD void norm_bwd_tile(X& x, Shared& sh, const Geo& g, int64_t tile, const float* Tdh, const float* z,
                          const float* lw, const float* mean, const float* rstd, float* dz, float* partW, float* partB) {
  const At a = at(g, tile);
  x.each([&](int tid, Regs&) { ph_pix(g, sh, tid, a.group, a.p0, mean, rstd); });
  for (int c0 = 0; c0 < g.C; c0 += kTC) {
    x.each([&](int tid, Regs&) { ph_load_t(g, sh.tile, tid, a.group, a.p0, c0, Tdh); });
    x.each([&](int tid, Regs& rg) { ph_ln_sums(g, sh, rg, tid, c0, z, lw); });
  }
  x.each([&](int tid, Regs& rg) { ph_ln_rowpart(sh, rg, tid); });
  x.each([&](int tid, Regs&) { ph_ln_rowsum(g, sh, tid); });
  for (int c0 = 0; c0 < g.C; c0 += kTC) {
    x.each([&](int tid, Regs&) { ph_load_t(g, sh.tile, tid, a.group, a.p0, c0, Tdh); });
    x.each([&](int tid, Regs&) { ph_ln_dx(g, sh, tid, c0, z, lw, dz); });
    x.each([&](int tid, Regs&) { ph_ln_part(g, sh, tid, c0, tile, partW, partB); });
  }
}

#ifdef __CUDACC__
#pragma nv_exec_check_disable
#endif
template <class X>
IRC_HD void to_t_tile(X& x, Shared& sh, const Geo& g, int64_t tile, const float* src, int64_t ld, int off, int act,
                      float* T) {
  const At a = at(g, tile);
  x.each([&](int tid, Regs&) { ph_pix(g, sh, tid, a.group, a.p0, nullptr, nullptr); });
  for (int c0 = 0; c0 < g.C; c0 += kTC) {
    x.each([&](int tid, Regs&) { ph_rows_in(g, sh, tid, c0, src, ld, off, act); });
    x.each([&](int tid, Regs&) { ph_store_t(g, sh.tile, tid, a.group, a.p0, c0, T); });
  }
}

#ifdef __CUDACC__
#pragma nv_exec_check_disable
#endif
template <class X>
IRC_HD void from_t_tile(X& x, Shared& sh, const Geo& g, int64_t tile, const float* T, float* dst, int64_t ld, int off,
                        const float* z, int act) {
  const At a = at(g, tile);
  x.each([&](int tid, Regs&) { ph_pix(g, sh, tid, a.group, a.p0, nullptr, nullptr); });
  for (int c0 = 0; c0 < g.C; c0 += kTC) {
    x.each([&](int tid, Regs&) { ph_load_t(g, sh.tile, tid, a.group, a.p0, c0, T); });
    x.each([&](int tid, Regs&) { ph_rows_out(g, sh, tid, c0, dst, ld, off, z, act); });
  }
}

}  // namespace sgate
}  // namespace irc
