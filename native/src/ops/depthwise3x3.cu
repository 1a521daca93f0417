// Sliding-window 3x3 depthwise kernels, stride 1 and padding 1 (depthwise3x3.h): the plain convolution forward
// (conv2d's depthwise 3x3), the gated forward, the gate's backward in one pass and the gate's dz (dwconv_gate,
// nafnet.cu), and the backward pass over dz that gives dx and the dw / db partials (both). With
// IRCONSTYLE_SLIDE=batch the forward and the backward over dz take each work item's loads first (slide3_batch.h).
#include <climits>
#include <cstdint>

#include "../cuda/common.cuh"
#include "../cuda/gelu.cuh"
#include "depthwise3x3.h"
#include "dwgate_slide.h"
#include "partials.cuh"
#include "slide3_batch.h"
#include "switches.h"

namespace irc {
namespace {

// ---- sliding-window 3x3 depthwise kernels (stride 1, padding 1) ------------------------------------------------
// A thread owns one channel vector and a segment of up to kSeg consecutive pixels of one row. The 3x3 window of
// its input slides along the row in registers: per output pixel it loads one new column (3 values) and does 9
// multiply-adds; the weights stay in registers and the index math is done once per segment. Out-of-image taps
// are zeros (they add nothing). Index math in 32 bits: the callers check N H W C < 2^31.
// Geometry (dwslide::Geo): H, W; S segments per row; Cx channel vectors per pixel of the windowed tensor; Co
// channel vectors per work item: Cx (plain), Cx / 2 (gate: the two halves c and c + Co).
using dwslide::kSeg;
using Slide = dwslide::Geo;
using dwslide::geo_of;

// col[a] = t[n, ih = oh - 1 + a, iw, c] (zero outside the image); base = n H.
template <class V>
__device__ __forceinline__ void load_col(const V* __restrict__ t, const Slide& g, int base, int oh, int iw, int c,
                                         V (&col)[3]) {
  const bool in_w = iw >= 0 && iw < g.W;
#pragma unroll
  for (int a = 0; a < 3; ++a) {
    const int ih = oh - 1 + a;
    col[a] = in_w && ih >= 0 && ih < g.H ? t[((base + ih) * g.W + iw) * g.Cx + c] : vzero<V>();
  }
}

using slide::kGate;
using slide::kGateDz;
using slide::kPlain;

// Forward over work items e = ((row r) S + segment) Co + cv, r = n H + oh:
//   z_h = b[c_h] + Σ_{kh, kw} x[oh - 1 + kh, ow - 1 + kw, c_h] w[kh, kw, c_h]   (kh outer, kw inner, as the CPU)
//   kPlain:  y[q, cv] = z_0                                   (c_0 = cv)
//   kGate:   y[q, cv] = a(z_0) z_1                            (c_1 = cv + Co)
//   kGateDz: out[q, cv] = dy[q, cv] z_1 a'(z_0), out[q, Co + cv] = dy[q, cv] a(z_0)   (the gate's backward into dz)
// with a = identity, or GELU when GELU (gate modes only; they take floats). BATCH: slide::fwd_item (all loads first).
template <int MODE, bool GELU, class V, bool BATCH>
__global__ void __launch_bounds__(256) slide3_fwd_k(Slide g, const V* __restrict__ x, const V* __restrict__ w,
                                                    const V* __restrict__ b, const V* __restrict__ dy,
                                                    V* __restrict__ out, int items) {
  constexpr int NH = MODE == kPlain ? 1 : 2;
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < items; e += gridDim.x * blockDim.x) {
    if constexpr (BATCH) {
      slide::fwd_item<MODE, GELU>(g, e, x, w, b, dy, out);
      continue;
    }
    const int cv = e % g.Co, t = e / g.Co, seg = t % g.S, r = t / g.S;
    const int oh = r % g.H, base = r - oh;
    const int ow0 = seg * kSeg, ow1 = min(ow0 + kSeg, g.W);
    V wv[NH][9], bias[NH], win[NH][3][3];
#pragma unroll
    for (int h = 0; h < NH; ++h) {
      const int ch = cv + h * g.Co;
#pragma unroll
      for (int k = 0; k < 9; ++k) wv[h][k] = w[k * g.Cx + ch];
      bias[h] = b ? b[ch] : vzero<V>();
      V c0[3], c1[3];
      load_col(x, g, base, oh, ow0 - 1, ch, c0);
      load_col(x, g, base, oh, ow0, ch, c1);
#pragma unroll
      for (int a = 0; a < 3; ++a) {
        win[h][a][0] = c0[a];
        win[h][a][1] = c1[a];
      }
    }
    for (int ow = ow0; ow < ow1; ++ow) {
      V z[NH];
#pragma unroll
      for (int h = 0; h < NH; ++h) {
        V c2[3];
        load_col(x, g, base, oh, ow + 1, cv + h * g.Co, c2);
#pragma unroll
        for (int a = 0; a < 3; ++a) win[h][a][2] = c2[a];
        V acc = bias[h];
#pragma unroll
        for (int kh = 0; kh < 3; ++kh)
#pragma unroll
          for (int kw = 0; kw < 3; ++kw) acc = mac(acc, win[h][kh][kw], wv[h][kh * 3 + kw]);
        z[h] = acc;
#pragma unroll
        for (int a = 0; a < 3; ++a) {
          win[h][a][0] = win[h][a][1];
          win[h][a][1] = win[h][a][2];
        }
      }
      const int q = r * g.W + ow;
      slide::store_out<MODE, GELU>(g, q, cv, z, MODE == kGateDz ? dy[q * g.Co + cv] : vzero<V>(), out);
    }
  }
}

// Backward of a 3x3 depthwise conv given dz (the gradient of its output), over work items (row, segment) of the
// block's group: block (group gq, chunk of CB channel vectors) of 256 threads = L lanes x CB; lane l takes items
// i0 + l, i0 + l + L, ... With the window dzw[a][j] = dz[ih - 1 + a, iw - 1 + j] around input pixel p:
//   dx[p] = Σ_{kh, kw} dzw[2 - kh][2 - kw] w[kh, kw]    (kh outer, kw inner, as dx_pix on the CPU)
//   acc[3 kh + kw] += dzw[2 - kh][2 - kw] x[p]           (dw[kh, kw] = Σ_q dz[q] x[q + (kh - 1, kw - 1)])
//   acc[9] += dzw[1][1]                                   (db)
// part[(gq 10 + t) C + c] = the group's sums, lanes added in order (double), as finish_parts_k expects. BATCH:
// slide::bwd_item (all loads first; its kernel slide3_bwd_batch_k keeps two blocks per SM).
template <class V, bool BATCH>
__device__ __forceinline__ void slide3_bwd(const Slide& g, const V* __restrict__ dz, const V* __restrict__ x,
                                           const V* __restrict__ w, V* __restrict__ dx, double* __restrict__ part,
                                           int items, int CB, int L, int G) {
  constexpr int VW = VecW<V>::n;
  __shared__ double sh[kThreads * VW];
  const int t = threadIdx.x, lane = t / CB, cv = blockIdx.y * CB + t % CB;
  const bool active = lane < L && cv < g.Cx;
  const int gq = blockIdx.x;
  const int i0 = static_cast<int>(int64_t(items) * gq / G), i1 = static_cast<int>(int64_t(items) * (gq + 1) / G);
  V acc[10];
#pragma unroll
  for (int k = 0; k < 10; ++k) acc[k] = vzero<V>();
  if (active) {
    V wv[9];
#pragma unroll
    for (int k = 0; k < 9; ++k) wv[k] = w[k * g.Cx + cv];
    for (int i = i0 + lane; i < i1; i += L) {
      if constexpr (BATCH) {
        slide::bwd_item(g, i, cv, wv, dz, x, dx, acc);
        continue;
      }
      const int seg = i % g.S, r = i / g.S;
      const int ih = r % g.H, base = r - ih;
      const int iw0 = seg * kSeg, iw1 = min(iw0 + kSeg, g.W);
      V win[3][3], c0[3], c1[3];
      load_col(dz, g, base, ih, iw0 - 1, cv, c0);
      load_col(dz, g, base, ih, iw0, cv, c1);
#pragma unroll
      for (int a = 0; a < 3; ++a) {
        win[a][0] = c0[a];
        win[a][1] = c1[a];
      }
      for (int iw = iw0; iw < iw1; ++iw) {
        V c2[3];
        load_col(dz, g, base, ih, iw + 1, cv, c2);
#pragma unroll
        for (int a = 0; a < 3; ++a) win[a][2] = c2[a];
        const int p = (r * g.W + iw) * g.Cx + cv;
        const V xv = x[p];
        V d = vzero<V>();
#pragma unroll
        for (int kh = 0; kh < 3; ++kh)
#pragma unroll
          for (int kw = 0; kw < 3; ++kw) {
            const V z = win[2 - kh][2 - kw];
            d = mac(d, z, wv[kh * 3 + kw]);
            acc[kh * 3 + kw] = mac(acc[kh * 3 + kw], z, xv);
          }
        acc[9] = acc[9] + win[1][1];
        dx[p] = d;
#pragma unroll
        for (int a = 0; a < 3; ++a) {
          win[a][0] = win[a][1];
          win[a][1] = win[a][2];
        }
      }
    }
  }
#pragma unroll
  for (int k = 0; k < 10; ++k) {
    double v[VW];
#pragma unroll
    for (int j = 0; j < VW; ++j) v[j] = comp(acc[k], j);
    lane_reduce<VW>(v, sh, CB, L, t < CB && cv < g.Cx,
                    part + (int64_t(gq) * 10 + k) * (int64_t(g.Cx) * VW) + int64_t(cv) * VW);
  }
}

template <class V>
__global__ void __launch_bounds__(256) slide3_bwd_k(Slide g, const V* __restrict__ dz, const V* __restrict__ x,
                                                    const V* __restrict__ w, V* __restrict__ dx,
                                                    double* __restrict__ part, int items, int CB, int L, int G) {
  slide3_bwd<V, false>(g, dz, x, w, dx, part, items, CB, L, G);
}
template <class V>
__global__ void __launch_bounds__(256, 2) slide3_bwd_batch_k(Slide g, const V* __restrict__ dz,
                                                             const V* __restrict__ x, const V* __restrict__ w,
                                                             V* __restrict__ dx, double* __restrict__ part, int items,
                                                             int CB, int L, int G) {
  slide3_bwd<V, true>(g, dz, x, w, dx, part, items, CB, L, G);
}

// dwconv_gate's backward in one pass (3x3, padding 1): dz computed where it is needed instead of written by one pass
// and read by the next. Threads and work items as slide3_bwd_k (gate channel cv: both halves); each item's work is
// dwslide::gate_bwd_item (dwgate_slide.h, shared with the CPU emulation that tests it). Memory: x and dy read, dx
// written, against dz written and read twice more by the two-pass path.
template <bool GELU, bool ROWS_FIRST>
__global__ void __launch_bounds__(256) slide3_gate_bwd_k(dwslide::Geo g, const float* __restrict__ x,
                                                         const float* __restrict__ w, const float* __restrict__ b,
                                                         const float* __restrict__ dy, float* __restrict__ dx,
                                                         double* __restrict__ part, int items, int CB, int L, int G) {
  __shared__ double sh[kThreads];
  const int t = threadIdx.x, lane = t / CB, cv = blockIdx.y * CB + t % CB;
  const bool active = lane < L && cv < g.Co;
  const int gq = blockIdx.x;
  const int i0 = static_cast<int>(int64_t(items) * gq / G), i1 = static_cast<int>(int64_t(items) * (gq + 1) / G);
  float acc[2][10];
#pragma unroll
  for (int h = 0; h < 2; ++h)
#pragma unroll
    for (int k = 0; k < 10; ++k) acc[h][k] = 0.f;
  if (active) {
    float wv[2][9], bias[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
#pragma unroll
      for (int k = 0; k < 9; ++k) wv[h][k] = w[k * g.Cx + cv + h * g.Co];
      bias[h] = b ? b[cv + h * g.Co] : 0.f;
    }
    for (int i = i0 + lane; i < i1; i += L)
      dwslide::gate_bwd_item<GELU, ROWS_FIRST>(g, i, cv, wv, bias, x, dy, dx, acc);
  }
#pragma unroll
  for (int h = 0; h < 2; ++h)
#pragma unroll
    for (int k = 0; k < 10; ++k) {
      double v[1] = {acc[h][k]};
      lane_reduce<1>(v, sh, CB, L, t < CB && cv < g.Co, part + (int64_t(gq) * 10 + k) * g.Cx + cv + h * g.Co);
    }
}

// Groups of work items for the backward kernels' partial sums: about 4 blocks per SM of an H100, each lane taking
// at least 4 segments.
int64_t slide_groups(int64_t items, const Lanes& l) {
  int64_t G = (528 + l.chunks - 1) / l.chunks;
  if (G > items / (int64_t(l.L) * 4)) G = items / (int64_t(l.L) * 4);
  return G < 1 ? 1 : G;
}

// Whether a tensor of n floats may take the sliding kernels (32-bit index math; below 2^30, so that a grid-stride
// loop's index plus its stride, at most 2^29 threads, stays below INT_MAX).
bool slide_fits(int64_t n) { return n > 0 && cu::index32(n); }

// IRCONSTYLE_SLIDE=batch: the kernels below take each work item's loads first (slide3_batch.h).
bool slide_batch() { return env_is("IRCONSTYLE_SLIDE", "batch"); }

// Launches slide3_fwd_k<MODE, GELU>. C: channels per work item (plain: of x; gate: of one half). The plain conv
// takes float2 vectors when the channels and pointers allow it (58 registers); the gate modes hold two windows and
// two weight sets, so they stay with floats (64 registers; float2 would need 98 and halve the occupancy).
template <int MODE, bool GELU = false>
void slide3_forward(cudaStream_t s, int64_t N, int64_t H, int64_t W, int64_t C, const float* x, const float* w,
                    const float* b, const float* dy, float* out) {
  const int64_t halves = MODE == kPlain ? 1 : 2;
  const bool batch = slide_batch();
  if constexpr (MODE == kPlain) {
    if (C % 2 == 0 && aligned8(x) && aligned8(w) && (!b || aligned8(b)) && aligned8(out)) {
      const Slide g = geo_of(H, W, C / 2, C / 2);
      const int items = static_cast<int>(batch ? slide::fwd_items(g, N) : N * H * g.S * (C / 2));
      (batch ? slide3_fwd_k<MODE, false, float2, true> : slide3_fwd_k<MODE, false, float2, false>)<<<
          cu::blocks_for(items), kThreads, 0, s>>>(g, reinterpret_cast<const float2*>(x),
                                                   reinterpret_cast<const float2*>(w),
                                                   reinterpret_cast<const float2*>(b), nullptr,
                                                   reinterpret_cast<float2*>(out), items);
      return;
    }
  }
  const Slide g = geo_of(H, W, halves * C, C);
  const int items = static_cast<int>(batch ? slide::fwd_items(g, N) : N * H * g.S * C);
  (batch ? slide3_fwd_k<MODE, GELU, float, true> : slide3_fwd_k<MODE, GELU, float, false>)<<<
      cu::blocks_for(items), kThreads, 0, s>>>(g, x, w, b, dy, out, items);
}

}  // namespace

