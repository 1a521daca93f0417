// CUDA matmul (ops.def) through cuBLAS, plus the cuBLAS helpers shared with linear.cu and conv2d.cu (namespace
// irc::blas, declared in cuda/blas.cuh): row-major GEMM on cuBLAS's column-major API, bias row fill,
// deterministic column sums (fixed two-pass reduction, no atomics), and the cuBLASLt GEMM with a fused bias
// epilogue (gemm_bias; see the cuBLASLt section below).
// Row-major trick: a row-major [r, c] matrix with leading dim ld is the column-major [c, r] matrix with the same
// ld, so C = op(A) op(B) (row-major) is computed as C^T = op(B)^T op(A)^T (column-major) by swapping the operands.
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "../cuda/blas.cuh"
#include "../cuda/common.cuh"
#include "../cuda/gpu_libs.h"
#include "switches.h"

namespace irc {
namespace blas {

namespace {

void status(const KernelCtx& k, int st, const char* what) {
  if (st != 0) op_fail("E_CUDA", std::string(k.op) + ": " + what + " failed with cuBLAS status " + std::to_string(st));
}

int as_int(const KernelCtx& k, int64_t v, const char* what) {
  if (v < 0 || v > INT_MAX)
    op_fail("E_CUDA", std::string(k.op) + ": " + what + " = " + std::to_string(v) + " exceeds cuBLAS's int range");
  return static_cast<int>(v);
}


// C[r, c] (leading dim ldc) = 0 for r < rows, c < cols.
__global__ void zero_rows_k(float* __restrict__ C, int64_t rows, int64_t cols, int64_t ldc) {
  const int64_t n = rows * cols;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    C[(i / cols) * ldc + i % cols] = 0.f;
}

__global__ void fill_rows_k(float* __restrict__ y, const float* __restrict__ b, int64_t rows, int64_t cols) {
  const int64_t n = rows * cols;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = b[i % cols];
}

__global__ void fill_rows4_k(float4* __restrict__ y, const float4* __restrict__ b, int64_t rows, int64_t cols4) {
  const int64_t n = rows * cols4;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = b[i % cols4];
}

// Pass 1: block (32 columns x 8 row lanes) sums the rows [rows*q/parts, rows*(q+1)/parts) of its 32 columns
// (q = blockIdx.y); lanes combine in a fixed order. out = part sums [parts, cols].
__global__ void colsum_part_k(const float* __restrict__ x, int64_t rows, int64_t cols, int parts,
                              float* __restrict__ out) {
  __shared__ float sm[8][33];
  const int64_t c = blockIdx.x * int64_t(32) + threadIdx.x;
  const int q = blockIdx.y;
  const int64_t r0 = rows * q / parts, r1 = rows * (q + 1) / parts;
  float s = 0.f;
  if (c < cols)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += 8) s += x[r * cols + c];
  sm[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    float t = sm[0][threadIdx.x];
    for (int j = 1; j < 8; ++j) t += sm[j][threadIdx.x];
    out[int64_t(q) * cols + c] = t;
  }
}

// Pass 2: out[c] = sum over parts in order.
// One warp per column: lane j sums parts j, j + 32, ... in order, then a fixed shuffle tree (deterministic; a thread
// per column would walk all parts serially).
__global__ void colsum_final_k(const float* __restrict__ part, int parts, int64_t cols, float* __restrict__ out) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = (int64_t(gridDim.x) * blockDim.x) >> 5;
  for (int64_t c = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5; c < cols; c += warps) {
    float t = 0.f;
    for (int q = lane; q < parts; q += 32) t += part[int64_t(q) * cols + c];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) t += __shfl_xor_sync(0xffffffffu, t, o);
    if (lane == 0) out[c] = t;
  }
}

int g_bound_mode = -1;  // the cuBLAS handle's math mode (set by bind, read by gemm's cuBLASLt route)

// IRCONSTYLE_GEMM_TUNE=1 (cuBLASLt section below): every GEMM through cuBLASLt, its algorithm timed per shape.
bool gemm_tuning() { return env_is("IRCONSTYLE_GEMM_TUNE", "1"); }
// gemm / gemm_batched as one cuBLASLt call (C_i = alpha op(A_i) op(B_i) + beta C_i); false when it cannot take it.
bool lt_gemm(const KernelCtx& k, bool tA, bool tB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
             int64_t lda, int64_t sA, const float* B, int64_t ldb, int64_t sB, float beta, float* C, int64_t ldc,
             int64_t sC, int64_t batch);

}  // namespace

