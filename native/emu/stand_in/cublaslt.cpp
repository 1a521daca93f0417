// CPU stand-in for cuBLASLt (built as libcublasLt.so.13): the entry points native/src/cuda/gpu_libs.cpp looks up.
// cublasLtMatmul computes D = alpha op(A) op(B) + beta C (column-major, strided batch) and the DEFAULT, BIAS, BGRADA
// and BGRADB epilogues on the host, in stream order; anything else is refused so that the addon falls back.
// Used only by the CUDA emulator build (native/emu) and its tests; never shipped.
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>

#include "../../src/cuda/gpu_libs.h"
#include "stand_in.h"

namespace irc_stand_in {
namespace {

namespace g = irc::gpu;

enum : int {  // cublasStatus_t
  kOk = 0,
  kNotInitialized = 1,
  kAllocFailed = 3,
  kInvalidValue = 7,
  kExecutionFailed = 13,
  kNotSupported = 15
};
enum : int { kOpN = 0, kOpT = 1, kOpC = 2 };

struct Handle {
  int unused = 0;
};

struct MatmulDesc {
  int compute = 0, scale = 0;
  int32_t ta = kOpN, tb = kOpN;
  uint32_t epilogue = g::CUBLASLT_EPILOGUE_DEFAULT;
  const void* bias = nullptr;
  int32_t bias_type = -1;  // -1: unset (the type of D)
};

struct Layout {
  int type = g::CUDA_R_32F;
  int64_t rows = 0, cols = 0, ld = 0;
  int32_t batch = 1;
  int64_t stride = 0;  // elements between the matrices of a batch
};

struct Pref {
  int unused = 0;
};

// Reads an attribute value of exactly sizeof(T) bytes.
template <class T>
bool read_attr(const void* buf, size_t bytes, T& out) {
  if (!buf || bytes != sizeof(T)) return false;
  std::memcpy(&out, buf, sizeof(T));
  return true;
}

bool op_ok(int32_t op) { return op == kOpN || op == kOpT || op == kOpC; }
bool is_bgrad(uint32_t e) { return e == g::CUBLASLT_EPILOGUE_BGRADA || e == g::CUBLASLT_EPILOGUE_BGRADB; }

// Whether the call's shapes and options are ones this stand-in computes; m, n, k out.
int check(const MatmulDesc* d, const Layout* a, const Layout* b, const Layout* c, const Layout* dl, int64_t& m,
          int64_t& n, int64_t& k) {
  if (!d || !a || !b || !c || !dl) return kInvalidValue;
  const uint32_t e = d->epilogue;
  if (e != g::CUBLASLT_EPILOGUE_DEFAULT && e != g::CUBLASLT_EPILOGUE_BIAS && !is_bgrad(e)) return kNotSupported;
  if (e != g::CUBLASLT_EPILOGUE_DEFAULT && d->bias_type != -1 && d->bias_type != g::CUDA_R_32F) return kNotSupported;
  const bool ta = d->ta != kOpN, tb = d->tb != kOpN;
  m = dl->rows;
  n = dl->cols;
  k = ta ? a->rows : a->cols;
  if ((ta ? a->cols : a->rows) != m || (tb ? b->rows : b->cols) != n || (tb ? b->cols : b->rows) != k ||
      c->rows != m || c->cols != n)
    return kInvalidValue;
  for (const Layout* l : {a, b, c, dl})
    if (l->ld < (l->rows < 1 ? 1 : l->rows)) return kInvalidValue;
  if (a->batch != dl->batch || b->batch != dl->batch || c->batch != dl->batch) return kNotSupported;
  // A batched bias gradient would need CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE (not emulated).
  if (is_bgrad(e) && dl->batch > 1) return kNotSupported;
  return kOk;
}

// One cublasLtMatmul, everything copied at call time.
struct MatmulTask {
  GemmCore core;
  const float *A = nullptr, *B = nullptr, *C = nullptr;
  float* D = nullptr;
  Layout la, lb, lc, ld;
  uint32_t epilogue = 0;
  float* bias = nullptr;
  double alpha = 1, beta = 0;
  std::vector<double> acc, sums;

