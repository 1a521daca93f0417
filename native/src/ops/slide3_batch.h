// One thread's work item in the sliding 3x3 depthwise kernels (stride 1, padding 1; depthwise3x3.cu) with the
// whole segment's loads issued before any arithmetic, and vertically adjacent rows in adjacent threads
// (IRCONSTYLE_SLIDE=batch). The default kernels slide a 3x3 window along a row segment, loading one new column per
// output pixel and using it at once (at most three loads in flight per thread), with the threads of a block on
// consecutive segments of one row, so that each input row is fetched from L2 by three blocks (the rows above and
// below). Run 8 measured the dwconv_gate backward's two passes at ~1.6 TB/s. Here:
//   - the kSeg + 2 columns of a segment (3 rows each) go into registers first, all independent loads, and the
//     outputs are then formed from them (the arithmetic is the default kernels', tap for tap in the same order, so
//     every output is theirs bit for bit);
//   - the work items are ordered rows first: the threads of a block take the same segment of consecutive rows (and
//     channels), so the rows they share are read once from L2 and then from L1.
// The backward's dw / db partial sums then add the same terms per lane in another (fixed) order.
//
// Written once for the device and the host: the CUDA kernels call these per work item, and the CPU backend runs
// them over all items when IRCONSTYLE_EMULATE lists `slide` (slide3_host.cpp), so the tests check the window logic,
// the item orders, the segment tails and the image borders without a GPU (test/ops-fused.test.ts). They compare
// within a rounding bound, not bit for bit: nvcc contracts acc + x w into one FMA, and the host build (x86-64 without
// -mfma) does not. Geometry: dwslide::Geo.
#pragma once
#include <cstdint>

#include "../cuda/gelu.cuh"
#include "dwgate_slide.h"
#include "host_device.h"

