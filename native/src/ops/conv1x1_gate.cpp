// A pointwise convolution and a SimpleGate in one op (ops.def), NHWC / any [..., Ci] rows, on the CPU:
//   conv1x1_gate           (x[..., Ci], w[1,1,Ci,2C], b?[2C]) -> y[..., C] = z[..., :C] * z[..., C:], z = x w + b
//   conv1x1_gate_backward  (dy, x, w, b?) -> dx, dw, db[2C]   (z recomputed, not stored)
// NAFBlock's conv4 + SimpleGate: the 2C-channel conv output z is neither written by the forward nor kept for the
// backward (on CUDA the forward's tile of z lives in registers only). The CPU runs conv2d's own 1x1 path
// (conv::pointwise_*), so its results are those of conv2d + simple_gate: the forward over row chunks of z, the
// backward with dz = (dy z2, dy z1) and conv2d's backward on it.
#include <algorithm>
#include <string>

#include "conv2d.h"
#include "op_api.h"

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

}  // namespace

void infer_conv1x1_gate(InferCtx& c) {
  c.op = "conv1x1_gate";
  const GateGeom g = check_gate(c, 0);
  Shape y = c.in[0].shape;
  y.back() = g.C;
  c.add_out(y);
}

void cpu_conv1x1_gate(KernelCtx& k) {
  const GateGeom g = gate_geom(k.in[0].shape, k.in[1].shape);
  const float *x = k.in[0].f(), *w = k.in[1].f(), *b = k.in.size() > 2 ? k.in[2].f() : nullptr;
  float* y = k.out[0].f();
  if (g.rows == 0) return;
  const int64_t C2 = 2 * g.C, R = std::max<int64_t>(64, (int64_t(1) << 20) / C2);  // ~4 MiB of z per chunk
  float* z = scratch(static_cast<size_t>(std::min(R, g.rows) * C2), 0);  // kept by the thread: no page faults per call
  for (int64_t r0 = 0; r0 < g.rows; r0 += R) {
    const int64_t n = std::min(R, g.rows - r0);
    conv::pointwise_forward(n, g.Ci, C2, x + r0 * g.Ci, w, b, z);
    float* yc = y + r0 * g.C;
    parallel_for(n, std::max<int64_t>(1, 16384 / C2), [&](int64_t q0, int64_t q1) {
      for (int64_t q = q0; q < q1; ++q) {
        const float* zr = z + q * C2;
        for (int64_t c = 0; c < g.C; ++c) yc[q * g.C + c] = zr[c] * zr[g.C + c];
      }
    });
  }
}

void infer_conv1x1_gate_backward(InferCtx& c) {
  c.op = "conv1x1_gate_backward";
  const GateGeom g = check_gate(c, 1);
  c.need_f32(0);
  Shape want = c.in[1].shape;
  want.back() = g.C;
  if (c.in[0].shape != want)
    op_fail("E_SHAPE", "conv1x1_gate_backward: dy must have shape " + shape_str(want) + ", got " +
                           shape_str(c.in[0].shape));
  c.add_out(c.in[1].shape);
  c.add_out(c.in[2].shape);
  c.add_out({2 * g.C});
}

void cpu_conv1x1_gate_backward(KernelCtx& k) {
  const GateGeom g = gate_geom(k.in[1].shape, k.in[2].shape);
  const float *dy = k.in[0].f(), *x = k.in[1].f(), *w = k.in[2].f(), *b = k.in.size() > 3 ? k.in[3].f() : nullptr;
  float *dx = k.out[0].f(), *dw = k.out[1].f(), *db = k.out[2].f();
  const int64_t C2 = 2 * g.C;
  if (g.rows == 0) {
    std::fill(dw, dw + g.Ci * C2, 0.f);
    std::fill(db, db + C2, 0.f);
    return;
  }
  // z, then dz = (dy z2, dy z1) in place, then conv2d's backward of the 1x1 conv on dz
  float* dz = scratch(static_cast<size_t>(g.rows * C2), 0);
  conv::pointwise_forward(g.rows, g.Ci, C2, x, w, b, dz);
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
  conv::pointwise_backward(g.rows, g.Ci, C2, dz, x, w, dx, dw, db);
}

}  // namespace irc
