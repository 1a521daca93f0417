// The phases of the SIMT pointwise-GEMM kernel (pw_simt.cu), written once for the device and the host: the CUDA
// kernel runs them with threadIdx and shuffles, the CPU backend runs them thread by thread when
// IRCONSTYLE_EMULATE=pw_simt (pw_simt_host.cpp), so the tiling, the prologues and the epilogues are checked by the CPU
// tests without a GPU.
//
// y = epilogue(prologue(x) w) for x [rows, K] and w [K, N] (or [N, K], a Linear's, with wt), FP32 on CUDA cores. A
// block of 256 threads = 16 column lanes cl x 16 row lanes rl owns tiles of BM = 16 TM rows in turn (persistent
// blocks); thread (rl, cl) computes rows rl + 16 j (j < TM) and columns cl + 16 i (i < NT = N / 16), so the two
// halves c and c + N / 2 of a gate meet in one thread. Shared memory: w as [K][N] (staged once per block) and the x
// tile as [BM][K + 4] (the pad puts the rows of a warp's two row lanes in different banks).
//   load_tile (every thread): the x tile, float4 loads, zeros past the end;
//   prologue (16 column lanes per row, rows rl + 16 j): a LayerNorm over the K channels (statistics computed and
//     written, or given) or the per-group input scale x a[row / group_rows] (conv1x1_add's SCA), in place; with
//     h_out the result is also written to memory (the backward's h);
//   compute (every thread): acc[j][i] = sum over k ascending of xs[rl + 16 j][k] ws[k][cl + 16 i];
//   epilogue (every thread): kPlain y = (acc + b) os[row's group]; kAdd y = r + (acc + b) s; kGate
//     y[c] = (acc_c + b_c)(acc_c' + b_c') with c' = c + N / 2 into y [rows, N / 2]; kGateBwd the gate's backward
//     dz = (dy z2, dy z1) into y [rows, N] with dy = r [rows, N / 2], the thread's column sums of dz accumulated in
//     psum (then summed over the row lanes in order and written per block to dbp [grid][N]: write_partials); kLnBwd
//     a LayerNorm's backward given the product as its output gradient dh: dx = rstd (dh g - mean(dh g) - xh mean(dh g
//     xh)) (+ r) with xh = (x - mean) rstd (ln_bwd_parts, the row sums over the 16 column lanes, ln_bwd_finish), the
//     column sums of dh xh and dh per block into dbp [2][grid][N] (the LayerNorm's weight and bias gradients).
#pragma once
#include <cmath>
#include <cstdint>

#include "host_device.h"
#include "switches.h"