namespace irc {
namespace slide {

using dwslide::Geo;
using dwslide::geo_of;
using dwslide::kSeg;

IRC_HD float mac(float acc, float x, float w) { return acc + x * w; }
IRC_HD float add(float a, float b) { return a + b; }
IRC_HD float mul(float a, float b) { return a * b; }
#ifdef __CUDACC__
__device__ __forceinline__ float2 mac(float2 acc, float2 x, float2 w) {
  return make_float2(acc.x + x.x * w.x, acc.y + x.y * w.y);
}
__device__ __forceinline__ float2 add(float2 a, float2 b) { return make_float2(a.x + b.x, a.y + b.y); }
__device__ __forceinline__ float2 mul(float2 a, float2 b) { return make_float2(a.x * b.x, a.y * b.y); }
#endif

// Clamped into [0, n): the address every load of a segment reads, in the tensor even where the value is not used, so
// that no load waits behind a branch.
IRC_HD int clamp_to(int i, int n) { return i < 0 ? 0 : i >= n ? n - 1 : i; }

// col[j][a] = t[n, oh - 1 + a, ow0 - 1 + j, c] for j = 0 .. kSeg + 1 (zero outside the image); base = n H.
template <class V>
IRC_HD void load_cols(const V* __restrict__ t, const Geo& g, int base, int oh, int ow0, int c, V (&col)[kSeg + 2][3]) {
IRC_UNROLL
  for (int j = 0; j < kSeg + 2; ++j) {
    const int iw = ow0 - 1 + j;
IRC_UNROLL
    for (int a = 0; a < 3; ++a) {
      const int ih = oh - 1 + a;
      const V v = t[((base + clamp_to(ih, g.H)) * g.W + clamp_to(iw, g.W)) * g.Cx + c];
      col[j][a] = iw >= 0 && iw < g.W && ih >= 0 && ih < g.H ? v : V{};
    }
  }
}

// row[k] = t[r, ow0 + k, c] for k = 0 .. kSeg - 1 (C channel vectors per pixel; zero past the row's end).
template <class V>
IRC_HD void load_row(const V* __restrict__ t, const Geo& g, int r, int ow0, int C, int c, V (&row)[kSeg]) {
IRC_UNROLL
  for (int k = 0; k < kSeg; ++k) {
    const V v = t[(r * g.W + clamp_to(ow0 + k, g.W)) * C + c];
    row[k] = ow0 + k < g.W ? v : V{};
  }
}

// The forward modes of slide3_fwd_k (depthwise3x3.cu): kPlain y = z_0; kGate y = a(z_0) z_1; kGateDz the gate's
// backward into dz [.., 2 Co] = [dy z_1 a'(z_0), dy a(z_0)]; a = GELU when GELU (gate modes, floats), else the
// identity. z_h = b[c_h] + Σ_{kh, kw} x[oh - 1 + kh, ow - 1 + kw, c_h] w[kh, kw, c_h] (kh outer, kw inner), with
// c_0 = cv, c_1 = cv + Co.
enum Mode { kPlain = 0, kGate = 1, kGateDz = 2 };

// The output of pixel q (row-major over the rows r and columns) and channel (vector) cv in `mode` from z (z[0], and
// z[1] in the gate modes) and, for kGateDz, d = dy[q, cv]: kPlain y = z_0; kGate y = a(z_0) z_1; kGateDz
// out[q, cv] = d z_1 a'(z_0), out[q, Co + cv] = d a(z_0).
template <int MODE, bool GELU, class V, int NH>
IRC_HD void store_out(const Geo& g, int q, int cv, const V (&z)[NH], V d, V* __restrict__ out) {
  if constexpr (MODE == kPlain) {
    out[q * g.Co + cv] = z[0];
  } else if constexpr (GELU) {
    float da;
    const float a = gelu_d_f(z[0], da);
    if constexpr (MODE == kGate) {
      out[q * g.Co + cv] = a * z[NH - 1];
    } else {
      out[q * 2 * g.Co + cv] = d * z[NH - 1] * da;
      out[q * 2 * g.Co + g.Co + cv] = d * a;
    }
  } else if constexpr (MODE == kGate) {
    out[q * g.Co + cv] = mul(z[0], z[NH - 1]);
  } else {
    out[q * 2 * g.Co + cv] = mul(d, z[NH - 1]);
    out[q * 2 * g.Co + g.Co + cv] = mul(d, z[0]);
  }
}

// Channels per item chunk of the forward: the threads of a block take CW channels of consecutive rows.
IRC_HD int fwd_chunk(int Co) { return Co <= 64 ? Co : 32; }

// The forward's work items: e = (((n chunks + chunk) S + segment) H + oh) CW + lane, channel cv = chunk CW + lane
// (items with cv >= Co do nothing); N H S ceil(Co / CW) CW of them.
IRC_HD int64_t fwd_items(const Geo& g, int64_t N) {
  const int CW = fwd_chunk(g.Co);
  return N * g.H * g.S * ((g.Co + CW - 1) / CW) * CW;
}

template <int MODE, bool GELU, class V>
IRC_HD void fwd_item(const Geo& g, int e, const V* __restrict__ x, const V* __restrict__ w, const V* __restrict__ b,
                     const V* __restrict__ dy, V* __restrict__ out) {
  constexpr int NH = MODE == kPlain ? 1 : 2;
  const int CW = fwd_chunk(g.Co), chunks = (g.Co + CW - 1) / CW;
  int t = e / CW;
  const int oh = t % g.H;
  t /= g.H;
  const int seg = t % g.S;
  t /= g.S;
  const int cv = t % chunks * CW + e % CW, base = t / chunks * g.H, r = base + oh, ow0 = seg * kSeg;
  if (cv >= g.Co) return;
  V col[NH][kSeg + 2][3], wv[NH][9], bias[NH], dyv[MODE == kGateDz ? kSeg : 1];
IRC_UNROLL
  for (int h = 0; h < NH; ++h) load_cols(x, g, base, oh, ow0, cv + h * g.Co, col[h]);
  if constexpr (MODE == kGateDz) load_row(dy, g, r, ow0, g.Co, cv, dyv);
IRC_UNROLL
  for (int h = 0; h < NH; ++h) {
IRC_UNROLL
    for (int k = 0; k < 9; ++k) wv[h][k] = w[k * g.Cx + cv + h * g.Co];
    bias[h] = b ? b[cv + h * g.Co] : V{};
  }
IRC_UNROLL
  for (int k = 0; k < kSeg; ++k) {
    const int ow = ow0 + k;
    if (ow >= g.W) break;
    V z[NH];
IRC_UNROLL
    for (int h = 0; h < NH; ++h) {
      V acc = bias[h];
IRC_UNROLL
      for (int kh = 0; kh < 3; ++kh)
IRC_UNROLL
        for (int kw = 0; kw < 3; ++kw) acc = mac(acc, col[h][k + kw][kh], wv[h][kh * 3 + kw]);
      z[h] = acc;
    }
    store_out<MODE, GELU>(g, r * g.W + ow, cv, z, MODE == kGateDz ? dyv[k] : V{}, out);
  }
}

// The backward of a 3x3 depthwise conv given dz (the gradient of its output) for work item i = (n S + segment) H + ih
// (rows first), channel (vector) cv, in slide3_bwd_k's threads: with the window dzw[a][j] = dz[ih - 1 + a, iw - 1 + j],
//   dx[p] = Σ_{kh, kw} dzw[2 - kh][2 - kw] w[kh, kw]   (kh outer, kw inner)
//   acc[3 kh + kw] += dzw[2 - kh][2 - kw] x[p]          acc[9] += dzw[1][1]
template <class V>
IRC_HD void bwd_item(const Geo& g, int i, int cv, const V (&wv)[9], const V* __restrict__ dz,
                     const V* __restrict__ x, V* __restrict__ dx, V (&acc)[10]) {
  const int ih = i % g.H, seg = i / g.H % g.S, base = i / (g.H * g.S) * g.H, r = base + ih, iw0 = seg * kSeg;
  V col[kSeg + 2][3];
  load_cols(dz, g, base, ih, iw0, cv, col);
IRC_UNROLL
  for (int k = 0; k < kSeg; ++k) {
    if (iw0 + k >= g.W) break;
    const V xk = x[(r * g.W + iw0 + k) * g.Cx + cv];  // (loaded here: the window and these would need > 128 registers)
    V d{};
IRC_UNROLL
    for (int kh = 0; kh < 3; ++kh)
IRC_UNROLL
      for (int kw = 0; kw < 3; ++kw) {
        const V z = col[k + 2 - kw][2 - kh];
        d = mac(d, z, wv[kh * 3 + kw]);
        acc[kh * 3 + kw] = mac(acc[kh * 3 + kw], z, xk);
      }
    acc[9] = add(acc[9], col[k + 1][1]);
    dx[(r * g.W + iw0 + k) * g.Cx + cv] = d;
  }
}

}  // namespace slide
}  // namespace irc

namespace irc {
// The CPU backend's runs of these work items (slide3_host.cpp), when IRCONSTYLE_EMULATE lists `slide` (else they
// return false, having done nothing): the forward in `mode` over x [N, H, W, Cx] (C channels per item: Cx = C plain,
// 2C for the gate modes; dy [N, H, W, C] for kGateDz), and the backward over dz [N, H, W, C] into dx, dw, db (the
// work items' sums added per channel in double).
bool slide3_emulate_forward(int mode, bool gelu, int64_t N, int64_t H, int64_t W, int64_t C, const float* x,
                            const float* w, const float* b, const float* dy, float* out);
bool slide3_emulate_backward(int64_t N, int64_t H, int64_t W, int64_t C, const float* dz, const float* x,
                             const float* w, float* dx, float* dw, float* db);
}  // namespace irc
