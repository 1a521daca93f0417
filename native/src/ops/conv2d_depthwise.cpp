// Depthwise conv2d (groups == Ci == Co), any KH/KW/stride/pad: vectorised over channels with GCC vector
// extensions, instantiated for AVX-512 (16 floats), AVX2+FMA (8) and the baseline (4) through target attributes
// and picked at run time; leftover channels use the same code with plain floats. Multithreaded over image rows;
// dw/db reduce over a fixed split of the rows (conv::num_parts) summed in order. Math: conv2d.h.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "conv2d.h"

#pragma GCC diagnostic ignored "-Wpsabi"

namespace irc {
namespace conv {
namespace {

typedef float vf4 __attribute__((vector_size(16)));
typedef float vf8 __attribute__((vector_size(32)));
typedef float vf16 __attribute__((vector_size(64)));

#define IRC_INL inline __attribute__((always_inline))

template <class V>
IRC_INL V ld(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}
template <class V>
IRC_INL void st(float* p, const V& v) {
  std::memcpy(p, &v, sizeof(V));
}
template <class V>
constexpr int64_t width() {
  return static_cast<int64_t>(sizeof(V) / sizeof(float));
}

// Channels [cs, ce) (a multiple of the vector width) of output rows [r0, r1) (r = n*Ho + oh).
template <class V>
IRC_INL void fwd_rows(const Geom& g, const float* x, const float* w, const float* b, float* y, int64_t r0, int64_t r1,
                      int64_t cs, int64_t ce) {
  const int64_t C = g.Ci;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = r / g.Ho, oh = r % g.Ho, ih0 = oh * g.S - g.P;
    const int64_t kh0 = std::max<int64_t>(0, -ih0), kh1 = std::min(g.KH, g.H - ih0);
    for (int64_t ow = 0; ow < g.Wo; ++ow) {
      const int64_t iw0 = ow * g.S - g.P;
      const int64_t kw0 = std::max<int64_t>(0, -iw0), kw1 = std::min(g.KW, g.W - iw0);
      float* yp = y + (r * g.Wo + ow) * C;
      for (int64_t c = cs; c < ce; c += width<V>()) {
        V acc = b ? ld<V>(b + c) : V{} * 0.f;
        for (int64_t kh = kh0; kh < kh1; ++kh) {
          const float* xr = x + ((n * g.H + ih0 + kh) * g.W + iw0) * C + c;
          const float* wr = w + kh * g.KW * C + c;
          for (int64_t kw = kw0; kw < kw1; ++kw) acc += ld<V>(xr + kw * C) * ld<V>(wr + kw * C);
        }
        st<V>(yp + c, acc);
      }
    }
  }
}

// dx for input rows [r0, r1) (r = n*H + ih), as a gather over the taps that reach each input pixel. The taps
// (kh, kw) in order with their dy / w offsets are listed once per pixel, then applied to every channel block.
template <class V>
IRC_INL void dx_rows(const Geom& g, const float* dy, const float* w, float* dx, int64_t r0, int64_t r1, int64_t cs,
                     int64_t ce) {
  const int64_t C = g.Ci;
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
      for (int64_t c = cs; c < ce; c += width<V>()) {
        V acc = V{} * 0.f;
        for (int64_t t = 0; t < nt; ++t) acc += ld<V>(dy + toff[t] + c) * ld<V>(w + tw[t] + c);
        st<V>(d + c, acc);
      }
    }
  }
}

