// A pointwise convolution added to a residual in the same pass (ops.def), NHWC / any [..., C] rows, on the CPU:
//   conv1x1_add           (x[N, ..., Ci], w[1,1,Ci,Co], r[..., Co], b?[Co], s?[Co], a?[N, Ci])
//                         -> y = r + ((x a) w + b) s, a a per-sample input scale; or w[Co, Ci] (a Linear's weight,
//                         without s and a): y = r + x w^T + b
//   conv1x1_add_backward  (dy, x, w, b?, s?, a?) -> dx, dw, then db if b, ds if s, da if a   (dr = dy)
// NAFBlock's SCA channel scale + conv3 + β skip (a = the SCA weights, s = β) and conv5 + γ skip, Restormer's
// project_out + residual (no b, s or a), MAXIM's out_project Linear + residual (w [Co, Ci]). s needs b, a needs b
// and s (inputs are positional).
// Forward: y = r + b s (one pass), then per sample group (all rows when there is no a) the GEMM x W_g accumulates
// into it, with W_g = diag(a_g) w diag(s).
// Backward, with G_g = x_g^T dy_g per group and S = Σ_rows dy (a plain conv's dw and db):
//   dw = Σ_g diag(a_g) G_g diag(s)   db = S s   ds_c = Σ_g Σ_k a_gk w_kc G_gkc + b_c S_c
//   da_gk = Σ_c w_kc s_c G_gkc       dx_g = dy_g W_g^T
// so neither the scaled input x a nor the conv output is stored. Sums over rows and groups in double in a fixed
// order (deterministic for any thread count).
#include <algorithm>
#include <string>
#include <vector>

#include "../cpu/gemm.h"
#include "conv1x1_add.h"
#include "op_api.h"
#include "pw_simt.h"

namespace irc {
namespace {

// Checks x, w and the optional b (at bi), s (bi + 1) and a (bi + 2) of either op; returns the geometry.
PwGeom check_pw(InferCtx& c, size_t xi, size_t wi, size_t bi) {
  const std::string op = c.op;
  c.need_f32(xi);
  c.need_f32(wi);
  c.need_min_rank(xi, 1);
  const Shape &x = c.in[xi].shape, &w = c.in[wi].shape;
  const bool conv = w.size() == 4 && w[0] == 1 && w[1] == 1 && w[2] == x.back();
  const bool lin = w.size() == 2 && w[1] == x.back();
  if (!conv && !lin)
    op_fail("E_SHAPE", op + ": w must have shape [1, 1, " + std::to_string(x.back()) + ", Co] (a pointwise conv over x " +
                           shape_str(x) + ") or [Co, " + std::to_string(x.back()) + "] (a Linear), got " + shape_str(w));
  if (lin && bi + 1 < c.in.size())
    op_fail("E_ARG", op + ": s and a need the conv weight layout [1, 1, Ci, Co], got a Linear weight " + shape_str(w));
  const int64_t Co = lin ? w[0] : w[3];
  if (bi < c.in.size()) {
    c.need_f32(bi);
    if (c.in[bi].shape != Shape{Co})
      op_fail("E_SHAPE", op + ": b must have shape [" + std::to_string(Co) + "], got " + shape_str(c.in[bi].shape));
  }
  if (bi + 1 < c.in.size()) {
    c.need_f32(bi + 1);
    if (numel(c.in[bi + 1].shape) != Co)
      op_fail("E_SHAPE", op + ": s must have " + std::to_string(Co) + " elements (one per output channel), got " +
                             shape_str(c.in[bi + 1].shape));
  }
  if (bi + 2 < c.in.size()) {
    c.need_f32(bi + 2);
    c.need_min_rank(xi, 2);
    if (numel(c.in[bi + 2].shape) != x[0] * x.back())
      op_fail("E_SHAPE", op + ": a must have N x Ci = " + std::to_string(x[0]) + " x " + std::to_string(x.back()) +
                             " elements (one input scale per sample and channel, e.g. [N, 1, 1, Ci]), got " +
                             shape_str(c.in[bi + 2].shape));
  }
  return pw_geom(x, w);
}

// out[c] = Σ_rows a[r, c] in double over fixed row parts added in order.
void column_sums(const float* a, int64_t rows, int64_t C, double* out) {
  const int64_t parts = std::clamp<int64_t>(rows / 1024, 1, 32);
  std::vector<double> part(static_cast<size_t>(parts * C), 0.0);
  parallel_for(parts, 1, [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) {
      double* s = part.data() + q * C;
      for (int64_t r = rows * q / parts; r < rows * (q + 1) / parts; ++r)
        for (int64_t c = 0; c < C; ++c) s[c] += a[r * C + c];
    }
  });
  std::fill(out, out + C, 0.0);
  for (int64_t q = 0; q < parts; ++q)
    for (int64_t c = 0; c < C; ++c) out[c] += part[q * C + c];
}

// W_g = diag(a_g) w diag(s) into buf (w itself without a and s).
const float* group_weight(const PwGeom& g, const float* w, const PwOpts& o, int64_t grp, std::vector<float>& buf) {
  if (!o.a && !o.s) return w;
  buf.resize(static_cast<size_t>(g.Ci * g.Co));
  const float* ag = o.a ? o.a + grp * g.Ci : nullptr;
  for (int64_t k = 0; k < g.Ci; ++k)
    for (int64_t c = 0; c < g.Co; ++c) {
      float v = w[k * g.Co + c];
      if (ag) v *= ag[k];
      if (o.s) v *= o.s[c];
      buf[k * g.Co + c] = v;
    }
  return buf.data();
}

}  // namespace

