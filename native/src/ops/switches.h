// The kernel switches (README "Kernel switches"): environment variables that pick a CUDA kernel path, read when an op
// is enqueued (CUDA: on the JS thread; CPU: as they were at enqueue, see SwitchScope). A switch the environment
// leaves unset may be set from JS (setSwitch: the kernel tuning); the environment always wins. The project's own
// kernels not yet measured faster than the library path on a GPU run only where a switch asks for them
// (IRCONSTYLE_PW_SIMT=1, ...).
#pragma once

#include <map>
#include <memory>
#include <string>

namespace irc {
// Whether the switch `name` is exactly `value`: the environment's value, else the one set from JS (op_api.cpp).
bool env_is(const char* name, const char* value);
using SwitchMap = std::map<std::string, std::string>;
// Sets (value non-null) or clears the JS-side value of a switch; thread-safe.
void set_switch(const std::string& name, const char* value);
// The JS-side values now (null when none): the CPU executor takes one with each op it enqueues.
std::shared_ptr<const SwitchMap> switch_snapshot();
// While alive, switch reads on this thread see `snap` (the values when the op was enqueued), as on CUDA, whose ops
// read them at enqueue.
struct SwitchScope {
  explicit SwitchScope(std::shared_ptr<const SwitchMap> snap);
  ~SwitchScope();
  SwitchScope(const SwitchScope&) = delete;
  SwitchScope& operator=(const SwitchScope&) = delete;

 private:
  std::shared_ptr<const SwitchMap> prev_;
  bool prev_on_;
};
}  // namespace irc
