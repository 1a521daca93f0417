// IRCONSTYLE_EMULATE=pw_simt: the SIMT pointwise-GEMM kernel's phases (pw_simt_tile.h) on the CPU backend, block by
// block and thread by thread in the kernel's order, for the tests of its tiling and epilogues (not for speed). A row's
// 16 column lanes run as one host lane there (its sums in another order than the shuffles).
#include <cstdlib>
#include <memory>
#include <vector>

#include "pw_simt.h"

namespace irc {
namespace {

using namespace pwsimt;

struct HostLanes {
  static constexpr int kLanes = 1;
  static float sum(float v) { return v; }
};

template <int MODE, int NT>
int64_t emulate(const Args& p) {
  constexpr int TM = tm_of(NT), BM = kLanes * TM;
  const int64_t tiles = (p.rows + BM - 1) / BM;
  const int64_t grid = tiles < pw_simt_emulated_blocks ? tiles : pw_simt_emulated_blocks;  // the persistent loop runs
  const size_t bytes = (sizeof(float) * static_cast<size_t>(smem_floats(p.K, p.N, NT)) + 63) / 64 * 64;
  std::unique_ptr<float, decltype(&std::free)> smem(static_cast<float*>(std::aligned_alloc(64, bytes)), &std::free);
  if (!smem) op_fail("E_OOM", "pw_simt emulation: out of memory");
  float* ws = smem.get();
  float* xs = ws + p.K * p.N;
  constexpr int PS = psum_n(MODE, NT);
  std::vector<float> acc(static_cast<size_t>(kThreads) * TM * NT), psum(static_cast<size_t>(kThreads) * PS);
  std::vector<float> sg(static_cast<size_t>(kThreads) * TM), sx(static_cast<size_t>(kThreads) * TM);
  float* xsum = xs + BM * ldx_of(p.K);
  using Acc = float[TM][NT];
  using Rows = float[TM];
  const auto at = [](std::vector<float>& v, int tid, int n) -> float* { return &v[static_cast<size_t>(tid) * n]; };
  for (int64_t blk = 0; blk < grid; ++blk) {
    std::fill(psum.begin(), psum.end(), 0.f);
    std::fill(xsum, xsum + p.K, 0.f);
    for (int tid = 0; tid < kThreads; ++tid) stage_w(tid, p, ws);
    for (int64_t t = blk; t < tiles; t += grid) {
      const int64_t r0 = t * BM;
      for (int tid = 0; tid < kThreads; ++tid) load_tile<NT>(tid, p, r0, xs);
      if (p.xsum)
        for (int tid = 0; tid < kThreads; ++tid) tile_colsums<NT>(tid, p, xs, xsum);
      if (p.lnw || p.a)
        for (int rl = 0; rl < kLanes; ++rl) prologue<NT, HostLanes>(rl, 0, p, r0, xs);
      for (int tid = 0; tid < kThreads; ++tid)
        compute<NT>(tid / kLanes, tid % kLanes, p.K, p.N, xs, ws, *reinterpret_cast<Acc*>(at(acc, tid, TM * NT)));
      if constexpr (MODE == kLnBwd) {  // the parts, their sums over a row's 16 column lanes (in order), the rest
        for (int tid = 0; tid < kThreads; ++tid)
          ln_bwd_parts<NT>(tid / kLanes, tid % kLanes, p, r0, *reinterpret_cast<Acc*>(at(acc, tid, TM * NT)),
                           *reinterpret_cast<Rows*>(at(sg, tid, TM)), *reinterpret_cast<Rows*>(at(sx, tid, TM)));
        for (int rl = 0; rl < kLanes; ++rl)
          for (int j = 0; j < TM; ++j) {
            float a = 0.f, b = 0.f;
            for (int cl = 0; cl < kLanes; ++cl) {
              a += at(sg, rl * kLanes + cl, TM)[j];
              b += at(sx, rl * kLanes + cl, TM)[j];
            }
            for (int cl = 0; cl < kLanes; ++cl) {
              at(sg, rl * kLanes + cl, TM)[j] = a;
              at(sx, rl * kLanes + cl, TM)[j] = b;
            }
          }
        for (int tid = 0; tid < kThreads; ++tid)
          ln_bwd_finish<NT>(tid / kLanes, tid % kLanes, p, r0, *reinterpret_cast<Acc*>(at(acc, tid, TM * NT)),
                            *reinterpret_cast<Rows*>(at(sg, tid, TM)), *reinterpret_cast<Rows*>(at(sx, tid, TM)),
                            at(psum, tid, PS));
      } else {
        for (int tid = 0; tid < kThreads; ++tid)
          epilogue<MODE, NT>(tid / kLanes, tid % kLanes, p, r0, *reinterpret_cast<Acc*>(at(acc, tid, TM * NT)),
                             at(psum, tid, PS));
      }
    }
    if (p.xsum) std::copy(xsum, xsum + p.K, p.xsum + blk * p.K);
    if (MODE == kGateBwd || MODE == kLnBwd) {
      float* red = ws;
      for (int tid = 0; tid < kThreads; ++tid)
        stage_partials<MODE, NT>(tid / kLanes, tid % kLanes, p.N, at(psum, tid, PS), red);
      for (int tid = 0; tid < kThreads; ++tid) write_partials(tid, PS / NT * p.N, p.N, grid, blk, red, p.dbp);
    }
  }
  return grid;
}

struct Emulate {
  const Args& p;
  template <int MODE, int NT>
  int64_t call() {
    return emulate<MODE, NT>(p);
  }
};

}  // namespace

int64_t pw_simt_emulate(int mode, const Args& p) {
  if (!emulation_requested("pw_simt") || !takes(mode, p, 227 * 1024)) return 0;
  Emulate f{p};
  return dispatch(mode, p.N, f);
}

int64_t pw_simt_emulate_sums(int mode, Args& p, float* colsum, std::vector<float>& dbp) {
  std::vector<float> xsum(colsum ? static_cast<size_t>(pw_simt_emulated_blocks * p.K) : 0);
  if (mode == kLnBwd) {
    dbp.assign(static_cast<size_t>(2 * pw_simt_emulated_blocks * p.N), 0.f);
    p.dbp = dbp.data();
  }
  p.xsum = colsum ? xsum.data() : nullptr;
  const int64_t blocks = pw_simt_emulate(mode, p);
  p.xsum = nullptr;  // (the local sums go with this call)
  if (blocks && colsum)
    for (int c = 0; c < p.K; ++c) {
      float t = 0.f;
      for (int64_t q = 0; q < blocks; ++q) t += xsum[static_cast<size_t>(q * p.K + c)];
      colsum[c] = t;
    }
  return blocks;
}

}  // namespace irc
