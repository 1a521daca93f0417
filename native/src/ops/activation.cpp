// Activations and their gradients (PyTorch semantics).
//   leaky_relu           x, attrs [slope] -> x > 0 ? x : slope*x
//   leaky_relu_backward  (dy, x), attrs [slope] -> dy * (x > 0 ? 1 : slope)
//   prelu                (x[...,C], a[C] | a[1]) -> x > 0 ? x : a*x
//   prelu_backward       (dy, x, a) -> dx = x > 0 ? dy : a*dy,  da[c] = sum over rows of (x > 0 ? 0 : x*dy)
//   gelu                 0.5 x (1 + erf(x / sqrt 2))  (exact)
//   gelu_backward        dy * (Phi(x) + x phi(x))
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "../cpu/gelu_math.h"
#include "../cpu/simd.h"
#include "activation.h"
#include "op_api.h"

#pragma GCC diagnostic ignored "-Wpsabi"  // vf8/vf16 helpers are always inlined into their ISA variants

namespace irc {
namespace {

constexpr int64_t kGrain = 1 << 15;

void need_same(InferCtx& c, const char* op, size_t i, size_t j, const char* ni, const char* nj) {
  if (c.in[i].shape != c.in[j].shape)
    op_fail("E_SHAPE", std::string(op) + ": " + ni + " must have the shape of " + nj + " " + shape_str(c.in[j].shape) +
                           ", got " + shape_str(c.in[i].shape));
}

void need_all_f32(InferCtx& c) {
  for (size_t i = 0; i < c.in.size(); ++i) c.need_f32(i);
}

void need_prelu_a(InferCtx& c, const char* op, size_t xi, size_t ai) {
  c.need_min_rank(xi, 1);
  const Shape& xs = c.in[xi].shape;
  const Shape& as = c.in[ai].shape;
  int64_t C = xs.back();
  if (!(as.size() == 1 && (as[0] == 1 || as[0] == C)))
    op_fail("E_SHAPE", std::string(op) + ": weight a must have shape [" + std::to_string(C) + "] (channels of x " +
                           shape_str(xs) + ") or [1], got " + shape_str(as));
}

using namespace irc::vec;
constexpr int64_t kGeluGrain = 1 << 14;

template <class V>
IRC_INL V loadv(const float* p) {
  V v;
  __builtin_memcpy(&v, p, sizeof(V));
  return v;
}
template <class V>
IRC_INL void storev(float* p, V v) {
  __builtin_memcpy(p, &v, sizeof(V));
}

// Whole vectors, then the tail through a zero-padded vector (same lane math, so the same results).
template <class V>
IRC_INL void gelu_span(const float* x, float* y, int64_t n) {
  constexpr int64_t L = sizeof(V) / 4;
  int64_t i = 0;
  for (; i + L <= n; i += L) storev(y + i, gelu_v(loadv<V>(x + i)));
  if (i < n) {
    float bx[L] = {}, by[L];
    for (int64_t j = i; j < n; ++j) bx[j - i] = x[j];
    storev(by, gelu_v(loadv<V>(bx)));
    for (int64_t j = i; j < n; ++j) y[j] = by[j - i];
  }
}
template <class V>
IRC_INL void gelu_grad_span(const float* dy, const float* x, float* dx, int64_t n) {
  constexpr int64_t L = sizeof(V) / 4;
  int64_t i = 0;
  for (; i + L <= n; i += L) storev(dx + i, gelu_grad_v(loadv<V>(dy + i), loadv<V>(x + i)));
  if (i < n) {
    float bd[L] = {}, bx[L] = {}, bo[L];
    for (int64_t j = i; j < n; ++j) bd[j - i] = dy[j], bx[j - i] = x[j];
    storev(bo, gelu_grad_v(loadv<V>(bd), loadv<V>(bx)));
    for (int64_t j = i; j < n; ++j) dx[j] = bo[j - i];
  }
}

#define IRC_GELU_VARIANT(NAME, VT, ATTR)                                                                        \
  ATTR void gelu_fwd_##NAME(const float* x, float* y, int64_t n) { gelu_span<VT>(x, y, n); }                  \
  ATTR void gelu_bwd_##NAME(const float* dy, const float* x, float* dx, int64_t n) {                          \
    gelu_grad_span<VT>(dy, x, dx, n);                                                                          \
  }

IRC_GELU_VARIANT(base, vf4, )
#if defined(__x86_64__) && defined(__GNUC__)
IRC_GELU_VARIANT(avx2, vf8, __attribute__((target("avx2,fma"))))
IRC_GELU_VARIANT(avx512, vf16, __attribute__((target("avx512f,fma"))))
#endif

struct GeluFns {
  void (*fwd)(const float*, float*, int64_t);
  void (*bwd)(const float*, const float*, float*, int64_t);
};

// Run-time ISA choice (IRCONSTYLE_GEMM_ISA=avx2|scalar forces a lower one, for tests).
const GeluFns& gelu_fns() {
  static const GeluFns f = [] {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    const char* env = std::getenv("IRCONSTYLE_GEMM_ISA");
    const std::string force = env ? env : "";
    if (force == "scalar") return GeluFns{&gelu_fwd_base, &gelu_bwd_base};
    if (force != "avx2" && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma"))
      return GeluFns{&gelu_fwd_avx512, &gelu_bwd_avx512};
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return GeluFns{&gelu_fwd_avx2, &gelu_bwd_avx2};
#endif
    return GeluFns{&gelu_fwd_base, &gelu_bwd_base};
  }();
  return f;
}

}  // namespace

// ---- leaky_relu -------------------------------------------------------------------------------------------
void infer_leaky_relu(InferCtx& c) {
  c.need_f32(0);
  c.need_attrs(1);
  c.add_out(c.in[0].shape);
}

void cpu_leaky_relu(KernelCtx& c) {
  const float s = static_cast<float>(c.af(0));
  const float* x = c.in[0].f();
  float* y = c.out[0].f();
  parallel_for(c.in[0].n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] = x[i] > 0.f ? x[i] : x[i] * s;
  });
}

