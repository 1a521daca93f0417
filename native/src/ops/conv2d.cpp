// conv2d / conv2d_backward (ops.def): validation, dense and grouped convolution via im2col tiles + sgemm
// (per-thread tiles for small weights, big sequential tiles with a multithreaded sgemm for weights >= 64Ki floats),
// 1x1 stride-1 convolutions as a single GEMM, direct loops for Cout <= 4, depthwise convolutions in
// conv2d_depthwise.cpp. Math: conv2d.h.
#include "conv2d.h"

#include <algorithm>
#include <vector>

#include "../cpu/gemm.h"
#include "../cpu/simd.h"

namespace irc {
namespace {
using conv::Geom;

std::string shapes_of(const Shape& x, const Shape& w) {
  return " (x shape " + shape_str(x) + ", weight shape " + shape_str(w) + ")";
}

// Validates x (input xi) and w (input wi) and the attrs; returns the geometry.
Geom check_conv(const InferCtx& c, size_t xi, size_t wi) {
  c.need_f32(xi);
  c.need_f32(wi);
  c.need_rank(xi, 4);
  c.need_rank(wi, 4);
  c.need_attrs(3);
  const Shape& x = c.in[xi].shape;
  const Shape& w = c.in[wi].shape;
  const int64_t S = c.ai(0), P = c.ai(1), G = c.ai(2);
  if (S < 1) op_fail("E_ATTR", std::string(c.op) + ": stride must be >= 1, got " + std::to_string(S));
  if (P < 0) op_fail("E_ATTR", std::string(c.op) + ": pad must be >= 0, got " + std::to_string(P));
  if (G < 1) op_fail("E_ATTR", std::string(c.op) + ": groups must be >= 1, got " + std::to_string(G));
  Geom g{x[0], x[1], x[2], x[3], w[0], w[1], w[3], S, P, G, 0, 0, 0, 0};
  if (g.Ci % G != 0)
    op_fail("E_ATTR", std::string(c.op) + ": input channels " + std::to_string(g.Ci) + " not divisible by groups = " +
                          std::to_string(G) + shapes_of(x, w));
  g.cig = g.Ci / G;
  if (w[2] != g.cig)
    op_fail("E_SHAPE", std::string(c.op) + ": weight expects Cin/groups = " + std::to_string(g.cig) +
                           " at dim 2, got " + std::to_string(w[2]) + shapes_of(x, w));
  if (g.Co % G != 0)
    op_fail("E_SHAPE", std::string(c.op) + ": output channels (weight dim 3) = " + std::to_string(g.Co) +
                           " not divisible by groups = " + std::to_string(G) + shapes_of(x, w));
  g.cog = g.Co / G;
  if (g.KH < 1 || g.KW < 1 || g.Co < 1 || g.cig < 1)
    op_fail("E_SHAPE", std::string(c.op) + ": weight dims must be >= 1" + shapes_of(x, w));
  if (g.KH > 64 || g.KW > 64)  // the backward kernels keep per-pixel tap lists on the stack
    op_fail("E_SHAPE", std::string(c.op) + ": kernel sizes up to 64x64 are supported, got " + std::to_string(g.KH) +
                           "x" + std::to_string(g.KW) + shapes_of(x, w));
  const int64_t hp = g.H + 2 * P - g.KH, wp = g.W + 2 * P - g.KW;
  g.Ho = hp < 0 ? 0 : hp / S + 1;
  g.Wo = wp < 0 ? 0 : wp / S + 1;
  if (g.Ho < 1 || g.Wo < 1)
    op_fail("E_SHAPE", std::string(c.op) + ": output would be empty: input " + std::to_string(g.H) + "x" +
                           std::to_string(g.W) + " with pad " + std::to_string(P) + " is smaller than the kernel " +
                           std::to_string(g.KH) + "x" + std::to_string(g.KW) + shapes_of(x, w));
  return g;
}

Geom geom_of(const Shape& x, const Shape& w, const KernelCtx& k) {
  Geom g{x[0], x[1], x[2], x[3], w[0], w[1], w[3], k.ai(0), k.ai(1), k.ai(2), 0, 0, 0, 0};
  g.cig = g.Ci / g.G;
  g.cog = g.Co / g.G;
  g.Ho = (g.H + 2 * g.P - g.KH) / g.S + 1;
  g.Wo = (g.W + 2 * g.P - g.KW) / g.S + 1;
  return g;
}

bool is_depthwise(const Geom& g) { return g.G > 1 && g.cig == 1 && g.cog == 1; }
bool is_pointwise(const Geom& g) { return g.G == 1 && g.KH == 1 && g.KW == 1 && g.S == 1 && g.P == 0; }

// Pixels per im2col tile: about 1 MiB of columns, at least 4 tiles per thread when the image allows.
int64_t tile_pixels(int64_t pixels, int64_t kk, int64_t floats = 65536) {
  int64_t t = std::clamp<int64_t>(floats / std::max<int64_t>(kk, 1), 32, 4096);
  const int64_t want = (pixels + 4 * num_threads() - 1) / (4 * num_threads());
  return std::max<int64_t>(std::min(t, want), 16);
}

// col[p - p0][(kh*KW + kw)*cig + ci] = x[n, oh*S-P+kh, ow*S-P+kw, grp*cig + ci] (0 outside) for pixels [p0, p1).
void im2col(const Geom& g, const float* x, int64_t p0, int64_t p1, int64_t grp, float* col) {
  const int64_t kk = g.KH * g.KW * g.cig, hw = g.Ho * g.Wo;
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t n = p / hw, r = p % hw, oh = r / g.Wo, ow = r % g.Wo;
    float* d = col + (p - p0) * kk;
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      const int64_t ih = oh * g.S - g.P + kh;
      for (int64_t kw = 0; kw < g.KW; ++kw, d += g.cig) {
        const int64_t iw = ow * g.S - g.P + kw;
        if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) {
          std::memset(d, 0, sizeof(float) * g.cig);
        } else {
          std::memcpy(d, x + ((n * g.H + ih) * g.W + iw) * g.Ci + grp * g.cig, sizeof(float) * g.cig);
        }
      }
    }
  }
}

