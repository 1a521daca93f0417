// linear / linear_backward (ops.def): y = x . w^T + b over the rows of x[..., I] with w[O, I], via sgemm.
#include <algorithm>
#include <cstring>

#include "../cpu/gemm.h"
#include "linear.h"
#include "op_api.h"

namespace irc {
namespace {

// Validates x (input xi) against w (input wi); returns I.
int64_t check_linear(const InferCtx& c, size_t xi, size_t wi) {
  c.need_f32(xi);
  c.need_f32(wi);
  c.need_min_rank(xi, 1);
  c.need_rank(wi, 2);
  const Shape &x = c.in[xi].shape, &w = c.in[wi].shape;
  if (x.back() != w[1])
    op_fail("E_SHAPE", std::string(c.op) + ": weight [out, in] expects in = " + std::to_string(x.back()) +
                           " (last dim of x) at dim 1, got " + std::to_string(w[1]) + " (x shape " + shape_str(x) +
                           ", weight shape " + shape_str(w) + ")");
  return x.back();
}

// db[o] = sum over rows of dy[r, o], rows in order; parallel over columns (no cross-thread reduction).
void column_sums(const float* dy, int64_t rows, int64_t O, float* db) {
  parallel_for(O, 64, [&](int64_t o0, int64_t o1) {
    std::fill(db + o0, db + o1, 0.f);
    for (int64_t r = 0; r < rows; ++r) {
      const float* s = dy + r * O;
      for (int64_t o = o0; o < o1; ++o) db[o] += s[o];
    }
  });
}

}  // namespace

void infer_linear(InferCtx& c) {
  check_linear(c, 0, 1);
  const int64_t O = c.in[1].shape[0];
  if (c.in.size() > 2) {
    c.need_f32(2);
    if (c.in[2].shape != Shape{O})
      op_fail("E_SHAPE", "linear: bias must have shape [" + std::to_string(O) + "], got " + shape_str(c.in[2].shape));
  }
  Shape y = c.in[0].shape;
  y.back() = O;
  c.add_out(y);
}

void cpu_linear(KernelCtx& k) {
  const int64_t I = k.in[1].shape[1], O = k.in[1].shape[0];
  const int64_t rows = I ? k.in[0].n / I : numel(k.out[0].shape) / std::max<int64_t>(O, 1);
  float* y = k.out[0].f();
  const float* b = k.in.size() > 2 ? k.in[2].f() : nullptr;
  linear_forward_cpu(k.in[0].f(), k.in[1].f(), b, y, rows, I, O);
}

void linear_forward_cpu(const float* x, const float* w, const float* b, float* y, int64_t rows, int64_t I, int64_t O) {
  if (b) {
    parallel_for(rows, 256, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) std::memcpy(y + r * O, b, sizeof(float) * O);
    });
  }
  sgemm(false, true, rows, O, I, 1.f, x, I, w, I, b ? 1.f : 0.f, y, O);
}

void infer_linear_backward(InferCtx& c) {
  check_linear(c, 1, 2);
  c.need_f32(0);
  Shape want = c.in[1].shape;
  want.back() = c.in[2].shape[0];
  c.need_shape(0, want, "dy");
  c.add_out(c.in[1].shape);
  c.add_out(c.in[2].shape);
  c.add_out({c.in[2].shape[0]});
}

void cpu_linear_backward(KernelCtx& k) {
  const int64_t I = k.in[2].shape[1], O = k.in[2].shape[0];
  const int64_t rows = numel(k.in[1].shape) / std::max<int64_t>(I, 1);
  const float *dy = k.in[0].f(), *x = k.in[1].f(), *w = k.in[2].f();
  linear_backward_cpu(dy, x, w, k.out[0].f(), k.out[1].f(), k.out[2].f(), rows, I, O);
}

void linear_backward_cpu(const float* dy, const float* x, const float* w, float* dx, float* dw, float* db, int64_t rows,
                         int64_t I, int64_t O) {
  sgemm(false, false, rows, I, O, 1.f, dy, O, w, I, 0.f, dx, I);  // dx = dy . w
  sgemm(true, false, O, I, rows, 1.f, dy, O, x, I, 0.f, dw, I);   // dw = dy^T . x
  column_sums(dy, rows, O, db);
}

}  // namespace irc
