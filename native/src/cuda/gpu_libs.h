// cuBLAS, cuBLASLt and cuDNN reached at run time with dlopen, through declarations written in this project (no NVIDIA
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

// ---- cuBLASLt (libcublasLt.so.13 / .12): the few entry points of the fused-epilogue GEMMs (ops/matmul.cu) ------
// Values from cublasLt.h / cublas_api.h / library_types.h (cuBLAS 12.6.3 headers; the NVIDIA cuBLAS docs and the
// nvmath-python cuBLASLt bindings list the same), proved against the installed headers by gpu_libs_check.cpp.
using cublasLtHandle_t = void*;
using cublasLtMatmulDesc_t = void*;
using cublasLtMatrixLayout_t = void*;
using cublasLtMatmulPreference_t = void*;
enum : int { CUBLAS_COMPUTE_32F = 68, CUBLAS_COMPUTE_32F_FAST_TF32 = 77 };  // cublasComputeType_t
enum : int { CUDA_R_32F = 0 };                                               // cudaDataType
enum : int {                                                                 // cublasLtMatmulDescAttributes_t
  CUBLASLT_MATMUL_DESC_TRANSA = 3,          // int32_t (cublasOperation_t)
  CUBLASLT_MATMUL_DESC_TRANSB = 4,          // int32_t
  CUBLASLT_MATMUL_DESC_EPILOGUE = 7,        // uint32_t (cublasLtEpilogue_t)
  CUBLASLT_MATMUL_DESC_BIAS_POINTER = 8,    // const void* (bias) / void* (bias gradient)
  CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE = 26  // int32_t (cudaDataType)
};
enum : int {  // cublasLtEpilogue_t
  CUBLASLT_EPILOGUE_DEFAULT = 1,
  CUBLASLT_EPILOGUE_BIAS = 4,      // D += bias broadcast over D's columns; bias length = rows of D
  CUBLASLT_EPILOGUE_BGRADA = 256,  // bias gradient = sums of op(A) over k; length = rows of D
  CUBLASLT_EPILOGUE_BGRADB = 512   // bias gradient = sums of op(B) over k; length = columns of D
};
enum : int {                                  // cublasLtMatrixLayoutAttribute_t
  CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT = 5,     // int32_t, default 1
  CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET = 6  // int64_t, elements between the batch's matrices
};
enum : int {  // cublasLtMatmulPreferenceAttributes_t
  CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1,  // uint64_t
  CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES = 5,  // uint32_t, default 256
  CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES = 6,
  CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES = 7,
  CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES = 8
};

struct CublasLtMatmulAlgo {  // cublasLtMatmulAlgo_t (semi-opaque, copied by value)
  uint64_t data[8];
};
struct CublasLtHeuristicResult {  // cublasLtMatmulHeuristicResult_t
  CublasLtMatmulAlgo algo;
  size_t workspaceSize;
  cublasStatus_t state;
  float wavesCount;
  int reserved[4];
};