void fill_rows(float* y, int64_t rows, int64_t C, const float* b) {
  parallel_for(rows, 256, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      if (b) {
        std::memcpy(y + r * C, b, sizeof(float) * C);
      } else {
        std::memset(y + r * C, 0, sizeof(float) * C);
      }
    }
  });
}

// Large weights (per group): small per-thread tiles would repack the whole weight panel for every few dozen pixels
// (forward) or re-read and re-write the whole dw accumulator per tile (backward), so those convolutions use big
// sequential tiles instead: a parallel im2col, then one multithreaded sgemm per tile.
bool big_weight(const Geom& g) { return g.KH * g.KW * g.cig * g.cog >= (int64_t(1) << 16); }

// Pixels per big sequential tile (about 8 MiB of columns).
int64_t big_tile(int64_t pix, int64_t kk) { return std::min(pix, std::max<int64_t>((int64_t(1) << 21) / kk, 256)); }

void im2col_par(const Geom& g, const float* x, int64_t p0, int64_t p1, int64_t grp, float* col) {
  const int64_t kk = g.KH * g.KW * g.cig;
  parallel_for(p1 - p0, 16, [&](int64_t a, int64_t e) { im2col(g, x, p0 + a, p0 + e, grp, col + a * kk); });
}

bool small_co(const Geom& g);
void forward_small_co(const Geom& g, const float* x, const float* w, const float* b, float* y);

void forward_dense(const Geom& g, const float* x, const float* w, const float* b, float* y) {
  const int64_t pix = g.N * g.Ho * g.Wo;
  if (small_co(g)) {
    forward_small_co(g, x, w, b, y);
    return;
  }
  if (b) fill_rows(y, pix, g.Co, b);
  const float beta = b ? 1.f : 0.f;
  if (is_pointwise(g)) {
    sgemm(false, false, pix, g.Co, g.Ci, 1.f, x, g.Ci, w, g.Co, beta, y, g.Co);
    return;
  }
  const int64_t kk = g.KH * g.KW * g.cig;
  if (big_weight(g)) {
    const int64_t T = big_tile(pix, kk);
    float* col = scratch(static_cast<size_t>(T * kk), 0);
    for (int64_t p0 = 0; p0 < pix; p0 += T) {
      const int64_t p1 = std::min(pix, p0 + T);
      for (int64_t grp = 0; grp < g.G; ++grp) {
        im2col_par(g, x, p0, p1, grp, col);
        sgemm(false, false, p1 - p0, g.cog, kk, 1.f, col, kk, w + grp * g.cog, g.Co, beta,
              y + p0 * g.Co + grp * g.cog, g.Co);
      }
    }
    return;
  }
  const int64_t T = tile_pixels(pix, kk), ntiles = (pix + T - 1) / T;
  parallel_for(ntiles, 1, [&](int64_t t0, int64_t t1) {
    float* col = scratch(static_cast<size_t>(T * kk), 0);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t p0 = t * T, p1 = std::min(pix, p0 + T);
      for (int64_t grp = 0; grp < g.G; ++grp) {
        im2col(g, x, p0, p1, grp, col);
        sgemm(false, false, p1 - p0, g.cog, kk, 1.f, col, kk, w + grp * g.cog, g.Co, beta,
              y + p0 * g.Co + grp * g.cog, g.Co);
      }
    }
  });
}

