// cuBLAS and cuDNN reached at run time with dlopen, through declarations written in this project (no NVIDIA
// headers or libraries at build time). gpu_libs_check.cpp static_asserts these declarations against the real
// headers where they exist (the GPU machine): build it with -DIRCONSTYLE_CHECK_GPU_HEADERS=<include dirs>.
// Plain C++ (no CUDA headers): streams are void*.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace irc {
namespace gpu {

// ---- cuBLAS (libcublas.so.13 / .12) -------------------------------------------------------------------------
using cublasHandle_t = void*;
using cublasStatus_t = int;                 // CUBLAS_STATUS_SUCCESS = 0
enum : int { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
enum : int { CUBLAS_DEFAULT_MATH = 0, CUBLAS_TF32_TENSOR_OP_MATH = 3 };

struct Cublas {
  void* lib = nullptr;
  cublasStatus_t (*Create)(cublasHandle_t*) = nullptr;                         // cublasCreate_v2
  cublasStatus_t (*Destroy)(cublasHandle_t) = nullptr;                         // cublasDestroy_v2
  cublasStatus_t (*SetStream)(cublasHandle_t, void* stream) = nullptr;         // cublasSetStream_v2
  cublasStatus_t (*SetMathMode)(cublasHandle_t, int mode) = nullptr;           // cublasSetMathMode
  cublasStatus_t (*GetVersion)(cublasHandle_t, int* version) = nullptr;        // cublasGetVersion_v2
  // Column-major, as cuBLAS: C[m,n] = alpha op(A)[m,k] op(B)[k,n] + beta C.
  cublasStatus_t (*Sgemm)(cublasHandle_t, int transa, int transb, int m, int n, int k, const float* alpha,
                          const float* A, int lda, const float* B, int ldb, const float* beta, float* C,
                          int ldc) = nullptr;                                  // cublasSgemm_v2
  cublasStatus_t (*SgemmStridedBatched)(cublasHandle_t, int transa, int transb, int m, int n, int k,
                                        const float* alpha, const float* A, int lda, long long strideA,
                                        const float* B, int ldb, long long strideB, const float* beta, float* C,
                                        int ldc, long long strideC, int batchCount) = nullptr;
  cublasHandle_t handle = nullptr;  // one handle, created at load
  int version = 0;
};

// ---- cuDNN 9 legacy convolution API (libcudnn.so.9) ---------------------------------------------------------
using cudnnHandle_t = void*;
using cudnnTensorDescriptor_t = void*;
using cudnnFilterDescriptor_t = void*;
using cudnnConvolutionDescriptor_t = void*;
using cudnnStatus_t = int;                  // CUDNN_STATUS_SUCCESS = 0
enum : int { CUDNN_DATA_FLOAT = 0 };
enum : int { CUDNN_TENSOR_NCHW = 0, CUDNN_TENSOR_NHWC = 1 };
enum : int { CUDNN_CONVOLUTION = 0, CUDNN_CROSS_CORRELATION = 1 };
enum : int { CUDNN_DEFAULT_MATH = 0, CUDNN_TENSOR_OP_MATH = 1, CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION = 2, CUDNN_FMA_MATH = 3 };

// Layout of cudnnConvolution{Fwd,BwdData,BwdFilter}AlgoPerf_t (identical for the three; algo is an enum).
struct CudnnAlgoPerf {
  int algo;
  cudnnStatus_t status;
  float time;
  size_t memory;
  int determinism;
  int mathType;
  int reserved[3];
};

struct Cudnn {
  void* lib = nullptr;
  size_t (*GetVersion)() = nullptr;
  cudnnStatus_t (*Create)(cudnnHandle_t*) = nullptr;
  cudnnStatus_t (*Destroy)(cudnnHandle_t) = nullptr;
  cudnnStatus_t (*SetStream)(cudnnHandle_t, void* stream) = nullptr;
  cudnnStatus_t (*CreateTensorDescriptor)(cudnnTensorDescriptor_t*) = nullptr;
  cudnnStatus_t (*DestroyTensorDescriptor)(cudnnTensorDescriptor_t) = nullptr;
  cudnnStatus_t (*SetTensor4dDescriptor)(cudnnTensorDescriptor_t, int format, int dataType, int n, int c, int h,
                                         int w) = nullptr;
  cudnnStatus_t (*CreateFilterDescriptor)(cudnnFilterDescriptor_t*) = nullptr;
  cudnnStatus_t (*DestroyFilterDescriptor)(cudnnFilterDescriptor_t) = nullptr;
  cudnnStatus_t (*SetFilter4dDescriptor)(cudnnFilterDescriptor_t, int dataType, int format, int k, int c, int h,
                                         int w) = nullptr;
  cudnnStatus_t (*CreateConvolutionDescriptor)(cudnnConvolutionDescriptor_t*) = nullptr;
  cudnnStatus_t (*DestroyConvolutionDescriptor)(cudnnConvolutionDescriptor_t) = nullptr;
  cudnnStatus_t (*SetConvolution2dDescriptor)(cudnnConvolutionDescriptor_t, int pad_h, int pad_w, int u, int v,
                                              int dilation_h, int dilation_w, int mode, int computeType) = nullptr;
  cudnnStatus_t (*SetConvolutionGroupCount)(cudnnConvolutionDescriptor_t, int groupCount) = nullptr;
  cudnnStatus_t (*SetConvolutionMathType)(cudnnConvolutionDescriptor_t, int mathType) = nullptr;
  cudnnStatus_t (*GetConvolutionForwardAlgorithm_v7)(cudnnHandle_t, cudnnTensorDescriptor_t, cudnnFilterDescriptor_t,
                                                     cudnnConvolutionDescriptor_t, cudnnTensorDescriptor_t,
                                                     int requested, int* returned, CudnnAlgoPerf* perf) = nullptr;
  cudnnStatus_t (*GetConvolutionBackwardDataAlgorithm_v7)(cudnnHandle_t, cudnnFilterDescriptor_t,
                                                          cudnnTensorDescriptor_t, cudnnConvolutionDescriptor_t,
                                                          cudnnTensorDescriptor_t, int requested, int* returned,
                                                          CudnnAlgoPerf* perf) = nullptr;
  cudnnStatus_t (*GetConvolutionBackwardFilterAlgorithm_v7)(cudnnHandle_t, cudnnTensorDescriptor_t,
                                                            cudnnTensorDescriptor_t, cudnnConvolutionDescriptor_t,
                                                            cudnnFilterDescriptor_t, int requested, int* returned,
                                                            CudnnAlgoPerf* perf) = nullptr;
  cudnnStatus_t (*GetConvolutionForwardWorkspaceSize)(cudnnHandle_t, cudnnTensorDescriptor_t, cudnnFilterDescriptor_t,
                                                      cudnnConvolutionDescriptor_t, cudnnTensorDescriptor_t, int algo,
                                                      size_t* bytes) = nullptr;
  cudnnStatus_t (*GetConvolutionBackwardDataWorkspaceSize)(cudnnHandle_t, cudnnFilterDescriptor_t,
                                                           cudnnTensorDescriptor_t, cudnnConvolutionDescriptor_t,
                                                           cudnnTensorDescriptor_t, int algo, size_t* bytes) = nullptr;
  cudnnStatus_t (*GetConvolutionBackwardFilterWorkspaceSize)(cudnnHandle_t, cudnnTensorDescriptor_t,
                                                             cudnnTensorDescriptor_t, cudnnConvolutionDescriptor_t,
                                                             cudnnFilterDescriptor_t, int algo, size_t* bytes) = nullptr;
  cudnnStatus_t (*ConvolutionForward)(cudnnHandle_t, const void* alpha, cudnnTensorDescriptor_t, const void* x,
                                      cudnnFilterDescriptor_t, const void* w, cudnnConvolutionDescriptor_t, int algo,
                                      void* workspace, size_t workspaceBytes, const void* beta,
                                      cudnnTensorDescriptor_t, void* y) = nullptr;
  cudnnStatus_t (*ConvolutionBackwardData)(cudnnHandle_t, const void* alpha, cudnnFilterDescriptor_t, const void* w,
                                           cudnnTensorDescriptor_t, const void* dy, cudnnConvolutionDescriptor_t,
                                           int algo, void* workspace, size_t workspaceBytes, const void* beta,
                                           cudnnTensorDescriptor_t, void* dx) = nullptr;
  cudnnStatus_t (*ConvolutionBackwardFilter)(cudnnHandle_t, const void* alpha, cudnnTensorDescriptor_t, const void* x,
                                             cudnnTensorDescriptor_t, const void* dy, cudnnConvolutionDescriptor_t,
                                             int algo, void* workspace, size_t workspaceBytes, const void* beta,
                                             cudnnFilterDescriptor_t, void* dw) = nullptr;
  const char* (*GetErrorString)(cudnnStatus_t) = nullptr;
  cudnnHandle_t handle = nullptr;
  size_t version = 0;
};

// Loaded on first use (thread-safe). nullptr when unavailable; why_not() then says what was searched and failed.
const Cublas* cublas();
const Cudnn* cudnn();
std::string cublas_why_not();
std::string cudnn_why_not();
// One line per library: "cuBLAS 13.0.x from /path" or "cuBLAS not found (searched ...)".
std::string report();

}  // namespace gpu
}  // namespace irc
