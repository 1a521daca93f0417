// The permute op's tile transpose (memory.cu), its geometry written once for the device and the host: the CUDA kernel
// walks it in 32 × 32 tiles through shared memory; the CPU backend walks the same tiles element by element when
// IRCONSTYLE_EMULATE lists `permute` (memory.cpp), so the CPU tests check the index arithmetic without a GPU.
//
// `merge` is both backends' view of a permutation (output order, size-1 dims dropped, neighbours that stay adjacent
// merged); memory.cpp walks it its own way outside the emulation.
// The tile's `a` axis runs along the output's innermost dims (contiguous in the output), its `b` axis along the
// input's innermost dims (contiguous in the input), so that its loads and its stores are both coalesced. Each axis
// may span two merged dims (a two-level index): the output's last two dims when the last is shorter than a tile
// (MAXIM's block / grid permutes, whose positions fh × fw or gh × gw are two dims of 8 or 16), and likewise the
// input's two innermost dims. The remaining dims give each tile's base offsets.
#pragma once
#include <cstdint>
#include <vector>

#include "host_device.h"

namespace irc {
namespace permute_plan {

constexpr int kTile = 32;
constexpr int kTileRows = 8;
constexpr int kOuterDims = 8;

// Merged dims in output order: sizes, input strides, output strides.
struct Dims {
  std::vector<int64_t> sz, st, ostr;
};

inline Dims merge(const std::vector<int64_t>& xshape, const std::vector<int64_t>& perm) {
  const int r = static_cast<int>(xshape.size());
  std::vector<int64_t> xstride(r, 1);
  for (int i = r - 2; i >= 0; --i) xstride[i] = xstride[i + 1] * xshape[i + 1];
  Dims d;
  for (int i = 0; i < r; ++i) {
    const int64_t p = perm[i], s = xshape[p];
    if (s == 1) continue;
    if (!d.sz.empty() && d.st.back() == xstride[p] * s) {
      d.sz.back() *= s;
      d.st.back() = xstride[p];
    } else {
      d.sz.push_back(s);
      d.st.push_back(xstride[p]);
    }
  }
  const int m = static_cast<int>(d.sz.size());
  d.ostr.assign(m, 1);
  for (int i = m - 2; i >= 0; --i) d.ostr[i] = d.ostr[i + 1] * d.sz[i + 1];
  return d;
}

struct Geo {
  int64_t A = 0, B = 0;           // the tile axes' lengths
  int64_t A0 = 1, sa0 = 0, sa1 = 0;  // a's input offset: (a / A0) sa1 + (a % A0) sa0
  int64_t B0 = 1, ob0 = 0, ob1 = 0;  // b's output offset: (b / B0) ob1 + (b % B0) ob0
  int64_t tilesA = 0, tilesB = 0, total = 0;
  int no = 0;  // outer dims, innermost first: sizes, input and output strides
  int64_t osz[kOuterDims] = {}, ox[kOuterDims] = {}, oy[kOuterDims] = {};
};

// Whether the tile transpose takes these dims, and its geometry: the output's innermost dim must be strided in the
// input, each axis at least 16 long, and at most kOuterDims other dims. `two_level` false keeps each axis on one dim
// (the kernel of run 9: IRCONSTYLE_PERMUTE_TILE=1, where the device check sends a failing permute).
inline bool plan(const Dims& d, Geo& g, bool two_level = true) {
  const int m = static_cast<int>(d.sz.size());
  if (m < 2 || d.st[m - 1] == 1) return false;
  int a1 = -1, b0 = -1, b1 = -1;
  for (int k = 0; k < m; ++k)
    if (d.st[k] == 1) b0 = k;
  if (b0 < 0 || b0 == m - 1) return false;
  // a over the last two output dims when the last is shorter than a tile (and the other is not b's)
  if (two_level && d.sz[m - 1] < kTile && m - 2 != b0) a1 = m - 2;
  // b over the input's two innermost dims when the innermost is shorter than a tile (and the other is not a's)
  if (two_level && d.sz[b0] < kTile)
    for (int k = 0; k < m; ++k)
      if (k != m - 1 && k != a1 && d.st[k] == d.sz[b0]) b1 = k;
  g = Geo{};
  g.A0 = d.sz[m - 1];
  g.sa0 = d.st[m - 1];
  g.A = g.A0;
  if (a1 >= 0) {
    g.A *= d.sz[a1];
    g.sa1 = d.st[a1];
  }
  g.B0 = d.sz[b0];
  g.ob0 = d.ostr[b0];
  g.B = g.B0;
  if (b1 >= 0) {
    g.B *= d.sz[b1];
    g.ob1 = d.ostr[b1];
  }
  if (g.A < 16 || g.B < 16 || g.A >= (int64_t(1) << 31) || g.B >= (int64_t(1) << 31)) return false;
  for (int k = m - 1; k >= 0; --k) {  // innermost first
    if (k == m - 1 || k == a1 || k == b0 || k == b1) continue;
    if (g.no == kOuterDims) return false;
    g.osz[g.no] = d.sz[k];
    g.ox[g.no] = d.st[k];
    g.oy[g.no] = d.ostr[k];
    ++g.no;
  }
  g.tilesA = (g.A + kTile - 1) / kTile;
  g.tilesB = (g.B + kTile - 1) / kTile;
  int64_t outer = 1;
  for (int k = 0; k < g.no; ++k) outer *= g.osz[k];
  g.total = g.tilesA * g.tilesB * outer;
  return true;
}

// Tile t's first a and b, and its input and output base offsets.
struct Base {
  int64_t a0, b0, xo, yo;
};
IRC_HD Base base(const Geo& g, int64_t t) {
  const int64_t ta = t % g.tilesA;
  const int64_t tb = (t / g.tilesA) % g.tilesB;
  int64_t o = t / (g.tilesA * g.tilesB), xo = 0, yo = 0;
  for (int k = 0; k < g.no; ++k) {
    const int64_t q = o / g.osz[k];
    const int64_t i = o - q * g.osz[k];
    xo += i * g.ox[k];
    yo += i * g.oy[k];
    o = q;
  }
  return {ta * kTile, tb * kTile, xo, yo};
}

// a's offset in the input and b's in the output (a < A, b < B: 32-bit division, none for an axis on one dim)
IRC_HD int64_t a_in(const Geo& g, int64_t a) {
  if (g.A0 == g.A) return a * g.sa0;
  const uint32_t q = static_cast<uint32_t>(a) / static_cast<uint32_t>(g.A0);
  return q * g.sa1 + (a - static_cast<int64_t>(q) * g.A0) * g.sa0;
}
IRC_HD int64_t b_out(const Geo& g, int64_t b) {
  if (g.B0 == g.B) return b * g.ob0;
  const uint32_t q = static_cast<uint32_t>(b) / static_cast<uint32_t>(g.B0);
  return q * g.ob1 + (b - static_cast<int64_t>(q) * g.B0) * g.ob0;
}

// The kernel's walk on the host (IRCONSTYLE_EMULATE=permute): every tile loaded along b into a [a][b] tile, then
// stored along a, as the kernel's threads do.
inline void emulate(const Geo& g, const uint32_t* x, uint32_t* y) {
  uint32_t tile[kTile][kTile + 1];
  for (int64_t t = 0; t < g.total; ++t) {
    const Base p = base(g, t);
    for (int r = 0; r < kTile; ++r)
      for (int tx = 0; tx < kTile; ++tx) {
        const int64_t ai = p.a0 + r, bi = p.b0 + tx;
        if (ai < g.A && bi < g.B) tile[r][tx] = x[p.xo + a_in(g, ai) + bi];
      }
    for (int r = 0; r < kTile; ++r)
      for (int tx = 0; tx < kTile; ++tx) {
        const int64_t ai = p.a0 + tx, bj = p.b0 + r;
        if (ai < g.A && bj < g.B) y[p.yo + b_out(g, bj) + ai] = tile[tx][r];
      }
  }
}

}  // namespace permute_plan
}  // namespace irc
