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

}  // namespace irc
