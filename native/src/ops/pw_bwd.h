// The pointwise-conv backward in one pass on tensor cores (pw_bwd.cu; its phases in pw_bwd_tile.h): for a 1x1 conv
// y = x w + b over rows, x [rows, Ci], w [Ci, Co], given dy [rows, Co]: dx = dy w^T, dw = x^T dy and db = column
// sums of dy (dx and db may be null: not computed). Used by conv2d's 1x1 backward and conv1x1_gate's backward when
// TF32 is allowed (IRCONSTYLE_TF32) and the shape fits (Ci, Co multiples of 16, Co <= 768, shared memory <= 96 KiB,
// w 32-byte aligned, rows >= 1); returns false, having enqueued nothing, otherwise (the callers then use cuBLAS;
// a device refusing the shared-memory opt-in may leave a padded weight copy in scratch slot 3, nothing else).
// Only with IRCONSTYLE_PW_BWD=one-pass: cuBLAS's passes measured ~3x faster on the H100 (BENCHMARKS.md, ninth
// session), so they are the default.
#pragma once
#include <cstdint>

#include "op_api.h"
#include "pw_gate_tile.h"

namespace irc {
// Whether the shape and the settings (TF32, IRCONSTYLE_PW_BWD) allow the kernel (then only w's alignment can refuse).
bool pw_backward_takes(int64_t Ci, int64_t Co);
bool pw_backward(const KernelCtx& k, const float* x, const float* dy, const float* w, float* dx, float* dw, float* db,
                 int64_t rows, int64_t Ci, int64_t Co);
// The same with x a LayerNorm's input: the conv's input is h = (x - mean) rstd w + b from ln's given statistics
// (ln.mean_in, ln.rstd_in), formed on the way in; dx is then dh, the gradient of h.
bool pw_backward_ln(const KernelCtx& k, const float* x, const pwgate::LnArgs& ln, const float* dy, const float* w,
                    float* dx, float* dw, float* db, int64_t rows, int64_t Ci, int64_t Co);
// pw_backward_ln with the LayerNorm's backward in the same pass (pw_bwd_tile.h, FOLD): instead of dh, f.dx = the
// gradient of x (+ f.acc, x's pending gradient, when given) and the LayerNorm's f.dlw, f.dlb, given dy of the conv.
// Needs shared memory for a chunk of dh (up to 160 KiB: A100 / H100); false, nothing enqueued, where it cannot run
// (the callers then take pw_backward_ln and the LayerNorm kernels). IRCONSTYLE_LN_FOLD=0 turns it off.
struct LnFoldOut {
  const float* acc = nullptr;
  float *dx = nullptr, *dlw = nullptr, *dlb = nullptr;
};
bool pw_backward_ln_fold(const KernelCtx& k, const float* x, const pwgate::LnArgs& ln, const LnFoldOut& f,
                         const float* dy, const float* w, float* dw, float* db, int64_t rows, int64_t Ci, int64_t Co);
// The LayerNorm + 1x1 backward ops' operands (ops.def: (dy, x, lw, lb, w, mean, rstd, b? (the gate's), acc?), attrs
// [has acc]; outputs dx, dw, db, dlw, dlb), for their CPU and CUDA code: x's pending gradient (or null), the gate's
// bias (or null), and the LayerNorm's outputs as FOLD takes them.
inline const float* ln_bwd_acc(const KernelCtx& k) {
  return !k.attrs.empty() && k.ai(0) != 0 ? k.in.back().f() : nullptr;
}
inline const float* ln_bwd_gate_bias(const KernelCtx& k) {
  return k.in.size() > 7u + (ln_bwd_acc(k) ? 1u : 0u) ? k.in[7].f() : nullptr;
}
inline LnFoldOut ln_bwd_fold(const KernelCtx& k) {
  return LnFoldOut{ln_bwd_acc(k), k.out[0].f(), k.out[3].f(), k.out[4].f()};
}
// The same for `groups` independent row groups of `rows` rows each (x, dy, dx consecutive groups; group g's weight
// at w + g wstride, wstride 0 for a shared one): dw [groups, Ci, Co] and db [groups, Co] per group.
bool pw_backward_groups(const KernelCtx& k, const float* x, const float* dy, const float* w, int64_t wstride,
                        float* dx, float* dw, float* db, int64_t rows, int64_t Ci, int64_t Co, int64_t groups);
// conv1x1_gate's backward in one pass (pw_bwd_tile.h, GATE): y = z[:, :C] z[:, C:] with z = h w + b (h = x, or LN(x)
// from ln's given statistics when ln.w is set), given du = dy [rows, C]: the kernel forms z and dz = (du z2, du z1)
// in each chunk from its staged h (dz never in memory), then dx (dh with ln) and the dw / db partials as for any 1x1
// conv; with fold (and ln) the LayerNorm's backward too (FOLD). C <= 512, 2C <= 768, db required; false, nothing
// enqueued, otherwise. IRCONSTYLE_GATE_BWD=two-kernel turns it off (the gate kernel's dz, then pw_backward_ln).
bool pw_backward_gate(const KernelCtx& k, const float* x, const pwgate::LnArgs& ln, const LnFoldOut* fold,
                      const float* du, const float* w, const float* b, float* dx, float* dw, float* db, int64_t rows,
                      int64_t Ci, int64_t C);
// The Linear paths below take calls of at least this many rows: fewer (ConStyle's heads: one row per image) gain
// nothing from a tensor-core pass and keep cuBLAS's FP32 sums.
constexpr int64_t kLinearMinRows = 1024;
// A Linear layer's backward (y = x w^T + b, w [O, I]) with split-TF32 products (DeviceWmma3: FP32-accurate, as
// PyTorch's FP32 matmul): dx [rows, I], dw [O, I], db [O] (db may be null). Independent of IRCONSTYLE_TF32;
// Only with IRCONSTYLE_LINEAR_BWD=split-tf32 (cuBLAS FP32 by default: 3-9x faster on the H100).
bool pw_backward_linear_takes(int64_t I, int64_t O);
// A Linear layer's forward y = x w^T + b (+ r, a residual [rows, O], when r is given) by conv1x1_gate's tensor-core
// kernel in its plain mode (conv1x1_gate.cu) with split-TF32 products, over a transposed copy of w: I % 8 == 0,
// I <= 344, O % 32 == 0. Only with IRCONSTYLE_LINEAR_FWD=split-tf32 (cuBLASLt by default: faster on the H100).
bool linear_forward_takes(int64_t I, int64_t O);
// With ln: h = LN(x) formed in the kernel (ln's statistics written), ln_conv1x1 with a Linear's weight.
bool linear_forward(const KernelCtx& k, const float* x, const float* w, const float* b, const float* r, float* y,
                    int64_t rows, int64_t I, int64_t O, const pwgate::LnArgs* ln = nullptr);
// With ln (x a LayerNorm's input, its statistics given): dx is dh; with fold too, the LayerNorm's backward folded in
// (FOLD: fold's outputs instead of dx). ln_conv1x1 with a Linear's weight.
bool pw_backward_linear(const KernelCtx& k, const float* x, const float* dy, const float* w, float* dx, float* dw,
                        float* db, int64_t rows, int64_t I, int64_t O, const pwgate::LnArgs* ln = nullptr,
                        const LnFoldOut* fold = nullptr);
}  // namespace irc
