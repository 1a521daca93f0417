// The LayerNorm before a 1x1 conv or Linear in the fused LayerNorm + 1x1 ops (ln_conv1x1, ln_conv1x1_gate and their
// backwards, ops.def): its operands as their CPU and CUDA code and the SIMT kernel's arguments (pw_simt.h) take them.
#pragma once
#include "op_api.h"

namespace irc {

// h = (x - mean) rstd w + b per row of x [rows, Ci]. The statistics are computed (mean_out, rstd_out written: the
// forwards) or given (mean_in, rstd_in: the backwards use the forward's).
struct LnArgs {
  const float *w = nullptr, *b = nullptr;
  const float *mean_in = nullptr, *rstd_in = nullptr;
  float *mean_out = nullptr, *rstd_out = nullptr;
  float eps = 0.f;
};

// Where a backward finishes the LayerNorm's backward itself (the SIMT kernel's kLnBwd pass): dx = the gradient of x
// (+ acc, x's pending gradient, when given) and the LayerNorm's weight and bias gradients dlw, dlb.
struct LnFoldOut {
  const float* acc = nullptr;
  float *dx = nullptr, *dlw = nullptr, *dlb = nullptr;
};

// The LayerNorm + 1x1 backward ops' operands ((dy, x, lw, lb, w, mean, rstd, b? (the gate's), acc?), attrs [has acc];
// outputs dx, dw, db, dlw, dlb): x's pending gradient (or null), the gate's bias (or null), and the LayerNorm's
// outputs as LnFoldOut.
inline const float* ln_bwd_acc(const KernelCtx& k) {
  return !k.attrs.empty() && k.ai(0) != 0 ? k.in.back().f() : nullptr;
}
inline const float* ln_bwd_gate_bias(const KernelCtx& k) {
  return k.in.size() > 7u + (ln_bwd_acc(k) ? 1u : 0u) ? k.in[7].f() : nullptr;
}
inline LnFoldOut ln_bwd_fold(const KernelCtx& k) {
  return LnFoldOut{ln_bwd_acc(k), k.out[0].f(), k.out[3].f(), k.out[4].f()};
}

}  // namespace irc
