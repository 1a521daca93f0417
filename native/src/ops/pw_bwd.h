// The pointwise-conv backward in one pass on tensor cores (pw_bwd.cu; its phases in pw_bwd_tile.h): for a 1x1 conv
// y = x w + b over rows, x [rows, Ci], w [Ci, Co], given dy [rows, Co]: dx = dy w^T, dw = x^T dy and db = column
// sums of dy (dx and db may be null: not computed). Used by conv2d's 1x1 backward and conv1x1_gate's backward when
// TF32 is allowed (IRCONSTYLE_TF32) and the shape fits (Ci, Co multiples of 16, Co <= 768, shared memory <= 96 KiB,
// w 32-byte aligned, rows >= 1); returns false, having enqueued nothing, otherwise (the callers then use cuBLAS).
// IRCONSTYLE_PW_BWD=cublas turns it off (for A/B timing).
#pragma once
#include <cstdint>

#include "op_api.h"

namespace irc {
bool pw_backward(const KernelCtx& k, const float* x, const float* dy, const float* w, float* dx, float* dw, float* db,
                 int64_t rows, int64_t Ci, int64_t Co);
}  // namespace irc
