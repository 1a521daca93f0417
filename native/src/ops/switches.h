// The kernel switches (README "Kernel switches"): environment variables that pick a CUDA kernel path, read when an op
// is enqueued. The project's own tensor-core and fused kernels that measured slower than the library path on the
// H100 (BENCHMARKS.md, ninth session) run only where a switch asks for them (IRCONSTYLE_PW_FWD=wmma, ...).
#pragma once

namespace irc {
// Whether the environment variable `name` is set to exactly `value` (op_api.cpp).
bool env_is(const char* name, const char* value);
}  // namespace irc
