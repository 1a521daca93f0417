// One thread's work in dwconv_gate's one-pass backward for 3x3 kernels with padding 1 (the CUDA kernel
// slide3_gate_bwd_k in depthwise3x3.cu). Written once for the device and the host: the CUDA kernel calls it for its
// work items, and the CPU backend runs it over all items when IRCONSTYLE_EMULATE=dwgate_bwd (nafnet_fused.cpp), so
// the kernel's window logic is checked by the CPU tests (test/ops-fused.test.ts) without a GPU.
//
// x [N, H, W, 2C], dy [N, H, W, C], w [3, 3, 1, 2C]; gate channel cv owns x's channels cv and cv + C (halves
// h = 0, 1). Work item i = (row r = n H + ih) S + segment: the input pixels p = (ih, iw) of a segment of up to kSeg
// columns. For each p it needs dz in the 3x3 window around p; dz at (r', cc) needs z of both halves there, i.e. x
// in the 3x3 window around (r', cc). So an x window of 5 rows (ih - 2 .. ih + 2) and 3 columns slides along the row
// (5 new values per half per pixel) and gives one new dz column (rows ih - 1 .. ih + 1) per pixel:
//   z_h = b_h + Σ_{kh, kw} x[r' - 1 + kh, cc - 1 + kw, c_h] w[kh, kw, c_h]   (kh outer, kw inner)
//   dz_0 = dy z_1 a'(z_0), dz_1 = dy a(z_0)   (0 outside the image; a = GELU or the identity)
// and then, with the dz window dzw[a][j] = dz[ih - 1 + a, iw - 1 + j]:
//   dx[p, c_h] = Σ_{kh, kw} dzw[2 - kh][2 - kw] w_h[kh, kw]
//   acc[h][3 kh + kw] += dzw[2 - kh][2 - kw] x[p, c_h]   (dw)      acc[h][9] += dzw[1][1]   (db)
#pragma once
#include <cstdint>

#include "../cuda/gelu.cuh"
#include "host_device.h"

namespace irc {
namespace dwslide {

constexpr int kSeg = 8;  // pixels per segment (as the other sliding kernels)

struct Geo {
  int H, W;
  int S;   // segments per row: ceil(W / kSeg)
  int Cx;  // x's channels (2C)
  int Co;  // gate channels (C)
};

// The geometry of an H x W image with Cx channels (vectors) per pixel and Co per work item (the callers check that
// the sizes fit the kernels' 32-bit index math).
IRC_HD Geo geo_of(int64_t H, int64_t W, int64_t Cx, int64_t Co) {
  return {static_cast<int>(H), static_cast<int>(W), static_cast<int>((W + kSeg - 1) / kSeg), static_cast<int>(Cx),
          static_cast<int>(Co)};
}

// ROWS_FIRST (IRCONSTYLE_SLIDE=batch): items i = (n S + segment) H + ih instead, so that the kernel's adjacent lanes
// take the same segment of adjacent rows and share their 5-row x windows through L1.
template <bool GELU, bool ROWS_FIRST = false>
IRC_HD void gate_bwd_item(const Geo& g, int i, int cv, const float (&wv)[2][9], const float (&bias)[2],
                          const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ dx,
                          float (&acc)[2][10]) {
  const int seg = ROWS_FIRST ? i / g.H % g.S : i % g.S;
  const int r = ROWS_FIRST ? i / (g.H * g.S) * g.H + i % g.H : i / g.S;
  const int ih = r % g.H, base = r - ih;
  const int iw0 = seg * kSeg, iw1 = iw0 + kSeg < g.W ? iw0 + kSeg : g.W;
  float xw[2][5][3], dzw[2][3][3];
  // x column iw into window column j (rows ih - 2 .. ih + 2, zeros outside the image)
  auto load_x = [&](int iw, int j) {
    const bool in_w = iw >= 0 && iw < g.W;
IRC_UNROLL
    for (int h = 0; h < 2; ++h)
IRC_UNROLL
      for (int a = 0; a < 5; ++a) {
        const int row = ih - 2 + a;
        xw[h][a][j] = in_w && row >= 0 && row < g.H ? x[((base + row) * g.W + iw) * g.Cx + cv + h * g.Co] : 0.f;
      }
  };
  auto shift_x = [&]() {
IRC_UNROLL
    for (int h = 0; h < 2; ++h)
IRC_UNROLL
      for (int a = 0; a < 5; ++a) {
        xw[h][a][0] = xw[h][a][1];
        xw[h][a][1] = xw[h][a][2];
      }
  };
  // dz column cc (the x window on columns cc - 1 .. cc + 1) into dz window column j
  auto dz_col = [&](int cc, int j) {
IRC_UNROLL
    for (int a = 0; a < 3; ++a) {
      const int row = ih - 1 + a;
      float d0 = 0.f, d1 = 0.f;
      if (row >= 0 && row < g.H && cc >= 0 && cc < g.W) {
        float z[2];
IRC_UNROLL
        for (int h = 0; h < 2; ++h) {
          float s = bias[h];
IRC_UNROLL
          for (int kh = 0; kh < 3; ++kh)
IRC_UNROLL
            for (int kw = 0; kw < 3; ++kw) s = s + xw[h][a + kh][kw] * wv[h][kh * 3 + kw];
          z[h] = s;
        }
        const float d = dy[((base + row) * g.W + cc) * g.Co + cv];
        if (GELU) {
          float da;
          const float av = gelu_d_f(z[0], da);
          d0 = d * z[1] * da;
          d1 = d * av;
        } else {
          d0 = d * z[1];
          d1 = d * z[0];
        }
      }
      dzw[0][a][j] = d0;
      dzw[1][a][j] = d1;
    }
  };
  load_x(iw0 - 2, 0);
  load_x(iw0 - 1, 1);
  load_x(iw0, 2);
  dz_col(iw0 - 1, 0);
  shift_x();
  load_x(iw0 + 1, 2);
  dz_col(iw0, 1);
  for (int iw = iw0; iw < iw1; ++iw) {
    shift_x();
    load_x(iw + 2, 2);  // the x window is now on columns iw .. iw + 2
    dz_col(iw + 1, 2);  // the dz window on columns iw - 1 .. iw + 1
    const int p = (r * g.W + iw) * g.Cx + cv;
IRC_UNROLL
    for (int h = 0; h < 2; ++h) {
      const float xv = xw[h][2][0];  // x at (ih, iw)
      float d = 0.f;
IRC_UNROLL
      for (int kh = 0; kh < 3; ++kh)
IRC_UNROLL
        for (int kw = 0; kw < 3; ++kw) {
          const float z = dzw[h][2 - kh][2 - kw];
          d = d + z * wv[h][kh * 3 + kw];
          acc[h][kh * 3 + kw] = acc[h][kh * 3 + kw] + z * xv;
        }
      acc[h][9] = acc[h][9] + dzw[h][1][1];
      dx[p + h * g.Co] = d;
IRC_UNROLL
      for (int a = 0; a < 3; ++a) {
        dzw[h][a][0] = dzw[h][a][1];
        dzw[h][a][1] = dzw[h][a][2];
      }
    }
  }
}

}  // namespace dwslide
}  // namespace irc
