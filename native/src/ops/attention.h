// Geometry of channel_attention (attention.cpp, attention.cu): qkv [N, H, W, 3C], attrs [heads, eps].
#pragma once
#include <cstdint>
#include <vector>

#include "op_api.h"

namespace irc {

struct AttnGeom {
  int64_t N, P, C, heads, c;  // samples, pixels H W, channels of each third, heads, channels per head
  double eps;
};

inline AttnGeom attn_geom(const Shape& qkv, const std::vector<double>& attrs) {
  AttnGeom g{qkv[0], qkv[1] * qkv[2], qkv[3] / 3, static_cast<int64_t>(attrs[0]), 0, attrs[1]};
  g.c = g.C / g.heads;
  return g;
}

}  // namespace irc