const gpu::Cublas& bind(const KernelCtx& k, bool tf32) {
  const gpu::Cublas* b = gpu::cublas();
  if (!b) op_fail("E_CUDA", std::string(k.op) + ": cuBLAS is unavailable: " + gpu::cublas_why_not());
  // Host cost matters (thousands of GEMM calls per training step): the handle keeps its stream and math mode, so
  // set them only when they change (ops are launched from the JS thread only).
  static void* bound_stream = nullptr;
  if (k.stream != bound_stream) {
    status(k, b->SetStream(b->handle, k.stream), "cublasSetStream_v2");
    bound_stream = k.stream;
  }
  const int mode = tf32 ? gpu::CUBLAS_TF32_TENSOR_OP_MATH : gpu::CUBLAS_DEFAULT_MATH;
  if (mode != g_bound_mode) {
    status(k, b->SetMathMode(b->handle, mode), "cublasSetMathMode");
    g_bound_mode = mode;
  }
  return *b;
}

void gemm(const KernelCtx& k, const gpu::Cublas& b, bool tA, bool tB, int64_t M, int64_t N, int64_t K, float alpha,
          const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {  // C = beta * C with beta 0 or 1
    if (beta == 0.f) {
      zero_rows_k<<<cu::blocks_for(M * N), 256, 0, cu::stream(k)>>>(C, M, N, ldc);
      cu::check_launch(k);
    }
    return;
  }
  if (gemm_tuning() && lt_gemm(k, tA, tB, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1)) return;
  status(k,
         b.Sgemm(b.handle, tB ? gpu::CUBLAS_OP_T : gpu::CUBLAS_OP_N, tA ? gpu::CUBLAS_OP_T : gpu::CUBLAS_OP_N,
                 as_int(k, N, "N"), as_int(k, M, "M"), as_int(k, K, "K"), &alpha, B, as_int(k, ldb, "ldb"), A,
                 as_int(k, lda, "lda"), &beta, C, as_int(k, ldc, "ldc")),
         "cublasSgemm_v2");
}

void gemm_batched(const KernelCtx& k, const gpu::Cublas& b, bool tA, bool tB, int64_t M, int64_t N, int64_t K,
                  const float* A, int64_t lda, int64_t sA, const float* B, int64_t ldb, int64_t sB, float* C,
                  int64_t ldc, int64_t sC, int64_t batch, float beta) {
  if (M == 0 || N == 0 || batch == 0) return;
  if (K == 0) {  // C = beta C: with beta 0, C must be contiguous [batch, M, ldc] (sC = M ldc)
    if (beta == 0.f) {
      zero_rows_k<<<cu::blocks_for(batch * M * N), 256, 0, cu::stream(k)>>>(C, batch * M, N, ldc);
      cu::check_launch(k);
    }
    return;
  }
  if (batch <= 65535 && gemm_tuning() &&
      lt_gemm(k, tA, tB, M, N, K, 1.f, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch))
    return;
  const float one = 1.f;
  const int64_t chunk = 65535;
  for (int64_t b0 = 0; b0 < batch; b0 += chunk) {
    const int64_t nb = batch - b0 < chunk ? batch - b0 : chunk;
    status(k,
           b.SgemmStridedBatched(b.handle, tB ? gpu::CUBLAS_OP_T : gpu::CUBLAS_OP_N,
                                 tA ? gpu::CUBLAS_OP_T : gpu::CUBLAS_OP_N, as_int(k, N, "N"), as_int(k, M, "M"),
                                 as_int(k, K, "K"), &one, B + b0 * sB, as_int(k, ldb, "ldb"), sB, A + b0 * sA,
                                 as_int(k, lda, "lda"), sA, &beta, C + b0 * sC, as_int(k, ldc, "ldc"), sC,
                                 static_cast<int>(nb)),
           "cublasSgemmStridedBatched");
  }
}

