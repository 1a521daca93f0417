// Elementwise arithmetic with numpy broadcasting, its reduction partner sum_to, and scale.
//   add/sub/mul  (a, b) f32 -> y of the broadcast shape
//   sum_to       x, attrs [...target] -> y[target]: sums x over the dims where target is 1 or absent
//   scale        x, attrs [alpha, beta] -> alpha*x + beta
// Broadcasting is normalised by dropping size-1 output dims and merging neighbouring dims that broadcast the same
// way, so the common cases (same shape, scalar [1], trailing channel [C], per-sample channel [N,1,1,C]) end up as
// an outer loop over rows and a contiguous inner loop the compiler vectorises.
#include <algorithm>
#include <vector>

#include "op_api.h"

namespace irc {
namespace {

constexpr int64_t kSeg = 16384;  // elements per parallel task segment

enum { kAdd = 0, kSub = 1, kMul = 2 };

const char* op_name(int op) { return op == kAdd ? "add" : op == kSub ? "sub" : "mul"; }

Shape broadcast_shape(const char* op, const Shape& a, const Shape& b) {
  size_t r = std::max(a.size(), b.size());
  Shape o(r);
  for (size_t i = 0; i < r; ++i) {
    int64_t da = i < r - a.size() ? 1 : a[i - (r - a.size())];
    int64_t db = i < r - b.size() ? 1 : b[i - (r - b.size())];
    if (da != db && da != 1 && db != 1)
      op_fail("E_SHAPE", std::string(op) + ": shapes " + shape_str(a) + " and " + shape_str(b) +
                             " cannot be broadcast together (dim " + std::to_string(i) + " of the result: " +
                             std::to_string(da) + " vs " + std::to_string(db) + ")");
    o[i] = da == 1 ? db : da;
  }
  return o;
}

template <int OP>
inline float apply(float a, float b) {
  return OP == kAdd ? a + b : OP == kSub ? a - b : a * b;
}

template <int OP>
void inner(float* __restrict y, const float* __restrict a, const float* __restrict b, int64_t n, int mode) {
  if (mode == 3) {
    for (int64_t i = 0; i < n; ++i) y[i] = apply<OP>(a[i], b[i]);
  } else if (mode == 1) {  // a contiguous, b broadcast
    const float bv = b[0];
    for (int64_t i = 0; i < n; ++i) y[i] = apply<OP>(a[i], bv);
  } else {  // a broadcast, b contiguous
    const float av = a[0];
    for (int64_t i = 0; i < n; ++i) y[i] = apply<OP>(av, b[i]);
  }
}

template <int OP>
void binary(KernelCtx& c) {
  const TArg &A = c.in[0], &B = c.in[1], &Y = c.out[0];
  if (Y.n == 0) return;
  const Shape& ys = Y.shape;
  const size_t r = ys.size();
  // Merged dims: size, and whether a / b vary along it.
  std::vector<int64_t> sz;
  std::vector<int> va, vb;
  for (size_t i = 0; i < r; ++i) {
    if (ys[i] == 1) continue;
    int64_t da = i < r - A.shape.size() ? 1 : A.shape[i - (r - A.shape.size())];
    int64_t db = i < r - B.shape.size() ? 1 : B.shape[i - (r - B.shape.size())];
    int fa = da != 1, fb = db != 1;
    if (!sz.empty() && va.back() == fa && vb.back() == fb) {
      sz.back() *= ys[i];
    } else {
      sz.push_back(ys[i]);
      va.push_back(fa);
      vb.push_back(fb);
    }
  }
  if (sz.empty()) {  // every dim is 1
    Y.f()[0] = apply<OP>(A.f()[0], B.f()[0]);
    return;
  }
  const int m = static_cast<int>(sz.size());
  std::vector<int64_t> sa(m), sb(m);
  int64_t pa = 1, pb = 1;
  for (int d = m - 1; d >= 0; --d) {
    sa[d] = va[d] ? pa : 0;
    sb[d] = vb[d] ? pb : 0;
    if (va[d]) pa *= sz[d];
    if (vb[d]) pb *= sz[d];
  }
  const int64_t L = sz[m - 1];
  const int mode = (va[m - 1] ? 1 : 0) | (vb[m - 1] ? 2 : 0);
  const int64_t segs = (L + kSeg - 1) / kSeg;
  const int64_t rows = Y.n / L;
  const float *pa0 = A.f(), *pb0 = B.f();
  float* py = Y.f();
  const int64_t grain = std::max<int64_t>(1, kSeg / std::min(L, kSeg));
  parallel_for(rows * segs, grain, [&](int64_t tb, int64_t te) {
    for (int64_t t = tb; t < te; ++t) {
      int64_t row = t / segs, seg = t % segs;
      int64_t rem = row, oa = 0, ob = 0;
      for (int d = m - 2; d >= 0; --d) {
        int64_t i = rem % sz[d];
        rem /= sz[d];
        oa += i * sa[d];
        ob += i * sb[d];
      }
      int64_t j0 = seg * kSeg, j1 = std::min(L, j0 + kSeg);
      const float* ap = pa0 + oa + (mode & 1 ? j0 : 0);
      const float* bp = pb0 + ob + (mode & 2 ? j0 : 0);
      inner<OP>(py + row * L + j0, ap, bp, j1 - j0, mode);
    }
  });
}

void infer_binary(InferCtx& c, int op) {
  for (size_t i = 0; i < 2; ++i)
    if (c.in[i].dtype != DType::f32)
      op_fail("E_DTYPE", std::string(op_name(op)) + ": input " + (i ? "b" : "a") + " must be float32, got " +
                             dtype_name(c.in[i].dtype));
  c.add_out(broadcast_shape(op_name(op), c.in[0].shape, c.in[1].shape));
}

}  // namespace

void infer_add(InferCtx& c) { infer_binary(c, kAdd); }
void infer_sub(InferCtx& c) { infer_binary(c, kSub); }
void infer_mul(InferCtx& c) { infer_binary(c, kMul); }
void cpu_add(KernelCtx& c) { binary<kAdd>(c); }
void cpu_sub(KernelCtx& c) { binary<kSub>(c); }
void cpu_mul(KernelCtx& c) { binary<kMul>(c); }

// ---- sum_to -----------------------------------------------------------------------------------------------
void infer_sum_to(InferCtx& c) {
  c.need_f32(0);
  const Shape& xs = c.in[0].shape;
  Shape t;
  for (size_t k = 0; k < c.attrs.size(); ++k) {
    int64_t d = c.ai(k);
    if (d < 0) op_fail("E_ATTR", "sum_to: target dims must be >= 0, got " + std::to_string(d));
    t.push_back(d);
  }
  bool ok = t.size() <= xs.size();
  for (size_t i = 0; ok && i < t.size(); ++i) {
    int64_t xd = xs[xs.size() - t.size() + i];
    if (t[i] != xd && t[i] != 1) ok = false;
  }
  if (!ok)
    op_fail("E_SHAPE", "sum_to: target shape " + shape_str(t) + " must broadcast to the shape of x " + shape_str(xs) +
                           " (each target dim equal to x's or 1, leading dims may be absent)");
  c.add_out(t);
}

void cpu_sum_to(KernelCtx& c) {
  const TArg &X = c.in[0], &Y = c.out[0];
  float* y = Y.f();
  const float* x = X.f();
  if (Y.n == 0) return;
  if (X.n == 0) {
    for (int64_t i = 0; i < Y.n; ++i) y[i] = 0.f;
    return;
  }
  if (Y.n == X.n) {
    parallel_for(X.n, 1 << 16, [&](int64_t b, int64_t e) { std::copy(x + b, x + e, y + b); });
    return;
  }
  const Shape& xs = X.shape;
  const Shape& ts = Y.shape;
  const size_t r = xs.size(), off = r - ts.size();
  std::vector<int64_t> sz;
  std::vector<int> kept;
  for (size_t i = 0; i < r; ++i) {
    if (xs[i] == 1) continue;
    int k = i >= off && ts[i - off] == xs[i];
    if (!sz.empty() && kept.back() == k) {
      sz.back() *= xs[i];
    } else {
      sz.push_back(xs[i]);
      kept.push_back(k);
    }
  }
  const int m = static_cast<int>(sz.size());
  std::vector<int64_t> ostr(m, 0);
  int64_t p = 1;
  for (int d = m - 1; d >= 0; --d)
    if (kept[d]) {
      ostr[d] = p;
      p *= sz[d];
    }
  const int64_t L = sz[m - 1], rows = X.n / L, on = Y.n;
  const bool lastKept = kept[m - 1];
  // Fixed number of row blocks (depends only on shapes), each with its own double accumulator; combined in order.
  int64_t G = std::min<int64_t>({std::max<int64_t>(1, X.n / 65536), 32, rows});
  G = std::max<int64_t>(1, std::min<int64_t>(G, (int64_t(1) << 23) / on));
  std::vector<double> acc(static_cast<size_t>(G * on), 0.0);
  parallel_for(G, 1, [&](int64_t gb, int64_t ge) {
    for (int64_t g = gb; g < ge; ++g) {
      double* a = acc.data() + g * on;
      int64_t r0 = rows * g / G, r1 = rows * (g + 1) / G;
      for (int64_t row = r0; row < r1; ++row) {
        int64_t rem = row, o = 0;
        for (int d = m - 2; d >= 0; --d) {
          o += (rem % sz[d]) * ostr[d];
          rem /= sz[d];
        }
        const float* xr = x + row * L;
        if (lastKept) {
          double* ar = a + o;
          for (int64_t j = 0; j < L; ++j) ar[j] += xr[j];
        } else {
          double s[4] = {0, 0, 0, 0};
          int64_t j = 0;
          for (; j + 4 <= L; j += 4)
            for (int k = 0; k < 4; ++k) s[k] += xr[j + k];
          for (; j < L; ++j) s[0] += xr[j];
          a[o] += (s[0] + s[1]) + (s[2] + s[3]);
        }
      }
    }
  });
  parallel_for(on, 1 << 14, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      double s = 0;
      for (int64_t g = 0; g < G; ++g) s += acc[g * on + i];
      y[i] = static_cast<float>(s);
    }
  });
}

// ---- scale ------------------------------------------------------------------------------------------------
void infer_scale(InferCtx& c) {
  c.need_f32(0);
  c.need_attrs(2);
  c.add_out(c.in[0].shape);
}

void cpu_scale(KernelCtx& c) {
  const float al = static_cast<float>(c.af(0)), be = static_cast<float>(c.af(1));
  const float* x = c.in[0].f();
  float* y = c.out[0].f();
  parallel_for(c.in[0].n, 1 << 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] = al * x[i] + be;
  });
}

}  // namespace irc
