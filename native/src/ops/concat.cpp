// Concatenation and split along the last axis (channels in NHWC). Any dtype (all 4-byte elements).
//   concat  (x1..xk) equal shapes except the last axis, same dtype -> y, last axis = sum of theirs
//   split   x, attrs [c1, c2, ...] summing to x.shape[-1] -> k outputs, output i has last axis ci
// The gradient of each is the other. gelu_split is split of gelu(x) in one pass (float32), its backward concat of
// the gradients times gelu'(x): the gelu and gelu_backward ops' own span code, so equal to them bit for bit.
#include <algorithm>
#include <cstring>
#include <vector>

#include "activation.h"
#include "op_api.h"

namespace irc {

void infer_concat(InferCtx& c) {
  const Meta& a = c.in[0];
  if (a.shape.empty()) op_fail("E_SHAPE", std::string(c.op) + ": inputs must have rank >= 1, got input 0 of shape []");
  Shape out = a.shape;
  out.back() = 0;
  for (size_t i = 0; i < c.in.size(); ++i) {
    const Meta& m = c.in[i];
    if (m.dtype != a.dtype)
      op_fail("E_DTYPE", std::string(c.op) + ": all inputs must have the dtype of input 0 (" + std::string(dtype_name(a.dtype)) +
                             "), input " + std::to_string(i) + " is " + dtype_name(m.dtype));
    bool ok = m.shape.size() == a.shape.size();
    for (size_t d = 0; ok && d + 1 < a.shape.size(); ++d) ok = m.shape[d] == a.shape[d];
    if (!ok)
      op_fail("E_SHAPE", std::string(c.op) + ": input " + std::to_string(i) + " must match input 0 " + shape_str(a.shape) +
                             " in every dim except the last, got " + shape_str(m.shape));
    out.back() += m.shape.back();
  }
  c.add_out(out, a.dtype);
}

void cpu_concat(KernelCtx& c) {
  const TArg& Y = c.out[0];
  const int64_t Ct = Y.shape.back();
  if (Y.n == 0) return;
  const int64_t rows = Y.n / Ct;
  const size_t k = c.in.size();
  std::vector<int64_t> off(k + 1, 0);
  for (size_t i = 0; i < k; ++i) off[i + 1] = off[i] + c.in[i].shape.back();
  char* y = static_cast<char*>(Y.ptr);
  parallel_for(rows, std::max<int64_t>(1, 32768 / Ct), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r)
      for (size_t i = 0; i < k; ++i) {
        const int64_t ci = off[i + 1] - off[i];
        if (ci) std::memcpy(y + (r * Ct + off[i]) * 4, static_cast<const char*>(c.in[i].ptr) + r * ci * 4, ci * 4);
      }
  });
}

void infer_split(InferCtx& c) {
  const Meta& x = c.in[0];
  if (x.shape.empty()) op_fail("E_SHAPE", std::string(c.op) + ": x must have rank >= 1, got shape []");
  if (c.attrs.empty()) op_fail("E_ATTR", std::string(c.op) + ": expected at least one size attribute, got none");
  int64_t total = 0;
  std::vector<int64_t> sizes;
  for (size_t k = 0; k < c.attrs.size(); ++k) {
    int64_t s = c.ai(k);
    if (s < 0) op_fail("E_ATTR", std::string(c.op) + ": sizes must be >= 0, got " + std::to_string(s) + " at position " + std::to_string(k));
    sizes.push_back(s);
    total += s;
  }
  if (total != x.shape.back())
    op_fail("E_ATTR", std::string(c.op) + ": sizes " + shape_str(sizes) + " must sum to the last dim of x " + shape_str(x.shape) +
                          " (" + std::to_string(x.shape.back()) + "), got " + std::to_string(total));
  for (int64_t s : sizes) {
    Shape o = x.shape;
    o.back() = s;
    c.add_out(o, x.dtype);
  }
}

void cpu_split(KernelCtx& c) {
  const TArg& X = c.in[0];
  const int64_t Ct = X.shape.back();
  if (X.n == 0) return;
  const int64_t rows = X.n / Ct;
  const size_t k = c.out.size();
  std::vector<int64_t> off(k + 1, 0);
  for (size_t i = 0; i < k; ++i) off[i + 1] = off[i] + c.out[i].shape.back();
  const char* x = static_cast<const char*>(X.ptr);
  parallel_for(rows, std::max<int64_t>(1, 32768 / Ct), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r)
      for (size_t i = 0; i < k; ++i) {
        const int64_t ci = off[i + 1] - off[i];
        if (ci) std::memcpy(static_cast<char*>(c.out[i].ptr) + r * ci * 4, x + (r * Ct + off[i]) * 4, ci * 4);
      }
  });
}

// ---- gelu_split / gelu_split_backward ---------------------------------------------------------------------
void infer_gelu_split(InferCtx& c) {
  c.need_f32(0);
  infer_split(c);
  if (c.out.size() > 16)  // the backward takes the gradients as inputs (ops.def: at most 16)
    op_fail("E_ATTR", std::string(c.op) + ": at most 16 parts (its backward takes one gradient per part), got " +
                          std::to_string(c.out.size()));
}

// Calls fn(row, output column offset, part i, width) for every row and part, parallel over rows.
template <class F>
void for_parts(int64_t rows, int64_t Ct, const std::vector<TArg>& parts, F&& fn) {
  parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(Ct, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      int64_t off = 0;
      for (size_t i = 0; i < parts.size(); ++i) {
        const int64_t ci = parts[i].shape.back();
        if (ci) fn(r, off, i, ci);
        off += ci;
      }
    }
  });
}

void cpu_gelu_split(KernelCtx& c) {
  const TArg& X = c.in[0];
  const int64_t Ct = X.shape.back();
  if (X.n == 0) return;
  for_parts(X.n / Ct, Ct, c.out, [&](int64_t r, int64_t off, size_t i, int64_t ci) {
    gelu_span_cpu(X.f() + r * Ct + off, c.out[i].f() + r * ci, ci);
  });
}

void infer_gelu_split_backward(InferCtx& c) {
  // (x, dy1..dyk): the dy concatenated must have x's shape
  InferCtx parts = c;
  parts.in.erase(parts.in.begin());
  parts.out.clear();
  for (size_t i = 0; i < c.in.size(); ++i) c.need_f32(i);
  infer_concat(parts);
  if (parts.out[0].shape != c.in[0].shape)
    op_fail("E_SHAPE", std::string(c.op) + ": the gradients concatenated along the last axis must have the shape of x " +
                           shape_str(c.in[0].shape) + ", got " + shape_str(parts.out[0].shape));
  c.add_out(c.in[0].shape);
}

void cpu_gelu_split_backward(KernelCtx& c) {
  const TArg& X = c.in[0];
  const int64_t Ct = X.shape.back();
  if (X.n == 0) return;
  const std::vector<TArg> dys(c.in.begin() + 1, c.in.end());
  float* dx = c.out[0].f();
  for_parts(X.n / Ct, Ct, dys, [&](int64_t r, int64_t off, size_t i, int64_t ci) {
    gelu_backward_span_cpu(dys[i].f() + r * ci, X.f() + r * Ct + off, dx + r * Ct + off, ci);
  });
}

}  // namespace irc
