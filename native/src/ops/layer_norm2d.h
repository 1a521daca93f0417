// LayerNorm2d's CPU forward over rows (layer_norm2d.cpp), shared with the fused ops that normalise their input on
// the way in (ln_conv1x1_gate): y = (x - mean) rstd w + b per row of C channels, the statistics written too.
#pragma once
#include <cstdint>

namespace irc {
void layer_norm_forward(const float* x, const float* w, const float* b, float* y, float* mean, float* rstd,
                        int64_t rows, int64_t C, double eps);
// The same normalisation from given statistics (the same expression: equal results for the forward's statistics).
void layer_norm_apply(const float* x, const float* w, const float* b, const float* mean, const float* rstd, float* y,
                      int64_t rows, int64_t C);
}  // namespace irc
