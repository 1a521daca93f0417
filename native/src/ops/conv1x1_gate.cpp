// Pointwise convolutions fused with their neighbours (ops.def), NHWC / any [..., Ci] rows, on the CPU:
//   conv1x1_gate           (x[..., Ci], w[1,1,Ci,2C], b?[2C]) -> y[..., C] = z[..., :C] * z[..., C:], z = x w + b
//   conv1x1_gate_backward  (dy, x, w, b?) -> dx, dw, db[2C]   (z recomputed, not stored)
//   ln_conv1x1_gate (+ backward): the same of h = layer_norm2d(x) (the backward gives dh; layer_norm2d_backward
//                          follows it in the autograd rule)
//   ln_conv1x1 (+ backward): a plain 1x1 conv of h = layer_norm2d(x)
// NAFBlock's conv4 + SimpleGate (with norm2), and conv1 (with norm1): the 2C-channel conv output z and the normalised
// h are neither written by the CUDA forwards nor kept for the backward. The CPU runs layer_norm2d's and conv2d's own
// code (layer_norm_forward / layer_norm_apply, conv::pointwise_*), so its results are those of the separate ops: the
// forward over row chunks, the backward with dz = (dy z2, dy z1) and conv2d's backward on it.
#include <algorithm>
#include <string>
#include <vector>

#include "conv2d.h"
#include "layer_norm2d.h"
#include "linear.h"
#include "ln_args.h"
#include "op_api.h"
#include "pw_simt.h"
#include "switches.h"

