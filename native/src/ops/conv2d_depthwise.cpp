// Depthwise conv2d (groups == Ci == Co), any KH/KW/stride/pad: vectorised over channels with GCC vector
// extensions, instantiated for AVX-512 (16 floats), AVX2+FMA (8) and the baseline (4) through target attributes
// and picked at run time. Any C runs in vector lanes in one pass (the last channel block overlaps its neighbour;
// C below the width takes 4-wide blocks, C < 4 plain floats). 3x3 stride 1 keeps the weights in registers over
// pixel tiles; dx of stride 1 is the forward conv of dy with the flipped kernel. Multithreaded over image rows;
// dw/db reduce over a fixed split of the rows (conv::num_parts) summed in order. Math: conv2d.h.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "../cpu/simd.h"
#include "conv2d.h"
#include "slide3_batch.h"

namespace irc {
namespace conv {
namespace {

using namespace irc::vec;


// Channel blocks: width<V>() channels each, block i starting at min(i * width, C - width) (C >= width): the last
// block overlaps its neighbour when C is not a multiple of the width, so every channel runs in vector lanes, in one
// pass. Forward / dx compute each channel with the same code in any block (identical values on the overlap); the
// dw / db reductions add only the lanes >= skip of the last block (skip = the overlap).
template <class V>
IRC_INL int64_t nblocks(int64_t C) {
  return (C + width<V>() - 1) / width<V>();
}
template <class V>
IRC_INL int64_t block_at(int64_t C, int64_t i) {
  return std::min(i * width<V>(), C - width<V>());
}
template <class V>
IRC_INL void add_to(float* p, const V& v, int64_t skip) {
  if (skip == 0) {
    st<V>(p, ld<V>(p) + v);
  } else {
    float t[width<V>()];
    st<V>(t, v);
    for (int64_t l = skip; l < width<V>(); ++l) p[l] += t[l];
  }
}

// y of one output pixel (sample n, first input position ih0, iw0), channel block c, any kernel (bounds-checked).
// Sum order: bias, then taps (kh, kw) in increasing order.
template <class V>
IRC_INL V fwd_pix(const Geom& g, const float* x, const float* w, const float* b, int64_t n, int64_t ih0, int64_t iw0,
                  int64_t c) {
  const int64_t C = g.Ci;
  const int64_t kh0 = std::max<int64_t>(0, -ih0), kh1 = std::min(g.KH, g.H - ih0);
  const int64_t kw0 = std::max<int64_t>(0, -iw0), kw1 = std::min(g.KW, g.W - iw0);
  V acc = b ? ld<V>(b + c) : V{} * 0.f;
  for (int64_t kh = kh0; kh < kh1; ++kh) {
    const float* xr = x + ((n * g.H + ih0 + kh) * g.W + iw0) * C + c;
    const float* wr = w + kh * g.KW * C + c;
    for (int64_t kw = kw0; kw < kw1; ++kw) acc += ld<V>(xr + kw * C) * ld<V>(wr + kw * C);
  }
  return acc;
}

// The tile path revisits each cache line of a pixel column once per channel block; when the pixel stride maps the
// columns onto few L1 sets (C a multiple of 128: 4 KiB set period / stride < 16 sets) those lines thrash, and the
// pixel-major path (all channel blocks of one pixel in turn, each line used up at once) is faster.
inline bool l1_aliasing(int64_t C) {
  const int64_t stride = C * 4 % 4096;
  return stride == 0 || 4096 / std::gcd<int64_t>(stride, 4096) < 16;
}

constexpr int64_t kTile = 64;  // output pixels per register-weight tile (its three input rows stay in L1/L2)

// Output rows [r0, r1) (r = n*Ho + oh), all channels (C >= width). 3x3 stride 1: the nine weights of a channel block
// stay in registers over a tile of output pixels, four pixels per step (18 loads for 36 FMAs), same sum order as
// fwd_pix (out-of-image kernel rows are skipped); border columns, other kernels and l1_aliasing(C) take fwd_pix.
template <class V>
IRC_INL void fwd_rows(const Geom& g, const float* x, const float* w, const float* b, float* y, int64_t r0,
                      int64_t r1) {
  const int64_t C = g.Ci, nb = nblocks<V>(C);
  const bool fast = g.S == 1 && g.KH == 3 && g.KW == 3 && !l1_aliasing(C);
  const int64_t oa = fast ? std::min(g.P, g.Wo) : g.Wo;
  const int64_t ob = fast ? std::max(oa, std::min(g.Wo, g.W + g.P - 2)) : g.Wo;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = r / g.Ho, oh = r % g.Ho, ih0 = oh * g.S - g.P;
    float* yr = y + r * g.Wo * C;
    for (int64_t side = 0; side < 2; ++side)  // border columns [0, oa) and [ob, Wo) (all of them when !fast)
      for (int64_t ow = side ? ob : 0; ow < (side ? g.Wo : oa); ++ow)
        for (int64_t i = 0; i < nb; ++i) {
          const int64_t c = block_at<V>(C, i);
          st<V>(yr + ow * C + c, fwd_pix<V>(g, x, w, b, n, ih0, ow * g.S - g.P, c));
        }
    if (oa >= ob) continue;
    bool ok[3];
    const float* xr[3];  // xr[kh] + (ow + kw) * C = x[ih0 + kh, ow - P + kw]
    for (int64_t kh = 0; kh < 3; ++kh) {
      const int64_t ih = ih0 + kh;
      ok[kh] = ih >= 0 && ih < g.H;
      xr[kh] = x + ((n * g.H + (ok[kh] ? ih : 0)) * g.W - g.P) * C;
    }
    for (int64_t t0 = oa; t0 < ob; t0 += kTile) {
      const int64_t t1 = std::min(ob, t0 + kTile);
      for (int64_t i = 0; i < nb; ++i) {
        const int64_t c = block_at<V>(C, i);
        const V w0 = ld<V>(w + c), w1 = ld<V>(w + C + c), w2 = ld<V>(w + 2 * C + c);
        const V w3 = ld<V>(w + 3 * C + c), w4 = ld<V>(w + 4 * C + c), w5 = ld<V>(w + 5 * C + c);
        const V w6 = ld<V>(w + 6 * C + c), w7 = ld<V>(w + 7 * C + c), w8 = ld<V>(w + 8 * C + c);
        const V bb = b ? ld<V>(b + c) : V{} * 0.f;
        const float *x0 = xr[0] + c, *x1 = xr[1] + c, *x2 = xr[2] + c;
        int64_t ow = t0;
        for (; ow + 4 <= t1; ow += 4) {
          const int64_t o = ow * C;
          V a0 = bb, a1 = bb, a2 = bb, a3 = bb;
          if (ok[0]) row4<V>(x0 + o, C, w0, w1, w2, a0, a1, a2, a3);
          if (ok[1]) row4<V>(x1 + o, C, w3, w4, w5, a0, a1, a2, a3);
          if (ok[2]) row4<V>(x2 + o, C, w6, w7, w8, a0, a1, a2, a3);
          float* yp = yr + o + c;
          st<V>(yp, a0);
          st<V>(yp + C, a1);
          st<V>(yp + 2 * C, a2);
          st<V>(yp + 3 * C, a3);
        }
        for (; ow < t1; ++ow) {
          const int64_t o = ow * C;
          V a = bb;
          if (ok[0]) a = a + ld<V>(x0 + o) * w0 + ld<V>(x0 + o + C) * w1 + ld<V>(x0 + o + 2 * C) * w2;
          if (ok[1]) a = a + ld<V>(x1 + o) * w3 + ld<V>(x1 + o + C) * w4 + ld<V>(x1 + o + 2 * C) * w5;
          if (ok[2]) a = a + ld<V>(x2 + o) * w6 + ld<V>(x2 + o + C) * w7 + ld<V>(x2 + o + 2 * C) * w8;
          st<V>(yr + o + c, a);
        }
      }
    }
  }
}

// dx for input rows [r0, r1) (r = n*H + ih), as a gather over the taps that reach each input pixel (any stride). The
// taps (kh, kw) in order with their dy / w offsets are listed once per pixel, then applied to every channel block.
template <class V>
IRC_INL void dx_rows(const Geom& g, const float* dy, const float* w, float* dx, int64_t r0, int64_t r1) {
  const int64_t C = g.Ci, nb = nblocks<V>(C);
  int64_t hoff[64], hk[64], woff[64], wk[64], toff[4096], tw[4096];
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = r / g.H, ih = r % g.H;
    int64_t nh = 0;
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      const int64_t th = ih + g.P - kh;
      if (th < 0 || th % g.S || th / g.S >= g.Ho) continue;
      hoff[nh] = (n * g.Ho + th / g.S) * g.Wo * C;
      hk[nh++] = kh;
    }
    for (int64_t iw = 0; iw < g.W; ++iw) {
      int64_t nw = 0;
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        const int64_t t = iw + g.P - kw;
        if (t < 0 || t % g.S || t / g.S >= g.Wo) continue;
        woff[nw] = (t / g.S) * C;
        wk[nw++] = kw;
      }
      int64_t nt = 0;
      for (int64_t a = 0; a < nh; ++a)
        for (int64_t b = 0; b < nw; ++b) {
          toff[nt] = hoff[a] + woff[b];
          tw[nt++] = (hk[a] * g.KW + wk[b]) * C;
        }
      float* d = dx + (r * g.W + iw) * C;
      for (int64_t i = 0; i < nb; ++i) {
        const int64_t c = block_at<V>(C, i);
        V acc = V{} * 0.f;
        for (int64_t t = 0; t < nt; ++t) acc += ld<V>(dy + toff[t] + c) * ld<V>(w + tw[t] + c);
        st<V>(d + c, acc);
      }
    }
  }
}