// dx += col2im(dcol) for the pixels [p0, p1) of group grp, as a gather over the affected input rows.
void col2im_add(const Geom& g, const float* dcol, int64_t p0, int64_t p1, int64_t grp, float* dx) {
  const int64_t kk = g.KH * g.KW * g.cig, hw = g.Ho * g.Wo;
  const int64_t n0 = p0 / hw, oh0 = (p0 % hw) / g.Wo, n1 = (p1 - 1) / hw, oh1 = ((p1 - 1) % hw) / g.Wo;
  std::vector<int64_t> rows;  // n * H + ih
  for (int64_t n = n0; n <= n1; ++n) {
    const int64_t lo = n == n0 ? oh0 : 0, hi = n == n1 ? oh1 : g.Ho - 1;
    const int64_t a = std::max<int64_t>(0, lo * g.S - g.P), e = std::min(g.H - 1, hi * g.S - g.P + g.KH - 1);
    for (int64_t ih = a; ih <= e; ++ih) rows.push_back(n * g.H + ih);
  }
  parallel_for(static_cast<int64_t>(rows.size()), 1, [&](int64_t r0, int64_t r1) {
    int64_t hk[64], hoh[64], wk[64], wow[64];
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = rows[r] / g.H, ih = rows[r] % g.H;
      int64_t nh = 0;
      for (int64_t kh = 0; kh < g.KH; ++kh) {
        const int64_t th = ih + g.P - kh;
        if (th < 0 || th % g.S || th / g.S >= g.Ho) continue;
        hk[nh] = kh;
        hoh[nh++] = th / g.S;
      }
      for (int64_t iw = 0; iw < g.W; ++iw) {
        int64_t nw = 0;
        for (int64_t kw = 0; kw < g.KW; ++kw) {
          const int64_t tw = iw + g.P - kw;
          if (tw < 0 || tw % g.S || tw / g.S >= g.Wo) continue;
          wk[nw] = kw;
          wow[nw++] = tw / g.S;
        }
        float* __restrict d = dx + ((n * g.H + ih) * g.W + iw) * g.Ci + grp * g.cig;
        for (int64_t a = 0; a < nh; ++a)
          for (int64_t b = 0; b < nw; ++b) {
            const int64_t p = (n * g.Ho + hoh[a]) * g.Wo + wow[b];
            if (p < p0 || p >= p1) continue;
            const float* __restrict s = dcol + (p - p0) * kk + (hk[a] * g.KW + wk[b]) * g.cig;
            for (int64_t c = 0; c < g.cig; ++c) d[c] += s[c];
          }
      }
    }
  });
}

// Few output channels (dense, groups = 1): the GEMMs have a tiny N or K and dcol would be mostly memory traffic,
// so forward and backward run as direct loops vectorised over the input channels.
bool small_co(const Geom& g) { return g.G == 1 && g.Co <= 4 && g.Ci >= 8 && !is_pointwise(g); }

IRC_INL void shift(const float** p, int64_t n, int64_t by) {
  for (int64_t i = 0; i < n; ++i) p[i] += by;
}

template <int B>
IRC_INL void gather_block(float* __restrict d, int64_t Ci, int64_t Co, int64_t nt, const float* const* dyp,
                          const float* const* wp) {
  float acc[B] = {};
  for (int64_t t = 0; t < nt; ++t)
    for (int64_t co = 0; co < Co; ++co) {
      const float a = dyp[t][co];
      const float* __restrict wr = wp[t] + co * Ci;
      for (int i = 0; i < B; ++i) acc[i] += a * wr[i];
    }
  for (int i = 0; i < B; ++i) d[i] = acc[i];
}

