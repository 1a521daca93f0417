// fill_: in-place constant fill (zeroing gradient arenas, resetting state).
#include <algorithm>

#include "op_api.h"

namespace irc {

void infer_fill_(InferCtx& ctx) { ctx.af(0); }

void cpu_fill_(KernelCtx& ctx) {
  const TArg& x = ctx.in[0];
  if (x.dtype == DType::i32) {
    int32_t v = static_cast<int32_t>(ctx.af(0));
    std::fill(x.i(), x.i() + x.n, v);
    return;
  }
  float v = static_cast<float>(ctx.af(0));
  float* p = x.f();
  parallel_for(x.n, 1 << 16, [&](int64_t b, int64_t e) { std::fill(p + b, p + e, v); });
}

}  // namespace irc