void fill_rows(const KernelCtx& k, float* y, int64_t rows, int64_t cols, const float* bias) {
  const int64_t n = rows * cols;
  if (n == 0) return;
  if (cols % 4 == 0 && aligned16(y) && aligned16(bias)) {
    fill_rows4_k<<<cu::blocks_for(n / 4), 256, 0, cu::stream(k)>>>(reinterpret_cast<float4*>(y),
                                                                    reinterpret_cast<const float4*>(bias), rows,
                                                                    cols / 4);
  } else {
    fill_rows_k<<<cu::blocks_for(n), 256, 0, cu::stream(k)>>>(y, bias, rows, cols);
  }
  cu::check_launch(k);
}

void column_sums(const KernelCtx& k, const float* x, int64_t rows, int64_t cols, float* out, int slot) {
  if (cols == 0) return;
  const int64_t tiles = (cols + 31) / 32;
  int64_t parts = (2048 + tiles - 1) / tiles;         // about 2048 blocks in all ...
  const int64_t by_rows = (rows + 63) / 64;           // ... each summing at least 64 rows
  if (parts > by_rows) parts = by_rows;
  if (parts > 1024) parts = 1024;
  if (parts < 1) parts = 1;
  if (tiles > INT_MAX) op_fail("E_CUDA", std::string(k.op) + ": too many columns for column_sums");
  const cudaStream_t s = cu::stream(k);
  float* part = parts == 1 ? out : static_cast<float*>(cu::scratch(s, sizeof(float) * parts * cols, slot));
  colsum_part_k<<<dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(parts)), dim3(32, 8), 0, s>>>(
      x, rows, cols, static_cast<int>(parts), part);
  cu::check_launch(k);
  if (parts > 1) {
    colsum_final_k<<<cu::blocks_for(cols * 32), 256, 0, s>>>(part, static_cast<int>(parts), cols, out);
    cu::check_launch(k);
  }
}