// d[ci] = sum over taps t, then co, of dyp[t][co] * wp[t][co * Ci + ci] (the same order for every ci).
IRC_CLONES void gather_taps(float* __restrict d, int64_t Ci, int64_t Co, int64_t nt, const float* const* dyp,
                            const float** wp) {
  int64_t c0 = 0;
  for (; c0 + 32 <= Ci; c0 += 32) gather_block<32>(d + c0, Ci, Co, nt, dyp, wp), shift(wp, nt, 32);
  for (; c0 + 8 <= Ci; c0 += 8) gather_block<8>(d + c0, Ci, Co, nt, dyp, wp), shift(wp, nt, 8);
  for (; c0 < Ci; ++c0) gather_block<1>(d + c0, Ci, Co, nt, dyp, wp), shift(wp, nt, 1);
}

// acc[co * Ci + ci] += dy[co] * x[ci]
IRC_CLONES void outer_add(float* __restrict acc, const float* __restrict dy, const float* __restrict x, int64_t Co,
                          int64_t Ci) {
  for (int64_t co = 0; co < Co; ++co) {
    const float a = dy[co];
    float* __restrict r = acc + co * Ci;
    for (int64_t ci = 0; ci < Ci; ++ci) r[ci] += a * x[ci];
  }
}

// The weight as [tap][co][ci] (groups = 1).
std::vector<float> weight_tco(const Geom& g, const float* w) {
  const int64_t taps = g.KH * g.KW, Ci = g.Ci, Co = g.Co;
  std::vector<float> wt(static_cast<size_t>(taps * Co * Ci));
  for (int64_t t = 0; t < taps; ++t)
    for (int64_t ci = 0; ci < Ci; ++ci)
      for (int64_t co = 0; co < Co; ++co) wt[(t * Co + co) * Ci + ci] = w[(t * Ci + ci) * Co + co];
  return wt;
}

// y[co] = b[co] + sum of 16 lane sums (fixed tree), each lane summing taps t in order over ci = lane (mod 16) of
// xp[t][ci] * wp[t][co * Ci + ci].
template <int CO>
IRC_INL void dot_taps(float* y, int64_t Ci, int64_t nt, const float* const* xp, const float* const* wp,
                      const float* b) {
  float acc[CO][16] = {};
  for (int64_t t = 0; t < nt; ++t) {
    const float* __restrict xr = xp[t];
    int64_t c = 0;
    for (; c + 16 <= Ci; c += 16)
      for (int co = 0; co < CO; ++co) {
        const float* __restrict wr = wp[t] + co * Ci + c;
        for (int i = 0; i < 16; ++i) acc[co][i] += xr[c + i] * wr[i];
      }
    for (int i = 0; c + i < Ci; ++i)
      for (int co = 0; co < CO; ++co) acc[co][i] += xr[c + i] * wp[t][co * Ci + c + i];
  }
  for (int co = 0; co < CO; ++co) {
    float l[8];
    for (int i = 0; i < 8; ++i) l[i] = acc[co][i] + acc[co][i + 8];
    const float s = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
    y[co] = b ? b[co] + s : s;
  }
}

IRC_CLONES void dot_taps_any(int64_t Co, float* y, int64_t Ci, int64_t nt, const float* const* xp,
                             const float* const* wp, const float* b) {
  switch (Co) {
    case 1: dot_taps<1>(y, Ci, nt, xp, wp, b); break;
    case 2: dot_taps<2>(y, Ci, nt, xp, wp, b); break;
    case 3: dot_taps<3>(y, Ci, nt, xp, wp, b); break;
    default: dot_taps<4>(y, Ci, nt, xp, wp, b); break;
  }
}