// Adds to part (dw [KH*KW*C], then db [C]) the contributions of output rows [r0, r1).
template <class V>
IRC_INL void dw_rows(const Geom& g, const float* dy, const float* x, float* part, int64_t r0, int64_t r1, int64_t cs,
                     int64_t ce) {
  const int64_t C = g.Ci;
  float* pdb = part + g.KH * g.KW * C;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = r / g.Ho, oh = r % g.Ho, ih0 = oh * g.S - g.P;
    const float* dyr = dy + r * g.Wo * C;
    for (int64_t c = cs; c < ce; c += width<V>()) {
      V sb = V{} * 0.f;
      for (int64_t ow = 0; ow < g.Wo; ++ow) sb += ld<V>(dyr + ow * C + c);
      st<V>(pdb + c, ld<V>(pdb + c) + sb);
      for (int64_t kh = 0; kh < g.KH; ++kh) {
        const int64_t ih = ih0 + kh;
        if (ih < 0 || ih >= g.H) continue;
        const float* xr = x + (n * g.H + ih) * g.W * C + c;
        // ow range with 0 <= ow*S - P + kw < W, for each kw
        int64_t lo[64], hi[64];
        for (int64_t kw = 0; kw < g.KW; ++kw) {
          const int64_t last = g.W - 1 + g.P - kw;
          lo[kw] = std::max<int64_t>(0, (g.P - kw + g.S - 1) / g.S);
          hi[kw] = last < 0 ? 0 : std::min(g.Wo, last / g.S + 1);
        }
        float* pw = part + kh * g.KW * C + c;
        if (g.KW == 3) {  // the common case: one pass over the row for the three taps
          const int64_t a = std::max({lo[0], lo[1], lo[2]}), e = std::max(a, std::min({hi[0], hi[1], hi[2]}));
          V t0 = V{} * 0.f, t1 = t0, t2 = t0;
          for (int64_t ow = a; ow < e; ++ow) {
            const V d = ld<V>(dyr + ow * C + c);
            const float* xp = xr + (ow * g.S - g.P) * C;
            t0 += d * ld<V>(xp);
            t1 += d * ld<V>(xp + C);
            t2 += d * ld<V>(xp + 2 * C);
          }
          V* ts[3] = {&t0, &t1, &t2};
          for (int64_t kw = 0; kw < 3; ++kw) {  // border pixels outside the joint range
            V acc = *ts[kw];
            for (int64_t ow = lo[kw]; ow < std::min(hi[kw], a); ++ow)
              acc += ld<V>(dyr + ow * C + c) * ld<V>(xr + (ow * g.S - g.P + kw) * C);
            for (int64_t ow = std::max(lo[kw], e); ow < hi[kw]; ++ow)
              acc += ld<V>(dyr + ow * C + c) * ld<V>(xr + (ow * g.S - g.P + kw) * C);
            st<V>(pw + kw * C, ld<V>(pw + kw * C) + acc);
          }
          continue;
        }
        for (int64_t kw = 0; kw < g.KW; ++kw) {
          V acc = V{} * 0.f;
          for (int64_t ow = lo[kw]; ow < hi[kw]; ++ow)
            acc += ld<V>(dyr + ow * C + c) * ld<V>(xr + (ow * g.S - g.P + kw) * C);
          st<V>(pw + kw * C, ld<V>(pw + kw * C) + acc);
        }
      }
    }
  }
}

// Every kernel: vector part with V, channel tail with float.
#define IRC_DW_VARIANT(NAME, V, ATTR)                                                                          \
  ATTR void fwd_##NAME(const Geom& g, const float* x, const float* w, const float* b, float* y, int64_t r0,    \
                       int64_t r1) {                                                                           \
    const int64_t cv = g.Ci / width<V>() * width<V>();                                                         \
    fwd_rows<V>(g, x, w, b, y, r0, r1, 0, cv);                                                                 \
    if (cv < g.Ci) fwd_rows<float>(g, x, w, b, y, r0, r1, cv, g.Ci);                                           \
  }                                                                                                            \
  ATTR void dx_##NAME(const Geom& g, const float* dy, const float* w, float* dx, int64_t r0, int64_t r1) {     \
    const int64_t cv = g.Ci / width<V>() * width<V>();                                                         \
    dx_rows<V>(g, dy, w, dx, r0, r1, 0, cv);                                                                   \
    if (cv < g.Ci) dx_rows<float>(g, dy, w, dx, r0, r1, cv, g.Ci);                                             \
  }                                                                                                            \
  ATTR void dw_##NAME(const Geom& g, const float* dy, const float* x, float* part, int64_t r0, int64_t r1) {   \
    const int64_t cv = g.Ci / width<V>() * width<V>();                                                         \
    dw_rows<V>(g, dy, x, part, r0, r1, 0, cv);                                                                 \
    if (cv < g.Ci) dw_rows<float>(g, dy, x, part, r0, r1, cv, g.Ci);                                           \
  }

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

void depthwise_forward(const Geom& g, const float* x, const float* w, const float* b, float* y) {
  const Fns& f = fns();
  parallel_for(g.N * g.Ho, row_grain(g, g.Wo), [&](int64_t r0, int64_t r1) { f.fwd(g, x, w, b, y, r0, r1); });
}

void depthwise_backward(const Geom& g, const float* dy, const float* x, const float* w, float* dx, float* dw,
                        float* db) {
  const Fns& f = fns();
  parallel_for(g.N * g.H, row_grain(g, g.W), [&](int64_t r0, int64_t r1) { f.dx(g, dy, w, dx, r0, r1); });
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