namespace irc {
namespace {

struct GateGeom {
  int64_t rows, Ci, C;  // rows = the product of x's dims but the last; w is [1, 1, Ci, 2C]
};

GateGeom gate_geom(const Shape& x, const Shape& w) {
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < x.size(); ++i) rows *= x[i];
  return {rows, w[2], w[3] / 2};
}

// Checks x (input xi), w (xi + 1) and the optional b (xi + 2); returns the geometry.
GateGeom check_gate(InferCtx& c, size_t xi) {
  const std::string op = c.op;
  c.need_f32(xi);
  c.need_f32(xi + 1);
  c.need_min_rank(xi, 1);
  const Shape &x = c.in[xi].shape, &w = c.in[xi + 1].shape;
  if (w.size() != 4 || w[0] != 1 || w[1] != 1 || w[2] != x.back() || w[3] % 2 != 0 || w[3] == 0)
    op_fail("E_SHAPE", op + ": w must have shape [1, 1, " + std::to_string(x.back()) +
                           ", 2C] (a pointwise conv over x " + shape_str(x) +
                           " to an even, non-zero channel count), got " + shape_str(w));
  if (c.in.size() > xi + 2) {
    c.need_f32(xi + 2);
    if (c.in[xi + 2].shape != Shape{w[3]})
      op_fail("E_SHAPE", op + ": b must have shape [" + std::to_string(w[3]) + "], got " +
                             shape_str(c.in[xi + 2].shape));
  }
  return gate_geom(x, w);
}

// IRCONSTYLE_EMULATE=pw_simt: dh = dy w^T (a Linear's dy w) again by the SIMT kernel's code, over the CPU's, as the
// CUDA path with IRCONSTYLE_PW_SIMT=1 forms it (where the kernel takes the shape), and with db dy's column sums.
void simt_dh(const float* dy, int64_t rows, int64_t Ci, int64_t Co, const float* w, bool lin, float* dh,
             float* db = nullptr) {
  pwsimt::Args p = pw_simt_dh_args(dy, rows, Ci, Co, w, lin);
  p.y = dh;
  std::vector<float> unused;
  pw_simt_emulate_sums(pwsimt::kPlain, p, db, unused);
}

// IRCONSTYLE_EMULATE=pw_simt with the LayerNorm before the 1x1: dh and the LayerNorm's backward by the SIMT kernel's
// kLnBwd code (f.dx, f.dlw, f.dlb; with db dy's column sums), as the CUDA path with IRCONSTYLE_PW_SIMT=1; false where
// it does not run.
bool simt_dh_ln(const float* dy, int64_t rows, int64_t Ci, int64_t Co, const float* w, bool lin, const float* x,
                const LnArgs& ln, const LnFoldOut& f, float* db = nullptr) {
  if (env_is("IRCONSTYLE_LN_FOLD", "0")) return false;  // the LayerNorm's backward kept apart, as on CUDA
  pwsimt::Args p = pw_simt_dh_ln_args(dy, rows, Ci, Co, w, lin, x, ln, f.acc, f.dx);
  std::vector<float> dbp;
  const int64_t blocks = pw_simt_emulate_sums(pwsimt::kLnBwd, p, db, dbp);
  if (!blocks) return false;
  for (int64_t c = 0; c < Ci; ++c) {
    float sw = 0.f, sb = 0.f;
    for (int64_t q = 0; q < blocks; ++q) {
      sw += dbp[static_cast<size_t>(q * Ci + c)];
      sb += dbp[static_cast<size_t>((blocks + q) * Ci + c)];
    }
    f.dlw[c] = sw;
    f.dlb[c] = sb;
  }
  return true;
}

// The forward of both ops: y = gate(h w + b) with h = x, or h = LN(x) with ln (its statistics written to ln's
// mean_out / rstd_out), over row chunks of z (and h) in the thread's scratch.
void gate_forward(const GateGeom& g, const float* x, const LnArgs* ln, double eps, const float* w,
                  const float* b, float* y) {
  if (g.rows == 0) return;
  pwsimt::Args p = pw_simt_args(x, g.rows, g.Ci, w, 2 * g.C, false, ln, b);
  p.y = y;
  if (pw_simt_emulate(pwsimt::kGate, p)) return;  // IRCONSTYLE_EMULATE=pw_simt: the SIMT kernel's path
  const int64_t C2 = 2 * g.C, R = std::max<int64_t>(64, (int64_t(1) << 20) / C2);  // ~4 MiB of z per chunk
  float* z = scratch(static_cast<size_t>(std::min(R, g.rows) * C2), 0);  // kept by the thread: no page faults per call
  float* h = ln ? scratch(static_cast<size_t>(std::min(R, g.rows) * g.Ci), 1) : nullptr;
  for (int64_t r0 = 0; r0 < g.rows; r0 += R) {
    const int64_t n = std::min(R, g.rows - r0);
    const float* in = x + r0 * g.Ci;
    if (ln) {  // layer_norm2d's own rows: the same h as the separate op
      layer_norm_forward(in, ln->w, ln->b, h, ln->mean_out + r0, ln->rstd_out + r0, n, g.Ci, eps);
      in = h;
    }
    conv::pointwise_forward(n, g.Ci, C2, in, w, b, z);
    float* yc = y + r0 * g.C;
    parallel_for(n, std::max<int64_t>(1, 16384 / C2), [&](int64_t q0, int64_t q1) {
      for (int64_t q = q0; q < q1; ++q) {
        const float* zr = z + q * C2;
        for (int64_t c = 0; c < g.C; ++c) yc[q * g.C + c] = zr[c] * zr[g.C + c];
      }
    });
  }
}

// The backward of both ops: dx (dh with ln: the gradient of h = LN(x), from ln's given statistics), dw, db. With
// fold (and ln), where the SIMT kernel's code runs (IRCONSTYLE_EMULATE=pw_simt) and finishes the LayerNorm's backward,
// that too (true: fold's outputs written, dx untouched); false: dh in dx.
bool gate_backward(const GateGeom& g, const float* dy, const float* x, const LnArgs* ln, const float* w,
                   const float* b, float* dx, float* dw, float* db, const LnFoldOut* fold = nullptr) {
  const int64_t C2 = 2 * g.C;
  if (g.rows == 0) {
    std::fill(dw, dw + g.Ci * C2, 0.f);
    std::fill(db, db + C2, 0.f);
    return false;
  }
  float* dz = scratch(static_cast<size_t>(g.rows * C2), 0);
  if (emulation_requested("pw_simt")) {  // the SIMT kernel's dz, h and per-block column sums, then the 1x1's dx, dw
    pwsimt::Args p = pw_simt_args(x, g.rows, g.Ci, w, C2, false, ln, b);
    std::vector<float> h(ln ? static_cast<size_t>(g.rows * g.Ci) : 0);
    std::vector<float> dbp(static_cast<size_t>(pw_simt_emulated_blocks * C2));
    p.r = dy;
    p.y = dz;
    p.h_out = ln ? h.data() : nullptr;
    p.dbp = dbp.data();
    if (const int64_t blocks = pw_simt_emulate(pwsimt::kGateBwd, p)) {
      for (int64_t c = 0; c < C2; ++c) {
        float t = 0.f;
        for (int64_t q = 0; q < blocks; ++q) t += dbp[q * C2 + c];
        db[c] = t;
      }
      std::vector<float> unused(static_cast<size_t>(C2));
      conv::pointwise_backward(g.rows, g.Ci, C2, dz, ln ? h.data() : x, w, dx, dw, unused.data());
      if (ln && fold && simt_dh_ln(dz, g.rows, g.Ci, C2, w, false, x, *ln, *fold)) return true;
      simt_dh(dz, g.rows, g.Ci, C2, w, false, dx);
      return false;
    }
  }
  const float* in = x;
  if (ln) {  // h again from the given statistics, by layer_norm2d's own expression
    float* h = scratch(static_cast<size_t>(g.rows * g.Ci), 1);
    layer_norm_apply(x, ln->w, ln->b, ln->mean_in, ln->rstd_in, h, g.rows, g.Ci);
    in = h;
  }
  // z, then dz = (dy z2, dy z1) in place, then conv2d's backward of the 1x1 conv on dz
  conv::pointwise_forward(g.rows, g.Ci, C2, in, w, b, dz);
  parallel_for(g.rows, std::max<int64_t>(1, 16384 / C2), [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) {
      float* zr = dz + q * C2;
      const float* d = dy + q * g.C;
      for (int64_t c = 0; c < g.C; ++c) {
        const float z1 = zr[c], z2 = zr[g.C + c];
        zr[c] = d[c] * z2;
        zr[g.C + c] = d[c] * z1;
      }
    }
  });
  conv::pointwise_backward(g.rows, g.Ci, C2, dz, in, w, dx, dw, db);
  return false;
}

}  // namespace