void forward_small_co(const Geom& g, const float* x, const float* w, const float* b, float* y) {
  const int64_t taps = g.KH * g.KW, Ci = g.Ci, Co = g.Co;
  const std::vector<float> wt = weight_tco(g, w);
  parallel_for(g.N * g.Ho, 1, [&](int64_t r0, int64_t r1) {
    std::vector<const float*> xp(static_cast<size_t>(taps)), wp(static_cast<size_t>(taps));
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / g.Ho, oh = r % g.Ho;
      for (int64_t ow = 0; ow < g.Wo; ++ow) {
        int64_t nt = 0;
        for (int64_t kh = 0; kh < g.KH; ++kh) {
          const int64_t ih = oh * g.S - g.P + kh;
          if (ih < 0 || ih >= g.H) continue;
          for (int64_t kw = 0; kw < g.KW; ++kw) {
            const int64_t iw = ow * g.S - g.P + kw;
            if (iw < 0 || iw >= g.W) continue;
            xp[nt] = x + ((n * g.H + ih) * g.W + iw) * Ci;
            wp[nt++] = wt.data() + (kh * g.KW + kw) * Co * Ci;
          }
        }
        dot_taps_any(Co, y + (r * g.Wo + ow) * Co, Ci, nt, xp.data(), wp.data(), b);
      }
    }
  });
}

void backward_dx_small_co(const Geom& g, const float* dy, const float* w, float* dx) {
  const int64_t taps = g.KH * g.KW, Ci = g.Ci, Co = g.Co;
  const std::vector<float> wt = weight_tco(g, w);
  parallel_for(g.N * g.H, 1, [&](int64_t r0, int64_t r1) {
    std::vector<const float*> dyp(static_cast<size_t>(taps)), wp(static_cast<size_t>(taps));
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / g.H, ih = r % g.H;
      for (int64_t iw = 0; iw < g.W; ++iw) {
        int64_t nt = 0;
        for (int64_t kh = 0; kh < g.KH; ++kh) {
          const int64_t th = ih + g.P - kh;
          if (th < 0 || th % g.S || th / g.S >= g.Ho) continue;
          for (int64_t kw = 0; kw < g.KW; ++kw) {
            const int64_t tw = iw + g.P - kw;
            if (tw < 0 || tw % g.S || tw / g.S >= g.Wo) continue;
            dyp[nt] = dy + ((n * g.Ho + th / g.S) * g.Wo + tw / g.S) * Co;
            wp[nt++] = wt.data() + (kh * g.KW + kw) * Co * Ci;
          }
        }
        gather_taps(dx + (r * g.W + iw) * Ci, Ci, Co, nt, dyp.data(), wp.data());
      }
    }
  });
}

// dw and db over a fixed split of the output rows into parts, summed part by part.
void backward_dw_small_co(const Geom& g, const float* dy, const float* x, float* dw, float* db) {
  const int64_t taps = g.KH * g.KW, Ci = g.Ci, Co = g.Co, wsz = taps * Ci * Co, rows = g.N * g.Ho;
  const int64_t parts = conv::num_parts(rows), stride = wsz + Co;
  std::vector<float> partial(static_cast<size_t>(parts * stride), 0.f);  // per part: [tap][co][ci], then db
  parallel_for(parts, 1, [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) {
      float* acc = partial.data() + q * stride;
      float* pb = acc + wsz;
      for (int64_t r = rows * q / parts; r < rows * (q + 1) / parts; ++r) {
        const int64_t n = r / g.Ho, oh = r % g.Ho;
        for (int64_t ow = 0; ow < g.Wo; ++ow) {
          const float* d = dy + (r * g.Wo + ow) * Co;
          for (int64_t c = 0; c < Co; ++c) pb[c] += d[c];
          for (int64_t kh = 0; kh < g.KH; ++kh) {
            const int64_t ih = oh * g.S - g.P + kh;
            if (ih < 0 || ih >= g.H) continue;
            for (int64_t kw = 0; kw < g.KW; ++kw) {
              const int64_t iw = ow * g.S - g.P + kw;
              if (iw < 0 || iw >= g.W) continue;
              outer_add(acc + (kh * g.KW + kw) * Co * Ci, d, x + ((n * g.H + ih) * g.W + iw) * Ci, Co, Ci);
            }
          }
        }
      }
    }
  });
  parallel_for(stride, 1024, [&](int64_t e0, int64_t e1) {
    for (int64_t e = e0; e < e1; ++e) {
      float s = 0.f;
      for (int64_t q = 0; q < parts; ++q) s += partial[q * stride + e];
      if (e >= wsz) {
        db[e - wsz] = s;
      } else {
        const int64_t t = e / (Co * Ci), co = (e / Ci) % Co, ci = e % Ci;
        dw[(t * Ci + ci) * Co + co] = s;
      }
    }
  });
}

