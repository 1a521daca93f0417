// conv2d internals shared by conv2d.cpp (dense / grouped, im2col + sgemm) and conv2d_depthwise.cpp.
//
// Forward (NHWC, weight [KH, KW, Ci/G, Co], group g owns input channels [g*cig, (g+1)*cig) and output channels
// [g*cog, (g+1)*cog)):
//   y[n,oh,ow,co] = b[co] + sum_{kh,kw,ci} x[n, oh*S-P+kh, ow*S-P+kw, g*cig+ci] * w[kh,kw,ci,co]
// (out-of-range input positions read as zero).
// Backward:
//   dx[n,ih,iw,g*cig+ci] = sum over (kh,kw) with oh = (ih+P-kh)/S, ow = (iw+P-kw)/S exact and in range of
//                          sum_co dy[n,oh,ow,co] * w[kh,kw,ci,co]      (col2im of dcol = dy . W^T, as a gather)
//   dw[kh,kw,ci,co]      = sum_{n,oh,ow} x[n, oh*S-P+kh, ow*S-P+kw, g*cig+ci] * dy[n,oh,ow,co]  (im2col^T . dy)
//   db[co]               = sum_{n,oh,ow} dy[n,oh,ow,co]
// Reductions over pixels use partial buffers over a FIXED split of the pixels (depends on the shape only) summed
// in order, so results are identical for any thread count.
#pragma once
#include "op_api.h"

namespace irc {
namespace pwgate {
struct LnArgs;
}
struct LnFoldOut;
namespace conv {

struct Geom {
  int64_t N, H, W, Ci, KH, KW, Co, S, P, G, Ho, Wo, cig, cog;
};

// Number of fixed partial buffers for pixel reductions (shape-only, never the thread count).
inline int64_t num_parts(int64_t units) { return units < 16 ? units : 16; }

void depthwise_forward(const Geom& g, const float* x, const float* w, const float* b, float* y);
void depthwise_backward(const Geom& g, const float* dy, const float* x, const float* w, float* dx, float* dw,
                        float* db);

// A 1x1 stride-1 conv (weight [Ci, Co]) over `pix` rows of x[pix, Ci], by exactly conv2d's CPU path (same sums):
// y = x w + b (b may be null); the backward's dx, dw and db (db summed as conv2d's).
void pointwise_forward(int64_t pix, int64_t Ci, int64_t Co, const float* x, const float* w, const float* b,
                       float* y);
void pointwise_backward(int64_t pix, int64_t Ci, int64_t Co, const float* dy, const float* x, const float* w,
                        float* dx, float* dw, float* db);

// The CUDA one-pass 1x1 backward (pw_bwd.cu) run on the host through its own phases (pw_bwd_tile.h) and the host
// model of its WMMA calls, operands rounded to TF32 or exact: for the tests of that kernel (IRCONSTYLE_EMULATE).
void pw_backward_model(bool tf32, const float* x, const pwgate::LnArgs& ln, const float* dy, const float* w, float* dx,
                       float* dw, float* db, int64_t rows, int Ci, int Co);
// The same kernel with the LayerNorm's backward folded in (pw_backward_ln_fold, ln's statistics given): f.dx (+ f.acc),
// f.dlw, f.dlb, dw and db; false (nothing done) where the device would not take it (shape, shared memory,
// IRCONSTYLE_LN_FOLD=0).
bool pw_backward_ln_fold_model(bool tf32, const float* x, const pwgate::LnArgs& ln, const LnFoldOut& f,
                               const float* dy, const float* w, float* dw, float* db, int64_t rows, int Ci, int Co);
// The same kernel forming conv1x1_gate's dz itself (pw_backward_gate: du [rows, C], w [Ci, 2C], b may be null; h = x
// or LN(x) with ln.w; with fold the LayerNorm's backward too); false where the device would not take it.
bool pw_backward_gate_model(bool tf32, const float* x, const pwgate::LnArgs& ln, const LnFoldOut* fold,
                            const float* du, const float* w, const float* b, float* dx, float* dw, float* db,
                            int64_t rows, int Ci, int C);
// The same kernel as a Linear layer's backward (pw_backward_linear: w [O, I], split-TF32 products, or exact operands
// when !split; db may be null); false (nothing done) for the shapes the device does not take that path for.
// With ln (x a LayerNorm's input, its statistics given: dx is then dh) and fold (the LayerNorm's backward folded in:
// fold's outputs instead of dx), as ln_conv1x1's backward with a Linear's weight takes it.
bool pw_backward_linear_model(bool split, const float* x, const float* dy, const float* w, float* dx, float* dw,
                              float* db, int64_t rows, int I, int O, const pwgate::LnArgs* ln = nullptr,
                              const LnFoldOut* fold = nullptr);
// A Linear layer's forward (+ the residual r [rows, O] when given) by the CUDA tensor-core kernel of conv1x1_gate
// (its phases, pw_gate_tile.h) on the host: split-TF32 products, or exact operands when !split; false for the
// shapes the device does not take that path for (defined in conv1x1_gate.cpp).
// With ln: h = LN(x) formed in the kernel (statistics written to ln's mean_out / rstd_out), as ln_conv1x1 with a
// Linear's weight.
bool linear_forward_model(bool split, const float* x, const float* w, const float* b, const float* r, float* y,
                          int64_t rows, int I, int O, const pwgate::LnArgs* ln = nullptr);

}  // namespace conv
}  // namespace irc
