// Whether a usable CUDA device is present. Implemented in probe.cu when built with nvcc, else probe_none.cpp.
#pragma once
#include <string>
namespace irc {
struct CudaProbe {
  bool compiled;     // the addon was built with CUDA sources
  int devices;       // devices visible to the CUDA runtime (0 when none or no driver)
  std::string name;  // device 0 name, when present
  std::string error; // why no device is usable, when devices == 0
};
CudaProbe cuda_probe();
// CUDA builds (probe.cu): why the CUDA runtime is unusable after a call failed with `rc` (a cudaError_t), as
// "<error name>: <why>". For cudaErrorInsufficientDriver, whether there is no NVIDIA driver at all or which CUDA
// version the installed one supports against the one this build needs; otherwise the error's message. Clears the
// thread's last error.
std::string cuda_unavailable(int rc);
}  // namespace irc
