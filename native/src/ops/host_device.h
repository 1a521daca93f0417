// Functions compiled for both sides: the CUDA kernels' phases that the CPU backend also runs (host models, see
// native/src/cuda/README.md). IRC_HD marks them (__host__ __device__ under nvcc); IRC_UNROLL asks nvcc to unroll a
// loop (nothing on the host compiler, which would warn about the pragma).
#pragma once

#ifdef __CUDACC__
#define IRC_HD __host__ __device__ __forceinline__
#define IRC_UNROLL _Pragma("unroll")
#else
#define IRC_HD inline
#define IRC_UNROLL
#endif
