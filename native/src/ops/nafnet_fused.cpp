// Fused NAFBlock ops (ops.def), NHWC:
//   scaled_add            (a, b, s[C]) -> y = a + b * s                        (NAFBlock β / γ skip)
//   scaled_add_backward   (dy, b, s) -> db = dy * s, ds = Σ_rows dy * b
//   dwconv_gate           (x[N,H,W,2C], w[KH,KW,1,2C], b?), attrs [pad, act] -> y = a(z[..,:C]) * z[..,C:],
//                         z = dwconv(x, w) + b (stride 1); a = identity (act 0, NAFNet) or exact GELU (act 1,
//                         Restormer's GDFN)
//   dwconv_gate_backward  (dy, x, w, b?) -> dx, dw, db, with dz = [dy z2 a'(z1), dy a(z1)] and z recomputed.
// Kernels are vectorised over channels with GCC vector extensions, instantiated for AVX-512 (16 floats),
// AVX2+FMA (8) and the baseline (4) through target attributes and picked at run time (IRCONSTYLE_GEMM_ISA=avx2 |
// scalar forces a lower one, as for conv2d); leftover channels use the same templates with plain floats.
// dwconv_gate runs 3x3 kernels with the nine weights of a channel block held in registers over a tile of output
// pixels (out-of-image rows read a zero row; border columns and other kernel sizes take a per-pixel path).
// Its backward works on fixed bands of rows (shape-only split): each band recomputes z and dz for its rows plus
// the KH-1 halo rows its dx gather needs into per-thread scratch, adds dw / db of its own rows to its own partial
// buffer, and the partials are summed in band order in double: deterministic for any thread count.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "../cpu/gelu_math.h"
#include "../cpu/simd.h"
#include "dwgate_slide.h"
#include "op_api.h"
#include "slide3_batch.h"
#include "switches.h"

