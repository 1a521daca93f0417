// CUDA presence probe. cudart is linked statically, so this file needs only the CUDA runtime header at build
// time and loads on machines with no driver: there cudaGetDeviceCount returns an error, reported as a reason.
#include <cuda_runtime.h>

#include "probe.h"

namespace irc {
CudaProbe cuda_probe() {
  CudaProbe p{true, 0, "", ""};
  int n = 0;
  cudaError_t rc = cudaGetDeviceCount(&n);
  if (rc != cudaSuccess) {
    p.error = std::string(cudaGetErrorName(rc)) + ": " + cudaGetErrorString(rc);
    return p;
  }
  p.devices = n;
  if (n == 0) {
    p.error = "no CUDA device";
    return p;
  }
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) p.name = prop.name;
  return p;
}
}  // namespace irc