void infer_conv1x1_gate(InferCtx& c) {
  c.op = "conv1x1_gate";
  const GateGeom g = check_gate(c, 0);
  Shape y = c.in[0].shape;
  y.back() = g.C;
  c.add_out(y);
}

void cpu_conv1x1_gate(KernelCtx& k) {
  gate_forward(gate_geom(k.in[0].shape, k.in[1].shape), k.in[0].f(), nullptr, 0.0, k.in[1].f(),
               k.in.size() > 2 ? k.in[2].f() : nullptr, k.out[0].f());
}

void infer_conv1x1_gate_backward(InferCtx& c) {
  c.op = "conv1x1_gate_backward";
  const GateGeom g = check_gate(c, 1);
  c.need_f32(0);
  Shape want = c.in[1].shape;
  want.back() = g.C;
  c.need_shape(0, want, "dy");
  c.add_out(c.in[1].shape);
  c.add_out(c.in[2].shape);
  c.add_out({2 * g.C});
}

void cpu_conv1x1_gate_backward(KernelCtx& k) {
  gate_backward(gate_geom(k.in[1].shape, k.in[2].shape), k.in[0].f(), k.in[1].f(), nullptr, k.in[2].f(),
                k.in.size() > 3 ? k.in[3].f() : nullptr, k.out[0].f(), k.out[1].f(), k.out[2].f());
}

