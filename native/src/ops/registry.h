// The op table, built from ops.def: name, arity, differentiability, and the per-backend functions.
#pragma once
#include "op_api.h"

namespace irc {

struct OpEntry {
  const char* name;
  int min_in, max_in;
  bool differentiable;
  void (*infer)(InferCtx&);
  void (*cpu)(KernelCtx&);
  void (*cuda)(KernelCtx&);  // null when the op has no CUDA kernel (or the build has no CUDA)
};

int op_count();
const OpEntry* op_entry(int id);  // nullptr when out of range

}  // namespace irc