void backward_dx(const Geom& g, const float* dy, const float* w, float* dx) {
  const int64_t pix = g.N * g.Ho * g.Wo;
  if (is_pointwise(g)) {
    sgemm(false, true, pix, g.Ci, g.Co, 1.f, dy, g.Co, w, g.Co, 0.f, dx, g.Ci);
    return;
  }
  if (small_co(g)) {
    backward_dx_small_co(g, dy, w, dx);
    return;
  }
  fill_rows(dx, g.N * g.H * g.W, g.Ci, nullptr);
  // Tiles in a fixed sequential order (each dx element sums tile by tile, then kh, kw): dcol = dy . W_g^T with a
  // parallel sgemm, then a parallel gather into dx.
  const int64_t kk = g.KH * g.KW * g.cig;
  const int64_t T = std::clamp<int64_t>((int64_t(1) << 22) / kk, 64, 16384);
  float* dcol = scratch(static_cast<size_t>(std::min(T, pix) * kk), 0);
  for (int64_t p0 = 0; p0 < pix; p0 += T) {
    const int64_t p1 = std::min(pix, p0 + T);
    for (int64_t grp = 0; grp < g.G; ++grp) {
      sgemm(false, true, p1 - p0, kk, g.cog, 1.f, dy + p0 * g.Co + grp * g.cog, g.Co, w + grp * g.cog, g.Co, 0.f,
            dcol, kk);
      col2im_add(g, dcol, p0, p1, grp, dx);
    }
  }
}

// db[c] = sum over pixels of dy[p, c], pixel by pixel in order for each channel (channel chunks in parallel).
void bias_grad(int64_t pix, int64_t C, const float* dy, float* db) {
  parallel_for(C, 64, [&](int64_t c0, int64_t c1) {
    float* __restrict d = db + c0;
    const int64_t nc = c1 - c0;
    std::fill(d, d + nc, 0.f);
    for (int64_t p = 0; p < pix; ++p) {
      const float* __restrict s = dy + p * C + c0;
      for (int64_t c = 0; c < nc; ++c) d[c] += s[c];
    }
  });
}

// dw = sum over big sequential pixel tiles of im2col^T . dy (multithreaded sgemm accumulating into dw).
void backward_dw_big(const Geom& g, const float* dy, const float* x, float* dw, float* db) {
  const int64_t pix = g.N * g.Ho * g.Wo, kk = g.KH * g.KW * g.cig, T = big_tile(pix, kk);
  float* col = scratch(static_cast<size_t>(T * kk), 0);
  for (int64_t p0 = 0; p0 < pix; p0 += T) {
    const int64_t p1 = std::min(pix, p0 + T);
    for (int64_t grp = 0; grp < g.G; ++grp) {
      im2col_par(g, x, p0, p1, grp, col);
      sgemm(true, false, kk, g.cog, p1 - p0, 1.f, col, kk, dy + p0 * g.Co + grp * g.cog, g.Co, p0 == 0 ? 0.f : 1.f,
            dw + grp * g.cog, g.Co);
    }
  }
  bias_grad(pix, g.Co, dy, db);
}

