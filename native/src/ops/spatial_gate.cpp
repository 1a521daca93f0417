// spatial_gate / spatial_gate_backward (ops.def): MAXIM's block and grid gating units in one op. The CPU runs the
// official composition's own kernels in its order (gelu, split, layer_norm2d, permute, linear, permute, mul and
// their backwards), so its results equal the separate ops bit for bit; with IRCONSTYLE_EMULATE=spatial_gate it runs
// the CUDA kernels' tile programs (spatial_gate_tile.h) instead, phase by phase over a block's 256 threads.
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "activation.h"
#include "layer_norm2d.h"
#include "linear.h"
#include "op_api.h"
#include "spatial_gate_tile.h"

namespace irc {
namespace {

using sgate::Geo;

// Validates z [N, H, W, 2C] (input zi) and one mixing (grid, fh, fw) with the activation; returns its geometry.
Geo check_mixing(const InferCtx& c, size_t zi, int64_t grid, int64_t fh, int64_t fw, int64_t act, const char* which) {
  const std::string op = c.op;
  c.need_f32(zi);
  c.need_rank(zi, 4);
  const Shape& z = c.in[zi].shape;
  if (z[3] % 2 || z[3] == 0)
    op_fail("E_SHAPE", op + ": z must have an even, non-zero number of channels (two halves), got " + shape_str(z));
  if (grid != 0 && grid != 1) op_fail("E_ATTR", op + ": " + which + "grid must be 0 (mix inside patches) or 1 (mix patches), got " + std::to_string(grid));
  if (act != 0 && act != 1) op_fail("E_ATTR", op + ": act must be 0 (identity) or 1 (GELU), got " + std::to_string(act));
  if (fh < 1 || fw < 1 || z[1] % fh || z[2] % fw)
    op_fail("E_ATTR", op + ": the " + which + "patch " + std::to_string(fh) + "x" + std::to_string(fw) + " must tile the " +
                          std::to_string(z[1]) + "x" + std::to_string(z[2]) + " map of z " + shape_str(z));
  if (z[1] * z[2] * z[3] >= (int64_t{1} << 31) || z[0] > (int64_t{1} << 24))
    op_fail("E_SHAPE", op + ": z " + shape_str(z) + " is too large (an image of 2^31 values or more)");
  return sgate::make_geo(z[0], z[1], z[2], z[3] / 2, fh, fw, grid == 1, act == 1);
}

// w [P, P] (input wi) and, when bi is given, b [P] for geometry g.
void check_dense(const InferCtx& c, const Geo& g, size_t wi, const char* w, long bi, const char* b) {
  c.need_f32(wi);
  c.need_shape(wi, {g.P, g.P}, w);
  if (bi >= 0) {
    c.need_f32(static_cast<size_t>(bi));
    c.need_shape(static_cast<size_t>(bi), {g.P}, b);
  }
}

// spatial_gate's attrs [grid, fh, fw, act, eps(, keep)], z (input zi), lw (input lwi) and w (input wi).
Geo check_geo(const InferCtx& c, size_t zi, size_t lwi, size_t wi) {
  c.need_attrs(5);
  const Geo g = check_mixing(c, zi, c.ai(0), c.ai(1), c.ai(2), c.ai(3), "");
  if (!(c.af(4) >= 0)) op_fail("E_ATTR", std::string(c.op) + ": eps must be >= 0, got " + std::to_string(c.af(4)));
  if (c.attrs.size() > 5 && c.ai(5) != 0 && c.ai(5) != 1)
    op_fail("E_ATTR", std::string(c.op) + ": keep must be 0 (g formed again in the backward) or 1 (g an output), got " + std::to_string(c.ai(5)));
  c.need_f32(lwi);
  c.need_shape(lwi, {g.C}, "lw");
  check_dense(c, g, wi, g.grid ? "w (the grid's positions squared)" : "w (the patch's pixels squared)", -1, "");
  return g;
}

Geo geo_of(const KernelCtx& k, const Shape& z) {
  return sgate::make_geo(z[0], z[1], z[2], z[3] / 2, k.ai(1), k.ai(2), k.ai(0) == 1, k.ai(3) == 1);
}

// spatial_mix's attrs [grid1, fh1, fw1, grid2, fh2, fw2, act]: the geometry of half h.
Geo mix_geo(const KernelCtx& k, const Shape& z, int h) {
  return sgate::make_geo(z[0], z[1], z[2], z[3] / 2, k.ai(3 * h + 1), k.ai(3 * h + 2), k.ai(3 * h) == 1, k.ai(6) == 1);
}

// The host model's executor: every thread of the block in turn, phase by phase.
struct HostX {
  sgate::Regs r[sgate::kThreads];
  template <class F>
  void each(F&& f) {
    for (int t = 0; t < sgate::kThreads; ++t) f(t, r[t]);
  }
};

// Runs prog(x, sh, tile) over every tile, each with fresh shared memory full of NaNs (an unwritten read shows) and
// pixel slots pointing far outside any tensor (a missing pixel phase faults).
template <class Prog>
void for_tiles(const Geo& g, Prog&& prog) {
  parallel_for(g.tiles(), 16, [&](int64_t t0, int64_t t1) {
    auto sh = std::make_unique<sgate::Shared>();
    auto x = std::make_unique<HostX>();
    for (int64_t t = t0; t < t1; ++t) {
      std::memset(sh.get(), 0xff, sizeof(sgate::Shared));
      for (auto& p : sh->pix) p = int64_t{1} << 60;
      prog(*x, *sh, t);
    }
  });
}

// T[group, c, p] <-> rows[pixel(group, p), off + c] of a [rows, ld] map (the official permutes), parallel over
// groups; a group's P x C block (at most a few tens of KiB at MAXIM's sizes) stays in cache while it is transposed.
template <bool TO_T>
void mixing(const Geo& g, const float* src, float* dst, int64_t ld, int64_t off) {
  parallel_for(g.G, 4, [&](int64_t g0, int64_t g1) {
    std::vector<int64_t> px(static_cast<size_t>(g.P));
    for (int64_t gr = g0; gr < g1; ++gr) {
      for (int p = 0; p < g.P; ++p) px[p] = sgate::pixel(g, gr, p) * ld + off;
      for (int c = 0; c < g.C; ++c) {
        const int64_t t = (gr * g.C + c) * g.P;
        for (int p = 0; p < g.P; ++p) {
          if (TO_T) dst[t + p] = src[px[p] + c];
          else dst[px[p] + c] = src[t + p];
        }
      }
    }
  });
}
void to_mixing(const Geo& g, const float* rows, float* T, int64_t ld = -1, int64_t off = 0) {
  mixing<true>(g, rows, T, ld < 0 ? g.C : ld, off);
}
void from_mixing(const Geo& g, const float* T, float* rows, int64_t ld = -1, int64_t off = 0) {
  mixing<false>(g, T, rows, ld < 0 ? g.C : ld, off);
}

// An uninitialised float buffer (std::vector would write zeros over it first).
using Buf = std::unique_ptr<float[]>;
Buf buf(int64_t n) { return Buf(new float[static_cast<size_t>(n > 0 ? n : 1)]); }

// a = act(z) into buf (when act is the identity, a is z itself).
const float* activated(const Geo& g, const float* z, int64_t n, float* buf) {
  if (!g.act) return z;
  gelu_cpu(z, buf, n);
  return buf;
}

// The v half of a [rows, 2C] as contiguous rows (split's output).
void v_half(const float* a, int64_t rows, int64_t C, float* v) {
  parallel_for(rows, 256, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) std::memcpy(v + r * C, a + r * 2 * C + C, sizeof(float) * C);
  });
}

}  // namespace