// ---- cuBLASLt: GEMM + bias epilogue (+ residual) ---------------------------------------------------------------
// Mapping. A row-major [r, c] matrix with leading dim ld is the column-major [c, r] one with the same ld, so the
// row-major C = op(A) op(B) is the column-major D = C^T = op(B)^T op(A)^T: cuBLAS's A is our B (same transpose
// flag), its B is our A, m = N, n = M, k = K; D's rows are C's columns.
//  - gemm_bias: bias[N] lies along D's rows (length m) and is broadcast over D's columns (C's rows):
//    CUBLASLT_EPILOGUE_BIAS ("bias vector length must match matrix D rows").
//  - gemm_bias_add: the same (or EPILOGUE_DEFAULT without a bias) with beta = 1 and a C matrix R apart from D:
//    the residual is read by the GEMM's epilogue instead of a separate add pass (conv1x1_add); optionally a strided
//    batch (BATCH_COUNT / STRIDED_BATCH_OFFSET on the three layouts; C shares D's; the bias, batch stride 0 by
//    default, is the same for every matrix of the batch).
//  - The bias-gradient epilogues (BGRADA / BGRADB) were tried for dW = X^T dY with db = sums of dY and measured
//    slower on an H100 than a plain GEMM + column_sums (a 1x1 conv backward at [16,128,128,48]: 258-317 us against
//    182-188 us; BENCHMARKS.md), so they are not used.
// Plans: matmul descriptor, the three layouts (C and D share one), the algorithm and its workspace size, built once
// per key (epilogue, transposes, m, n, k, leading dims, tf32, pointer alignments, residual or not, batch and
// strides) and never freed; the heuristic is
// asked once per key. The alignments (largest power of two <= 256 dividing each address) are in the key and passed
// as the MIN_ALIGNMENT prefs (their default, 256, would let it pick algorithms that reject less aligned buffers);
// the bias pointer's alignment reaches the heuristic through BIAS_POINTER, which it reads without dereferencing.
// Workspace: at most 32 MiB, from cu::scratch slot 9, which nothing else uses (every op's GEMMs may run here: with
// IRCONSTYLE_GEMM_TUNE=1 the plain cuBLAS calls too).
// Determinism: the default reduction-scheme mask is kept. The cuBLAS docs state that its routines give bit-wise
// identical results run to run on the same architecture and SM count (Results Reproducibility; multi-stream
// workspace sharing is the documented exception, avoided here by passing our own workspace, which the docs name as
// a remedy), that split-K chunks are "summed deterministically" (GEMM Algorithms Numerical Behavior), and
// cublasLt.h describes the schemes as in place with counters that "guarantee the sequentiality" or a separate
// reduction pass; none is documented as nondeterministic, so CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK is unset.
namespace {

constexpr int kLtSlot = 9;
constexpr uint64_t kLtMaxWorkspace = uint64_t(32) << 20;

// One column-major cublasLtMatmul: D[m, n] = op(A)[m, k] op(B)[k, n] (+ R[m, n], stored as D, when R is given:
// beta = 1 with C = R; else beta = 0), then the epilogue (bias, or none).
struct LtCall {
  int epilogue;
  bool ta, tb;
  int64_t m, n, k;
  const float* A;
  int64_t lda;
  const float* B;
  int64_t ldb;
  float* D;
  int64_t ldd;
  const void* bias;  // read by the BIAS epilogue
  bool tf32;
  const float* R = nullptr;  // the C matrix (beta applies only with one; may be D itself: accumulation in place)
  int64_t batch = 1;          // a strided batch: A + i sA, B + i sB, D (and R) + i sD
  int64_t sA = 0, sB = 0, sD = 0;
  float alpha = 1.f, beta = 0.f;
};

struct LtPlan {
  bool ok = false;
  void* op = nullptr;
  void *la = nullptr, *lb = nullptr, *ld = nullptr;
  gpu::CublasLtMatmulAlgo algo{};
  size_t ws = 0;
  // IRCONSTYLE_GEMM_TUNE=1: every usable heuristic result (best ranked first), timed at the first call made outside a
  // graph capture; the fastest becomes algo / ws.
  bool tuned = true;
  std::vector<std::pair<gpu::CublasLtMatmulAlgo, size_t>> cands;
};

using LtKey = std::array<int64_t, 21>;
std::mutex g_lt_mu;
std::map<LtKey, LtPlan>* g_lt_plans = new std::map<LtKey, LtPlan>();  // never freed

uint32_t align_of(const void* p) {
  const uintptr_t v = reinterpret_cast<uintptr_t>(p);
  uint32_t a = 256;
  while (a > 1 && v % a) a >>= 1;
  return a;
}

// "BIAS m=96 n=262144 k=48 opA=N opB=N tf32" (for the report of a fallback).
std::string describe(const LtCall& c) {
  return std::string(c.epilogue == gpu::CUBLASLT_EPILOGUE_BIAS ? "BIAS" : "epilogue " + std::to_string(c.epilogue)) +
         (c.R ? "+C" : "") +
         " m=" + std::to_string(c.m) + " n=" + std::to_string(c.n) +
         " k=" + std::to_string(c.k) + " opA=" + (c.ta ? "T" : "N") + " opB=" + (c.tb ? "T" : "N") +
         (c.tf32 ? " tf32" : " fp32");
}

// Descriptors, layouts and the heuristic's first usable algorithm. On any failure: nothing kept, ok = false and
// `why` says which call failed (or that no algorithm came back).
LtPlan make_plan(const gpu::CublasLt& lt, const LtCall& c, bool tune, std::string& why) {
  LtPlan pl;
  void* pref = nullptr;
  auto step = [&](int st, const char* what) {
    if (st != 0 && why.empty()) why = std::string(what) + " returned status " + std::to_string(st);
    return st == 0;
  };
  auto layout = [&](void** out, int64_t rows, int64_t cols, int64_t ld, int64_t stride) {
    void* l = nullptr;
    const int st = lt.MatrixLayoutCreate(&l, gpu::CUDA_R_32F, static_cast<uint64_t>(rows),
                                         static_cast<uint64_t>(cols), ld);
    if (st == 0) *out = l;
    if (!step(st, "cublasLtMatrixLayoutCreate")) return false;
    if (c.batch == 1) return true;
    const int32_t count = static_cast<int32_t>(c.batch);
    return step(lt.MatrixLayoutSetAttribute(l, gpu::CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count),
                "cublasLtMatrixLayoutSetAttribute") &&
           step(lt.MatrixLayoutSetAttribute(l, gpu::CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                            sizeof stride),
                "cublasLtMatrixLayoutSetAttribute");
  };
  auto dset = [&](int attr, const void* v, size_t bytes) {
    return step(lt.MatmulDescSetAttribute(pl.op, attr, v, bytes), "cublasLtMatmulDescSetAttribute");
  };
  auto pset = [&](int attr, const void* v, size_t bytes) {
    return step(lt.MatmulPreferenceSetAttribute(pref, attr, v, bytes), "cublasLtMatmulPreferenceSetAttribute");
  };
  const int compute = c.tf32 ? gpu::CUBLAS_COMPUTE_32F_FAST_TF32 : gpu::CUBLAS_COMPUTE_32F;
  const int32_t ta = c.ta ? gpu::CUBLAS_OP_T : gpu::CUBLAS_OP_N, tb = c.tb ? gpu::CUBLAS_OP_T : gpu::CUBLAS_OP_N;
  const uint32_t epilogue = static_cast<uint32_t>(c.epilogue);
  const int32_t bias_type = gpu::CUDA_R_32F;
  const uint64_t cap = kLtMaxWorkspace;
  // every matrix of a strided batch at p + i stride: the alignment both give
  const auto al = [&](const void* p, int64_t stride) {
    uint32_t a = align_of(p);
    if (c.batch > 1) a = std::min(a, align_of(reinterpret_cast<const void*>(static_cast<uintptr_t>(stride) * sizeof(float))));
    return a;
  };
  const uint32_t al_a = al(c.A, c.sA), al_b = al(c.B, c.sB), al_d = al(c.D, c.sD);
  const uint32_t al_c = c.R ? std::min(al_d, al(c.R, c.sD)) : al_d;
  void* op = nullptr;
  const int st_op = lt.MatmulDescCreate(&op, compute, gpu::CUDA_R_32F);
  if (st_op == 0) pl.op = op;
  bool good = step(st_op, "cublasLtMatmulDescCreate") && dset(gpu::CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta) &&
              dset(gpu::CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb) &&
              dset(gpu::CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue) &&
              (!c.bias || (dset(gpu::CUBLASLT_MATMUL_DESC_BIAS_POINTER, &c.bias, sizeof c.bias) &&
                           dset(gpu::CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof bias_type)));
  // Layouts of the matrices as stored: op(A) is [m, k], so a transposed A is stored [k, m]; likewise B.
  good = good && layout(&pl.la, c.ta ? c.k : c.m, c.ta ? c.m : c.k, c.lda, c.sA) &&
         layout(&pl.lb, c.tb ? c.n : c.k, c.tb ? c.k : c.n, c.ldb, c.sB) && layout(&pl.ld, c.m, c.n, c.ldd, c.sD);
  if (good) {
    void* p = nullptr;
    const int st = lt.MatmulPreferenceCreate(&p);
    if (st == 0) pref = p;
    good = step(st, "cublasLtMatmulPreferenceCreate");
  }
  good = good && pset(gpu::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &cap, sizeof cap) &&
         pset(gpu::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a) &&
         pset(gpu::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b) &&
         pset(gpu::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof al_c) &&
         pset(gpu::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_d, sizeof al_d);
  constexpr int kAsk = 8;
  gpu::CublasLtHeuristicResult res[kAsk] = {};
  int n = 0;
  good = good && step(lt.MatmulAlgoGetHeuristic(lt.handle, pl.op, pl.la, pl.lb, pl.ld, pl.ld, pref, kAsk, res, &n),
                      "cublasLtMatmulAlgoGetHeuristic");
  if (pref) lt.MatmulPreferenceDestroy(pref);
  int pick = -1;
  for (int i = 0; good && i < n && i < kAsk && pick < 0; ++i)
    if (res[i].state == 0 && res[i].workspaceSize <= cap) pick = i;
  if (pick < 0) {
    if (why.empty()) why = "no algorithm (" + std::to_string(n) + " heuristic results, none usable)";
    if (pl.op) lt.MatmulDescDestroy(pl.op);
    for (void* l : {pl.la, pl.lb, pl.ld})
      if (l) lt.MatrixLayoutDestroy(l);
    return LtPlan{};
  }
  pl.algo = res[pick].algo;
  pl.ws = res[pick].workspaceSize;
  pl.ok = true;
  if (tune) {
    for (int i = pick; i < n && i < kAsk; ++i)
      if (res[i].state == 0 && res[i].workspaceSize <= cap) pl.cands.emplace_back(res[i].algo, res[i].workspaceSize);
    pl.tuned = pl.cands.size() < 2;
  }
  return pl;
}

// Times the plan's candidates on this call's operands (a warm-up run, then three timed runs each, synchronously:
// once per shape, as cuDNN's search) and keeps the fastest. They write a temporary D, so the call's own output and
// an accumulated C are untouched; the caller's run follows. Inside a graph capture nothing is timed (the next call
// outside tunes); a candidate that fails is skipped; if none runs, the heuristic's choice stays.
void tune(const KernelCtx& k, const gpu::CublasLt& lt, LtPlan& pl, const LtCall& c) {
  cudaStream_t s = cu::stream(k);
  if (!cu::host_may_wait(s)) return;  // a capture or a held stream: the next call outside tunes
  pl.tuned = true;
  const size_t floats = static_cast<size_t>((c.batch - 1) * c.sD + (c.n - 1) * c.ldd + c.m);
  void* tmp = nullptr;
  cudaEvent_t e0 = nullptr, e1 = nullptr;
  if (cudaMallocAsync(&tmp, floats * sizeof(float), s) != cudaSuccess || cudaEventCreate(&e0) != cudaSuccess ||
      cudaEventCreate(&e1) != cudaSuccess) {
    cudaGetLastError();
    if (tmp) cudaFreeAsync(tmp, s);
    if (e0) cudaEventDestroy(e0);
    return;
  }
  float* D = static_cast<float*>(tmp);
  const float beta = c.R ? c.beta : 0.f;
  float best = -1.f;
  for (const auto& [algo, bytes] : pl.cands) {
    void* ws = nullptr;
    try {
      ws = bytes ? cu::scratch(s, bytes, kLtSlot) : nullptr;
    } catch (...) {  // no memory for this candidate's workspace: left out (the temporaries are freed below)
      continue;
    }
    auto run = [&, a = algo, b = bytes] {
      return lt.Matmul(lt.handle, pl.op, &c.alpha, c.A, pl.la, c.B, pl.lb, &beta, c.R ? c.R : D, pl.ld, D, pl.ld, &a,
                       ws, b, s);
    };
    if (run() != 0) continue;
    int st = cudaEventRecord(e0, s);
    for (int r = 0; r < 3 && st == 0; ++r) st = run();
    float ms = 0.f;
    if (st != 0 || cudaEventRecord(e1, s) != cudaSuccess || cudaEventSynchronize(e1) != cudaSuccess ||
        cudaEventElapsedTime(&ms, e0, e1) != cudaSuccess)
      continue;
    if (best < 0.f || ms < best) {
      best = ms;
      pl.algo = algo;
      pl.ws = bytes;
    }
  }
  cudaGetLastError();  // a failed candidate leaves nothing for the next launch check to report
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaFreeAsync(tmp, s);
  pl.cands.clear();
}

// Enqueues the call on the op's stream; false (nothing enqueued) when cuBLASLt cannot take it.
bool run_lt(const KernelCtx& k, const LtCall& c) {
  if (c.m <= 0 || c.n <= 0 || c.k <= 0 || c.batch < 1 || (!c.bias && c.epilogue == gpu::CUBLASLT_EPILOGUE_BIAS))
    return false;
  for (int64_t v : {c.m, c.n, c.k, c.lda, c.ldb, c.ldd, c.batch})
    if (v > INT_MAX) return false;
  const gpu::CublasLt* lt = gpu::cublaslt();
  if (!lt) return false;
  const bool tuning = gemm_tuning();
  const LtKey key{c.epilogue, c.ta, c.tb, c.m, c.n, c.k, c.lda, c.ldb, c.ldd, c.tf32,
                  align_of(c.A), align_of(c.B), align_of(c.D), align_of(c.bias), c.R != nullptr,
                  c.R ? align_of(c.R) : 0, c.batch, c.sA, c.sB, c.sD, tuning};
  std::lock_guard<std::mutex> lock(g_lt_mu);
  auto it = g_lt_plans->find(key);
  if (it == g_lt_plans->end()) {
    std::string why;
    it = g_lt_plans->emplace(key, make_plan(*lt, c, tuning, why)).first;
    gpu::cublaslt_note_plan(it->second.ok, it->second.ok ? std::string() : describe(c) + ": " + why);
  }
  LtPlan& pl = it->second;
  if (!pl.ok) return false;
  // The descriptor is shared by every call with this key: point it at this call's bias (under the lock).
  const int st_bias =
      c.bias ? lt->MatmulDescSetAttribute(pl.op, gpu::CUBLASLT_MATMUL_DESC_BIAS_POINTER, &c.bias, sizeof c.bias) : 0;
  int st = st_bias;
  if (st == 0) {
    if (!pl.tuned) tune(k, *lt, pl, c);
    void* ws = pl.ws ? cu::scratch(cu::stream(k), pl.ws, kLtSlot) : nullptr;
    const float beta = c.R ? c.beta : 0.f;
    st = lt->Matmul(lt->handle, pl.op, &c.alpha, c.A, pl.la, c.B, pl.lb, &beta, c.R ? c.R : c.D, pl.ld, c.D, pl.ld,
                    &pl.algo, ws, pl.ws, k.stream);
  }
  if (st != 0) {  // this key keeps the fallback from now on
    pl.ok = false;
    gpu::cublaslt_note_plan(false,
                            describe(c) + ": " + (st_bias ? "cublasLtMatmulDescSetAttribute" : "cublasLtMatmul") +
                                " returned status " + std::to_string(st) + " at run time",
                            true);
    return false;
  }
  return true;
}

}  // namespace