namespace irc {
namespace {

using namespace irc::vec;

template <class V>
IRC_INL V vzero() {
  return V{} * 0.f;
}

struct DG {
  int64_t N, H, W, C2, C, KH, KW, P, Ho, Wo;
  bool gelu;  // act 1: GELU on the first half
};

DG dg_of(const Shape& x, const Shape& w, int64_t pad, int64_t act) {
  DG g{x[0], x[1], x[2], x[3], x[3] / 2, w[0], w[1], pad, 0, 0, act == 1};
  g.Ho = g.H + 2 * pad - g.KH + 1;
  g.Wo = g.W + 2 * pad - g.KW + 1;
  return g;
}

constexpr int64_t kTile = 128;  // output pixels per register-weight tile (the tile's z1 stays in L1)

// ---- scaled_add ---------------------------------------------------------------------------------------------
template <class V>
IRC_INL void sa_rows(const float* a, const float* b, const float* s, float* y, int64_t C, int64_t r0, int64_t r1,
                     int64_t cs, int64_t ce) {
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t c = cs; c < ce; c += width<V>()) {
      const int64_t o = r * C + c;
      st<V>(y + o, ld<V>(a + o) + ld<V>(b + o) * ld<V>(s + c));
    }
}

// db = dy * s for rows [r0, r1); acc[c] += Σ dy * b: float sums over blocks of 32 rows (in tmp, C floats), each
// added into the double acc.
template <class V>
IRC_INL void sab_rows(const float* dy, const float* b, const float* s, float* db, float* tmp, int64_t C, int64_t r,
                      int64_t cs, int64_t ce) {
  for (int64_t c = cs; c < ce; c += width<V>()) {
    const int64_t o = r * C + c;
    const V d = ld<V>(dy + o);
    st<V>(db + o, d * ld<V>(s + c));
    st<V>(tmp + c, ld<V>(tmp + c) + d * ld<V>(b + o));
  }
}

// ---- dwconv_gate: z of one pixel, one channel block, any kernel (bounds-checked) ------------------------------
template <class V>
IRC_INL V z_pix(const DG& g, const float* x, const float* w, const float* b, int64_t n, int64_t oh, int64_t ow,
                int64_t ch) {
  V acc = b ? ld<V>(b + ch) : vzero<V>();
  const int64_t ih0 = oh - g.P, iw0 = ow - g.P;
  const int64_t kh0 = std::max<int64_t>(0, -ih0), kh1 = std::min(g.KH, g.H - ih0);
  const int64_t kw0 = std::max<int64_t>(0, -iw0), kw1 = std::min(g.KW, g.W - iw0);
  for (int64_t kh = kh0; kh < kh1; ++kh) {
    const float* xr = x + ((n * g.H + ih0 + kh) * g.W + iw0) * g.C2 + ch;
    const float* wr = w + kh * g.KW * g.C2 + ch;
    for (int64_t kw = kw0; kw < kw1; ++kw) acc += ld<V>(xr + kw * g.C2) * ld<V>(wr + kw * g.C2);
  }
  return acc;
}

// gelu(z) (gelu_math.h), with its derivative in dg; floats take the vf4 path.
template <class V>
IRC_INL V gelu_any(const V& z, V& dg) {
  if constexpr (std::is_same_v<V, float>) {
    return gelu_d_1(z, dg);
  } else {
    return gelu_d<V>(z, dg);
  }
}

// Stores the gate result of pixel ow for channel block c: forward y[ow, c] = a(z1) z2; backward (BWD) the pair
// dz[ow, c] = dy z2 a'(z1), dz[ow, C + c] = dy a(z1) (a: identity, or GELU when g.gelu).
template <class V, bool BWD>
IRC_INL void put(const DG& g, const V& z1, const V& z2, const float* dyr, float* out, int64_t ow, int64_t c) {
  V a = z1, da{};
  if (g.gelu) a = gelu_any<V>(z1, da);
  if (!BWD) {
    st<V>(out + ow * g.C + c, a * z2);
  } else {
    const V d = ld<V>(dyr + ow * g.C + c);
    st<V>(out + ow * g.C2 + c, g.gelu ? d * z2 * da : d * z2);
    st<V>(out + ow * g.C2 + g.C + c, d * a);
  }
}

// One output row r (= n*Ho + oh), gate channels [cs, ce) of [0, C). zrow: >= W*C2 zeros; buf: kTile*width floats.
template <class V, bool BWD>
IRC_INL void gate_row(const DG& g, const float* x, const float* w, const float* b, const float* zrow, float* buf,
                      int64_t r, const float* dyr, float* out, int64_t cs, int64_t ce) {
  const int64_t n = r / g.Ho, oh = r % g.Ho, C2 = g.C2;
  int64_t oa = 0, ob = 0;  // the columns [oa, ob) of the register path
  if (g.KH == 3 && g.KW == 3) {
    oa = std::min(g.P, g.Wo);
    ob = std::max(oa, std::min(g.Wo, g.W + g.P - 2));
  }
  for (int64_t c = cs; c < ce; c += width<V>()) {
    for (int64_t ow = 0; ow < oa; ++ow)
      put<V, BWD>(g, z_pix<V>(g, x, w, b, n, oh, ow, c), z_pix<V>(g, x, w, b, n, oh, ow, c + g.C), dyr, out, ow, c);
    for (int64_t ow = ob; ow < g.Wo; ++ow)
      put<V, BWD>(g, z_pix<V>(g, x, w, b, n, oh, ow, c), z_pix<V>(g, x, w, b, n, oh, ow, c + g.C), dyr, out, ow, c);
  }
  if (oa >= ob) return;
  const float* xr[3];
  for (int64_t kh = 0; kh < 3; ++kh) {
    const int64_t ih = oh - g.P + kh;
    xr[kh] = (ih >= 0 && ih < g.H ? x + (n * g.H + ih) * g.W * C2 : zrow) - g.P * C2;
  }
  // the row the next output row reads first (ih = oh - P + 3), fetched into L2 tile by tile meanwhile
  const int64_t ihn = oh - g.P + 3;
  const char* pre = ihn < g.H && oh + 1 < g.Ho ? reinterpret_cast<const char*>(x + (n * g.H + ihn) * g.W * C2) : nullptr;
  for (int64_t t0 = oa; t0 < ob; t0 += kTile) {
    const int64_t t1 = std::min(ob, t0 + kTile);
    if (pre && cs == 0) {
      const int64_t e = t1 == ob ? g.W * C2 * 4 : (t1 - g.P) * C2 * 4;
      for (int64_t q = t0 == oa ? 0 : (t0 - g.P) * C2 * 4; q < e; q += 64) __builtin_prefetch(pre + q, 0, 2);
    }
    for (int64_t c = cs; c < ce; c += width<V>()) {
      for (int half = 0; half < 2; ++half) {
        const int64_t ch = c + half * g.C;
        const V w0 = ld<V>(w + ch), w1 = ld<V>(w + C2 + ch), w2 = ld<V>(w + 2 * C2 + ch);
        const V w3 = ld<V>(w + 3 * C2 + ch), w4 = ld<V>(w + 4 * C2 + ch), w5 = ld<V>(w + 5 * C2 + ch);
        const V w6 = ld<V>(w + 6 * C2 + ch), w7 = ld<V>(w + 7 * C2 + ch), w8 = ld<V>(w + 8 * C2 + ch);
        const V bb = b ? ld<V>(b + ch) : vzero<V>();
        const float *x0 = xr[0] + ch, *x1 = xr[1] + ch, *x2 = xr[2] + ch;
        int64_t ow = t0;
        for (; ow + 4 <= t1; ow += 4) {  // four pixels: 18 loads for 36 FMAs
          const int64_t o = ow * C2;
          V z0 = bb, z1 = bb, z2 = bb, z3 = bb;
          row4<V>(x0 + o, C2, w0, w1, w2, z0, z1, z2, z3);
          row4<V>(x1 + o, C2, w3, w4, w5, z0, z1, z2, z3);
          row4<V>(x2 + o, C2, w6, w7, w8, z0, z1, z2, z3);
          float* bp = buf + (ow - t0) * width<V>();
          if (half == 0) {
            st<V>(bp, z0);
            st<V>(bp + width<V>(), z1);
            st<V>(bp + 2 * width<V>(), z2);
            st<V>(bp + 3 * width<V>(), z3);
          } else {
            put<V, BWD>(g, ld<V>(bp), z0, dyr, out, ow, c);
            put<V, BWD>(g, ld<V>(bp + width<V>()), z1, dyr, out, ow + 1, c);
            put<V, BWD>(g, ld<V>(bp + 2 * width<V>()), z2, dyr, out, ow + 2, c);
            put<V, BWD>(g, ld<V>(bp + 3 * width<V>()), z3, dyr, out, ow + 3, c);
          }
        }
        for (; ow < t1; ++ow) {
          const int64_t o = ow * C2;
          V z = bb + ld<V>(x0 + o) * w0;
          z += ld<V>(x0 + o + C2) * w1;
          z += ld<V>(x0 + o + 2 * C2) * w2;
          z += ld<V>(x1 + o) * w3;
          z += ld<V>(x1 + o + C2) * w4;
          z += ld<V>(x1 + o + 2 * C2) * w5;
          z += ld<V>(x2 + o) * w6;
          z += ld<V>(x2 + o + C2) * w7;
          z += ld<V>(x2 + o + 2 * C2) * w8;
          if (half == 0) {
            st<V>(buf + (ow - t0) * width<V>(), z);
          } else {
            put<V, BWD>(g, ld<V>(buf + (ow - t0) * width<V>()), z, dyr, out, ow, c);
          }
        }
      }
    }
  }
}

// ---- dwconv_gate backward pieces (dz rows [lo, hi) in a band buffer dz, row stride Wo*C2) ---------------------
// part (dw [KH*KW*C2], then db [C2]) += contributions of output row r, channels [cs, ce) of [0, C2).
// 3x3: nine accumulators; over the columns where all taps are inside, each x column meets a sliding window of three
// dz values (4 loads for 9 FMAs); every accumulator still sums its terms in increasing ow, borders last.
template <class V>
IRC_INL void dwdb_row(const DG& g, const float* x, const float* zrow, const float* dzr, float* part, int64_t r,
                      int64_t cs, int64_t ce) {
  const int64_t n = r / g.Ho, oh = r % g.Ho, C2 = g.C2;
  float* pdb = part + g.KH * g.KW * C2;
  if (g.KH == 3 && g.KW == 3) {
    const float* xr[3];  // xr[kh] + m * C2 = x[ih, m] (zeros outside the image)
    for (int64_t kh = 0; kh < 3; ++kh) {
      const int64_t ih = oh - g.P + kh;
      xr[kh] = ih >= 0 && ih < g.H ? x + (n * g.H + ih) * g.W * C2 : zrow;
    }
    const int64_t a = std::min(g.Wo, g.P), e = std::max(a, std::min(g.Wo, g.W + g.P - 2));
    for (int64_t c = cs; c < ce; c += width<V>()) {
      V sb = vzero<V>();
      for (int64_t ow = 0; ow < g.Wo; ++ow) sb += ld<V>(dzr + ow * C2 + c);
      st<V>(pdb + c, ld<V>(pdb + c) + sb);
      V acc[3][3];
      for (int kh = 0; kh < 3; ++kh)
        for (int kw = 0; kw < 3; ++kw) acc[kh][kw] = vzero<V>();
      auto term = [&](int64_t ow, int kw) {
        const V d = ld<V>(dzr + ow * C2 + c);
        const int64_t m = (ow - g.P + kw) * C2 + c;
        for (int kh = 0; kh < 3; ++kh) acc[kh][kw] += d * ld<V>(xr[kh] + m);
      };
      if (e - a >= 3) {
        for (int kw = 0; kw < 2; ++kw)
          for (int64_t ow = a; ow < a + 2 - kw; ++ow) term(ow, kw);
        V dB = ld<V>(dzr + (a + 1) * C2 + c), dC = ld<V>(dzr + a * C2 + c);
        for (int64_t m = a - g.P + 2; m < e - g.P; ++m) {
          const V dA = ld<V>(dzr + (m + g.P) * C2 + c);
          for (int kh = 0; kh < 3; ++kh) {
            const V xv = ld<V>(xr[kh] + m * C2 + c);
            acc[kh][0] += dA * xv;
            acc[kh][1] += dB * xv;
            acc[kh][2] += dC * xv;
          }
          dC = dB;
          dB = dA;
        }
        for (int kw = 1; kw < 3; ++kw)
          for (int64_t ow = e - kw; ow < e; ++ow) term(ow, kw);
      } else {
        for (int kw = 0; kw < 3; ++kw)
          for (int64_t ow = a; ow < e; ++ow) term(ow, kw);
      }
      for (int kw = 0; kw < 3; ++kw) {  // columns where some tap falls outside the image
        const int64_t lo = std::max<int64_t>(0, g.P - kw), hi = std::min(g.Wo, g.W + g.P - kw);
        for (int64_t ow = lo; ow < std::min(hi, a); ++ow) term(ow, kw);
        for (int64_t ow = std::max(lo, e); ow < hi; ++ow) term(ow, kw);
      }
      for (int kh = 0; kh < 3; ++kh)
        for (int kw = 0; kw < 3; ++kw) {
          float* pw = part + (kh * 3 + kw) * C2 + c;
          st<V>(pw, ld<V>(pw) + acc[kh][kw]);
        }
    }
    return;
  }
  for (int64_t c = cs; c < ce; c += width<V>()) {
    V sb = vzero<V>();
    for (int64_t ow = 0; ow < g.Wo; ++ow) sb += ld<V>(dzr + ow * C2 + c);
    st<V>(pdb + c, ld<V>(pdb + c) + sb);
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      const int64_t ih = oh - g.P + kh;
      if (ih < 0 || ih >= g.H) continue;
      const float* xr = x + ((n * g.H + ih) * g.W - g.P) * C2 + c;  // xr + (ow + kw) * C2 = x[ih, ow - P + kw]
      float* pw = part + kh * g.KW * C2 + c;
      for (int64_t kw = 0; kw < g.KW; ++kw) {  // ow with 0 <= ow - P + kw < W
        V acc = vzero<V>();
        const int64_t lo = std::max<int64_t>(0, g.P - kw), hi = std::min(g.Wo, g.W + g.P - kw);
        for (int64_t ow = lo; ow < hi; ++ow) acc += ld<V>(dzr + ow * C2 + c) * ld<V>(xr + (ow + kw) * C2);
        st<V>(pw + kw * C2, ld<V>(pw + kw * C2) + acc);
      }
    }
  }
}

