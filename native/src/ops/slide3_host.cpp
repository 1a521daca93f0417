// IRCONSTYLE_EMULATE=slide: the CUDA sliding 3x3 depthwise kernels' batched work items (slide3_batch.h) run on the
// CPU backend, every item through the kernels' own code, for the tests of their window logic (not for speed).

#include "op_api.h"
#include "slide3_batch.h"

namespace irc {
namespace {

template <int MODE, bool GELU>
void forward_items(const slide::Geo& g, int64_t items, const float* x, const float* w, const float* b,
                   const float* dy, float* out) {
  parallel_for(items, 256, [&](int64_t e0, int64_t e1) {
    for (int64_t e = e0; e < e1; ++e) slide::fwd_item<MODE, GELU>(g, static_cast<int>(e), x, w, b, dy, out);
  });
}

}  // namespace

bool slide3_emulate_forward(int mode, bool gelu, int64_t N, int64_t H, int64_t W, int64_t C, const float* x,
                            const float* w, const float* b, const float* dy, float* out) {
  if (!emulation_requested("slide") || N * H * W * C == 0) return false;
  const slide::Geo g = slide::geo_of(H, W, mode == slide::kPlain ? C : 2 * C, C);
  const int64_t items = slide::fwd_items(g, N);
  if (mode == slide::kPlain) forward_items<slide::kPlain, false>(g, items, x, w, b, dy, out);
  else if (mode == slide::kGate) (gelu ? forward_items<slide::kGate, true> : forward_items<slide::kGate, false>)(
      g, items, x, w, b, dy, out);
  else (gelu ? forward_items<slide::kGateDz, true> : forward_items<slide::kGateDz, false>)(g, items, x, w, b, dy, out);
  return true;
}

bool slide3_emulate_backward(int64_t N, int64_t H, int64_t W, int64_t C, const float* dz, const float* x,
                             const float* w, float* dx, float* dw, float* db) {
  if (!emulation_requested("slide") || N * H * W * C == 0) return false;
  const slide::Geo g = slide::geo_of(H, W, C, C);
  const int items = static_cast<int>(N * H * g.S);
  parallel_for(C, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int cv = static_cast<int>(c);
      float wv[9];
      for (int k = 0; k < 9; ++k) wv[k] = w[k * C + c];
      double tot[10] = {};
      for (int i = 0; i < items; ++i) {
        float acc[10] = {};
        slide::bwd_item(g, i, cv, wv, dz, x, dx, acc);
        for (int k = 0; k < 10; ++k) tot[k] += acc[k];
      }
      for (int k = 0; k < 9; ++k) dw[k * C + c] = static_cast<float>(tot[k]);
      db[c] = static_cast<float>(tot[9]);
    }
  });
  return true;
}

}  // namespace irc