// ---- dwconv_gate 3x3, padding 1 (nafnet.cu) -------------------------------------------------------------------
bool dwgate3x3_forward(const KernelCtx& c, int64_t N, int64_t H, int64_t W, int64_t C, bool gelu, const float* x,
                       const float* w, const float* b, float* y) {
  if (!slide_fits(N * H * W * 2 * C)) return false;
  (gelu ? slide3_forward<kGate, true> : slide3_forward<kGate, false>)(cu::stream(c), N, H, W, C, x, w, b, nullptr, y);
  cu::check_launch(c);
  return true;
}

bool dwgate3x3_dz(const KernelCtx& c, int64_t N, int64_t H, int64_t W, int64_t C, bool gelu, const float* x,
                  const float* w, const float* b, const float* dy, float* dz) {
  if (!slide_fits(N * H * W * 2 * C)) return false;
  (gelu ? slide3_forward<kGateDz, true> : slide3_forward<kGateDz, false>)(cu::stream(c), N, H, W, C, x, w, b, dy,
                                                                          dz);
  cu::check_launch(c);
  return true;
}

bool dwgate3x3_backward(const KernelCtx& c, int64_t N, int64_t H, int64_t W, int64_t C, bool gelu, const float* x,
                        const float* w, const float* b, const float* dy, float* dx, float* dw, float* db) {
  constexpr int64_t T = 10;
  if (!slide_fits(N * H * W * 2 * C)) return false;
  cudaStream_t s = cu::stream(c);
  const Slide g = geo_of(H, W, 2 * C, C);
  const int64_t items = N * H * g.S;
  const Lanes l = lanes_of(C);
  const int64_t G = slide_groups(items, l);
  double* part = static_cast<double*>(cu::scratch(s, sizeof(double) * G * T * 2 * C, 1));
  const dim3 grid(static_cast<unsigned>(G), static_cast<unsigned>(l.chunks));
  const bool rows = slide_batch();  // IRCONSTYLE_SLIDE=batch: the items rows first
  (gelu ? (rows ? slide3_gate_bwd_k<true, true> : slide3_gate_bwd_k<true, false>)
        : (rows ? slide3_gate_bwd_k<false, true> : slide3_gate_bwd_k<false, false>))<<<grid, kThreads, 0, s>>>(
      g, x, w, b, dy, dx, part, static_cast<int>(items), l.CB, l.L, static_cast<int>(G));
  finish_parts(s, part, 1, G, T * 2 * C, 1.0, dw, 9 * 2 * C, db);
  cu::check_launch(c);
  return true;
}

