// Compile-time proof that the hand-written declarations of gpu_libs.h match the real cuBLAS / cuBLASLt / cuDNN
// headers. Compiled to nothing unless IRCONSTYLE_CHECK_GPU_HEADERS is defined (CMake option of the same name, a
// ;-list of include dirs holding cublas_v2.h, cublasLt.h, cudnn.h and the CUDA runtime headers). On the GPU machine,
// from the repository root (cublas_v2.h and cublasLt.h are in $NV/cu13/include, cudnn.h in $NV/cudnn/include):
//   NV=$(python3 -c 'import nvidia;print(list(nvidia.__path__)[0])')
//   g++ -std=c++17 -fsyntax-only -DIRCONSTYLE_CHECK_GPU_HEADERS -I$NV/cudnn/include -I$NV/cu13/include -I/usr/local/cuda/include -Inative/src native/src/cuda/gpu_libs_check.cpp && echo gpu_libs_check OK
// (no output but the OK line means every assertion held). Function types are compared after mapping the real
// signature onto ours: pointers to opaque structs (handles, descriptors, streams) become void*, enums become int,
// the AlgoPerf structs become CudnnAlgoPerf, cublasLtMatmulAlgo_t / cublasLtMatmulHeuristicResult_t become
// CublasLtMatmulAlgo / CublasLtHeuristicResult; every other parameter (counts, float pointers, strides, sizes)
// must be identical, so the parameter count and order are checked too.
#ifdef IRCONSTYLE_CHECK_GPU_HEADERS

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cudnn.h>

#include <cstddef>
#include <type_traits>

#include "gpu_libs.h"