void infer_leaky_relu_backward(InferCtx& c) {
  need_all_f32(c);
  c.need_attrs(1);
  need_same(c, "leaky_relu_backward", 0, 1, "dy", "x");
  c.add_out(c.in[1].shape);
}

void cpu_leaky_relu_backward(KernelCtx& c) {
  const float s = static_cast<float>(c.af(0));
  const float *dy = c.in[0].f(), *x = c.in[1].f();
  float* dx = c.out[0].f();
  parallel_for(c.in[0].n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) dx[i] = x[i] > 0.f ? dy[i] : dy[i] * s;
  });
}

// ---- prelu ------------------------------------------------------------------------------------------------
void infer_prelu(InferCtx& c) {
  need_all_f32(c);
  need_prelu_a(c, "prelu", 0, 1);
  c.add_out(c.in[0].shape);
}

void cpu_prelu(KernelCtx& c) {
  const TArg &X = c.in[0], &A = c.in[1];
  const int64_t C = X.shape.back();
  if (X.n == 0) return;
  const float *x = X.f(), *a = A.f();
  float* y = c.out[0].f();
  if (A.n == 1 || C == 1) {
    const float av = a[0];
    parallel_for(X.n, kGrain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) y[i] = x[i] > 0.f ? x[i] : av * x[i];
    });
    return;
  }
  const int64_t rows = X.n / C;
  parallel_for(rows, std::max<int64_t>(1, kGrain / C), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float* xr = x + r * C;
      float* yr = y + r * C;
      for (int64_t j = 0; j < C; ++j) yr[j] = xr[j] > 0.f ? xr[j] : a[j] * xr[j];
    }
  });
}

