// NAFNet building blocks (NHWC).
//   simple_gate               x[...,2C] -> y[...,C] = x[..., :C] * x[..., C:]
//   simple_gate_backward      (dy, x) -> dx = [dy * x2, dy * x1]
//   global_avg_pool           x[N,H,W,C] -> y[N,1,1,C] = mean over H, W
//   global_avg_pool_backward  (dy[N,1,1,C], x, acc?) -> dx[n,h,w,c] = dy[n,c] / (H W) (+ acc[n,h,w,c], added in
//                             the same pass)   (x only supplies the shape)
//   channel_scale             (x[N,H,W,C], s[N,1,1,C]) -> y = x * s   (simplified channel attention)
//   channel_scale_backward    (dy, x, s) -> dx = dy * s, ds[n,c] = sum_hw dy * x
// Pixel reductions use fixed blocks of pixels with double partials, combined in block order (deterministic).
#include <algorithm>
#include <vector>

#include "../cpu/simd.h"
#include "op_api.h"

namespace irc {
namespace {

constexpr int64_t kGrain = 1 << 15;

IRC_CLONES
void gate_rows(const float* __restrict x, float* __restrict y, int64_t C, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* a = x + r * 2 * C;
    const float* b = a + C;
    float* o = y + r * C;
    for (int64_t j = 0; j < C; ++j) o[j] = a[j] * b[j];
  }
}

IRC_CLONES
void gate_back_rows(const float* __restrict dy, const float* __restrict x, float* __restrict dx, int64_t C,
                    int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* a = x + r * 2 * C;
    const float* b = a + C;
    const float* d = dy + r * C;
    float* oa = dx + r * 2 * C;
    float* ob = oa + C;
    for (int64_t j = 0; j < C; ++j) {
      oa[j] = d[j] * b[j];
      ob[j] = d[j] * a[j];
    }
  }
}

// acc[c] += sum over pixels p in [p0, p1) of x[p, c] (* w[p, c] when w is given)
IRC_CLONES
void pix_sum(const float* __restrict x, const float* __restrict w, double* __restrict acc, int64_t C, int64_t p0,
             int64_t p1) {
  for (int64_t p = p0; p < p1; ++p) {
    const float* xr = x + p * C;
    if (w) {
      const float* wr = w + p * C;
      for (int64_t j = 0; j < C; ++j) acc[j] += static_cast<double>(xr[j]) * wr[j];
    } else {
      for (int64_t j = 0; j < C; ++j) acc[j] += xr[j];
    }
  }
}

IRC_CLONES
void scale_rows(const float* __restrict x, const float* __restrict s, float* __restrict y, int64_t C, int64_t p0,
                int64_t p1) {
  for (int64_t p = p0; p < p1; ++p) {
    const float* xr = x + p * C;
    float* yr = y + p * C;
    for (int64_t j = 0; j < C; ++j) yr[j] = xr[j] * s[j];
  }
}

// out[n, c] = scale * sum_hw x[n,hw,c] (* w[n,hw,c]); x, w are [N, P, C].
void reduce_pixels(const float* x, const float* w, float* out, int64_t N, int64_t P, int64_t C, double scale) {
  const int64_t G = std::max<int64_t>(1, std::min<int64_t>({P, 16, std::max<int64_t>(1, P * C / 32768)}));
  std::vector<double> part(static_cast<size_t>(N * G * C), 0.0);
  parallel_for(N * G, 1, [&](int64_t tb, int64_t te) {
    for (int64_t t = tb; t < te; ++t) {
      const int64_t n = t / G, g = t % G;
      const float* xn = x + n * P * C;
      const float* wn = w ? w + n * P * C : nullptr;
      pix_sum(xn, wn, part.data() + t * C, C, P * g / G, P * (g + 1) / G);
    }
  });
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = 0; j < C; ++j) {
      double s = 0;
      for (int64_t g = 0; g < G; ++g) s += part[(n * G + g) * C + j];
      out[n * C + j] = static_cast<float>(s * scale);
    }
}

void need_nhwc(InferCtx& c, size_t i, const char* name) {
  c.need_f32(i);
  if (c.in[i].shape.size() != 4)
    op_fail("E_SHAPE", std::string(c.op) + ": " + name + " must have shape [N, H, W, C], got " + shape_str(c.in[i].shape));
}

void need_pooled(InferCtx& c, size_t i, const char* name, size_t xi) {
  c.need_f32(i);
  const Shape& xs = c.in[xi].shape;
  Shape want{xs[0], 1, 1, xs[3]};
  if (c.in[i].shape != want)
    op_fail("E_SHAPE", std::string(c.op) + ": " + name + " must have shape " + shape_str(want) + " (from x " +
                           shape_str(xs) + "), got " + shape_str(c.in[i].shape));
}

}  // namespace

// ---- simple_gate ------------------------------------------------------------------------------------------
void infer_simple_gate(InferCtx& c) {
  c.op = "simple_gate";
  c.need_f32(0);
  c.need_min_rank(0, 1);
  Shape s = c.in[0].shape;
  if (s.back() % 2 != 0)
    op_fail("E_SHAPE", "simple_gate: last dim of x must be even (2C), got x " + shape_str(s));
  s.back() /= 2;
  c.add_out(s);
}

void cpu_simple_gate(KernelCtx& c) {
  const int64_t C = c.out[0].shape.back();
  if (C == 0) return;
  const int64_t rows = c.out[0].n / C;
  const float* x = c.in[0].f();
  float* y = c.out[0].f();
  parallel_for(rows, std::max<int64_t>(1, kGrain / C), [&](int64_t b, int64_t e) { gate_rows(x, y, C, b, e); });
}

