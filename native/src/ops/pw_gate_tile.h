// The phases of conv1x1_gate's tensor-core kernel (gate_wmma_k in conv1x1_gate.cu), written once for the device and
// the host: the CUDA kernel runs them with nvcuda::wmma, and the CPU backend runs them with a host model of the WMMA
// calls (HostWmma below: the documented semantics of load_matrix_sync / mma_sync / store_matrix_sync, including
// their pointer-alignment and leading-dimension rules) when IRCONSTYLE_EMULATE=pw_gate (conv1x1_gate.cpp), so the
// kernel's tiling, pointer and epilogue arithmetic is checked by the CPU tests without a GPU.
//
// x [rows, Ci], w [Ci, 2C] (row-major view of [1, 1, Ci, 2C]), z = x w + b. A block of kThreads = 128 threads
// (4 warps) owns rows [64 blockIdx, + 64):
//   load_x_tile (every thread): the x tile into shared memory xs [64][Ci + 4], rounded to TF32, zeros past the end;
//   z_tiles (every warp, for each 16-column block j of the C gate channels): z1 = x[16 rows] w[:, j .. j + 16) and
//     z2 = x[16 rows] w[:, C + j ..) by m16n16k8 TF32 products over Ci in steps of 8, stored to the warp's staging
//     st [2][16][16];
//   epilogue (every lane, elements lane, lane + 32, .. of the 16x16 tiles): the bias, then y = z1 z2 (MODE 0),
//     dz = (dy z2, dy z1) (MODE 1) with the lane's sums of dz over its rows (column j + (lane & 15)), or z itself
//     (MODE 2: ln_conv1x1, a plain 1x1 conv of 2C outputs behind a LayerNorm; a Linear layer), or r + z (MODE 3: a
//     Linear layer and its residual r, passed as dy [rows, 2C]);
//   MODE 1 then adds lane l + 16's sums into lane l (one shuffle) and lanes 0..15 write the warp's column sums of dz
//     to dbp [4 blockIdx + warp][2C] (write_db_partials).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "host_device.h"
#include "op_api.h"