// dx of input pixel (ih, iw) (sample n), channel block ch: Σ_{kh,kw} dz[ih + P - kh, iw + P - kw] w[kh, kw].
template <class V>
IRC_INL V dx_pix(const DG& g, const float* dz, int64_t lo, const float* w, int64_t ih, int64_t iw, int64_t ch) {
  V acc = vzero<V>();
  for (int64_t kh = 0; kh < g.KH; ++kh) {
    const int64_t oh = ih + g.P - kh;
    if (oh < 0 || oh >= g.Ho) continue;
    for (int64_t kw = 0; kw < g.KW; ++kw) {
      const int64_t ow = iw + g.P - kw;
      if (ow < 0 || ow >= g.Wo) continue;
      acc += ld<V>(dz + ((oh - lo) * g.Wo + ow) * g.C2 + ch) * ld<V>(w + (kh * g.KW + kw) * g.C2 + ch);
    }
  }
  return acc;
}

// dx row ih of sample n, channels [cs, ce) of [0, C2). zrow: >= Wo*C2 zeros.
template <class V>
IRC_INL void dx_row(const DG& g, const float* dz, int64_t lo, const float* w, const float* zrow, float* dxr, int64_t ih,
                    int64_t cs, int64_t ce) {
  const int64_t C2 = g.C2;
  int64_t ia = 0, ib = 0;  // the columns of the register path: iw + P - kw in [0, Wo) for kw = 0..2
  if (g.KH == 3 && g.KW == 3) {
    ia = std::min(g.W, std::max<int64_t>(0, 2 - g.P));
    ib = std::max(ia, std::min(g.W, g.Wo - g.P));
  }
  for (int64_t c = cs; c < ce; c += width<V>()) {
    for (int64_t iw = 0; iw < ia; ++iw) st<V>(dxr + iw * C2 + c, dx_pix<V>(g, dz, lo, w, ih, iw, c));
    for (int64_t iw = ib; iw < g.W; ++iw) st<V>(dxr + iw * C2 + c, dx_pix<V>(g, dz, lo, w, ih, iw, c));
  }
  if (ia >= ib) return;
  const float* dr[3];
  for (int64_t kh = 0; kh < 3; ++kh) {
    const int64_t oh = ih + g.P - kh;
    dr[kh] = (oh >= 0 && oh < g.Ho ? dz + (oh - lo) * g.Wo * C2 : zrow) + g.P * C2;  // dr + (iw - kw) * C2
  }
  for (int64_t c = cs; c < ce; c += width<V>()) {
    const V w0 = ld<V>(w + c), w1 = ld<V>(w + C2 + c), w2 = ld<V>(w + 2 * C2 + c);
    const V w3 = ld<V>(w + 3 * C2 + c), w4 = ld<V>(w + 4 * C2 + c), w5 = ld<V>(w + 5 * C2 + c);
    const V w6 = ld<V>(w + 6 * C2 + c), w7 = ld<V>(w + 7 * C2 + c), w8 = ld<V>(w + 8 * C2 + c);
    const float *d0 = dr[0] + c, *d1 = dr[1] + c, *d2 = dr[2] + c;
    int64_t iw = ia;
    for (; iw + 4 <= ib; iw += 4) {  // four pixels; columns from iw+3 down to iw-2 so that taps go kw = 0, 1, 2
      const int64_t o = (iw + 3) * C2;
      V a0 = vzero<V>(), a1 = a0, a2 = a0, a3 = a0;
      row4<V>(d0 + o, -C2, w0, w1, w2, a3, a2, a1, a0);
      row4<V>(d1 + o, -C2, w3, w4, w5, a3, a2, a1, a0);
      row4<V>(d2 + o, -C2, w6, w7, w8, a3, a2, a1, a0);
      st<V>(dxr + iw * C2 + c, a0);
      st<V>(dxr + (iw + 1) * C2 + c, a1);
      st<V>(dxr + (iw + 2) * C2 + c, a2);
      st<V>(dxr + (iw + 3) * C2 + c, a3);
    }
    for (; iw < ib; ++iw) {
      const int64_t o = iw * C2;
      V acc = vzero<V>();
      acc += ld<V>(d0 + o) * w0;
      acc += ld<V>(d0 + o - C2) * w1;
      acc += ld<V>(d0 + o - 2 * C2) * w2;
      acc += ld<V>(d1 + o) * w3;
      acc += ld<V>(d1 + o - C2) * w4;
      acc += ld<V>(d1 + o - 2 * C2) * w5;
      acc += ld<V>(d2 + o) * w6;
      acc += ld<V>(d2 + o - C2) * w7;
      acc += ld<V>(d2 + o - 2 * C2) * w8;
      st<V>(dxr + o + c, acc);
    }
  }
}