void infer_spatial_gate(InferCtx& c) {
  c.op = "spatial_gate";
  const Geo g = check_geo(c, 0, 1, 3);
  c.need_f32(2);
  c.need_shape(2, {g.C}, "lb");
  c.need_f32(4);
  c.need_shape(4, {g.P}, "b");
  const Shape& z = c.in[0].shape;
  c.add_out({z[0], z[1], z[2], g.C});
  c.add_out({z[0] * z[1] * z[2]});
  c.add_out({z[0] * z[1] * z[2]});
  if (c.attrs.size() > 5 && c.ai(5) == 1) c.add_out({g.G, g.C, g.P});
}

void cpu_spatial_gate(KernelCtx& k) {
  const Geo g = geo_of(k, k.in[0].shape);
  const int64_t rows = k.in[0].n / (2 * g.C);
  if (rows == 0) return;
  const float *z = k.in[0].f(), *lw = k.in[1].f(), *lb = k.in[2].f(), *w = k.in[3].f(), *b = k.in[4].f();
  float *y = k.out[0].f(), *mean = k.out[1].f(), *rstd = k.out[2].f();
  const int64_t R = g.G * g.C;  // the linear's rows
  // the executor thread's scratch (the GEMMs use slots 2 and 3): slot 1 holds t and g in the mixing layout (R·P =
  // rows·C values each); slot 0 a (with GELU), v, then h, later g in pixel rows
  const int64_t U = rows * g.C;
  float* T = scratch(static_cast<size_t>(2 * U), 1);
  float* Tg = k.out.size() > 3 ? k.out[3].f() : T + U;  // kept (keep = 1) or scratch
  if (emulation_requested("spatial_gate")) {
    for_tiles(g, [&](HostX& x, sgate::Shared& sh, int64_t t) { sgate::norm_fwd_tile(x, sh, g, t, z, lw, lb, k.af(4), T, mean, rstd); });
    linear_forward_cpu(T, w, b, Tg, R, g.P, g.P);
    for_tiles(g, [&](HostX& x, sgate::Shared& sh, int64_t t) { sgate::gate_fwd_tile(x, sh, g, t, z, Tg, y); });
    return;
  }
  float* s0 = scratch(static_cast<size_t>((g.act ? 2 * U : 0) + 2 * U), 0);
  const float* a = activated(g, z, 2 * U, s0);
  float *v = s0 + (g.act ? 2 * U : 0), *h = v + U;
  v_half(a, rows, g.C, v);
  layer_norm_forward(v, lw, lb, h, mean, rstd, rows, g.C, k.af(4));
  to_mixing(g, h, T);
  linear_forward_cpu(T, w, b, Tg, R, g.P, g.P);
  from_mixing(g, Tg, h);  // g back in pixel rows
  parallel_for(rows, 256, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int c = 0; c < g.C; ++c) y[r * g.C + c] = a[r * 2 * g.C + c] * h[r * g.C + c];
  });
}