// Adds to part (dw [KH*KW*C], then db [C]) the contributions of output rows [r0, r1). Each tap sums its terms of a
// row in increasing ow (3x3 stride 1: the columns where all three taps are inside first, the border columns after;
// there each x column meets a sliding window of three dy values, 4 loads for 9 FMAs), then adds the row sum.
template <class V>
IRC_INL void dw_rows(const Geom& g, const float* dy, const float* x, float* part, int64_t r0, int64_t r1) {
  const int64_t C = g.Ci, nb = nblocks<V>(C), last_skip = nb * width<V>() - C;
  float* pdb = part + g.KH * g.KW * C;
  const bool fast = g.S == 1 && g.KH == 3 && g.KW == 3;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = r / g.Ho, oh = r % g.Ho, ih0 = oh * g.S - g.P;
    const float* dyr = dy + r * g.Wo * C;
    for (int64_t i = 0; i < nb; ++i) {
      const int64_t c = block_at<V>(C, i), skip = i + 1 == nb ? last_skip : 0;
      V sb = V{} * 0.f;
      for (int64_t ow = 0; ow < g.Wo; ++ow) sb += ld<V>(dyr + ow * C + c);
      add_to<V>(pdb + c, sb, skip);
      if (fast) {
        const float* xr[3];  // xr[kh] + m * C = x[ih0 + kh, m], channel c
        bool ok[3];
        for (int64_t kh = 0; kh < 3; ++kh) {
          const int64_t ih = ih0 + kh;
          ok[kh] = ih >= 0 && ih < g.H;
          xr[kh] = x + (n * g.H + (ok[kh] ? ih : 0)) * g.W * C + c;
        }
        // joint columns [a, e): 0 <= ow - P + kw < W for kw = 0..2
        const int64_t a = std::min(g.Wo, g.P), e = std::max(a, std::min(g.Wo, g.W + g.P - 2));
        V acc[3][3];
        for (int kh = 0; kh < 3; ++kh)
          for (int kw = 0; kw < 3; ++kw) acc[kh][kw] = V{} * 0.f;
        auto term = [&](int64_t ow, int kw) {
          const V d = ld<V>(dyr + ow * C + c);
          const int64_t m = (ow - g.P + kw) * C;
          for (int kh = 0; kh < 3; ++kh)
            if (ok[kh]) acc[kh][kw] += d * ld<V>(xr[kh] + m);
        };
        if (e - a >= 3) {
          // column m = ow - P + kw meets dy[m + P] (kw 0), dy[m + P - 1] (kw 1), dy[m + P - 2] (kw 2)
          for (int kw = 0; kw < 2; ++kw)
            for (int64_t ow = a; ow < a + 2 - kw; ++ow) term(ow, kw);
          V dB = ld<V>(dyr + (a + 1) * C + c), dC = ld<V>(dyr + a * C + c);
          for (int64_t m = a - g.P + 2; m < e - g.P; ++m) {
            const V dA = ld<V>(dyr + (m + g.P) * C + c);
            for (int kh = 0; kh < 3; ++kh) {
              if (!ok[kh]) continue;
              const V xv = ld<V>(xr[kh] + m * C);
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
          if (ok[kh])
            for (int kw = 0; kw < 3; ++kw) add_to<V>(part + (kh * 3 + kw) * C + c, acc[kh][kw], skip);
        continue;
      }
      for (int64_t kh = 0; kh < g.KH; ++kh) {
        const int64_t ih = ih0 + kh;
        if (ih < 0 || ih >= g.H) continue;
        const float* xr = x + (n * g.H + ih) * g.W * C + c;
        for (int64_t kw = 0; kw < g.KW; ++kw) {  // ow with 0 <= ow*S - P + kw < W
          const int64_t last = g.W - 1 + g.P - kw;
          const int64_t lo = std::max<int64_t>(0, (g.P - kw + g.S - 1) / g.S);
          const int64_t hi = last < 0 ? 0 : std::min(g.Wo, last / g.S + 1);
          V acc = V{} * 0.f;
          for (int64_t ow = lo; ow < hi; ++ow) acc += ld<V>(dyr + ow * C + c) * ld<V>(xr + (ow * g.S - g.P + kw) * C);
          add_to<V>(part + (kh * g.KW + kw) * C + c, acc, skip);
        }
      }
    }
  }
}

// Every kernel: channel blocks of V when C >= its width, else 4-wide blocks, else plain floats.
#define IRC_DW_PICK(CALL)          \
  if (g.Ci >= width<V>()) {        \
    CALL(V);                       \
  } else if (g.Ci >= 4) {          \
    CALL(vf4);                     \
  } else {                         \
    CALL(float);                   \
  }
#define IRC_DW_VARIANT(NAME, VT, ATTR)                                                                          \
  ATTR void fwd_##NAME(const Geom& g, const float* x, const float* w, const float* b, float* y, int64_t r0,    \
                       int64_t r1) {                                                                           \
    using V = VT;                                                                                              \
    IRC_DW_PICK(IRC_FWD_CALL)                                                                                  \
  }                                                                                                            \
  ATTR void dx_##NAME(const Geom& g, const float* dy, const float* w, float* dx, int64_t r0, int64_t r1) {     \
    using V = VT;                                                                                              \
    IRC_DW_PICK(IRC_DX_CALL)                                                                                   \
  }                                                                                                            \
  ATTR void dw_##NAME(const Geom& g, const float* dy, const float* x, float* part, int64_t r0, int64_t r1) {   \
    using V = VT;                                                                                              \
    IRC_DW_PICK(IRC_DW_CALL)                                                                                   \
  }
