// A pointwise convolution and a SimpleGate in one op (ops.def), NHWC / any [..., Ci] rows, on the CPU:
//   conv1x1_gate           (x[..., Ci], w[1,1,Ci,2C], b?[2C]) -> y[..., C] = z[..., :C] * z[..., C:], z = x w + b
//   conv1x1_gate_backward  (dy, x, w, b?) -> dx, dw, db[2C]   (z recomputed, not stored)
// NAFBlock's conv4 + SimpleGate: the 2C-channel conv output z is neither written by the forward nor kept for the
// backward (on CUDA the forward's tile of z lives in registers only). The CPU runs conv2d's own 1x1 path
// (conv::pointwise_*), so its results are those of conv2d + simple_gate: the forward over row chunks of z, the
// backward with dz = (dy z2, dy z1) and conv2d's backward on it.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "../cpu/gemm.h"
#include "conv2d.h"
#include "op_api.h"
#include "pw_gate_tile.h"

namespace irc {
namespace {

struct GateGeom {
  int64_t rows, Ci, C;  // rows = the product of x's dims but the last; w is [1, 1, Ci, 2C]
};

GateGeom gate_geom(const Shape& x, const Shape& w) {
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < x.size(); ++i) rows *= x[i];
  return {rows, w[2], w[3] / 2};
}

// Checks x (input xi), w (xi + 1) and the optional b (xi + 2); returns the geometry.
GateGeom check_gate(InferCtx& c, size_t xi) {
  const std::string op = c.op;
  c.need_f32(xi);
  c.need_f32(xi + 1);
  c.need_min_rank(xi, 1);
  const Shape &x = c.in[xi].shape, &w = c.in[xi + 1].shape;
  if (w.size() != 4 || w[0] != 1 || w[1] != 1 || w[2] != x.back() || w[3] % 2 != 0 || w[3] == 0)
    op_fail("E_SHAPE", op + ": w must have shape [1, 1, " + std::to_string(x.back()) +
                           ", 2C] (a pointwise conv over x " + shape_str(x) +
                           " to an even, non-zero channel count), got " + shape_str(w));
  if (c.in.size() > xi + 2) {
    c.need_f32(xi + 2);
    if (c.in[xi + 2].shape != Shape{w[3]})
      op_fail("E_SHAPE", op + ": b must have shape [" + std::to_string(w[3]) + "], got " +
                             shape_str(c.in[xi + 2].shape));
  }
  return gate_geom(x, w);
}

// IRCONSTYLE_EMULATE=pw_gate (TF32 rounding as the GPU) or pw_gate_fp32 (exact operands): the CUDA tensor-core
// kernel's phases (pw_gate_tile.h) run on the host with the model of its WMMA calls, block by block, warp by warp
// and lane by lane, for the shapes the device takes that path for. For the tests of that kernel's arithmetic
// (test/ops-fused.test.ts), not for speed. 0: not asked for or not applicable; 1 rounding; 2 exact.
int emulation(const GateGeom& g, const float* w) {
  const char* e = std::getenv("IRCONSTYLE_EMULATE");
  if (!e || (std::strcmp(e, "pw_gate") != 0 && std::strcmp(e, "pw_gate_fp32") != 0)) return 0;
  if (g.Ci <= 0 || g.Ci % 8 != 0 || g.Ci > pwgate::kMaxCi || g.C <= 0 || g.C % 16 != 0 ||
      (reinterpret_cast<uintptr_t>(w) & 31u) != 0)
    return 0;
  return std::strcmp(e, "pw_gate") == 0 ? 1 : 2;
}

// The kernel gate_wmma_k<MODE> over all blocks: out = y (MODE 0) or dz with the per-warp column sums dbp (MODE 1).
template <int MODE, class W>
void emulate_kernel(const GateGeom& g, const float* x, const float* w, const float* b, const float* dy, float* out,
                    float* dbp) {
  using namespace pwgate;
  const int Ci = static_cast<int>(g.Ci), C = static_cast<int>(g.C);
  const int64_t blocks = (g.rows + kRows - 1) / kRows;
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    const size_t bytes = (sizeof(float) * smem_floats(Ci) + 63) / 64 * 64;
    std::unique_ptr<float, decltype(&std::free)> smem(static_cast<float*>(std::aligned_alloc(64, bytes)), &std::free);
    float* sm = smem.get();
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t r0 = blk * kRows;
      for (int tid = 0; tid < kThreads; ++tid) load_x_tile<W>(tid, x, g.rows, r0, Ci, sm);  // then __syncthreads
      for (int warp = 0; warp < kThreads / 32; ++warp) {
        float* st = sm + kRows * ldx_of(Ci) + warp * 512;
        for (int j = 0; j < C; j += 16) {
          z_tiles<W>(sm, Ci, warp, w, C, j, st);
          float s1[32] = {}, s2[32] = {};
          for (int lane = 0; lane < 32; ++lane) epilogue<MODE>(lane, warp, j, r0, g.rows, C, st, b, dy, out, s1[lane], s2[lane]);
          if (MODE == 1)
            for (int lane = 0; lane < 16; ++lane)  // the shuffle down by 16, then lanes 0..15 write
              write_db_partials(lane, warp, blk, j, C, s1[lane] + s1[lane + 16], s2[lane] + s2[lane + 16], dbp);
        }
      }
    }
  });
}