// ---- ln_conv1x1_gate and ln_conv1x1: the same with h = layer_norm2d(x, lw, lb) formed on the way in ------------
namespace {

struct LnGeom {
  int64_t rows, Ci, Co;  // Co: the conv's output channels (2C for the gate)
  bool lin;              // w is a Linear's [Co, Ci] (ln_conv1x1 only): FP32 as PyTorch's matmul
};

// Checks x (xi), lw, lb (xi + 1, xi + 2), w (wi) and the optional b (bi) of both ops and both directions (the forward:
// eps, attr 0; the gate: an even channel count). The backward (dy at 0, mean and rstd at 5 and 6) also checks those,
// dy with yC channels: C for the gate, Co otherwise.
LnGeom check_ln(InferCtx& c, size_t xi, size_t wi, size_t bi, bool gate, bool backward) {
  const std::string op = c.op;
  c.need_f32(xi);
  c.need_min_rank(xi, 1);
  const Shape& x = c.in[xi].shape;
  const int64_t Ci = x.back();
  if (Ci == 0) op_fail("E_SHAPE", op + ": x must have at least one channel (the LayerNorm's), got " + shape_str(x));
  for (size_t i : {xi + 1, xi + 2}) {
    c.need_f32(i);
    if (c.in[i].shape != Shape{Ci})
      op_fail("E_SHAPE", op + ": the LayerNorm's " + (i == xi + 1 ? "weight" : "bias") + " must have shape [" +
                             std::to_string(Ci) + "] (x's channels), got " + shape_str(c.in[i].shape));
  }
  if (!backward) {  // the backward takes the statistics instead
    const double eps = c.af(0);
    if (!(eps >= 0)) op_fail("E_ATTR", op + ": eps must be >= 0, got " + std::to_string(eps));
  }
  c.need_f32(wi);
  const Shape& w = c.in[wi].shape;
  const bool lin = !gate && w.size() == 2 && w[1] == Ci && w[0] > 0;
  if (!lin && (w.size() != 4 || w[0] != 1 || w[1] != 1 || w[2] != Ci || w[3] == 0 || (gate && w[3] % 2 != 0)))
    op_fail("E_SHAPE", op + ": w must have shape [1, 1, " + std::to_string(Ci) + (gate ? ", 2C]" : ", Co]") +
                           " (a pointwise conv over x " + shape_str(x) +
                           (gate ? " to an even, non-zero channel count" : ", or a Linear's [Co, " + std::to_string(Ci) + "]") +
                           "), got " + shape_str(w));
  const int64_t Co = lin ? w[0] : w[3];
  if (bi < c.in.size()) {
    c.need_f32(bi);
    if (c.in[bi].shape != Shape{Co})
      op_fail("E_SHAPE", op + ": b must have shape [" + std::to_string(Co) + "], got " + shape_str(c.in[bi].shape));
  }
  const LnGeom g{numel(x) / Ci, Ci, Co, lin};
  if (backward) {
    c.need_f32(0);
    Shape want = x;
    want.back() = gate ? g.Co / 2 : g.Co;
    c.need_shape(0, want, "dy");
    for (size_t i : {size_t(5), size_t(6)}) {
      c.need_f32(i);
      if (c.in[i].shape != Shape{g.rows})
        op_fail("E_SHAPE", op + ": " + (i == 5 ? "mean" : "rstd") + " must have shape [" + std::to_string(g.rows) +
                               "] (one per row of x), got " + shape_str(c.in[i].shape));
    }
  }
  return g;
}

// The forward's outputs (y, mean, rstd) and the backward's (dx, dw, db, dlw, dlb).
void add_ln_outs(InferCtx& c, const LnGeom& g, size_t xi, bool gate, bool backward) {
  if (backward) {
    c.add_out(c.in[xi].shape);
    c.add_out(g.lin ? Shape{g.Co, g.Ci} : Shape{1, 1, g.Ci, g.Co});
    c.add_out({g.Co});
    c.add_out({g.Ci});
    c.add_out({g.Ci});
    return;
  }
  Shape y = c.in[xi].shape;
  y.back() = gate ? g.Co / 2 : g.Co;
  c.add_out(y);
  c.add_out({g.rows});
  c.add_out({g.rows});
}

// The backwards' checks: (dy, x, lw, lb, w, mean, rstd, b? (the gate's), acc? (attrs [1])).
LnGeom check_ln_backward(InferCtx& c, bool gate) {
  const bool acc = !c.attrs.empty() && c.ai(0) != 0;
  const size_t n = c.in.size(), nb = n - 7 - (acc ? 1 : 0);
  if (n < 7 + (acc ? 1u : 0u) || nb > (gate ? 1u : 0u))
    op_fail("E_ARITY", std::string(c.op) + ": expected (dy, x, lw, lb, w, mean, rstd" + (gate ? ", b?" : "") +
                           (acc ? ", acc)" : ")") + ", got " + std::to_string(n) + " inputs");
  const LnGeom g = check_ln(c, 1, 4, nb ? 7 : n, gate, true);
  if (acc) c.need_acc(n - 1, 1);
  return g;
}

// The LayerNorm backward ending both backwards: dx (+ acc), dlw, dlb (outputs 0, 3, 4) from dh, the gradient of h.
void ln_input_grads(KernelCtx& k, const float* dh, int64_t rows, int64_t Ci) {
  layer_norm_backward(dh, k.in[1].f(), k.in[2].f(), k.in[5].f(), k.in[6].f(), ln_bwd_acc(k), k.out[0].f(), k.out[3].f(),
                      k.out[4].f(), rows, Ci);
}

// The LayerNorm of inputs wi, bi; the forward's statistics out (with eps), or the backward's in (inputs 5, 6).
LnArgs ln_of(const KernelCtx& k, size_t wi, bool backward) {
  LnArgs ln;
  ln.w = k.in[wi].f();
  ln.b = k.in[wi + 1].f();
  if (backward) {
    ln.mean_in = k.in[5].f();
    ln.rstd_in = k.in[6].f();
  } else {
    ln.mean_out = k.out[1].f();
    ln.rstd_out = k.out[2].f();
    ln.eps = static_cast<float>(k.af(0));
  }
  return ln;
}

}  // namespace

