// Geometry of conv1x1_add (conv1x1_add.cpp, conv1x1_add.cu): x [..., Ci], w [1, 1, Ci, Co] (a pointwise conv) or
// [Co, Ci] (a Linear's weight: lin).
#pragma once
#include <cstdint>

#include "op_api.h"

namespace irc {

struct PwGeom {
  int64_t rows, Ci, Co;  // rows = the product of x's dims but the last
  bool lin;              // w is [Co, Ci]
};

inline PwGeom pw_geom(const Shape& x, const Shape& w) {
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < x.size(); ++i) rows *= x[i];
  return w.size() == 2 ? PwGeom{rows, w[1], w[0], true} : PwGeom{rows, w[2], w[3], false};
}

// The optional inputs from position bi on (b, s, a; null when absent) and the sample groups of the GEMMs: one per
// sample with a (its per-sample scale), else one.
struct PwOpts {
  const float *b = nullptr, *s = nullptr, *a = nullptr;
  int64_t groups = 1;
  // rows of one group (none when a batch of no samples makes no groups)
  int64_t group_rows(int64_t rows) const { return groups > 0 ? rows / groups : 0; }
};

inline PwOpts pw_opts(const KernelCtx& k, size_t bi, const Shape& x) {
  PwOpts o;
  if (k.in.size() > bi) o.b = k.in[bi].f();
  if (k.in.size() > bi + 1) o.s = k.in[bi + 1].f();
  if (k.in.size() > bi + 2) {
    o.a = k.in[bi + 2].f();
    o.groups = x[0];
  }
  return o;
}

// The backward's outputs: dx, dw, then db / ds / da where the forward had b / s / a.
struct PwGrads {
  float *dx, *dw, *db, *ds, *da;
};

inline PwGrads pw_grads(const KernelCtx& k, const PwOpts& o) {
  return {k.out[0].f(), k.out[1].f(), o.b ? k.out[2].f() : nullptr, o.s ? k.out[3].f() : nullptr,
          o.a ? k.out[4].f() : nullptr};
}

}  // namespace irc