void infer_spatial_gate_backward(InferCtx& c) {
  c.op = "spatial_gate_backward";
  // inputs: dy 0, z 1, lw 2, lb 3, w 4, b 5, mean 6, rstd 7
  const Geo g = check_geo(c, 1, 2, 4);
  const Shape& z = c.in[1].shape;
  c.need_f32(0);
  c.need_shape(0, {z[0], z[1], z[2], g.C}, "dy");
  c.need_f32(3);
  c.need_shape(3, {g.C}, "lb");
  c.need_f32(5);
  c.need_shape(5, {g.P}, "b");
  if (c.in.size() > 8) {
    c.need_f32(8);
    c.need_shape(8, {g.G, g.C, g.P}, "g");
  }
  for (size_t i : {6, 7}) {
    c.need_f32(i);
    c.need_shape(i, {z[0] * z[1] * z[2]}, i == 6 ? "mean" : "rstd");
  }
  c.add_out(z);
  c.add_out({g.C});
  c.add_out({g.C});
  c.add_out({g.P, g.P});
  c.add_out({g.P});
}

void cpu_spatial_gate_backward(KernelCtx& k) {
  const Geo g = geo_of(k, k.in[1].shape);
  const float *dy = k.in[0].f(), *z = k.in[1].f(), *lw = k.in[2].f(), *lb = k.in[3].f(), *w = k.in[4].f(),
              *b = k.in[5].f(), *mean = k.in[6].f(), *rstd = k.in[7].f();
  const float* kept = k.in.size() > 8 ? k.in[8].f() : nullptr;  // the forward's g (keep = 1)
  float *dz = k.out[0].f(), *dlw = k.out[1].f(), *dlb = k.out[2].f(), *dw = k.out[3].f(), *db = k.out[4].f();
  const int64_t rows = k.in[1].n / (2 * g.C), R = g.G * g.C;
  if (rows == 0) {  // the linear's sums over no rows
    std::fill(dlw, dlw + g.C, 0.f);
    std::fill(dlb, dlb + g.C, 0.f);
    std::fill(dw, dw + g.P * g.P, 0.f);
    std::fill(db, db + g.P, 0.f);
    return;
  }
  if (emulation_requested("spatial_gate")) {
    Buf T = buf(R * g.P), dTg = buf(R * g.P), dT = buf(R * g.P);
    for_tiles(g, [&](HostX& x, sgate::Shared& sh, int64_t t) { sgate::norm_t_tile(x, sh, g, t, z, lw, lb, mean, rstd, T.get()); });
    if (!kept) linear_forward_cpu(T.get(), w, b, dT.get(), R, g.P, g.P);  // g again, in dT's room until the linear's backward
    const float* Tg = kept ? kept : dT.get();
    for_tiles(g, [&](HostX& x, sgate::Shared& sh, int64_t t) { sgate::gate_bwd_tile(x, sh, g, t, dy, z, Tg, dz, dTg.get()); });
    linear_backward_cpu(dTg.get(), T.get(), w, dT.get(), dw, db, R, g.P, g.P);
    Buf pw = buf(g.tiles() * g.C), pb = buf(g.tiles() * g.C);
    for_tiles(g, [&](HostX& x, sgate::Shared& sh, int64_t t) {
      sgate::norm_bwd_tile(x, sh, g, t, dT.get(), z, lw, mean, rstd, dz, pw.get(), pb.get());
    });
    for (int c = 0; c < g.C; ++c) {  // the partials in tile order (on CUDA: column_sums)
      double sw = 0, sb = 0;
      for (int64_t t = 0; t < g.tiles(); ++t) sw += pw[t * g.C + c], sb += pb[t * g.C + c];
      dlw[c] = static_cast<float>(sw);
      dlb[c] = static_cast<float>(sb);
    }
    return;
  }
  // mul's backward (du = dy g, dg = dy u), the permutes, linear's backward (t formed again from v as the forward's
  // LayerNorm formed it, from the saved statistics, and g from t as the forward's linear formed it), layer_norm2d's
  // backward, split's backward (concat) and gelu's backward, in that order. Scratch (the GEMMs use slots 2 and 3):
  // slot 0 holds a and its gradient (with GELU), then g / dg / dh in pixel rows and v; slot 1 dg, g then dh in T, t
  // in pixel rows, then dv, and t in T.
  const int64_t U = rows * g.C;
  float* s0 = scratch(static_cast<size_t>((g.act ? 4 * U : 0) + 2 * U), 0);
  float* s1 = scratch(static_cast<size_t>(4 * U), 1);
  const float* a = activated(g, z, 2 * U, s0);
  float* da = g.act ? s0 + 2 * U : dz;  // the gradient of a (dz itself without an activation)
  float *gr = s0 + (g.act ? 4 * U : 0), *v = gr + U;
  float *dTg = s1, *dT = s1 + U, *dv = s1 + 2 * U, *T = s1 + 3 * U;
  v_half(a, rows, g.C, v);
  layer_norm_apply(v, lw, lb, mean, rstd, dv, rows, g.C);  // t in pixel rows (dv's room until the LayerNorm's backward)
  to_mixing(g, dv, T);
  if (!kept) linear_forward_cpu(T, w, b, dT, R, g.P, g.P);  // g in dT's room until the linear's backward
  from_mixing(g, kept ? kept : dT, gr);
  parallel_for(rows, 256, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int c = 0; c < g.C; ++c) {
        const float d = dy[r * g.C + c];
        da[r * 2 * g.C + c] = d * gr[r * g.C + c];
        gr[r * g.C + c] = d * a[r * 2 * g.C + c];  // now dg
      }
  });
  to_mixing(g, gr, dTg);
  linear_backward_cpu(dTg, T, w, dT, dw, db, R, g.P, g.P);
  from_mixing(g, dT, gr);  // now dh
  layer_norm_backward(gr, v, lw, mean, rstd, nullptr, dv, dlw, dlb, rows, g.C);
  parallel_for(rows, 256, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) std::memcpy(da + r * 2 * g.C + g.C, dv + r * g.C, sizeof(float) * g.C);
  });
  if (g.act) gelu_backward_cpu(da, z, dz, 2 * U);
}