// ---- per-ISA entry points: vector part with V, channel tail with float --------------------------------------
struct BandArgs {
  const float *x, *w, *b, *dy, *zrow;
  float *buf, *dz, *part, *dx;
  int64_t n, lo, hi, o0, o1, i0, i1;
};

#define IRC_FUSED_VARIANT(NAME, V, ATTR)                                                                        \
  ATTR void sa_##NAME(const float* a, const float* b, const float* s, float* y, int64_t C, int64_t r0,          \
                      int64_t r1) {                                                                             \
    const int64_t cv = C / width<V>() * width<V>();                                                             \
    sa_rows<V>(a, b, s, y, C, r0, r1, 0, cv);                                                                   \
    if (cv < C) sa_rows<float>(a, b, s, y, C, r0, r1, cv, C);                                                   \
  }                                                                                                             \
  ATTR void sab_##NAME(const float* dy, const float* b, const float* s, float* db, double* acc, float* tmp,      \
                       int64_t C, int64_t r0, int64_t r1) {                                                     \
    const int64_t cv = C / width<V>() * width<V>();                                                             \
    for (int64_t q = r0; q < r1; q += 32) {                                                                     \
      std::fill(tmp, tmp + C, 0.f);                                                                             \
      for (int64_t r = q; r < std::min(r1, q + 32); ++r) {                                                      \
        sab_rows<V>(dy, b, s, db, tmp, C, r, 0, cv);                                                            \
        if (cv < C) sab_rows<float>(dy, b, s, db, tmp, C, r, cv, C);                                            \
      }                                                                                                         \
      for (int64_t j = 0; j < C; ++j) acc[j] += static_cast<double>(tmp[j]);                                    \
    }                                                                                                           \
  }                                                                                                             \
  ATTR void fwd_##NAME(const DG& g, const float* x, const float* w, const float* b, const float* zrow,          \
                       float* buf, float* y, int64_t r0, int64_t r1) {                                          \
    const int64_t cv = g.C / width<V>() * width<V>();                                                           \
    for (int64_t r = r0; r < r1; ++r) {                                                                         \
      float* yr = y + r * g.Wo * g.C;                                                                           \
      gate_row<V, false>(g, x, w, b, zrow, buf, r, nullptr, yr, 0, cv);                                         \
      if (cv < g.C) gate_row<float, false>(g, x, w, b, zrow, buf, r, nullptr, yr, cv, g.C);                     \
    }                                                                                                           \
  }                                                                                                             \
  ATTR void band_##NAME(const DG& g, const BandArgs& a) {                                                       \
    const int64_t cv = g.C / width<V>() * width<V>(), cv2 = g.C2 / width<V>() * width<V>();                     \
    const int64_t rs = g.Wo * g.C2;                                                                             \
    for (int64_t oh = a.lo; oh < a.hi; ++oh) {                                                                  \
      const int64_t r = a.n * g.Ho + oh;                                                                        \
      const float* dyr = a.dy + r * g.Wo * g.C;                                                                 \
      float* dzr = a.dz + (oh - a.lo) * rs;                                                                     \
      gate_row<V, true>(g, a.x, a.w, a.b, a.zrow, a.buf, r, dyr, dzr, 0, cv);                                   \
      if (cv < g.C) gate_row<float, true>(g, a.x, a.w, a.b, a.zrow, a.buf, r, dyr, dzr, cv, g.C);               \
    }                                                                                                           \
    for (int64_t oh = a.o0; oh < a.o1; ++oh) {                                                                  \
      const float* dzr = a.dz + (oh - a.lo) * rs;                                                               \
      dwdb_row<V>(g, a.x, a.zrow, dzr, a.part, a.n * g.Ho + oh, 0, cv2);                                                \
      if (cv2 < g.C2) dwdb_row<float>(g, a.x, a.zrow, dzr, a.part, a.n * g.Ho + oh, cv2, g.C2);                         \
    }                                                                                                           \
    for (int64_t ih = a.i0; ih < a.i1; ++ih) {                                                                  \
      float* dxr = a.dx + (a.n * g.H + ih) * g.W * g.C2;                                                        \
      dx_row<V>(g, a.dz, a.lo, a.w, a.zrow, dxr, ih, 0, cv2);                                                   \
      if (cv2 < g.C2) dx_row<float>(g, a.dz, a.lo, a.w, a.zrow, dxr, ih, cv2, g.C2);                            \
    }                                                                                                           \
  }