void backward_dw_db(const Geom& g, const float* dy, const float* x, float* dw, float* db) {
  const int64_t pix = g.N * g.Ho * g.Wo, kk = g.KH * g.KW * g.cig, wsz = kk * g.Co;
  const bool pw = is_pointwise(g);
  if (small_co(g)) {
    backward_dw_small_co(g, dy, x, dw, db);
    return;
  }
  if (!pw && big_weight(g)) {
    backward_dw_big(g, dy, x, dw, db);
    return;
  }
  const int64_t T = std::clamp<int64_t>(65536 / kk, 64, 4096), ntiles = (pix + T - 1) / T;
  const int64_t parts = conv::num_parts(ntiles);
  std::vector<float> partial(static_cast<size_t>(parts * (wsz + g.Co)));
  parallel_for(parts, 1, [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) {
      float* pw_ = partial.data() + q * (wsz + g.Co);
      float* pb = pw_ + wsz;
      std::fill(pb, pb + g.Co, 0.f);
      const int64_t ta = ntiles * q / parts, te = ntiles * (q + 1) / parts;
      float* col = pw ? nullptr : scratch(static_cast<size_t>(T * kk), 0);
      for (int64_t t = ta; t < te; ++t) {
        const int64_t p0 = t * T, p1 = std::min(pix, p0 + T);
        for (int64_t grp = 0; grp < g.G; ++grp) {
          const float* a = pw ? x + p0 * g.Ci : col;
          if (!pw) im2col(g, x, p0, p1, grp, col);
          sgemm(true, false, kk, g.cog, p1 - p0, 1.f, a, kk, dy + p0 * g.Co + grp * g.cog, g.Co, t == ta ? 0.f : 1.f,
                pw_ + grp * g.cog, g.Co);
        }
        for (int64_t p = p0; p < p1; ++p) {
          const float* s = dy + p * g.Co;
          for (int64_t c = 0; c < g.Co; ++c) pb[c] += s[c];
        }
      }
    }
  });
  parallel_for(wsz + g.Co, 4096, [&](int64_t e0, int64_t e1) {
    for (int64_t e = e0; e < e1; ++e) {
      float s = 0.f;
      for (int64_t q = 0; q < parts; ++q) s += partial[q * (wsz + g.Co) + e];
      if (e < wsz) {
        dw[e] = s;
      } else {
        db[e - wsz] = s;
      }
    }
  });
}

}  // namespace

void infer_conv2d(InferCtx& c) {
  const Geom g = check_conv(c, 0, 1);
  if (c.in.size() > 2) {
    c.need_f32(2);
    if (c.in[2].shape != Shape{g.Co})
      op_fail("E_SHAPE", "conv2d: bias must have shape [" + std::to_string(g.Co) + "], got " +
                             shape_str(c.in[2].shape));
  }
  c.add_out({g.N, g.Ho, g.Wo, g.Co});
}

void cpu_conv2d(KernelCtx& k) {
  const Geom g = geom_of(k.in[0].shape, k.in[1].shape, k);
  const float* b = k.in.size() > 2 ? k.in[2].f() : nullptr;
  if (is_depthwise(g)) {
    conv::depthwise_forward(g, k.in[0].f(), k.in[1].f(), b, k.out[0].f());
  } else {
    forward_dense(g, k.in[0].f(), k.in[1].f(), b, k.out[0].f());
  }
}

void infer_conv2d_backward(InferCtx& c) {
  const Geom g = check_conv(c, 1, 2);
  c.need_f32(0);
  const Shape want{g.N, g.Ho, g.Wo, g.Co};
  if (c.in[0].shape != want)
    op_fail("E_SHAPE", "conv2d_backward: dy must have shape " + shape_str(want) + ", got " +
                           shape_str(c.in[0].shape) + shapes_of(c.in[1].shape, c.in[2].shape));
  c.add_out(c.in[1].shape);
  c.add_out(c.in[2].shape);
  c.add_out({g.Co});
}

void cpu_conv2d_backward(KernelCtx& k) {
  const Geom g = geom_of(k.in[1].shape, k.in[2].shape, k);
  const float *dy = k.in[0].f(), *x = k.in[1].f(), *w = k.in[2].f();
  float *dx = k.out[0].f(), *dw = k.out[1].f(), *db = k.out[2].f();
  if (is_depthwise(g)) {
    conv::depthwise_backward(g, dy, x, w, dx, dw, db);
    return;
  }
  backward_dx(g, dy, w, dx);
  backward_dw_db(g, dy, x, dw, db);
}

// The 1x1 stride-1 convolution over `pix` rows (conv2d.h): the same calls as conv2d's, so the same sums.
namespace conv {
namespace {
Geom pointwise_geom(int64_t pix, int64_t Ci, int64_t Co) { return {pix, 1, 1, Ci, 1, 1, Co, 1, 0, 1, 1, 1, Ci, Co}; }
}  // namespace

void pointwise_forward(int64_t pix, int64_t Ci, int64_t Co, const float* x, const float* w, const float* b,
                       float* y) {
  forward_dense(pointwise_geom(pix, Ci, Co), x, w, b, y);
}

void pointwise_backward(int64_t pix, int64_t Ci, int64_t Co, const float* dy, const float* x, const float* w,
                        float* dx, float* dw, float* db) {
  const Geom g = pointwise_geom(pix, Ci, Co);
  backward_dx(g, dy, w, dx);
  backward_dw_db(g, dy, x, dw, db);
}
}  // namespace conv

}  // namespace irc