void infer_prelu_backward(InferCtx& c) {
  need_all_f32(c);
  need_same(c, "prelu_backward", 0, 1, "dy", "x");
  need_prelu_a(c, "prelu_backward", 1, 2);
  c.add_out(c.in[1].shape);
  c.add_out(c.in[2].shape);
}

void cpu_prelu_backward(KernelCtx& c) {
  const TArg &DY = c.in[0], &X = c.in[1], &A = c.in[2];
  const int64_t C = X.shape.back();
  const float *dy = DY.f(), *x = X.f(), *a = A.f();
  float *dx = c.out[0].f(), *da = c.out[1].f();
  const bool shared = A.n == 1;
  const int64_t rows = C ? X.n / C : 0;
  if (rows == 0 || C == 0) {
    for (int64_t j = 0; j < A.n; ++j) da[j] = 0.f;
    return;
  }
  // Fixed row blocks with double partial sums per channel, combined in block order (deterministic).
  const int64_t G = std::min<int64_t>({std::max<int64_t>(1, X.n / 65536), 32, rows});
  std::vector<double> part(static_cast<size_t>(G * C), 0.0);
  parallel_for(G, 1, [&](int64_t gb, int64_t ge) {
    for (int64_t g = gb; g < ge; ++g) {
      double* p = part.data() + g * C;
      for (int64_t r = rows * g / G; r < rows * (g + 1) / G; ++r) {
        const float *xr = x + r * C, *dr = dy + r * C;
        float* o = dx + r * C;
        for (int64_t j = 0; j < C; ++j) {
          const float aj = shared ? a[0] : a[j];
          const bool pos = xr[j] > 0.f;
          o[j] = pos ? dr[j] : aj * dr[j];
          p[j] += pos ? 0.0 : static_cast<double>(xr[j]) * dr[j];
        }
      }
    }
  });
  std::vector<double> tot(C, 0.0);
  for (int64_t g = 0; g < G; ++g)
    for (int64_t j = 0; j < C; ++j) tot[j] += part[g * C + j];
  if (shared) {
    double s = 0;
    for (int64_t j = 0; j < C; ++j) s += tot[j];
    da[0] = static_cast<float>(s);
  } else {
    for (int64_t j = 0; j < C; ++j) da[j] = static_cast<float>(tot[j]);
  }
}

// ---- gelu (exact; the math in cpu/gelu_math.h) -------------------------------------------------------------
void infer_gelu(InferCtx& c) {
  c.need_f32(0);
  c.add_out(c.in[0].shape);
}

void gelu_span_cpu(const float* x, float* y, int64_t n) { gelu_fns().fwd(x, y, n); }
void gelu_backward_span_cpu(const float* dy, const float* x, float* dx, int64_t n) { gelu_fns().bwd(dy, x, dx, n); }

void gelu_cpu(const float* x, float* y, int64_t n) {
  const GeluFns& f = gelu_fns();
  parallel_for(n, kGeluGrain, [&](int64_t b, int64_t e) { f.fwd(x + b, y + b, e - b); });
}

void gelu_backward_cpu(const float* dy, const float* x, float* dx, int64_t n) {
  const GeluFns& f = gelu_fns();
  parallel_for(n, kGeluGrain, [&](int64_t b, int64_t e) { f.bwd(dy + b, x + b, dx + b, e - b); });
}

void cpu_gelu(KernelCtx& c) { gelu_cpu(c.in[0].f(), c.out[0].f(), c.in[0].n); }

void infer_gelu_backward(InferCtx& c) {
  need_all_f32(c);
  need_same(c, "gelu_backward", 0, 1, "dy", "x");
  c.add_out(c.in[1].shape);
}

void cpu_gelu_backward(KernelCtx& c) { gelu_backward_cpu(c.in[0].f(), c.in[1].f(), c.out[0].f(), c.in[0].n); }

}  // namespace irc