void infer_simple_gate_backward(InferCtx& c) {
  c.op = "simple_gate_backward";
  c.need_f32(0);
  c.need_f32(1);
  c.need_min_rank(1, 1);
  Shape s = c.in[1].shape;
  if (s.back() % 2 != 0)
    op_fail("E_SHAPE", "simple_gate_backward: last dim of x must be even (2C), got x " + shape_str(s));
  s.back() /= 2;
  if (c.in[0].shape != s)
    op_fail("E_SHAPE", "simple_gate_backward: dy must have shape " + shape_str(s) + " (x " + shape_str(c.in[1].shape) +
                           " with half the channels), got " + shape_str(c.in[0].shape));
  c.add_out(c.in[1].shape);
}

void cpu_simple_gate_backward(KernelCtx& c) {
  const int64_t C = c.in[0].shape.back();
  if (C == 0) return;
  const int64_t rows = c.in[0].n / C;
  const float *dy = c.in[0].f(), *x = c.in[1].f();
  float* dx = c.out[0].f();
  parallel_for(rows, std::max<int64_t>(1, kGrain / C), [&](int64_t b, int64_t e) { gate_back_rows(dy, x, dx, C, b, e); });
}

// ---- global_avg_pool --------------------------------------------------------------------------------------
void infer_global_avg_pool(InferCtx& c) {
  c.op = "global_avg_pool";
  need_nhwc(c, 0, "x");
  const Shape& s = c.in[0].shape;
  if (s[1] * s[2] == 0) op_fail("E_SHAPE", "global_avg_pool: x must have at least one pixel, got " + shape_str(s));
  c.add_out({s[0], 1, 1, s[3]});
}

void cpu_global_avg_pool(KernelCtx& c) {
  const Shape& s = c.in[0].shape;
  const int64_t P = s[1] * s[2];
  reduce_pixels(c.in[0].f(), nullptr, c.out[0].f(), s[0], P, s[3], 1.0 / static_cast<double>(P));
}

void infer_global_avg_pool_backward(InferCtx& c) {
  c.op = "global_avg_pool_backward";
  need_nhwc(c, 1, "x");
  need_pooled(c, 0, "dy", 1);
  c.need_acc(2, 1);
  c.add_out(c.in[1].shape);
}

void cpu_global_avg_pool_backward(KernelCtx& c) {
  const Shape& s = c.in[1].shape;
  const int64_t N = s[0], P = s[1] * s[2], C = s[3];
  if (P == 0 || C == 0) return;
  const float* dy = c.in[0].f();
  const float* acc = c.in.size() > 2 ? c.in[2].f() : nullptr;
  float* dx = c.out[0].f();
  const float inv = static_cast<float>(1.0 / static_cast<double>(P));
  parallel_for(N * P, std::max<int64_t>(1, kGrain / C), [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      const float* d = dy + (p / P) * C;
      float* o = dx + p * C;
      if (acc) {
        const float* a = acc + p * C;
        for (int64_t j = 0; j < C; ++j) o[j] = d[j] * inv + a[j];
      } else {
        for (int64_t j = 0; j < C; ++j) o[j] = d[j] * inv;
      }
    }
  });
}

// ---- channel_scale ----------------------------------------------------------------------------------------
void infer_channel_scale(InferCtx& c) {
  c.op = "channel_scale";
  need_nhwc(c, 0, "x");
  need_pooled(c, 1, "s", 0);
  c.add_out(c.in[0].shape);
}

void cpu_channel_scale(KernelCtx& c) {
  const Shape& sh = c.in[0].shape;
  const int64_t P = sh[1] * sh[2], C = sh[3];
  if (C == 0) return;
  const float *x = c.in[0].f(), *s = c.in[1].f();
  float* y = c.out[0].f();
  parallel_for(sh[0] * P, std::max<int64_t>(1, kGrain / C), [&](int64_t b, int64_t e) {
    // split the range at sample boundaries so each piece uses one row of s
    while (b < e) {
      const int64_t n = b / P, stop = std::min(e, (n + 1) * P);
      scale_rows(x, s + n * C, y, C, b, stop);
      b = stop;
    }
  });
}

void infer_channel_scale_backward(InferCtx& c) {
  c.op = "channel_scale_backward";
  need_nhwc(c, 1, "x");
  need_pooled(c, 2, "s", 1);
  c.need_f32(0);
  if (c.in[0].shape != c.in[1].shape)
    op_fail("E_SHAPE", "channel_scale_backward: dy must have the shape of x " + shape_str(c.in[1].shape) + ", got " +
                           shape_str(c.in[0].shape));
  c.add_out(c.in[1].shape);
  c.add_out(c.in[2].shape);
}

void cpu_channel_scale_backward(KernelCtx& c) {
  const Shape& sh = c.in[1].shape;
  const int64_t N = sh[0], P = sh[1] * sh[2], C = sh[3];
  const float *dy = c.in[0].f(), *x = c.in[1].f(), *s = c.in[2].f();
  float *dx = c.out[0].f(), *ds = c.out[1].f();
  if (C == 0) return;
  parallel_for(N * P, std::max<int64_t>(1, kGrain / C), [&](int64_t b, int64_t e) {
    while (b < e) {
      const int64_t n = b / P, stop = std::min(e, (n + 1) * P);
      scale_rows(dy, s + n * C, dx, C, b, stop);
      b = stop;
    }
  });
  reduce_pixels(dy, x, ds, N, P, C, 1.0);
}

}  // namespace irc