// ---- spatial_mix / spatial_mix_backward: the cross-gating's spatial gating weights ------------------------------
void infer_spatial_mix(InferCtx& c) {
  c.need_attrs(7);
  if (c.in.size() == 4) op_fail("E_ARITY", "spatial_mix: the biases come both or neither (z, w1, w2, b1, b2), got 4 inputs");
  const bool bias = c.in.size() == 5;
  const Geo g1 = check_mixing(c, 0, c.ai(0), c.ai(1), c.ai(2), c.ai(6), "first ");
  const Geo g2 = check_mixing(c, 0, c.ai(3), c.ai(4), c.ai(5), c.ai(6), "second ");
  check_dense(c, g1, 1, "w1 (the first mixing's positions squared)", bias ? 3 : -1, "b1");
  check_dense(c, g2, 2, "w2 (the second mixing's positions squared)", bias ? 4 : -1, "b2");
  c.add_out(c.in[0].shape);
}

void cpu_spatial_mix(KernelCtx& k) {
  const Shape& zs = k.in[0].shape;
  const int64_t rows = k.in[0].n / std::max<int64_t>(zs[3], 1), ld = zs[3];
  if (rows == 0) return;
  const float* z = k.in[0].f();
  float* y = k.out[0].f();
  const bool emulate = emulation_requested("spatial_gate");
  // the plain path: gelu_split's values (the gelu op's code), then per half the permute, linear and permute back
  const float* a = z;
  if (!emulate && k.ai(6)) {
    float* s0 = scratch(static_cast<size_t>(k.in[0].n), 0);
    gelu_cpu(z, s0, k.in[0].n);
    a = s0;
  }
  for (int h = 0; h < 2; ++h) {
    const Geo g = mix_geo(k, zs, h);
    const float *w = k.in[1 + h].f(), *b = k.in.size() == 5 ? k.in[3 + h].f() : nullptr;
    const int64_t off = h * g.C, n = g.G * g.C * g.P;
    float* T = scratch(static_cast<size_t>(2 * n), 1);  // a's half in the mixing layout, then its Dense
    float* Tg = T + n;
    if (emulate) {
      for_tiles(g, [&](HostX& x, sgate::Shared& sh, int64_t t) { sgate::to_t_tile(x, sh, g, t, z, ld, static_cast<int>(off), g.act, T); });
      linear_forward_cpu(T, w, b, Tg, g.G * g.C, g.P, g.P);
      for_tiles(g, [&](HostX& x, sgate::Shared& sh, int64_t t) { sgate::from_t_tile(x, sh, g, t, Tg, y, ld, static_cast<int>(off), nullptr, 0); });
    } else {
      to_mixing(g, a, T, ld, off);
      linear_forward_cpu(T, w, b, Tg, g.G * g.C, g.P, g.P);
      from_mixing(g, Tg, y, ld, off);
    }
  }
}