namespace irc {
namespace pwsimt {

constexpr int kThreads = 256;
constexpr int kLanes = 16;  // column lanes (and row lanes)

#ifdef __CUDACC__
using F4 = float4;
#else
struct alignas(16) F4 {
  float x, y, z, w;
};
#endif

enum Mode { kPlain = 0, kGate = 1, kAdd = 2, kGateBwd = 3, kLnBwd = 4 };

// Column sums a thread accumulates over its tiles: kGateBwd's of dz, kLnBwd's of dh xh and dh.
IRC_HD constexpr int psum_n(int mode, int nt) { return mode == kLnBwd ? 2 * nt : nt; }

// Rows per thread for NT column groups: 8 (BM = 128) up to 6 groups, else 4 (BM = 64): at most 48 accumulators.
IRC_HD constexpr int tm_of(int nt) { return nt <= 6 ? 8 : 4; }
IRC_HD int ldx_of(int K) { return K + 4; }

struct Args {
  const float* x = nullptr;
  int64_t rows = 0;
  int K = 0;
  const float* w = nullptr;
  int N = 0;
  bool wt = false;  // w is [N, K]
  // prologue: a LayerNorm (lnw non-null; statistics given in mean_in / rstd_in or written to mean_out / rstd_out)
  const float *lnw = nullptr, *lnb = nullptr, *mean_in = nullptr, *rstd_in = nullptr;
  float *mean_out = nullptr, *rstd_out = nullptr;
  float eps = 0.f;
  const float* a = nullptr;  // or the input scale a [groups, K], group = row / group_rows
  int64_t group_rows = 0;
  float* h_out = nullptr;  // the prologue's result [rows, K] (kGateBwd with a LayerNorm: the backward's h)
  float* xsum = nullptr;   // per-block column sums of x itself [grid][K] (a bias gradient's parts)
  // epilogue
  const float* b = nullptr;  // bias [N]
  const float* s = nullptr;  // kAdd: output scale [N]
  const float* r = nullptr;  // kAdd: residual [rows, N]; kGateBwd: dy [rows, N / 2]
  const float* os = nullptr;  // kPlain: output scale os [groups, N], group = row / os_group_rows
  int64_t os_group_rows = 0;
  float* y = nullptr;
  float* dbp = nullptr;  // kGateBwd: column sums of dz per block [grid][N]; kLnBwd: [2][grid][N]
  // kLnBwd: the LayerNorm's input lx [rows, N], weight lg [N] and row statistics (y = its dx, r added to it if given)
  const float *lx = nullptr, *lg = nullptr, *lmean = nullptr, *lrstd = nullptr;
};

// Shared memory of a block, in floats: ws [K][N], then xs [BM][K + 4], then Args::xsum's block sums [K].
inline int64_t smem_floats(int K, int N, int nt) {
  return static_cast<int64_t>(K) * N + static_cast<int64_t>(kLanes) * tm_of(nt) * ldx_of(K) + K;
}

// The column groups a mode is instantiated for (N = 16 NT: 48, 64, 96, 128, 144, 192 outputs): the gates need an even
// NT (their halves).
inline bool nt_ok(int mode, int nt) {
  const bool even = nt == 4 || nt == 6 || nt == 8 || nt == 12;
  return mode == kGate || mode == kGateBwd ? even : even || nt == 3 || nt == 9;
}

// Whether the kernel takes K and N with smem_limit bytes of shared memory per block (K >= 16, and K >= 32 for
// kLnBwd, also leaves room for the [16][psum_n] reduction of the column sums in the block's shared memory).
inline bool shape_ok(int mode, int64_t K, int64_t N, int64_t smem_limit) {
  if (K < (mode == kLnBwd ? 32 : 16) || K % 4 != 0 || K > 4096 || N <= 0 || N % kLanes != 0 ||
      !nt_ok(mode, static_cast<int>(N / kLanes)))
    return false;
  return 4 * smem_floats(static_cast<int>(K), static_cast<int>(N), static_cast<int>(N / kLanes)) <= smem_limit;
}

// IRCONSTYLE_PW_SIMT=mem: only the calls where the kernel is bound by memory rather than by its FP32 FMAs on an H100
// (33.5 T FMA/s against 3.35 TB/s: about 40 FMAs per float moved), K N <= 40 (K + N) — ConStyle NAFNet's first level
// (C = 48), not the deeper ones; IRCONSTYLE_PW_SIMT=1 takes every call it can.
inline bool within_cap(const Args& p) {
  return !env_is("IRCONSTYLE_PW_SIMT", "mem") || int64_t{p.K} * p.N <= 40 * (int64_t{p.K} + p.N);
}

// Whether the kernel takes the call p with smem_limit bytes of shared memory per block: rows, shapes, x's alignment
// (float4 loads), the groups of its scales and kLnBwd's LayerNorm; and IRCONSTYLE_PW_SIMT=mem's cap.
inline bool takes(int mode, const Args& p, int64_t smem_limit) {
  return p.rows > 0 && within_cap(p) && shape_ok(mode, p.K, p.N, smem_limit) &&
         (reinterpret_cast<uintptr_t>(p.x) & 15u) == 0 &&
         (!p.a || p.group_rows > 0) && (!p.os || p.os_group_rows > 0) &&
         (mode != kLnBwd || (p.lx && p.lg && p.lmean && p.lrstd && !p.b && !p.os));
}

// f.template call<MODE, NT>() for the instantiation of `mode` and N = 16 NT that nt_ok allows; 0 for any other.
template <int MODE, class F>
int64_t by_columns(int N, F& f) {
  constexpr bool odd = MODE != kGate && MODE != kGateBwd;  // the gates take an even NT only
  switch (N % kLanes ? 0 : N / kLanes) {
    case 3:
      if constexpr (odd) return f.template call<MODE, 3>();
      return 0;
    case 4:
      return f.template call<MODE, 4>();
    case 6:
      return f.template call<MODE, 6>();
    case 8:
      return f.template call<MODE, 8>();
    case 9:
      if constexpr (odd) return f.template call<MODE, 9>();
      return 0;
    case 12:
      return f.template call<MODE, 12>();
    default:
      return 0;
  }
}
template <class F>
int64_t dispatch(int mode, int N, F& f) {
  switch (mode) {
    case kPlain:
      return by_columns<kPlain>(N, f);
    case kGate:
      return by_columns<kGate>(N, f);
    case kAdd:
      return by_columns<kAdd>(N, f);
    case kGateBwd:
      return by_columns<kGateBwd>(N, f);
    case kLnBwd:
      return by_columns<kLnBwd>(N, f);
    default:
      return 0;
  }
}

// Once per block: w into ws [K][N]; thread tid of kThreads. Consecutive threads read consecutive floats of w in
// either layout (w [N, K]: scattered into ws's columns instead of gathered); K N < 2^31 (shape_ok: K <= 4096,
// N <= 192).
IRC_HD void stage_w(int tid, const Args& p, float* ws) {
  const int K = p.K, N = p.N, n = K * N;
  for (int e = tid; e < n; e += kThreads) {
    if (p.wt) {
      const int c = e / K, k = e - c * K;
      ws[k * N + c] = p.w[e];
    } else {
      ws[e] = p.w[e];
    }
  }
}

// The x tile of rows [r0, r0 + BM): float4 loads (K % 4 == 0, x 16-byte aligned), zeros past the end; four loads
// in flight per thread before their stores (the tile is contiguous in memory: rows r0.. of x).
template <int NT>
IRC_HD void load_tile(int tid, const Args& p, int64_t r0, float* xs) {
  constexpr int BM = kLanes * tm_of(NT), U = 4;
  const int k4 = p.K / 4, ldx = ldx_of(p.K);
  const int n = BM * k4;
  const int64_t avail = (p.rows - r0) * k4;  // float4s of the tile that exist
  const F4* src = reinterpret_cast<const F4*>(p.x) + r0 * k4;
  for (int e0 = tid; e0 < n; e0 += U * kThreads) {
    F4 v[U];
    IRC_UNROLL
    for (int u = 0; u < U; ++u) {
      const int e = e0 + u * kThreads;
      v[u] = e < n && e < avail ? src[e] : F4{0.f, 0.f, 0.f, 0.f};
    }
    IRC_UNROLL
    for (int u = 0; u < U; ++u) {
      const int e = e0 + u * kThreads;
      if (e < n) {
        const int r = e / k4, q = e - r * k4;
        *reinterpret_cast<F4*>(xs + r * ldx + 4 * q) = v[u];
      }
    }
  }
}

// Args::xsum: the raw tile's columns tid, tid + 256, .. (before the prologue; rows past the end are zeros) added to
// the block's sums s [K] in shared memory (zeroed with the first tile), rows in order.
template <int NT>
IRC_HD void tile_colsums(int tid, const Args& p, const float* xs, float* s) {
  constexpr int BM = kLanes * tm_of(NT);
  const int ldx = ldx_of(p.K);
  for (int c = tid; c < p.K; c += kThreads) {
    float t = s[c];
    for (int r = 0; r < BM; ++r) t += xs[r * ldx + c];
    s[c] = t;
  }
}

// Prologue on rows rl + 16 j of the tile, column lane `lane` of L::kLanes (L::sum adds over the row's lanes: 16
// shuffled lanes on the device, one on the host).
#ifdef __CUDACC__
#pragma nv_exec_check_disable
#endif
template <int NT, class L>
IRC_HD void prologue(int rl, int lane, const Args& p, int64_t r0, float* xs) {
  constexpr int TM = tm_of(NT);
  const int ldx = ldx_of(p.K);
  for (int j = 0; j < TM; ++j) {
    const int r = rl + kLanes * j;
    const int64_t row = r0 + r;
    float* xr = xs + r * ldx;
    if (p.lnw) {
      float m, rs;
      if (p.mean_in) {
        m = row < p.rows ? p.mean_in[row] : 0.f;
        rs = row < p.rows ? p.rstd_in[row] : 0.f;
      } else {
        float t = 0.f;
        for (int q = lane; q < p.K; q += L::kLanes) t += xr[q];
        m = L::sum(t) / static_cast<float>(p.K);
        float v = 0.f;
        for (int q = lane; q < p.K; q += L::kLanes) {
          const float d = xr[q] - m;
          v += d * d;
        }
        rs = 1.f / sqrtf(L::sum(v) / static_cast<float>(p.K) + p.eps);
        if (lane == 0 && row < p.rows) {
          p.mean_out[row] = m;
          p.rstd_out[row] = rs;
        }
      }
      for (int q = lane; q < p.K; q += L::kLanes) {
        const float h = row < p.rows ? (xr[q] - m) * rs * p.lnw[q] + p.lnb[q] : 0.f;
        xr[q] = h;
        if (p.h_out && row < p.rows) p.h_out[row * p.K + q] = h;
      }
    } else if (p.a && row < p.rows) {
      const float* ar = p.a + (row / p.group_rows) * p.K;
      for (int q = lane; q < p.K; q += L::kLanes) xr[q] *= ar[q];
    }
  }
}

// acc[j][i] = sum over k of xs[rl + 16 j][k] ws[k][cl + 16 i], k ascending (four at a time from the x rows).
template <int NT>
IRC_HD void compute(int rl, int cl, int K, int N, const float* xs, const float* ws, float (&acc)[tm_of(NT)][NT]) {
  constexpr int TM = tm_of(NT);
  const int ldx = ldx_of(K);
  IRC_UNROLL
  for (int j = 0; j < TM; ++j)
    IRC_UNROLL
    for (int i = 0; i < NT; ++i) acc[j][i] = 0.f;
  for (int k = 0; k < K; k += 4) {
    F4 xv[TM];
    IRC_UNROLL
    for (int j = 0; j < TM; ++j) xv[j] = *reinterpret_cast<const F4*>(xs + (rl + kLanes * j) * ldx + k);
    IRC_UNROLL
    for (int kk = 0; kk < 4; ++kk) {
      float wv[NT];
      const float* wr = ws + (k + kk) * N + cl;
      IRC_UNROLL
      for (int i = 0; i < NT; ++i) wv[i] = wr[kLanes * i];
      IRC_UNROLL
      for (int j = 0; j < TM; ++j) {
        const float xk = kk == 0 ? xv[j].x : kk == 1 ? xv[j].y : kk == 2 ? xv[j].z : xv[j].w;
        IRC_UNROLL
        for (int i = 0; i < NT; ++i) acc[j][i] = fmaf(xk, wv[i], acc[j][i]);
      }
    }
  }
}

// The epilogue of thread (rl, cl) for the tile at r0; psum [NT]: kGateBwd's column sums of dz.
template <int MODE, int NT>
IRC_HD void epilogue(int rl, int cl, const Args& p, int64_t r0, const float (&acc)[tm_of(NT)][NT], float* psum) {
  constexpr int TM = tm_of(NT), H = NT / 2;
  const int N = p.N, C = N / 2;
  float bias[NT], scale[NT];
  IRC_UNROLL
  for (int i = 0; i < NT; ++i) {
    bias[i] = p.b ? p.b[cl + kLanes * i] : 0.f;
    scale[i] = MODE == kAdd && p.s ? p.s[cl + kLanes * i] : 1.f;
  }
  IRC_UNROLL
  for (int j = 0; j < TM; ++j) {
    const int64_t row = r0 + rl + kLanes * j;
    if (row >= p.rows) continue;
    if constexpr (MODE == kPlain || MODE == kAdd) {
      float* yr = p.y + row * N + cl;
      // the row's output scales: one division per row, not per column
      const float* osr = MODE == kPlain && p.os ? p.os + (row / p.os_group_rows) * N + cl : nullptr;
      IRC_UNROLL
      for (int i = 0; i < NT; ++i) {
        float v = acc[j][i] + bias[i];
        if constexpr (MODE == kAdd) v = v * scale[i] + p.r[row * N + cl + kLanes * i];
        if (osr) v *= osr[kLanes * i];
        yr[kLanes * i] = v;
      }
    } else {
      IRC_UNROLL
      for (int i = 0; i < H; ++i) {
        const float z1 = acc[j][i] + bias[i], z2 = acc[j][i + H] + bias[i + H];
        const int c = cl + kLanes * i;
        if constexpr (MODE == kGate) {
          p.y[row * C + c] = z1 * z2;
        } else {
          const float g = p.r[row * C + c], d1 = g * z2, d2 = g * z1;
          p.y[row * N + c] = d1;
          p.y[row * N + C + c] = d2;
          psum[i] += d1;
          psum[i + H] += d2;
        }
      }
    }
  }
}

// kLnBwd, the first half of thread (rl, cl)'s epilogue: its parts of the row sums over the N channels,
// sg[j] = sum over i of dh g and sx[j] = sum over i of dh g xh, with dh = acc[j][i] at channel c = cl + 16 i,
// g = lg[c] and xh = (lx - mean) rstd (zeros for rows past the end).
template <int NT>
IRC_HD void ln_bwd_parts(int rl, int cl, const Args& p, int64_t r0, const float (&acc)[tm_of(NT)][NT],
                         float (&sg)[tm_of(NT)], float (&sx)[tm_of(NT)]) {
  constexpr int TM = tm_of(NT);
  IRC_UNROLL
  for (int j = 0; j < TM; ++j) {
    const int64_t row = r0 + rl + kLanes * j;
    float a = 0.f, b = 0.f;
    if (row < p.rows) {
      const float m = p.lmean[row], rs = p.lrstd[row];
      const float* xr = p.lx + row * p.N + cl;
      IRC_UNROLL
      for (int i = 0; i < NT; ++i) {
        const float g = acc[j][i] * p.lg[cl + kLanes * i];
        a += g;
        b += g * ((xr[kLanes * i] - m) * rs);
      }
    }
    sg[j] = a;
    sx[j] = b;
  }
}

// kLnBwd, the second half, given the rows' sums over all N channels: dx = rstd (dh g - Sg / N - xh Sx / N) (+ r), as
// layer_norm2d's backward; the thread's column sums of dh xh into psum[i] and of dh into psum[NT + i].
template <int NT>
IRC_HD void ln_bwd_finish(int rl, int cl, const Args& p, int64_t r0, const float (&acc)[tm_of(NT)][NT],
                          const float (&sg)[tm_of(NT)], const float (&sx)[tm_of(NT)], float* psum) {
  constexpr int TM = tm_of(NT);
  const float inv = 1.f / static_cast<float>(p.N);
  IRC_UNROLL
  for (int j = 0; j < TM; ++j) {
    const int64_t row = r0 + rl + kLanes * j;
    if (row >= p.rows) continue;
    const float m = p.lmean[row], rs = p.lrstd[row], a = sg[j] * inv, bm = sx[j] * inv;
    const int64_t o = row * p.N + cl;
    IRC_UNROLL
    for (int i = 0; i < NT; ++i) {
      const float d = acc[j][i], xh = (p.lx[o + kLanes * i] - m) * rs;
      const float g = rs * (d * p.lg[cl + kLanes * i] - a - xh * bm);
      p.y[o + kLanes * i] = p.r ? g + p.r[o + kLanes * i] : g;
      psum[i] += d * xh;
      psum[NT + i] += d;
    }
  }
}

// After the block's last tile (kGateBwd, kLnBwd): red [16][W] holds every thread's psum (red[rl][cl + 16 i], and
// kLnBwd's second half at N + cl + 16 i; W = psum_n N / NT); thread tid sums columns tid, tid + 256, .. over the 16 row
// lanes in order into dbp[(c / N) grid + block][c % N].
IRC_HD void write_partials(int tid, int W, int N, int64_t grid, int64_t block, const float* red, float* dbp) {
  for (int c = tid; c < W; c += kThreads) {
    float t = 0.f;
    for (int q = 0; q < kLanes; ++q) t += red[q * W + c];
    dbp[((c / N) * grid + block) * N + c % N] = t;
  }
}

// The thread's psum into red [16][W] (see write_partials).
template <int MODE, int NT>
IRC_HD void stage_partials(int rl, int cl, int N, const float* psum, float* red) {
  constexpr int H = psum_n(MODE, NT) / NT;
  const int W = H * N;
  IRC_UNROLL
  for (int h = 0; h < H; ++h)
    IRC_UNROLL
    for (int i = 0; i < NT; ++i) red[rl * W + h * N + cl + kLanes * i] = psum[h * NT + i];
}

}  // namespace pwsimt
}  // namespace irc