bool gemm_bias(const KernelCtx& k, bool tf32, bool tA, bool tB, int64_t M, int64_t N, int64_t K, const float* A,
               int64_t lda, const float* B, int64_t ldb, const float* bias, float* C, int64_t ldc) {
  return run_lt(k, LtCall{gpu::CUBLASLT_EPILOGUE_BIAS, tB, tA, N, M, K, B, ldb, A, lda, C, ldc, bias, tf32});
}

bool gemm_bias_add(const KernelCtx& k, bool tf32, bool tA, bool tB, int64_t M, int64_t N, int64_t K, const float* A,
                   int64_t lda, int64_t sA, const float* B, int64_t ldb, int64_t sB, const float* bias,
                   const float* R, float* C, int64_t ldc, int64_t sC, int64_t batch) {
  const int epi = bias ? gpu::CUBLASLT_EPILOGUE_BIAS : gpu::CUBLASLT_EPILOGUE_DEFAULT;
  return run_lt(k, LtCall{epi, tB, tA, N, M, K, B, ldb, A, lda, C, ldc, bias, tf32, R, batch, sB, sA, sC, 1.f, 1.f});
}

namespace {
bool lt_gemm(const KernelCtx& k, bool tA, bool tB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
             int64_t lda, int64_t sA, const float* B, int64_t ldb, int64_t sB, float beta, float* C, int64_t ldc,
             int64_t sC, int64_t batch) {
  const bool tf32 = g_bound_mode == gpu::CUBLAS_TF32_TENSOR_OP_MATH;  // the math mode bind() gave the handle
  return run_lt(k, LtCall{gpu::CUBLASLT_EPILOGUE_DEFAULT, tB, tA, N, M, K, B, ldb, A, lda, C, ldc, nullptr, tf32,
                          beta != 0.f ? C : nullptr, batch, sB, sA, sC, alpha, beta});
}
}  // namespace

}  // namespace blas