void infer_spatial_mix_backward(InferCtx& c) {
  // (dy, z, w1, w2)
  c.need_attrs(7);
  const Geo g1 = check_mixing(c, 1, c.ai(0), c.ai(1), c.ai(2), c.ai(6), "first ");
  const Geo g2 = check_mixing(c, 1, c.ai(3), c.ai(4), c.ai(5), c.ai(6), "second ");
  c.need_f32(0);
  c.need_shape(0, c.in[1].shape, "dy");
  check_dense(c, g1, 2, "w1 (the first mixing's positions squared)", -1, "");
  check_dense(c, g2, 3, "w2 (the second mixing's positions squared)", -1, "");
  c.add_out(c.in[1].shape);
  c.add_out({g1.P, g1.P});
  c.add_out({g1.P});
  c.add_out({g2.P, g2.P});
  c.add_out({g2.P});
}

void cpu_spatial_mix_backward(KernelCtx& k) {
  const Shape& zs = k.in[1].shape;
  const int64_t n = k.in[1].n, ld = zs[3], rows = n / std::max<int64_t>(ld, 1);
  const float *dy = k.in[0].f(), *z = k.in[1].f();
  float* dz = k.out[0].f();
  const bool emulate = emulation_requested("spatial_gate");
  // slot 0 (with the GELU, plain path): the gradient of a = act(z), then a itself (the forward's gelu over z, for
  // the Dense inputs t formed again); without it, dz and z themselves
  float* s0 = k.ai(6) && !emulate && rows ? scratch(static_cast<size_t>(2 * n), 0) : nullptr;
  float* da = s0 ? s0 : dz;
  const float* a = z;
  if (s0) {
    gelu_cpu(z, s0 + n, n);
    a = s0 + n;
  }
  for (int h = 0; h < 2; ++h) {
    const Geo g = mix_geo(k, zs, h);
    float *dw = k.out[1 + 2 * h].f(), *db = k.out[2 + 2 * h].f();
    if (rows == 0) {
      std::fill(dw, dw + g.P * g.P, 0.f);
      std::fill(db, db + g.P, 0.f);
      continue;
    }
    const int64_t R = g.G * g.C, off = h * g.C;
    float* s1 = scratch(static_cast<size_t>(3 * R * g.P), 1);
    float *dTg = s1, *dT = s1 + R * g.P, *T = s1 + 2 * R * g.P;
    const float* w = k.in[2 + h].f();
    if (emulate) {
      for_tiles(g, [&](HostX& x, sgate::Shared& sh, int64_t t) { sgate::to_t_tile(x, sh, g, t, z, ld, static_cast<int>(off), g.act, T); });
      for_tiles(g, [&](HostX& x, sgate::Shared& sh, int64_t t) { sgate::to_t_tile(x, sh, g, t, dy, ld, static_cast<int>(off), 0, dTg); });
      linear_backward_cpu(dTg, T, w, dT, dw, db, R, g.P, g.P);
      for_tiles(g, [&](HostX& x, sgate::Shared& sh, int64_t t) { sgate::from_t_tile(x, sh, g, t, dT, dz, ld, static_cast<int>(off), z, g.act); });
    } else {
      to_mixing(g, a, T, ld, off);
      to_mixing(g, dy, dTg, ld, off);
      linear_backward_cpu(dTg, T, w, dT, dw, db, R, g.P, g.P);
      from_mixing(g, dT, da, ld, off);
    }
  }
  if (s0) gelu_backward_cpu(da, z, dz, n);
}

}  // namespace irc