#define IRC_FWD_CALL(T) fwd_rows<T>(g, x, w, b, y, r0, r1)
#define IRC_DX_CALL(T) dx_rows<T>(g, dy, w, dx, r0, r1)
#define IRC_DW_CALL(T) dw_rows<T>(g, dy, x, part, r0, r1)

IRC_DW_VARIANT(base, vf4, )
IRC_DW_VARIANT(avx2, vf8, __attribute__((target("avx2,fma"))))
IRC_DW_VARIANT(avx512, vf16, __attribute__((target("avx512f"))))

struct Fns {
  void (*fwd)(const Geom&, const float*, const float*, const float*, float*, int64_t, int64_t);
  void (*dx)(const Geom&, const float*, const float*, float*, int64_t, int64_t);
  void (*dw)(const Geom&, const float*, const float*, float*, int64_t, int64_t);
};

const Fns& fns() {
  static const Fns f = [] {
    __builtin_cpu_init();
    const char* env = std::getenv("IRCONSTYLE_GEMM_ISA");  // testing: "avx2" or "scalar" forces a lower ISA
    const std::string force = env ? env : "";
    if (force == "scalar") return Fns{&fwd_base, &dx_base, &dw_base};
    if (force != "avx2" && __builtin_cpu_supports("avx512f")) return Fns{&fwd_avx512, &dx_avx512, &dw_avx512};
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Fns{&fwd_avx2, &dx_avx2, &dw_avx2};
    return Fns{&fwd_base, &dx_base, &dw_base};
  }();
  return f;
}