IRC_FUSED_VARIANT(base, vf4, )
IRC_FUSED_VARIANT(avx2, vf8, __attribute__((target("avx2,fma"))))
IRC_FUSED_VARIANT(avx512, vf16, __attribute__((target("avx512f"))))

struct Fns {
  void (*sa)(const float*, const float*, const float*, float*, int64_t, int64_t, int64_t);
  void (*sab)(const float*, const float*, const float*, float*, double*, float*, int64_t, int64_t, int64_t);
  void (*fwd)(const DG&, const float*, const float*, const float*, const float*, float*, float*, int64_t, int64_t);
  void (*band)(const DG&, const BandArgs&);
};

const Fns& fns() {
  static const Fns f = [] {
    __builtin_cpu_init();
    const char* env = std::getenv("IRCONSTYLE_GEMM_ISA");  // testing: "avx2" or "scalar" forces a lower ISA
    const std::string force = env ? env : "";
    const Fns base{&sa_base, &sab_base, &fwd_base, &band_base};
    if (force == "scalar") return base;
    if (force != "avx2" && __builtin_cpu_supports("avx512f")) return Fns{&sa_avx512, &sab_avx512, &fwd_avx512, &band_avx512};
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Fns{&sa_avx2, &sab_avx2, &fwd_avx2, &band_avx2};
    return base;
  }();
  return f;
}