namespace irc {
namespace pwgate {

constexpr int kRows = 64;     // rows per block (4 warps x 16)
constexpr int kThreads = 128;
constexpr int kMaxCi = 344;   // shared memory: 64 (Ci + 4) + 4 x 512 floats <= 96 KiB

IRC_HD int ldx_of(int Ci) { return Ci + 4; }
inline size_t smem_floats(int Ci) { return static_cast<size_t>(kRows) * ldx_of(Ci) + 4 * 512; }

// Round to TF32 (10-bit mantissa), to nearest with ties away from zero, as cvt.rna.tf32.f32.
IRC_HD float tf32_host(float v) {
  uint32_t u;
  memcpy(&u, &v, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;  // finite: round the 13 dropped bits
  memcpy(&v, &u, 4);
  return v;
}

// A LayerNorm over the channels of x applied on the way in (ln_conv1x1_gate: NAFBlock's norm2 before conv4):
// h = (x - mean) rstd w + b per row. The statistics are computed (mean_out, rstd_out written) or given (mean_in,
// rstd_in: the backward uses the forward's).
struct LnArgs {
  const float *w = nullptr, *b = nullptr;
  const float *mean_in = nullptr, *rstd_in = nullptr;
  float *mean_out = nullptr, *rstd_out = nullptr;
  float eps = 0.f;
};

// Phase 1, thread tid of the block: the x tile, rounded to TF32 unless a LayerNorm follows (it rounds).
#ifdef __CUDACC__
#pragma nv_exec_check_disable
#endif
template <class W>
IRC_HD void load_x_tile(int tid, const float* __restrict__ x, int64_t rows, int64_t r0, int Ci, float* xs,
                        bool round = true) {
  const int ldx = ldx_of(Ci);
  for (int e = tid; e < kRows * Ci; e += kThreads) {
    const int r = e / Ci, q = e - r * Ci;
    const float v = r0 + r < rows ? x[(r0 + r) * Ci + q] : 0.f;
    xs[r * ldx + q] = round ? W::to_tf32(v) : v;
  }
}

// Phase 1b (with a LayerNorm), warp `warp` on its own 16 rows of the tile (lane `lane` of W::kLanes): the row
// statistics (sums over the lanes' channels, then W::warp_sum), then h = (x - mean) rstd w + b rounded to TF32;
// rows past the end become zeros. Float sums (at most 344 channels).
#ifdef __CUDACC__
#pragma nv_exec_check_disable
#endif
template <class W>
IRC_HD void ln_prologue(int warp, int lane, float* xs, int Ci, int64_t r0, int64_t rows, const LnArgs& ln) {
  const int ldx = ldx_of(Ci);
  for (int i = 0; i < 16; ++i) {
    const int r = warp * 16 + i;
    const int64_t row = r0 + r;
    float* xr = xs + r * ldx;
    float m = 0.f, rs = 0.f;
    if (ln.mean_in) {
      if (row < rows) {
        m = ln.mean_in[row];
        rs = ln.rstd_in[row];
      }
    } else {
      float s = 0.f;
      for (int q = lane; q < Ci; q += W::kLanes) s += xr[q];
      m = W::warp_sum(s) / static_cast<float>(Ci);
      float v = 0.f;
      for (int q = lane; q < Ci; q += W::kLanes) {
        const float d = xr[q] - m;
        v += d * d;
      }
      rs = 1.f / sqrtf(W::warp_sum(v) / static_cast<float>(Ci) + ln.eps);
      if (lane == 0 && row < rows) {
        ln.mean_out[row] = m;
        ln.rstd_out[row] = rs;
      }
    }
    for (int q = lane; q < Ci; q += W::kLanes) xr[q] = W::to_tf32(row < rows ? (xr[q] - m) * rs * ln.w[q] + ln.b[q] : 0.f);
  }
  W::sync_warp();
}

// Phase 2, warp `warp`: its staging st [512] gets z1 (st[0..256)) and z2 (st[256..512)) of columns j .. j + 16,
// row-major 16 x 16 (without the bias).
#ifdef __CUDACC__
#pragma nv_exec_check_disable
#endif
template <class W>
IRC_HD void z_tiles(const float* xs, int Ci, int warp, const float* __restrict__ w, int C, int j, float* st) {
  const int ldx = ldx_of(Ci), C2 = 2 * C;
  typename W::Acc acc1, acc2;
  W::fill(acc1);
  W::fill(acc2);
  const float* xw = xs + warp * 16 * ldx;
  for (int kk = 0; kk < Ci; kk += 8) {
    typename W::A a;
    typename W::B b1, b2;
    W::load_a(a, xw + kk, ldx);
    W::load_b(b1, w + static_cast<int64_t>(kk) * C2 + j, C2);
    W::load_b(b2, w + static_cast<int64_t>(kk) * C2 + C + j, C2);
    W::mma(acc1, a, b1);
    W::mma(acc2, a, b2);
  }
  W::store(st, acc1, 16);
  W::store(st + 256, acc2, 16);
}

// Phase 3, lane `lane` of warp `warp`. MODE 1: s1, s2 += this lane's dz in columns j + (lane & 15) and C + j + ...
template <int MODE>
IRC_HD void epilogue(int lane, int warp, int j, int64_t r0, int64_t rows, int C, const float* st,
                     const float* __restrict__ b, const float* __restrict__ dy, float* __restrict__ out, float& s1,
                     float& s2) {
  const int C2 = 2 * C;
  IRC_UNROLL
  for (int e = lane; e < 256; e += 32) {
    const int64_t row = r0 + warp * 16 + (e >> 4);
    const int col = j + (e & 15);
    if (row < rows) {
      float z1 = st[e], z2 = st[256 + e];
      if (b) {
        z1 += b[col];
        z2 += b[C + col];
      }
      if (MODE == 0) {
        out[row * C + col] = z1 * z2;
      } else if (MODE == 2) {  // no gate: the conv itself, both halves of its 2C columns
        out[row * C2 + col] = z1;
        out[row * C2 + C + col] = z2;
      } else if (MODE == 3) {  // the same plus a residual (dy stands for it): a Linear + skip
        out[row * C2 + col] = dy[row * C2 + col] + z1;
        out[row * C2 + C + col] = dy[row * C2 + C + col] + z2;
      } else {
        const float g = dy[row * C + col], d1 = g * z2, d2 = g * z1;
        out[row * C2 + col] = d1;
        out[row * C2 + C + col] = d2;
        s1 += d1;
        s2 += d2;
      }
    }
  }
}

// Phase 4 (MODE 1), lane < 16 after the shuffle: the warp's column sums of dz for columns j + lane and C + j + lane.
IRC_HD void write_db_partials(int lane, int warp, int64_t block, int j, int C, float s1, float s2, float* dbp) {
  float* p = dbp + (block * 4 + warp) * (2 * C);
  p[j + lane] = s1;
  p[C + j + lane] = s2;
}

#ifndef __CUDACC__
// The host model of the WMMA calls of z_tiles: one call stands for the whole warp's collective operation. ROUND:
// operands rounded to TF32 as on the device (else exact FP32, for tight comparisons of the arithmetic around them).
template <bool ROUND>
struct HostWmma {
  struct A {
    float m[16][8];
  };
  struct B {
    float m[8][16];
  };
  struct Acc {
    float m[16][16];
  };
  // load_matrix_sync / store_matrix_sync require a 256-bit aligned pointer and a leading dimension that is a
  // multiple of 16 bytes; a violation is a kernel bug, reported as one.
  static void check(const float* p, int ld, const char* what) {
    if ((reinterpret_cast<uintptr_t>(p) & 31u) != 0 || ld % 4 != 0)
      op_fail("E_INTERNAL", std::string("WMMA host model: ") + what + " breaks the pointer (32-byte) or ldm rule");
  }
  static float to_tf32(float v) { return ROUND ? tf32_host(v) : v; }
  // warp-wide phases run once for the whole warp on the host
  static constexpr int kLanes = 1;
  static float warp_sum(float v) { return v; }
  static void sync_warp() {}
  static void fill(Acc& c) { std::memset(c.m, 0, sizeof c.m); }
  static void load_a(A& a, const float* p, int ld) {
    check(p, ld, "load_matrix_sync(a)");
    for (int r = 0; r < 16; ++r)
      for (int k = 0; k < 8; ++k) a.m[r][k] = p[r * ld + k];
  }
  static void load_b(B& b, const float* p, int ld) {  // with the kernel's conversion to TF32 after the load
    check(p, ld, "load_matrix_sync(b)");
    for (int k = 0; k < 8; ++k)
      for (int c = 0; c < 16; ++c) b.m[k][c] = to_tf32(p[k * ld + c]);
  }
  // column-major operands (pw_bwd_tile.h): element (i, k) of a at p[k ld + i], (k, n) of b at p[n ld + k]
  using Ac = A;
  using Bc = B;
  static void load_ac(Ac& a, const float* p, int ld) {
    check(p, ld, "load_matrix_sync(a, col_major)");
    for (int r = 0; r < 16; ++r)
      for (int k = 0; k < 8; ++k) a.m[r][k] = p[k * ld + r];
  }
  static void load_bc(Bc& b, const float* p, int ld) {
    check(p, ld, "load_matrix_sync(b, col_major)");
    for (int k = 0; k < 8; ++k)
      for (int c = 0; c < 16; ++c) b.m[k][c] = to_tf32(p[c * ld + k]);
  }
  static void mma_c(Acc& c, const A& a, const Bc& b) { mma(c, a, b); }
  static void mma_t(Acc& c, const Ac& a, const B& b) { mma(c, a, b); }
  static void mma(Acc& c, const A& a, const B& b) {
    for (int r = 0; r < 16; ++r)
      for (int n = 0; n < 16; ++n) {
        float s = c.m[r][n];
        for (int k = 0; k < 8; ++k) s += a.m[r][k] * b.m[k][n];
        c.m[r][n] = s;
      }
  }
  static void store(float* p, const Acc& c, int ld) {
    check(p, ld, "store_matrix_sync");
    for (int r = 0; r < 16; ++r)
      for (int n = 0; n < 16; ++n) p[r * ld + n] = c.m[r][n];
  }
};

// The host model of DeviceWmma3 (split-TF32, wmma_tf32.cuh): operands loaded as hi = tf32(v), lo = tf32(v - hi);
// each mma is the three products a_lo b_hi, a_hi b_lo, a_hi b_hi accumulated in that order.
struct HostWmma3 : HostWmma<false> {
  struct A {
    float hi[16][8], lo[16][8];
  };
  struct B {
    float hi[8][16], lo[8][16];
  };
  using Ac = A;
  using Bc = B;
  static void split(float v, float& h, float& l) {
    h = tf32_host(v);
    l = tf32_host(v - h);
  }
  // element (r, c) of the R x C operand at p[r ld + c] (row-major) or p[c ld + r] (column-major)
  template <int R, int C>
  static void load_split(float (&hi)[R][C], float (&lo)[R][C], const float* p, int ld, bool col, const char* what) {
    check(p, ld, what);
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) split(col ? p[c * ld + r] : p[r * ld + c], hi[r][c], lo[r][c]);
  }
  static void load_a(A& a, const float* p, int ld) { load_split(a.hi, a.lo, p, ld, false, "load_matrix_sync(a)"); }
  static void load_ac(Ac& a, const float* p, int ld) { load_split(a.hi, a.lo, p, ld, true, "load_matrix_sync(a, col_major)"); }
  static void load_b(B& b, const float* p, int ld) { load_split(b.hi, b.lo, p, ld, false, "load_matrix_sync(b)"); }
  static void load_bc(Bc& b, const float* p, int ld) { load_split(b.hi, b.lo, p, ld, true, "load_matrix_sync(b, col_major)"); }
  static void mma(Acc& c, const A& a, const B& b) {
    for (int r = 0; r < 16; ++r)
      for (int n = 0; n < 16; ++n) {
        float s = c.m[r][n];
        for (int k = 0; k < 8; ++k) s += a.lo[r][k] * b.hi[k][n];
        for (int k = 0; k < 8; ++k) s += a.hi[r][k] * b.lo[k][n];
        for (int k = 0; k < 8; ++k) s += a.hi[r][k] * b.hi[k][n];
        c.m[r][n] = s;
      }
  }
  static void mma_c(Acc& c, const A& a, const Bc& b) { mma(c, a, b); }
  static void mma_t(Acc& c, const Ac& a, const B& b) { mma(c, a, b); }
};
#endif

}  // namespace pwgate
}  // namespace irc