int64_t row_grain(const Geom& g, int64_t width_px) {
  const int64_t work = std::max<int64_t>(1, width_px * g.Ci * g.KH * g.KW);
  return std::max<int64_t>(1, 32768 / work);
}

}  // namespace

// 3x3, stride 1, padding 1: the CUDA sliding kernels' batched work items when IRCONSTYLE_EMULATE lists slide
bool slide_shape(const Geom& g) { return g.KH == 3 && g.KW == 3 && g.S == 1 && g.P == 1; }

void depthwise_forward(const Geom& g, const float* x, const float* w, const float* b, float* y) {
  if (slide_shape(g) && slide3_emulate_forward(slide::kPlain, false, g.N, g.H, g.W, g.Ci, x, w, b, nullptr, y)) return;
  const Fns& f = fns();
  parallel_for(g.N * g.Ho, row_grain(g, g.Wo), [&](int64_t r0, int64_t r1) { f.fwd(g, x, w, b, y, r0, r1); });
}

void depthwise_backward(const Geom& g, const float* dy, const float* x, const float* w, float* dx, float* dw,
                        float* db) {
  if (slide_shape(g) && slide3_emulate_backward(g.N, g.H, g.W, g.Ci, dy, x, w, dx, dw, db)) return;
  const Fns& f = fns();
  if (g.S == 1 && g.KH == g.KW && g.P <= g.KH - 1) {
    // stride 1: dx[ih, iw] = sum_{kh,kw} dy[ih + P - kh, iw + P - kw] w[kh, kw] is the forward convolution of dy
    // (Ho x Wo) with the flipped kernel and padding KH - 1 - P (the fast register path for 3x3)
    std::vector<float> wf(static_cast<size_t>(g.KH * g.KW * g.Ci));
    for (int64_t kh = 0; kh < g.KH; ++kh)
      for (int64_t kw = 0; kw < g.KW; ++kw)
        std::memcpy(wf.data() + (kh * g.KW + kw) * g.Ci, w + ((g.KH - 1 - kh) * g.KW + g.KW - 1 - kw) * g.Ci,
                    sizeof(float) * g.Ci);
    Geom t = g;
    t.H = g.Ho;
    t.W = g.Wo;
    t.Ho = g.H;
    t.Wo = g.W;
    t.P = g.KH - 1 - g.P;
    parallel_for(t.N * t.Ho, row_grain(t, t.Wo), [&](int64_t r0, int64_t r1) {
      f.fwd(t, dy, wf.data(), nullptr, dx, r0, r1);
    });
  } else {
    parallel_for(g.N * g.H, row_grain(g, g.W), [&](int64_t r0, int64_t r1) { f.dx(g, dy, w, dx, r0, r1); });
  }
  const int64_t rows = g.N * g.Ho, parts = num_parts(rows), psz = (g.KH * g.KW + 1) * g.Ci;
  std::vector<float> partial(static_cast<size_t>(parts * psz), 0.f);
  parallel_for(parts, 1, [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) f.dw(g, dy, x, partial.data() + q * psz, rows * q / parts, rows * (q + 1) / parts);
  });
  const int64_t wsz = g.KH * g.KW * g.Ci;
  for (int64_t e = 0; e < psz; ++e) {
    float s = 0.f;
    for (int64_t q = 0; q < parts; ++q) s += partial[q * psz + e];
    if (e < wsz) {
      dw[e] = s;
    } else {
      db[e - wsz] = s;
    }
  }
}

}  // namespace conv
}  // namespace irc