struct CublasLt {
  void* lib = nullptr;
  cublasStatus_t (*Create)(cublasLtHandle_t*) = nullptr;
  cublasStatus_t (*Destroy)(cublasLtHandle_t) = nullptr;
  size_t (*GetVersion)() = nullptr;
  cublasStatus_t (*MatmulDescCreate)(cublasLtMatmulDesc_t*, int computeType, int scaleType) = nullptr;
  cublasStatus_t (*MatmulDescDestroy)(cublasLtMatmulDesc_t) = nullptr;
  cublasStatus_t (*MatmulDescSetAttribute)(cublasLtMatmulDesc_t, int attr, const void* buf, size_t bytes) = nullptr;
  cublasStatus_t (*MatrixLayoutCreate)(cublasLtMatrixLayout_t*, int type, uint64_t rows, uint64_t cols,
                                       int64_t ld) = nullptr;
  cublasStatus_t (*MatrixLayoutDestroy)(cublasLtMatrixLayout_t) = nullptr;
  cublasStatus_t (*MatrixLayoutSetAttribute)(cublasLtMatrixLayout_t, int attr, const void* buf, size_t bytes) = nullptr;
  cublasStatus_t (*MatmulPreferenceCreate)(cublasLtMatmulPreference_t*) = nullptr;
  cublasStatus_t (*MatmulPreferenceSetAttribute)(cublasLtMatmulPreference_t, int attr, const void* buf,
                                                 size_t bytes) = nullptr;
  cublasStatus_t (*MatmulPreferenceDestroy)(cublasLtMatmulPreference_t) = nullptr;
  cublasStatus_t (*MatmulAlgoGetHeuristic)(cublasLtHandle_t, cublasLtMatmulDesc_t, cublasLtMatrixLayout_t Adesc,
                                           cublasLtMatrixLayout_t Bdesc, cublasLtMatrixLayout_t Cdesc,
                                           cublasLtMatrixLayout_t Ddesc, cublasLtMatmulPreference_t,
                                           int requested, CublasLtHeuristicResult* results,
                                           int* returned) = nullptr;
  // Column-major, as cuBLAS: D = alpha op(A) op(B) + beta C, then the epilogue.
  cublasStatus_t (*Matmul)(cublasLtHandle_t, cublasLtMatmulDesc_t, const void* alpha, const void* A,
                           cublasLtMatrixLayout_t, const void* B, cublasLtMatrixLayout_t, const void* beta,
                           const void* C, cublasLtMatrixLayout_t, void* D, cublasLtMatrixLayout_t,
                           const CublasLtMatmulAlgo* algo, void* workspace, size_t workspaceBytes,
                           void* stream) = nullptr;
  cublasLtHandle_t handle = nullptr;  // one handle, created at load
  size_t version = 0;                 // major*10000 + minor*100 + patch
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
  // Optional (nullptr when the library lacks them): autotuning, each algorithm timed on the call's own buffers
  // (IRCONSTYLE_CUDNN_FIND=1; conv2d.cu).
  cudnnStatus_t (*FindConvolutionForwardAlgorithmEx)(cudnnHandle_t, cudnnTensorDescriptor_t, const void* x,
                                                     cudnnFilterDescriptor_t, const void* w,
                                                     cudnnConvolutionDescriptor_t, cudnnTensorDescriptor_t, void* y,
                                                     int requested, int* returned, CudnnAlgoPerf* perf,
                                                     void* workspace, size_t workspaceBytes) = nullptr;
  cudnnStatus_t (*FindConvolutionBackwardDataAlgorithmEx)(cudnnHandle_t, cudnnFilterDescriptor_t, const void* w,
                                                          cudnnTensorDescriptor_t, const void* dy,
                                                          cudnnConvolutionDescriptor_t, cudnnTensorDescriptor_t,
                                                          void* dx, int requested, int* returned,
                                                          CudnnAlgoPerf* perf, void* workspace,
                                                          size_t workspaceBytes) = nullptr;
  cudnnStatus_t (*FindConvolutionBackwardFilterAlgorithmEx)(cudnnHandle_t, cudnnTensorDescriptor_t, const void* x,
                                                            cudnnTensorDescriptor_t, const void* dy,
                                                            cudnnConvolutionDescriptor_t, cudnnFilterDescriptor_t,
                                                            void* dw, int requested, int* returned,
                                                            CudnnAlgoPerf* perf, void* workspace,
                                                            size_t workspaceBytes) = nullptr;
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
// nullptr also when IRCONSTYLE_CUBLASLT=0 (read once, at the first call): every cuBLASLt path then falls back.
const CublasLt* cublaslt();
std::string cublas_why_not();
std::string cudnn_why_not();
std::string cublaslt_why_not();
// Bookkeeping of the cuBLASLt GEMM plans (ops/matmul.cu), shown by report(): one call per new plan (ok, or why it
// falls back to cuBLAS), and demoted = true when a plan that was ok failed at run time and falls back from then on.
void cublaslt_note_plan(bool ok, const std::string& why_not, bool demoted = false);
// One line per library (cuBLAS, cuBLASLt, cuDNN): "cuBLAS 13.0.x from /path" or "cuBLAS not found (searched ...)".
// The cuBLASLt line also counts the GEMM plans made so far that run on cuBLASLt and those it refused (their calls
// take the cuBLAS path), with the first refusal's reason, so a call after some steps shows whether the fused paths
// are taken.
std::string report();

}  // namespace gpu
}  // namespace irc