void cuda_matmul(KernelCtx& k) {
  const bool tA = k.ai(0) != 0, tB = k.ai(1) != 0;
  const Shape &as = k.in[0].shape, &bs = k.in[1].shape;
  const size_t ra = as.size(), rb = bs.size();
  const int64_t M = tA ? as[ra - 1] : as[ra - 2], K = tA ? as[ra - 2] : as[ra - 1], N = tB ? bs[rb - 2] : bs[rb - 1];
  int64_t batch = 1;
  for (size_t i = 0; i + 2 < ra; ++i) batch *= as[i];
  if (k.out[0].n == 0) return;
  const bool shared_b = rb == 2;
  const int64_t lda = tA ? M : K, ldb = tB ? K : N;
  const float *a = k.in[0].f(), *b = k.in[1].f();
  float* y = k.out[0].f();
  const gpu::Cublas& cb = blas::bind(k, false);  // full FP32, as PyTorch's default for matmul
  if (batch == 1 || (shared_b && !tA)) {          // one (tall) GEMM over all rows
    blas::gemm(k, cb, tA, tB, batch * M, N, K, 1.f, a, lda, b, ldb, 0.f, y, N);
    return;
  }
  blas::gemm_batched(k, cb, tA, tB, M, N, K, a, lda, M * K, b, ldb, shared_b ? 0 : K * N, y, N, M * N, batch, 0.f);
}

}  // namespace irc