void infer_ln_conv1x1_gate(InferCtx& c) {
  c.op = "ln_conv1x1_gate";
  add_ln_outs(c, check_ln(c, 0, 3, 4, true, false), 0, true, false);
}

void cpu_ln_conv1x1_gate(KernelCtx& k) {
  const LnArgs ln = ln_of(k, 1, false);
  gate_forward(gate_geom(k.in[0].shape, k.in[3].shape), k.in[0].f(), &ln, k.af(0), k.in[3].f(),
               k.in.size() > 4 ? k.in[4].f() : nullptr, k.out[0].f());
}

void infer_ln_conv1x1_gate_backward(InferCtx& c) {
  c.op = "ln_conv1x1_gate_backward";
  add_ln_outs(c, check_ln_backward(c, true), 1, true, true);
}

void cpu_ln_conv1x1_gate_backward(KernelCtx& k) {
  const LnArgs ln = ln_of(k, 2, true);
  const GateGeom g = gate_geom(k.in[1].shape, k.in[4].shape);
  const float* b = ln_bwd_gate_bias(k);
  std::vector<float> dh(static_cast<size_t>(g.rows * g.Ci));
  const LnFoldOut fold = ln_bwd_fold(k);
  if (!gate_backward(g, k.in[0].f(), k.in[1].f(), &ln, k.in[4].f(), b, dh.data(), k.out[1].f(), k.out[2].f(), &fold))
    ln_input_grads(k, dh.data(), g.rows, g.Ci);
}

void infer_ln_conv1x1(InferCtx& c) {
  c.op = "ln_conv1x1";
  add_ln_outs(c, check_ln(c, 0, 3, 4, false, false), 0, false, false);
}