// Zeros for out-of-image rows (per-thread scratch slot 1).
const float* zero_row(const DG& g) {
  const size_t n = static_cast<size_t>(std::max(g.W, g.Wo) * g.C2);
  float* z = scratch(n, 1);
  std::memset(z, 0, n * sizeof(float));
  return z;
}

int64_t act_of(const std::vector<double>& attrs) { return attrs.size() > 1 ? static_cast<int64_t>(attrs[1]) : 0; }

DG check_dg(InferCtx& c, size_t xi, size_t wi, size_t bi) {
  c.need_attrs(1);
  if (c.attrs.size() > 1 && c.ai(1) != 0 && c.ai(1) != 1)
    op_fail("E_ATTR", std::string(c.op) + ": act must be 0 (product) or 1 (GELU on the first half), got " +
                          std::to_string(c.ai(1)));
  c.need_f32(xi);
  c.need_f32(wi);
  c.need_rank(xi, 4);
  c.need_rank(wi, 4);
  const Shape &x = c.in[xi].shape, &w = c.in[wi].shape;
  const std::string op = c.op;
  if (x[3] % 2 != 0) op_fail("E_SHAPE", op + ": x must have an even channel count (2C), got x " + shape_str(x));
  if (w[2] != 1 || w[3] != x[3] || w[0] < 1 || w[1] < 1)
    op_fail("E_SHAPE", op + ": w must have shape [KH, KW, 1, " + std::to_string(x[3]) + "] (depthwise, x " +
                           shape_str(x) + "), got " + shape_str(w));
  const int64_t pad = c.ai(0);
  if (pad < 0) op_fail("E_ATTR", op + ": pad must be >= 0, got " + std::to_string(pad));
  if (bi < c.in.size()) {
    c.need_f32(bi);
    if (c.in[bi].shape != Shape{x[3]})
      op_fail("E_SHAPE", op + ": b must have shape [" + std::to_string(x[3]) + "], got " + shape_str(c.in[bi].shape));
  }
  DG g = dg_of(x, w, pad, act_of(c.attrs));
  if (g.Ho < 1 || g.Wo < 1)
    op_fail("E_SHAPE", op + ": kernel " + shape_str(w) + " with pad " + std::to_string(pad) +
                           " does not fit x " + shape_str(x));
  return g;
}

// 3x3 with padding 1: the shape of the CUDA sliding kernels
bool slide_shape(const DG& g) { return g.KH == 3 && g.KW == 3 && g.P == 1; }

}  // namespace