void infer_conv1x1_add(InferCtx& c) {
  c.op = "conv1x1_add";
  const PwGeom g = check_pw(c, 0, 1, 3);
  c.need_f32(2);
  Shape want = c.in[0].shape;
  want.back() = g.Co;
  if (c.in[2].shape != want)
    op_fail("E_SHAPE", "conv1x1_add: r must have shape " + shape_str(want) + " (x with Co channels), got " +
                           shape_str(c.in[2].shape));
  c.add_out(want);
}

void cpu_conv1x1_add(KernelCtx& k) {
  const PwGeom g = pw_geom(k.in[0].shape, k.in[1].shape);
  const float *x = k.in[0].f(), *w = k.in[1].f(), *r = k.in[2].f();
  const PwOpts o = pw_opts(k, 3, k.in[0].shape);
  float* y = k.out[0].f();
  if (g.rows == 0 || g.Co == 0) return;
  {  // IRCONSTYLE_EMULATE=pw_simt: the SIMT kernel's path (input scale, 1x1, bias, output scale, residual)
    pwsimt::Args p = pw_simt_args(x, g.rows, g.Ci, w, g.Co, g.lin, nullptr, o.b);
    p.a = o.a;
    p.group_rows = o.a ? o.group_rows(g.rows) : 0;
    p.s = o.s;
    p.r = r;
    p.y = y;
    if (pw_simt_emulate(pwsimt::kAdd, p)) return;
  }
  std::vector<float> bs(static_cast<size_t>(g.Co), 0.f), wbuf;
  if (o.b)
    for (int64_t c = 0; c < g.Co; ++c) bs[c] = o.s ? o.b[c] * o.s[c] : o.b[c];
  parallel_for(g.rows, std::max<int64_t>(1, 16384 / g.Co), [&](int64_t r0, int64_t r1) {
    for (int64_t q = r0; q < r1; ++q)
      for (int64_t c = 0; c < g.Co; ++c) y[q * g.Co + c] = r[q * g.Co + c] + bs[c];
  });
  if (g.lin) {  // y += x w^T
    if (g.Ci > 0) sgemm(false, true, g.rows, g.Co, g.Ci, 1.f, x, g.Ci, w, g.Ci, 1.f, y, g.Co);
    return;
  }
  const int64_t rg = o.group_rows(g.rows);
  for (int64_t grp = 0; g.Ci > 0 && grp < o.groups; ++grp)
    sgemm(false, false, rg, g.Co, g.Ci, 1.f, x + grp * rg * g.Ci, g.Ci, group_weight(g, w, o, grp, wbuf), g.Co, 1.f,
          y + grp * rg * g.Co, g.Co);
}

void infer_conv1x1_add_backward(InferCtx& c) {
  c.op = "conv1x1_add_backward";
  const PwGeom g = check_pw(c, 1, 2, 3);
  c.need_f32(0);
  Shape want = c.in[1].shape;
  want.back() = g.Co;
  c.need_shape(0, want, "dy");
  c.add_out(c.in[1].shape);
  c.add_out(c.in[2].shape);
  if (c.in.size() > 3) c.add_out({g.Co});
  if (c.in.size() > 4) c.add_out(c.in[4].shape);
  if (c.in.size() > 5) c.add_out(c.in[5].shape);
}