  void run() {
    const int64_t m = core.m, n = core.n, k = core.k;
    const bool add_bias = epilogue == g::CUBLASLT_EPILOGUE_BIAS;
    for (int32_t b = 0; b < ld.batch; ++b) {
      core.begin(A + b * la.stride, B + b * lb.stride);
      const float* Cb = C ? C + b * lc.stride : nullptr;
      float* Db = D + b * ld.stride;
      for (int64_t j = 0; j < n; ++j) {
        core.column(j, acc.data());
        for (int64_t i = 0; i < m; ++i) {
          double v = alpha * acc[static_cast<size_t>(i)];
          if (beta != 0.0) v += beta * static_cast<double>(Cb[i + j * lc.ld]);  // beta 0: C unread
          if (add_bias) v += static_cast<double>(bias[i]);
          Db[i + j * ld.ld] = static_cast<float>(v);  // C(i, j) was read first: C may be D
        }
      }
    }
    if (epilogue == g::CUBLASLT_EPILOGUE_BGRADA) {  // bias[i] = sum over p of op(A)[i, p] (batch 1)
      for (int64_t i = 0; i < m; ++i) sums[static_cast<size_t>(i)] = 0.0;
      for (int64_t p = 0; p < k; ++p)
        for (int64_t i = 0; i < m; ++i)
          sums[static_cast<size_t>(i)] += core.ta ? A[p + i * la.ld] : A[i + p * la.ld];
      for (int64_t i = 0; i < m; ++i) bias[i] = static_cast<float>(sums[static_cast<size_t>(i)]);
    } else if (epilogue == g::CUBLASLT_EPILOGUE_BGRADB) {  // bias[j] = sum over p of op(B)[p, j]
      for (int64_t j = 0; j < n; ++j) {
        double s = 0.0;
        for (int64_t p = 0; p < k; ++p) s += core.tb ? B[j + p * lb.ld] : B[p + j * lb.ld];
        bias[j] = static_cast<float>(s);
      }
    }
  }
};

}  // namespace
}  // namespace irc_stand_in

using namespace irc_stand_in;

IRC_STAND_IN_EXPORT void ircEmuAttach(Enqueue enqueue) { g_enqueue.store(enqueue, std::memory_order_release); }

IRC_STAND_IN_EXPORT size_t cublasLtGetVersion() { return 130100; }  // 13.1.0

IRC_STAND_IN_EXPORT int cublasLtCreate(void** handle) {
  if (!handle) return kInvalidValue;
  *handle = new (std::nothrow) Handle();
  return *handle ? kOk : kAllocFailed;
}

IRC_STAND_IN_EXPORT int cublasLtDestroy(void* handle) {
  if (!handle) return kNotInitialized;
  delete static_cast<Handle*>(handle);
  return kOk;
}

IRC_STAND_IN_EXPORT int cublasLtMatmulDescCreate(void** desc, int computeType, int scaleType) {
  if (!desc) return kInvalidValue;
  if ((computeType != g::CUBLAS_COMPUTE_32F && computeType != g::CUBLAS_COMPUTE_32F_FAST_TF32) ||
      scaleType != g::CUDA_R_32F)
    return kNotSupported;
  auto* d = new (std::nothrow) MatmulDesc();
  if (!d) return kAllocFailed;
  d->compute = computeType;
  d->scale = scaleType;
  *desc = d;
  return kOk;
}

IRC_STAND_IN_EXPORT int cublasLtMatmulDescDestroy(void* desc) {
  delete static_cast<MatmulDesc*>(desc);
  return kOk;
}

IRC_STAND_IN_EXPORT int cublasLtMatmulDescSetAttribute(void* desc, int attr, const void* buf, size_t bytes) {
  if (!desc) return kInvalidValue;
  MatmulDesc& d = *static_cast<MatmulDesc*>(desc);
  switch (attr) {
    case g::CUBLASLT_MATMUL_DESC_TRANSA:
    case g::CUBLASLT_MATMUL_DESC_TRANSB: {
      int32_t op = 0;
      if (!read_attr(buf, bytes, op) || !op_ok(op)) return kInvalidValue;
      (attr == g::CUBLASLT_MATMUL_DESC_TRANSA ? d.ta : d.tb) = op;
      return kOk;
    }
    case g::CUBLASLT_MATMUL_DESC_EPILOGUE:  // any value is kept; an unsupported one fails the heuristic and matmul
      return read_attr(buf, bytes, d.epilogue) ? kOk : kInvalidValue;
    case g::CUBLASLT_MATMUL_DESC_BIAS_POINTER:
      return read_attr(buf, bytes, d.bias) ? kOk : kInvalidValue;
    case g::CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE:
      return read_attr(buf, bytes, d.bias_type) ? kOk : kInvalidValue;
    default:
      return kNotSupported;
  }
}

IRC_STAND_IN_EXPORT int cublasLtMatrixLayoutCreate(void** layout, int type, uint64_t rows, uint64_t cols,
                                                   int64_t ld) {
  if (!layout) return kInvalidValue;
  if (type != g::CUDA_R_32F) return kNotSupported;
  if (rows > INT64_MAX || cols > INT64_MAX) return kInvalidValue;
  auto* l = new (std::nothrow) Layout();
  if (!l) return kAllocFailed;
  l->type = type;
  l->rows = static_cast<int64_t>(rows);
  l->cols = static_cast<int64_t>(cols);
  l->ld = ld;
  *layout = l;
  return kOk;
}

IRC_STAND_IN_EXPORT int cublasLtMatrixLayoutDestroy(void* layout) {
  delete static_cast<Layout*>(layout);
  return kOk;
}

IRC_STAND_IN_EXPORT int cublasLtMatrixLayoutSetAttribute(void* layout, int attr, const void* buf, size_t bytes) {
  if (!layout) return kInvalidValue;
  Layout& l = *static_cast<Layout*>(layout);
  switch (attr) {
    case g::CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT: {
      int32_t v = 0;
      if (!read_attr(buf, bytes, v) || v < 1) return kInvalidValue;
      l.batch = v;
      return kOk;
    }
    case g::CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET:
      return read_attr(buf, bytes, l.stride) ? kOk : kInvalidValue;
    default:
      return kNotSupported;
  }
}