namespace irc {
namespace gpu {
namespace header_check {

template <class T>
struct N {
  using type = std::conditional_t<std::is_enum<T>::value, int, T>;
};
template <class T>
struct N<T*> {
  using type = std::conditional_t<std::is_class<T>::value, void*, typename N<T>::type*>;
};
template <class T>
struct N<const T*> {
  using type = std::conditional_t<std::is_class<T>::value, const void*, const typename N<T>::type*>;
};
template <>
struct N<cudnnConvolutionFwdAlgoPerf_t*> {
  using type = CudnnAlgoPerf*;
};
template <>
struct N<cudnnConvolutionBwdDataAlgoPerf_t*> {
  using type = CudnnAlgoPerf*;
};
template <>
struct N<cudnnConvolutionBwdFilterAlgoPerf_t*> {
  using type = CudnnAlgoPerf*;
};
template <>
struct N<cublasLtMatmulHeuristicResult_t*> {
  using type = CublasLtHeuristicResult*;
};
template <>
struct N<const cublasLtMatmulAlgo_t*> {
  using type = const CublasLtMatmulAlgo*;
};
template <class R, class... A>
struct N<R (*)(A...)> {
  using type = typename N<R>::type (*)(typename N<A>::type...);
};

template <class Real, class Ours>
constexpr bool same_sig = std::is_same<typename N<Real>::type, Ours>::value;

// Enum constants compared as ints (ours are unnamed enums, theirs named ones).
constexpr bool eq(int a, int b) { return a == b; }

#define IRC_SIG(S, member, fn) \
  static_assert(same_sig<decltype(&fn), decltype(S::member)>, #fn " differs from " #S "::" #member)

// ---- opaque types are pointers (ours are void*), enums are int-sized ----------------------------------------
static_assert(std::is_pointer<::cublasHandle_t>::value, "cublasHandle_t is a pointer");
static_assert(std::is_pointer<::cudaStream_t>::value, "cudaStream_t is a pointer");
static_assert(std::is_pointer<::cudnnHandle_t>::value, "cudnnHandle_t is a pointer");
static_assert(std::is_pointer<::cudnnTensorDescriptor_t>::value, "cudnnTensorDescriptor_t is a pointer");
static_assert(std::is_pointer<::cudnnFilterDescriptor_t>::value, "cudnnFilterDescriptor_t is a pointer");
static_assert(std::is_pointer<::cudnnConvolutionDescriptor_t>::value, "cudnnConvolutionDescriptor_t is a pointer");
static_assert(sizeof(::cublasStatus_t) == sizeof(int) && sizeof(::cublasOperation_t) == sizeof(int) &&
                  sizeof(::cublasMath_t) == sizeof(int),
              "cuBLAS enums are int-sized");
static_assert(std::is_pointer<::cublasLtHandle_t>::value && std::is_pointer<::cublasLtMatmulDesc_t>::value &&
                  std::is_pointer<::cublasLtMatrixLayout_t>::value &&
                  std::is_pointer<::cublasLtMatmulPreference_t>::value,
              "cuBLASLt handle and descriptors are pointers");
static_assert(sizeof(::cublasComputeType_t) == sizeof(int) && sizeof(::cudaDataType) == sizeof(int) &&
                  sizeof(::cublasLtMatmulDescAttributes_t) == sizeof(int) &&
                  sizeof(::cublasLtEpilogue_t) == sizeof(int) &&
                  sizeof(::cublasLtMatmulPreferenceAttributes_t) == sizeof(int),
              "cuBLASLt enums are int-sized");
static_assert(sizeof(::cudnnStatus_t) == sizeof(int) && sizeof(::cudnnDataType_t) == sizeof(int) &&
                  sizeof(::cudnnTensorFormat_t) == sizeof(int) && sizeof(::cudnnConvolutionMode_t) == sizeof(int) &&
                  sizeof(::cudnnMathType_t) == sizeof(int) && sizeof(::cudnnConvolutionFwdAlgo_t) == sizeof(int) &&
                  sizeof(::cudnnConvolutionBwdDataAlgo_t) == sizeof(int) &&
                  sizeof(::cudnnConvolutionBwdFilterAlgo_t) == sizeof(int) &&
                  sizeof(::cudnnDeterminism_t) == sizeof(int),
              "cuDNN enums are int-sized");

// ---- enum values ----------------------------------------------------------------------------------------------
static_assert(::CUBLAS_STATUS_SUCCESS == 0, "CUBLAS_STATUS_SUCCESS");
static_assert(eq(gpu::CUBLAS_OP_N, ::CUBLAS_OP_N) && eq(gpu::CUBLAS_OP_T, ::CUBLAS_OP_T), "cublasOperation_t");
static_assert(eq(gpu::CUBLAS_DEFAULT_MATH, ::CUBLAS_DEFAULT_MATH), "CUBLAS_DEFAULT_MATH");
static_assert(eq(gpu::CUBLAS_TF32_TENSOR_OP_MATH, ::CUBLAS_TF32_TENSOR_OP_MATH), "CUBLAS_TF32_TENSOR_OP_MATH");
static_assert(eq(gpu::CUBLAS_COMPUTE_32F, ::CUBLAS_COMPUTE_32F) &&
                  eq(gpu::CUBLAS_COMPUTE_32F_FAST_TF32, ::CUBLAS_COMPUTE_32F_FAST_TF32),
              "cublasComputeType_t");
static_assert(eq(gpu::CUDA_R_32F, ::CUDA_R_32F), "CUDA_R_32F");
static_assert(eq(gpu::CUBLASLT_MATMUL_DESC_TRANSA, ::CUBLASLT_MATMUL_DESC_TRANSA) &&
                  eq(gpu::CUBLASLT_MATMUL_DESC_TRANSB, ::CUBLASLT_MATMUL_DESC_TRANSB) &&
                  eq(gpu::CUBLASLT_MATMUL_DESC_EPILOGUE, ::CUBLASLT_MATMUL_DESC_EPILOGUE) &&
                  eq(gpu::CUBLASLT_MATMUL_DESC_BIAS_POINTER, ::CUBLASLT_MATMUL_DESC_BIAS_POINTER) &&
                  eq(gpu::CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, ::CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE),
              "cublasLtMatmulDescAttributes_t");
static_assert(eq(gpu::CUBLASLT_EPILOGUE_DEFAULT, ::CUBLASLT_EPILOGUE_DEFAULT) &&
                  eq(gpu::CUBLASLT_EPILOGUE_BIAS, ::CUBLASLT_EPILOGUE_BIAS) &&
                  eq(gpu::CUBLASLT_EPILOGUE_BGRADA, ::CUBLASLT_EPILOGUE_BGRADA) &&
                  eq(gpu::CUBLASLT_EPILOGUE_BGRADB, ::CUBLASLT_EPILOGUE_BGRADB),
              "cublasLtEpilogue_t");
static_assert(eq(gpu::CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, ::CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT) &&
                  eq(gpu::CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, ::CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET),
              "cublasLtMatrixLayoutAttribute_t values");
static_assert(eq(gpu::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, ::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES) &&
                  eq(gpu::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, ::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES) &&
                  eq(gpu::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, ::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES) &&
                  eq(gpu::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, ::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES) &&
                  eq(gpu::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, ::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES),
              "cublasLtMatmulPreferenceAttributes_t");
static_assert(::CUDNN_STATUS_SUCCESS == 0, "CUDNN_STATUS_SUCCESS");
static_assert(eq(gpu::CUDNN_DATA_FLOAT, ::CUDNN_DATA_FLOAT), "CUDNN_DATA_FLOAT");
static_assert(eq(gpu::CUDNN_TENSOR_NCHW, ::CUDNN_TENSOR_NCHW) && eq(gpu::CUDNN_TENSOR_NHWC, ::CUDNN_TENSOR_NHWC),
              "cudnnTensorFormat_t");
static_assert(eq(gpu::CUDNN_CONVOLUTION, ::CUDNN_CONVOLUTION) &&
                  eq(gpu::CUDNN_CROSS_CORRELATION, ::CUDNN_CROSS_CORRELATION),
              "cudnnConvolutionMode_t");
static_assert(eq(gpu::CUDNN_DEFAULT_MATH, ::CUDNN_DEFAULT_MATH) &&
                  eq(gpu::CUDNN_TENSOR_OP_MATH, ::CUDNN_TENSOR_OP_MATH) &&
                  eq(gpu::CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION, ::CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) &&
                  eq(gpu::CUDNN_FMA_MATH, ::CUDNN_FMA_MATH),
              "cudnnMathType_t");
static_assert(::CUDNN_NON_DETERMINISTIC == 0 && ::CUDNN_DETERMINISTIC == 1, "cudnnDeterminism_t (used as int)");

// ---- CudnnAlgoPerf layout -------------------------------------------------------------------------------------
#define IRC_PERF(T)                                                                                            \
  static_assert(sizeof(CudnnAlgoPerf) == sizeof(T) && alignof(CudnnAlgoPerf) == alignof(T), #T " size/align"); \
  static_assert(offsetof(CudnnAlgoPerf, algo) == offsetof(T, algo), #T ".algo");                               \
  static_assert(offsetof(CudnnAlgoPerf, status) == offsetof(T, status), #T ".status");                         \
  static_assert(offsetof(CudnnAlgoPerf, time) == offsetof(T, time), #T ".time");                               \
  static_assert(offsetof(CudnnAlgoPerf, memory) == offsetof(T, memory), #T ".memory");                         \
  static_assert(offsetof(CudnnAlgoPerf, determinism) == offsetof(T, determinism), #T ".determinism");          \
  static_assert(offsetof(CudnnAlgoPerf, mathType) == offsetof(T, mathType), #T ".mathType");                   \
  static_assert(offsetof(CudnnAlgoPerf, reserved) == offsetof(T, reserved), #T ".reserved");                   \
  static_assert(sizeof(CudnnAlgoPerf::reserved) == sizeof(T::reserved), #T ".reserved size");                  \
  static_assert(std::is_same<decltype(CudnnAlgoPerf::memory), decltype(T::memory)>::value, #T ".memory type"); \
  static_assert(std::is_same<decltype(CudnnAlgoPerf::time), decltype(T::time)>::value, #T ".time type")
IRC_PERF(::cudnnConvolutionFwdAlgoPerf_t);
IRC_PERF(::cudnnConvolutionBwdDataAlgoPerf_t);
IRC_PERF(::cudnnConvolutionBwdFilterAlgoPerf_t);
#undef IRC_PERF

// ---- cuBLASLt structs -------------------------------------------------------------------------------------------
static_assert(sizeof(CublasLtMatmulAlgo) == sizeof(::cublasLtMatmulAlgo_t) &&
                  alignof(CublasLtMatmulAlgo) == alignof(::cublasLtMatmulAlgo_t),
              "cublasLtMatmulAlgo_t size/align");
static_assert(sizeof(CublasLtMatmulAlgo::data) == sizeof(::cublasLtMatmulAlgo_t::data) &&
                  offsetof(CublasLtMatmulAlgo, data) == offsetof(::cublasLtMatmulAlgo_t, data) &&
                  std::is_same<decltype(CublasLtMatmulAlgo::data), decltype(::cublasLtMatmulAlgo_t::data)>::value,
              "cublasLtMatmulAlgo_t.data");
using LtRes = ::cublasLtMatmulHeuristicResult_t;
static_assert(sizeof(CublasLtHeuristicResult) == sizeof(LtRes) && alignof(CublasLtHeuristicResult) == alignof(LtRes),
              "cublasLtMatmulHeuristicResult_t size/align");
static_assert(offsetof(CublasLtHeuristicResult, algo) == offsetof(LtRes, algo), "HeuristicResult.algo");
static_assert(offsetof(CublasLtHeuristicResult, workspaceSize) == offsetof(LtRes, workspaceSize),
              "HeuristicResult.workspaceSize");
static_assert(offsetof(CublasLtHeuristicResult, state) == offsetof(LtRes, state), "HeuristicResult.state");
static_assert(offsetof(CublasLtHeuristicResult, wavesCount) == offsetof(LtRes, wavesCount),
              "HeuristicResult.wavesCount");
static_assert(offsetof(CublasLtHeuristicResult, reserved) == offsetof(LtRes, reserved), "HeuristicResult.reserved");
static_assert(sizeof(CublasLtHeuristicResult::reserved) == sizeof(LtRes::reserved), "HeuristicResult.reserved size");
static_assert(std::is_same<decltype(CublasLtHeuristicResult::workspaceSize), decltype(LtRes::workspaceSize)>::value &&
                  std::is_same<decltype(CublasLtHeuristicResult::wavesCount), decltype(LtRes::wavesCount)>::value &&
                  std::is_same<N<decltype(LtRes::state)>::type, decltype(CublasLtHeuristicResult::state)>::value &&
                  std::is_same<decltype(LtRes::algo), ::cublasLtMatmulAlgo_t>::value,
              "HeuristicResult member types");

// ---- cuBLAS functions -----------------------------------------------------------------------------------------
IRC_SIG(Cublas, Create, cublasCreate_v2);
IRC_SIG(Cublas, Destroy, cublasDestroy_v2);
IRC_SIG(Cublas, SetStream, cublasSetStream_v2);
IRC_SIG(Cublas, SetMathMode, cublasSetMathMode);
IRC_SIG(Cublas, GetVersion, cublasGetVersion_v2);
IRC_SIG(Cublas, Sgemm, cublasSgemm_v2);
IRC_SIG(Cublas, SgemmStridedBatched, cublasSgemmStridedBatched);

// ---- cuBLASLt functions ---------------------------------------------------------------------------------------
IRC_SIG(CublasLt, Create, cublasLtCreate);
IRC_SIG(CublasLt, Destroy, cublasLtDestroy);
IRC_SIG(CublasLt, GetVersion, cublasLtGetVersion);
IRC_SIG(CublasLt, MatmulDescCreate, cublasLtMatmulDescCreate);
IRC_SIG(CublasLt, MatmulDescDestroy, cublasLtMatmulDescDestroy);
IRC_SIG(CublasLt, MatmulDescSetAttribute, cublasLtMatmulDescSetAttribute);
IRC_SIG(CublasLt, MatrixLayoutCreate, cublasLtMatrixLayoutCreate);
IRC_SIG(CublasLt, MatrixLayoutDestroy, cublasLtMatrixLayoutDestroy);
IRC_SIG(CublasLt, MatrixLayoutSetAttribute, cublasLtMatrixLayoutSetAttribute);
IRC_SIG(CublasLt, MatmulPreferenceCreate, cublasLtMatmulPreferenceCreate);
IRC_SIG(CublasLt, MatmulPreferenceSetAttribute, cublasLtMatmulPreferenceSetAttribute);
IRC_SIG(CublasLt, MatmulPreferenceDestroy, cublasLtMatmulPreferenceDestroy);
IRC_SIG(CublasLt, MatmulAlgoGetHeuristic, cublasLtMatmulAlgoGetHeuristic);
IRC_SIG(CublasLt, Matmul, cublasLtMatmul);

// ---- cuDNN functions ------------------------------------------------------------------------------------------
IRC_SIG(Cudnn, GetVersion, cudnnGetVersion);
IRC_SIG(Cudnn, Create, cudnnCreate);
IRC_SIG(Cudnn, Destroy, cudnnDestroy);
IRC_SIG(Cudnn, SetStream, cudnnSetStream);
IRC_SIG(Cudnn, CreateTensorDescriptor, cudnnCreateTensorDescriptor);
IRC_SIG(Cudnn, DestroyTensorDescriptor, cudnnDestroyTensorDescriptor);
IRC_SIG(Cudnn, SetTensor4dDescriptor, cudnnSetTensor4dDescriptor);
IRC_SIG(Cudnn, CreateFilterDescriptor, cudnnCreateFilterDescriptor);
IRC_SIG(Cudnn, DestroyFilterDescriptor, cudnnDestroyFilterDescriptor);
IRC_SIG(Cudnn, SetFilter4dDescriptor, cudnnSetFilter4dDescriptor);
IRC_SIG(Cudnn, CreateConvolutionDescriptor, cudnnCreateConvolutionDescriptor);
IRC_SIG(Cudnn, DestroyConvolutionDescriptor, cudnnDestroyConvolutionDescriptor);
IRC_SIG(Cudnn, SetConvolution2dDescriptor, cudnnSetConvolution2dDescriptor);
IRC_SIG(Cudnn, SetConvolutionGroupCount, cudnnSetConvolutionGroupCount);
IRC_SIG(Cudnn, SetConvolutionMathType, cudnnSetConvolutionMathType);
IRC_SIG(Cudnn, GetConvolutionForwardAlgorithm_v7, cudnnGetConvolutionForwardAlgorithm_v7);
IRC_SIG(Cudnn, GetConvolutionBackwardDataAlgorithm_v7, cudnnGetConvolutionBackwardDataAlgorithm_v7);
IRC_SIG(Cudnn, GetConvolutionBackwardFilterAlgorithm_v7, cudnnGetConvolutionBackwardFilterAlgorithm_v7);
IRC_SIG(Cudnn, GetConvolutionForwardWorkspaceSize, cudnnGetConvolutionForwardWorkspaceSize);
IRC_SIG(Cudnn, GetConvolutionBackwardDataWorkspaceSize, cudnnGetConvolutionBackwardDataWorkspaceSize);
IRC_SIG(Cudnn, GetConvolutionBackwardFilterWorkspaceSize, cudnnGetConvolutionBackwardFilterWorkspaceSize);
IRC_SIG(Cudnn, FindConvolutionForwardAlgorithmEx, cudnnFindConvolutionForwardAlgorithmEx);
IRC_SIG(Cudnn, FindConvolutionBackwardDataAlgorithmEx, cudnnFindConvolutionBackwardDataAlgorithmEx);
IRC_SIG(Cudnn, FindConvolutionBackwardFilterAlgorithmEx, cudnnFindConvolutionBackwardFilterAlgorithmEx);
IRC_SIG(Cudnn, ConvolutionForward, cudnnConvolutionForward);
IRC_SIG(Cudnn, ConvolutionBackwardData, cudnnConvolutionBackwardData);
IRC_SIG(Cudnn, ConvolutionBackwardFilter, cudnnConvolutionBackwardFilter);
IRC_SIG(Cudnn, GetErrorString, cudnnGetErrorString);

#undef IRC_SIG

}  // namespace header_check
}  // namespace gpu
}  // namespace irc

#endif  // IRCONSTYLE_CHECK_GPU_HEADERS
