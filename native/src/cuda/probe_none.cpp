// Used when the addon is built without nvcc (see CMakeLists.txt / binding.gyp).
#ifndef IRC_WITH_CUDA
#include "probe.h"
namespace irc {
CudaProbe cuda_probe() { return {false, 0, "", "built without CUDA (nvcc was not found at build time)"}; }
}  // namespace irc
#endif