IRC_STAND_IN_EXPORT int cublasLtMatmulPreferenceCreate(void** pref) {
  if (!pref) return kInvalidValue;
  *pref = new (std::nothrow) Pref();
  return *pref ? kOk : kAllocFailed;
}

// Workspace caps and alignments do not matter on the host: accepted and ignored.
IRC_STAND_IN_EXPORT int cublasLtMatmulPreferenceSetAttribute(void* pref, int, const void* buf, size_t bytes) {
  return pref && buf && bytes ? kOk : kInvalidValue;
}

IRC_STAND_IN_EXPORT int cublasLtMatmulPreferenceDestroy(void* pref) {
  delete static_cast<Pref*>(pref);
  return kOk;
}

// One algorithm (no workspace) for every supported call; NOT_SUPPORTED (no result) otherwise.
IRC_STAND_IN_EXPORT int cublasLtMatmulAlgoGetHeuristic(void* handle, void* desc, void* Adesc, void* Bdesc,
                                                       void* Cdesc, void* Ddesc, void* pref, int requested,
                                                       g::CublasLtHeuristicResult* results, int* returned) {
  if (!handle) return kNotInitialized;
  if (!pref || requested < 1 || !results || !returned) return kInvalidValue;
  *returned = 0;
  int64_t m = 0, n = 0, k = 0;
  const int st = check(static_cast<MatmulDesc*>(desc), static_cast<Layout*>(Adesc), static_cast<Layout*>(Bdesc),
                       static_cast<Layout*>(Cdesc), static_cast<Layout*>(Ddesc), m, n, k);
  if (st != kOk) return st;
  std::memset(&results[0], 0, sizeof(results[0]));
  results[0].algo.data[0] = 0x1e;  // an arbitrary id: the matmul accepts any algo
  results[0].workspaceSize = 0;
  results[0].state = kOk;
  results[0].wavesCount = 1.f;
  *returned = 1;
  return kOk;
}

IRC_STAND_IN_EXPORT int cublasLtMatmul(void* handle, void* desc, const void* alpha, const void* A, void* Adesc,
                                       const void* B, void* Bdesc, const void* beta, const void* C, void* Cdesc,
                                       void* D, void* Ddesc, const g::CublasLtMatmulAlgo*, void*, size_t,
                                       void* stream) {
  if (!handle) return kNotInitialized;
  const auto* d = static_cast<const MatmulDesc*>(desc);
  const auto *la = static_cast<const Layout*>(Adesc), *lb = static_cast<const Layout*>(Bdesc);
  const auto *lc = static_cast<const Layout*>(Cdesc), *ld = static_cast<const Layout*>(Ddesc);
  int64_t m = 0, n = 0, k = 0;
  const int st = check(d, la, lb, lc, ld, m, n, k);
  if (st != kOk) return st;
  if (!alpha || !beta) return kInvalidValue;
  const float a = *static_cast<const float*>(alpha), b = *static_cast<const float*>(beta);
  const bool uses_bias = d->epilogue != g::CUBLASLT_EPILOGUE_DEFAULT;
  if ((m > 0 && n > 0 && !D) || (b != 0.f && !C) || (a != 0.f && k > 0 && (!A || !B)) || (uses_bias && !d->bias) ||
      (is_bgrad(d->epilogue) && k > 0 && (!A || !B)))
    return kInvalidValue;
  // In place (C == D) needs the same layout, as in cuBLASLt.
  if (b != 0.f && C == D && (lc->ld != ld->ld || lc->stride != ld->stride)) return kInvalidValue;
  if (m == 0 || n == 0) return kOk;
  try {
    auto t = std::make_unique<MatmulTask>();
    GemmCore& c = t->core;
    c.ta = d->ta != kOpN;
    c.tb = d->tb != kOpN;
    c.m = m;
    c.n = n;
    c.k = k;
    c.lda = la->ld;
    c.ldb = lb->ld;
    c.zero = a == 0.f || k == 0;
    c.reserve();
    t->A = static_cast<const float*>(A);
    t->B = static_cast<const float*>(B);
    t->C = b != 0.f ? static_cast<const float*>(C) : nullptr;
    t->D = static_cast<float*>(D);
    t->la = *la;
    t->lb = *lb;
    t->lc = *lc;
    t->ld = *ld;
    t->epilogue = d->epilogue;
    t->bias = static_cast<float*>(const_cast<void*>(d->bias));
    t->alpha = a;
    t->beta = b;
    t->acc.resize(static_cast<size_t>(m));
    if (d->epilogue == g::CUBLASLT_EPILOGUE_BGRADA) t->sums.resize(static_cast<size_t>(m));
    return submit(stream, std::move(t)) ? kOk : kExecutionFailed;
  } catch (const std::bad_alloc&) {
    return kAllocFailed;
  }
}
