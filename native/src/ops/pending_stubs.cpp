// TEMPORARY while the issue-3 kernels are being written: weak fallbacks so the addon loads before every op
// exists. Strong definitions in the op files override these. Removed once every op of ops.def is implemented
// (the coverage check of `npm test` fails while any op still resolves here).
#include "op_api.h"
namespace irc {
#define OP(name, min_in, max_in, diff)                                                                   \
  __attribute__((weak)) void infer_##name(InferCtx&) { op_fail("E_INTERNAL", #name ": not implemented"); } \
  __attribute__((weak)) void cpu_##name(KernelCtx&) { op_fail("E_INTERNAL", #name ": not implemented"); }
#include "ops.def"
#undef OP
}  // namespace irc
