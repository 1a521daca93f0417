// CUDA presence probe. cudart is linked statically, so this file needs only the CUDA runtime header at build
// time and loads on machines with no driver: there cudaGetDeviceCount returns an error, reported as a reason.
#include <cuda_runtime.h>

#include <string>

#include "probe.h"

namespace irc {
namespace {
std::string cuda_version(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }
}  // namespace

std::string cuda_unavailable(int rc) {
  const cudaError_t e = static_cast<cudaError_t>(rc);
  cudaGetLastError();
  const std::string name = cudaGetErrorName(e);
  if (e == cudaErrorInsufficientDriver) {
    int driver = 0;  // the CUDA version the installed driver supports; 0 when there is no driver
    if (cudaDriverGetVersion(&driver) != cudaSuccess) driver = 0;
    cudaGetLastError();
    if (driver == 0) return name + ": no NVIDIA driver found";
    return name + ": the NVIDIA driver supports CUDA " + cuda_version(driver) + ", this build needs " +
           cuda_version(CUDART_VERSION);
  }
  return name + ": " + cudaGetErrorString(e);
}

CudaProbe cuda_probe() {
  CudaProbe p{true, 0, "", ""};
  int n = 0;
  cudaError_t rc = cudaGetDeviceCount(&n);
  if (rc != cudaSuccess) {
    p.error = cuda_unavailable(rc);
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