// ---- scaled_add -------------------------------------------------------------------------------------------
void infer_scaled_add(InferCtx& c) {
  c.op = "scaled_add";
  c.need_f32(0);
  c.need_f32(1);
  c.need_f32(2);
  c.need_min_rank(0, 1);
  c.need_same_shape(0, 1);
  const int64_t C = c.in[0].shape.back();
  if (numel(c.in[2].shape) != C)
    op_fail("E_SHAPE", "scaled_add: s must have " + std::to_string(C) + " elements (last dim of a " +
                           shape_str(c.in[0].shape) + "), got " + shape_str(c.in[2].shape));
  c.add_out(c.in[0].shape);
}

void cpu_scaled_add(KernelCtx& c) {
  const int64_t C = c.in[0].shape.back(), n = c.in[0].n;
  if (C == 0 || n == 0) return;
  const float *a = c.in[0].f(), *b = c.in[1].f(), *s = c.in[2].f();
  float* y = c.out[0].f();
  const Fns& f = fns();
  parallel_for(n / C, std::max<int64_t>(1, 32768 / C), [&](int64_t r0, int64_t r1) { f.sa(a, b, s, y, C, r0, r1); });
}

void infer_scaled_add_backward(InferCtx& c) {
  c.op = "scaled_add_backward";
  c.need_f32(0);
  c.need_f32(1);
  c.need_f32(2);
  c.need_min_rank(1, 1);
  c.need_same_shape(0, 1);
  const int64_t C = c.in[1].shape.back();
  if (numel(c.in[2].shape) != C)
    op_fail("E_SHAPE", "scaled_add_backward: s must have " + std::to_string(C) + " elements (last dim of b " +
                           shape_str(c.in[1].shape) + "), got " + shape_str(c.in[2].shape));
  c.add_out(c.in[1].shape);
  c.add_out(c.in[2].shape);
}

void cpu_scaled_add_backward(KernelCtx& c) {
  const int64_t C = c.in[1].shape.back(), n = c.in[1].n;
  float *db = c.out[0].f(), *ds = c.out[1].f();
  if (C == 0) return;
  const float *dy = c.in[0].f(), *b = c.in[1].f(), *s = c.in[2].f();
  const int64_t rows = n / C;
  // fixed split of the rows into parts (shape only), double partials summed in part order
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(std::min<int64_t>(rows, 64), n / 32768));
  std::vector<double> acc(static_cast<size_t>(parts * C), 0.0);
  const Fns& f = fns();
  parallel_for(parts, 1, [&](int64_t q0, int64_t q1) {
    float* tmp = scratch(static_cast<size_t>(C), 2);
    for (int64_t q = q0; q < q1; ++q)
      f.sab(dy, b, s, db, acc.data() + q * C, tmp, C, rows * q / parts, rows * (q + 1) / parts);
  });
  for (int64_t j = 0; j < C; ++j) {
    double t = 0.0;
    for (int64_t q = 0; q < parts; ++q) t += acc[q * C + j];
    ds[j] = static_cast<float>(t);
  }
}

// ---- dwconv_gate ------------------------------------------------------------------------------------------
void infer_dwconv_gate(InferCtx& c) {
  c.op = "dwconv_gate";
  DG g = check_dg(c, 0, 1, 2);
  c.add_out({g.N, g.Ho, g.Wo, g.C});
}

void cpu_dwconv_gate(KernelCtx& c) {
  const DG g = dg_of(c.in[0].shape, c.in[1].shape, c.ai(0), act_of(c.attrs));
  if (g.C == 0 || g.N == 0) return;
  const float *x = c.in[0].f(), *w = c.in[1].f(), *b = c.in.size() > 2 ? c.in[2].f() : nullptr;
  float* y = c.out[0].f();
  if (slide_shape(g) && slide3_emulate_forward(slide::kGate, g.gelu, g.N, g.H, g.W, g.C, x, w, b, nullptr, y)) return;
  const Fns& f = fns();
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, g.Wo * g.C2 * g.KH * g.KW));
  parallel_for(g.N * g.Ho, grain, [&](int64_t r0, int64_t r1) {
    const float* zrow = zero_row(g);
    f.fwd(g, x, w, b, zrow, scratch(kTile * 16, 2), y, r0, r1);
  });
}

void infer_dwconv_gate_backward(InferCtx& c) {
  c.op = "dwconv_gate_backward";
  DG g = check_dg(c, 1, 2, 3);
  c.need_f32(0);
  c.need_shape(0, Shape{g.N, g.Ho, g.Wo, g.C}, "dy");
  c.add_out(c.in[1].shape);
  c.add_out(c.in[2].shape);
  c.add_out({g.C2});
}