void cpu_ln_conv1x1(KernelCtx& k) {
  const bool lin = k.in[3].shape.size() == 2;  // a Linear's weight [Co, Ci]
  const int64_t rows = k.out[1].n, Ci = k.in[0].shape.back(), Co = lin ? k.in[3].shape[0] : k.in[3].shape[3];
  const float *x = k.in[0].f(), *w = k.in[3].f(), *b = k.in.size() > 4 ? k.in[4].f() : nullptr;
  float* y = k.out[0].f();
  if (rows == 0) return;
  const LnArgs ln = ln_of(k, 1, false);
  pwsimt::Args p = pw_simt_args(x, rows, Ci, w, Co, lin, &ln, b);
  p.y = y;
  if (pw_simt_emulate(pwsimt::kPlain, p)) return;  // IRCONSTYLE_EMULATE=pw_simt: the SIMT kernel's path
  // layer_norm2d's rows and the linear op's GEMM or conv2d's 1x1 path over row chunks: the separate ops' results
  const int64_t R = std::max<int64_t>(64, (int64_t(1) << 20) / Ci);
  float* h = scratch(static_cast<size_t>(std::min(R, rows) * Ci), 1);
  for (int64_t r0 = 0; r0 < rows; r0 += R) {
    const int64_t n = std::min(R, rows - r0);
    layer_norm_forward(x + r0 * Ci, ln.w, ln.b, h, ln.mean_out + r0, ln.rstd_out + r0, n, Ci, k.af(0));
    if (lin) linear_forward_cpu(h, w, b, y + r0 * Co, n, Ci, Co);
    else conv::pointwise_forward(n, Ci, Co, h, w, b, y + r0 * Co);
  }
}

void infer_ln_conv1x1_backward(InferCtx& c) {
  c.op = "ln_conv1x1_backward";
  add_ln_outs(c, check_ln_backward(c, false), 1, false, true);
}

void cpu_ln_conv1x1_backward(KernelCtx& k) {
  const bool lin = k.in[4].shape.size() == 2;  // a Linear's weight [Co, Ci]
  const int64_t Ci = k.in[1].shape.back(), Co = lin ? k.in[4].shape[0] : k.in[4].shape[3], rows = k.in[5].n;
  const float *dy = k.in[0].f(), *x = k.in[1].f(), *w = k.in[4].f();
  float *dw = k.out[1].f(), *db = k.out[2].f();
  std::vector<float> dh(static_cast<size_t>(rows * Ci));
  if (rows == 0) {
    std::fill(dw, dw + Ci * Co, 0.f);
    std::fill(db, db + Co, 0.f);
  } else if (lin) {
    const LnArgs ln = ln_of(k, 2, true);
    float* h = scratch(static_cast<size_t>(rows * Ci), 1);  // h from the given statistics, then the linear op's backward
    layer_norm_apply(x, ln.w, ln.b, ln.mean_in, ln.rstd_in, h, rows, Ci);
    linear_backward_cpu(dy, h, w, dh.data(), dw, db, rows, Ci, Co);
    if (simt_dh_ln(dy, rows, Ci, Co, w, true, x, ln, ln_bwd_fold(k), db)) return;
    simt_dh(dy, rows, Ci, Co, w, true, dh.data(), db);
  } else {
    const LnArgs ln = ln_of(k, 2, true);
    float* h = scratch(static_cast<size_t>(rows * Ci), 1);  // h from the given statistics, then conv2d's 1x1 backward
    layer_norm_apply(x, ln.w, ln.b, ln.mean_in, ln.rstd_in, h, rows, Ci);
    conv::pointwise_backward(rows, Ci, Co, dy, h, w, dh.data(), dw, db);
    if (simt_dh_ln(dy, rows, Ci, Co, w, false, x, ln, ln_bwd_fold(k), db)) return;
    simt_dh(dy, rows, Ci, Co, w, false, dh.data(), db);
  }
  ln_input_grads(k, dh.data(), rows, Ci);
}

}  // namespace irc
