// The kernel switches (README "Kernel switches"): environment variables that pick a CUDA kernel path, read when an op
// is enqueued (CUDA: on the JS thread). A switch the environment leaves unset may be set from JS (setSwitch: the
// trainer's kernel tuning); the environment always wins. The project's own tensor-core and fused kernels that measured slower than the library path on the
// H100 (BENCHMARKS.md, ninth session) run only where a switch asks for them (IRCONSTYLE_PW_FWD=wmma, ...).
#pragma once

#include <map>
#include <string>

namespace irc {
// Whether the environment variable `name` is set to exactly `value` (op_api.cpp).
bool env_is(const char* name, const char* value);
// Sets (value non-null) or clears the JS-side value of a switch; thread-safe.
void set_switch(const std::string& name, const char* value);
// The JS-side values in force, by name.
std::map<std::string, std::string> switch_overrides();
}  // namespace irc