template <int MODE>
void emulate(int mode, const GateGeom& g, const float* x, const float* w, const float* b, const float* dy, float* out,
             float* dbp) {
  if (mode == 1) emulate_kernel<MODE, pwgate::HostWmma<true>>(g, x, w, b, dy, out, dbp);
  else emulate_kernel<MODE, pwgate::HostWmma<false>>(g, x, w, b, dy, out, dbp);
}

}  // namespace

void infer_conv1x1_gate(InferCtx& c) {
  c.op = "conv1x1_gate";
  const GateGeom g = check_gate(c, 0);
  Shape y = c.in[0].shape;
  y.back() = g.C;
  c.add_out(y);
}

void cpu_conv1x1_gate(KernelCtx& k) {
  const GateGeom g = gate_geom(k.in[0].shape, k.in[1].shape);
  const float *x = k.in[0].f(), *w = k.in[1].f(), *b = k.in.size() > 2 ? k.in[2].f() : nullptr;
  float* y = k.out[0].f();
  if (g.rows == 0) return;
  if (const int mode = emulation(g, w)) {
    emulate<0>(mode, g, x, w, b, nullptr, y, nullptr);
    return;
  }
  const int64_t C2 = 2 * g.C, R = std::max<int64_t>(64, (int64_t(1) << 20) / C2);  // ~4 MiB of z per chunk
  float* z = scratch(static_cast<size_t>(std::min(R, g.rows) * C2), 0);  // kept by the thread: no page faults per call
  for (int64_t r0 = 0; r0 < g.rows; r0 += R) {
    const int64_t n = std::min(R, g.rows - r0);
    conv::pointwise_forward(n, g.Ci, C2, x + r0 * g.Ci, w, b, z);
    float* yc = y + r0 * g.C;
    parallel_for(n, std::max<int64_t>(1, 16384 / C2), [&](int64_t q0, int64_t q1) {
      for (int64_t q = q0; q < q1; ++q) {
        const float* zr = z + q * C2;
        for (int64_t c = 0; c < g.C; ++c) yc[q * g.C + c] = zr[c] * zr[g.C + c];
      }
    });
  }
}

void infer_conv1x1_gate_backward(InferCtx& c) {
  c.op = "conv1x1_gate_backward";
  const GateGeom g = check_gate(c, 1);
  c.need_f32(0);
  Shape want = c.in[1].shape;
  want.back() = g.C;
  if (c.in[0].shape != want)
    op_fail("E_SHAPE", "conv1x1_gate_backward: dy must have shape " + shape_str(want) + ", got " +
                           shape_str(c.in[0].shape));
  c.add_out(c.in[1].shape);
  c.add_out(c.in[2].shape);
  c.add_out({2 * g.C});
}

void cpu_conv1x1_gate_backward(KernelCtx& k) {
  const GateGeom g = gate_geom(k.in[1].shape, k.in[2].shape);
  const float *dy = k.in[0].f(), *x = k.in[1].f(), *w = k.in[2].f(), *b = k.in.size() > 3 ? k.in[3].f() : nullptr;
  float *dx = k.out[0].f(), *dw = k.out[1].f(), *db = k.out[2].f();
  const int64_t C2 = 2 * g.C;
  if (g.rows == 0) {
    std::fill(dw, dw + g.Ci * C2, 0.f);
    std::fill(db, db + C2, 0.f);
    return;
  }
  float* dz = scratch(static_cast<size_t>(g.rows * C2), 0);
  if (const int mode = emulation(g, w)) {  // the CUDA path: the kernel's dz and db, then the GEMMs cuBLAS does there
    const int64_t parts = 4 * ((g.rows + pwgate::kRows - 1) / pwgate::kRows);
    std::vector<float> dbp(static_cast<size_t>(parts * C2));
    emulate<1>(mode, g, x, w, b, dy, dz, dbp.data());
    for (int64_t c = 0; c < C2; ++c) {
      double t = 0.0;
      for (int64_t q = 0; q < parts; ++q) t += dbp[q * C2 + c];
      db[c] = static_cast<float>(t);
    }
    sgemm(false, true, g.rows, g.Ci, C2, 1.f, dz, C2, w, C2, 0.f, dx, g.Ci);  // dx = dz w^T
    sgemm(true, false, g.Ci, C2, g.rows, 1.f, x, g.Ci, dz, C2, 0.f, dw, C2);  // dw = x^T dz
    return;
  }
  // z, then dz = (dy z2, dy z1) in place, then conv2d's backward of the 1x1 conv on dz
  conv::pointwise_forward(g.rows, g.Ci, C2, x, w, b, dz);
  parallel_for(g.rows, std::max<int64_t>(1, 16384 / C2), [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) {
      float* zr = dz + q * C2;
      const float* d = dy + q * g.C;
      for (int64_t c = 0; c < g.C; ++c) {
        const float z1 = zr[c], z2 = zr[g.C + c];
        zr[c] = d[c] * z2;
        zr[g.C + c] = d[c] * z1;
      }
    }
  });
  conv::pointwise_backward(g.rows, g.Ci, C2, dz, x, w, dx, dw, db);
}

}  // namespace irc
