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
}  // namespace irc
