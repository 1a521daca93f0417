#include "registry.h"

namespace irc {

// CUDA kernels are optional per op: a weak declaration resolves to null when no file defines it.
#define OP(name, min_in, max_in, diff) \
  void infer_##name(InferCtx&);       \
  void cpu_##name(KernelCtx&);        \
  __attribute__((weak)) void cuda_##name(KernelCtx&);
#include "ops.def"
#undef OP

namespace {
const OpEntry kOps[] = {
#define OP(name, min_in, max_in, diff) {#name, min_in, max_in, diff != 0, &infer_##name, &cpu_##name, &cuda_##name},
#include "ops.def"
#undef OP
};
}  // namespace

int op_count() { return static_cast<int>(sizeof(kOps) / sizeof(kOps[0])); }

const OpEntry* op_entry(int id) { return id >= 0 && id < op_count() ? &kOps[id] : nullptr; }

}  // namespace irc