// ---- 3x3 depthwise forward (padding 1, stride 1), shared with conv2d.cu -------------------------------------
bool depthwise3x3_forward(const KernelCtx& c, int64_t N, int64_t H, int64_t W, int64_t C, const float* x,
                          const float* w, const float* b, float* y) {
  if (!slide_fits(N * H * W * C)) return false;
  slide3_forward<kPlain>(cu::stream(c), N, H, W, C, x, w, b, nullptr, y);
  cu::check_launch(c);
  return true;
}

// ---- 3x3 depthwise backward (padding 1, stride 1), shared with conv2d.cu ------------------------------------
bool depthwise3x3_backward(const KernelCtx& c, int64_t N, int64_t H, int64_t W, int64_t C, const float* dz,
                           const float* x, const float* w, float* dx, float* dw, float* db) {
  constexpr int64_t T = 10;
  if (!slide_fits(N * H * W * C)) return false;
  cudaStream_t s = cu::stream(c);
  const bool v2 = C % 2 == 0 && aligned8(dz) && aligned8(x) && aligned8(w) && aligned8(dx);
  const int64_t Cv = v2 ? C / 2 : C;
  const Slide g = geo_of(H, W, Cv, Cv);
  const int64_t items = N * H * g.S;
  const Lanes l = lanes_of(Cv);
  const int64_t G = slide_groups(items, l);
  double* part = static_cast<double*>(cu::scratch(s, sizeof(double) * G * T * C, 1));
  const dim3 grid(static_cast<unsigned>(G), static_cast<unsigned>(l.chunks));
  const bool batch = slide_batch();
  if (v2)
    (batch ? slide3_bwd_batch_k<float2> : slide3_bwd_k<float2>)<<<grid, kThreads, 0, s>>>(
        g, reinterpret_cast<const float2*>(dz), reinterpret_cast<const float2*>(x),
        reinterpret_cast<const float2*>(w), reinterpret_cast<float2*>(dx), part, static_cast<int>(items), l.CB, l.L,
        static_cast<int>(G));
  else
    (batch ? slide3_bwd_batch_k<float> : slide3_bwd_k<float>)<<<grid, kThreads, 0, s>>>(
        g, dz, x, w, dx, part, static_cast<int>(items), l.CB, l.L, static_cast<int>(G));
  finish_parts(s, part, 1, G, T * C, 1.0, dw, 9 * C, db);
  cu::check_launch(c);
  return true;
}

}  // namespace irc