void cpu_conv1x1_add_backward(KernelCtx& k) {
  const PwGeom g = pw_geom(k.in[1].shape, k.in[2].shape);
  const float *dy = k.in[0].f(), *x = k.in[1].f(), *w = k.in[2].f();
  const PwOpts o = pw_opts(k, 3, k.in[1].shape);
  const auto [dx, dw, db, ds, da] = pw_grads(k, o);
  const int64_t wsz = g.Ci * g.Co, rg = o.group_rows(g.rows);
  // IRCONSTYLE_EMULATE=pw_simt: dx by the SIMT kernel's code, as the CUDA path with IRCONSTYLE_PW_SIMT=1 (first),
  // with dy's column sums from the same pass into Sf
  float* const dx_out = dx;  // (a structured binding: not capturable in C++17)
  std::vector<float> Sf(static_cast<size_t>(g.Co)), unused;
  const bool sdx = [&] {
    pwsimt::Args p = pw_simt_dx_args(dy, g.rows, g.Ci, g.Co, w, g.lin, o.s, o.a, rg);
    p.y = dx_out;
    return g.rows > 0 && g.Ci > 0 && pw_simt_emulate_sums(pwsimt::kPlain, p, o.b ? Sf.data() : nullptr, unused) > 0;
  }();
  if (g.lin) {  // w [Co, Ci]: dw = dy^T x, db = Σ dy, dx = dy w
    if (wsz > 0) {
      if (g.rows > 0) {
        sgemm(true, false, g.Co, g.Ci, g.rows, 1.f, dy, g.Co, x, g.Ci, 0.f, dw, g.Ci);
      } else {
        std::fill(dw, dw + wsz, 0.f);
      }
    }
    if (o.b && sdx) std::copy(Sf.begin(), Sf.end(), db);  // the SIMT pass's sums, as on CUDA
    if (o.b && !sdx) {
      std::vector<double> S(static_cast<size_t>(g.Co), 0.0);
      column_sums(dy, g.rows, g.Co, S.data());
      for (int64_t c = 0; c < g.Co; ++c) db[c] = static_cast<float>(S[c]);
    }
    if (g.rows > 0 && g.Ci > 0 && !sdx) {
      if (g.Co > 0) {
        sgemm(false, false, g.rows, g.Ci, g.Co, 1.f, dy, g.Co, w, g.Ci, 0.f, dx, g.Ci);
      } else {
        std::fill(dx, dx + g.rows * g.Ci, 0.f);
      }
    }
    return;
  }
  // G_g = x_g^T dy_g (zeros without rows)
  std::vector<float> G(static_cast<size_t>(o.groups * wsz), 0.f);
  for (int64_t grp = 0; rg > 0 && wsz > 0 && grp < o.groups; ++grp)
    sgemm(true, false, g.Ci, g.Co, rg, 1.f, x + grp * rg * g.Ci, g.Ci, dy + grp * rg * g.Co, g.Co, 0.f,
          G.data() + grp * wsz, g.Co);
  std::vector<double> S(static_cast<size_t>(g.Co), 0.0);
  if (o.b && sdx) std::copy(Sf.begin(), Sf.end(), S.begin());  // the SIMT pass's sums, as on CUDA
  else if (o.b) column_sums(dy, g.rows, g.Co, S.data());
  const auto ak = [&](int64_t grp, int64_t q) { return o.a ? static_cast<double>(o.a[grp * g.Ci + q]) : 1.0; };
  for (int64_t c = 0; o.s && c < g.Co; ++c) {
    double t = static_cast<double>(o.b[c]) * S[c];
    for (int64_t grp = 0; grp < o.groups; ++grp)
      for (int64_t q = 0; q < g.Ci; ++q) t += ak(grp, q) * w[q * g.Co + c] * G[grp * wsz + q * g.Co + c];
    ds[c] = static_cast<float>(t);
  }
  for (int64_t grp = 0; da && grp < o.groups; ++grp)
    for (int64_t q = 0; q < g.Ci; ++q) {
      double t = 0.0;
      for (int64_t c = 0; c < g.Co; ++c)
        t += static_cast<double>(w[q * g.Co + c]) * o.s[c] * G[grp * wsz + q * g.Co + c];
      da[grp * g.Ci + q] = static_cast<float>(t);
    }
  for (int64_t e = 0; e < wsz; ++e) {
    const int64_t q = e / std::max<int64_t>(g.Co, 1), c = e - q * g.Co;
    double t = 0.0;
    for (int64_t grp = 0; grp < o.groups; ++grp) t += ak(grp, q) * G[grp * wsz + e];
    dw[e] = static_cast<float>(o.s ? t * o.s[c] : t);
  }
  for (int64_t c = 0; o.b && c < g.Co; ++c) db[c] = static_cast<float>(o.s ? S[c] * o.s[c] : S[c]);
  if (sdx) return;
  std::vector<float> wbuf;
  for (int64_t grp = 0; rg > 0 && g.Ci > 0 && grp < o.groups; ++grp) {
    float* dxg = dx + grp * rg * g.Ci;
    if (g.Co > 0) {
      sgemm(false, true, rg, g.Ci, g.Co, 1.f, dy + grp * rg * g.Co, g.Co, group_weight(g, w, o, grp, wbuf), g.Co, 0.f,
            dxg, g.Ci);
    } else {
      std::fill(dxg, dxg + rg * g.Ci, 0.f);
    }
  }
}

}  // namespace irc