namespace {

// IRCONSTYLE_EMULATE lists dwgate_bwd: the CUDA one-pass backward (3x3, padding 1) run on the host, every work item of
// the kernel through the same per-thread code (dwgate_slide.h); the taps summed per channel in double. For the tests
// of that kernel's logic (test/ops-fused.test.ts), not for speed.
bool emulate_cuda_backward(const DG& g, const float* dy, const float* x, const float* w, const float* b, float* dx,
                           float* dw, float* db) {
  if (!emulation_requested("dwgate_bwd") || !slide_shape(g)) return false;
  const dwslide::Geo geo = dwslide::geo_of(g.H, g.W, g.C2, g.C);
  const int items = static_cast<int>(g.N * g.H * geo.S);
  const bool rows = env_is("IRCONSTYLE_SLIDE", "batch");  // the items rows first, as the kernel then takes them
  parallel_for(g.C, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t cv = c0; cv < c1; ++cv) {
      float wv[2][9], bias[2];
      for (int h = 0; h < 2; ++h) {
        for (int k = 0; k < 9; ++k) wv[h][k] = w[k * g.C2 + cv + h * g.C];
        bias[h] = b ? b[cv + h * g.C] : 0.f;
      }
      double tot[2][10] = {};
      for (int i = 0; i < items; ++i) {
        float acc[2][10] = {};
        const int c = static_cast<int>(cv);
        if (g.gelu) {
          (rows ? dwslide::gate_bwd_item<true, true> : dwslide::gate_bwd_item<true, false>)(geo, i, c, wv, bias, x, dy,
                                                                                           dx, acc);
        } else {
          (rows ? dwslide::gate_bwd_item<false, true> : dwslide::gate_bwd_item<false, false>)(geo, i, c, wv, bias, x,
                                                                                             dy, dx, acc);
        }
        for (int h = 0; h < 2; ++h)
          for (int k = 0; k < 10; ++k) tot[h][k] += acc[h][k];
      }
      for (int h = 0; h < 2; ++h) {
        for (int k = 0; k < 9; ++k) dw[k * g.C2 + cv + h * g.C] = static_cast<float>(tot[h][k]);
        db[cv + h * g.C] = static_cast<float>(tot[h][9]);
      }
    }
  });
  return true;
}

}  // namespace

void cpu_dwconv_gate_backward(KernelCtx& c) {
  const DG g = dg_of(c.in[1].shape, c.in[2].shape, c.ai(0), act_of(c.attrs));
  const float *dy = c.in[0].f(), *x = c.in[1].f(), *w = c.in[2].f(), *b = c.in.size() > 3 ? c.in[3].f() : nullptr;
  float *dx = c.out[0].f(), *dw = c.out[1].f(), *db = c.out[2].f();
  const int64_t wsz = g.KH * g.KW * g.C2, psz = wsz + g.C2;
  std::fill(dw, dw + wsz, 0.f);
  std::fill(db, db + g.C2, 0.f);
  if (g.C == 0 || g.N == 0) return;
  if (emulate_cuda_backward(g, dy, x, w, b, dx, dw, db)) return;
  if (slide_shape(g) && emulation_requested("slide")) {  // the CUDA two-pass path: dz, then the backward over dz
    std::vector<float> dz(static_cast<size_t>(g.N * g.H * g.W * g.C2));
    slide3_emulate_forward(slide::kGateDz, g.gelu, g.N, g.H, g.W, g.C, x, w, b, dy, dz.data());
    slide3_emulate_backward(g.N, g.H, g.W, g.C2, dz.data(), x, w, dx, dw, db);
    return;
  }
  // Bands of about Ho/16 rows (4..32) per sample; band j owns output rows [Ho j/nb, Ho (j+1)/nb) for dw/db and
  // input rows [H j/nb, H (j+1)/nb) for dx.
  const int64_t B = std::clamp<int64_t>((g.Ho + 15) / 16, 4, 32), nb = (g.Ho + B - 1) / B, units = g.N * nb;
  std::vector<float> part(static_cast<size_t>(units * psz), 0.f);
  const Fns& f = fns();
  parallel_for(units, 1, [&](int64_t u0, int64_t u1) {
    const float* zrow = zero_row(g);
    float* buf = scratch(kTile * 16, 2);
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t n = u / nb, j = u % nb;
      BandArgs a{x, w, b, dy, zrow, buf, nullptr, part.data() + u * psz, dx, n, 0, 0, 0, 0, 0, 0};
      a.o0 = g.Ho * j / nb;
      a.o1 = g.Ho * (j + 1) / nb;
      a.i0 = g.H * j / nb;
      a.i1 = g.H * (j + 1) / nb;
      a.lo = a.o0;
      a.hi = a.o1;
      if (a.i0 < a.i1) {  // dz rows the dx gather reads: oh = ih + P - kh
        a.lo = std::min(a.lo, std::max<int64_t>(0, a.i0 + g.P - g.KH + 1));
        a.hi = std::max(a.hi, std::min(g.Ho, a.i1 + g.P));
      }
      a.dz = scratch(static_cast<size_t>(std::max<int64_t>(1, (a.hi - a.lo) * g.Wo * g.C2)), 0);
      f.band(g, a);
    }
  });
  for (int64_t e = 0; e < psz; ++e) {
    double t = 0.0;
    for (int64_t u = 0; u < units; ++u) t += part[u * psz + e];
    if (e < wsz) {
      dw[e] = static_cast<float>(t);
    } else {
      db[e - wsz] = static_cast<float>(t);
    }
  }
}

}  // namespace irc
