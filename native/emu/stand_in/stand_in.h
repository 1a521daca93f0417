// Shared by the CPU stand-ins for cuBLAS, cuBLASLt and cuDNN (cublas.cpp, cublaslt.cpp, cudnn.cpp): the stream-order
// hook of the CUDA emulator and a column-major float GEMM with double accumulation. Used only by the CUDA emulator
// build (native/emu) and its tests; never shipped. Each library is one translation unit including this once.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#define IRC_STAND_IN_EXPORT extern "C" __attribute__((visibility("default")))

namespace irc_stand_in {
namespace {  // internal to each library (an exported inline variable would be one per process)

// The emulator's enqueue: runs run(ctx) in the order of `stream` (again at each replay of a graph that recorded it),
// and release(ctx) once the work can run no more; non-zero when it refused (then it calls neither).
using Enqueue = int (*)(void* stream, void (*run)(void*), void* ctx, void (*release)(void*));

// Set once by ircEmuAttach (each library has its own copy); nullptr: compute synchronously.
std::atomic<Enqueue> g_enqueue{nullptr};

// Runs t->run() in stream order: queued through the emulator when one is attached (which then owns t), else at
// once. False when the emulator refused the work (t is deleted here).
template <class T>
bool submit(void* stream, std::unique_ptr<T> t) {
  const Enqueue e = g_enqueue.load(std::memory_order_acquire);
  if (!e) {
    t->run();
    return true;
  }
  T* raw = t.release();
  void (*run)(void*) = [](void* p) { static_cast<T*>(p)->run(); };
  void (*release)(void*) = [](void* p) { delete static_cast<T*>(p); };
  if (e(stream, run, raw, release) != 0) {
    delete raw;
    return false;
  }
  return true;
}

// Column-major product op(A)[m, k] op(B)[k, n], one column of the result at a time, in double. op(X) is X
// (trans false: element (i, j) at X[i + j ld]) or X^T (element (i, j) at X[j + i ld]). reserve() allocates (at
// call time, so that a failure is reported by the API call, not in the queued work); begin() points it at one
// matrix pair (packing a transposed A column-major, so the inner loop runs over contiguous memory).
struct GemmCore {
  bool ta = false, tb = false;
  int64_t m = 0, n = 0, k = 0, lda = 0, ldb = 0;
  bool zero = false;  // alpha == 0 or k == 0: the product is 0 and A, B are not read (BLAS semantics)
  std::vector<float> apack;  // op(A) column-major [m, k] when ta
  std::vector<double> bcol;  // one column of op(B)
  const float* a = nullptr;  // op(A) column-major with leading dim la
  int64_t la = 0;
  const float* B = nullptr;

  void reserve() {
    if (zero) return;
    if (ta) apack.resize(static_cast<size_t>(m * k));
    bcol.resize(static_cast<size_t>(k));
  }
  void begin(const float* A_, const float* B_) {
    B = B_;
    if (zero) return;
    if (!ta) {
      a = A_;
      la = lda;
      return;
    }
    for (int64_t i = 0; i < m; ++i)  // A is stored [k, m] (column i of A = row i of op(A))
      for (int64_t p = 0; p < k; ++p) apack[static_cast<size_t>(i + p * m)] = A_[p + i * lda];
    a = apack.data();
    la = m;
  }
  double b_at(int64_t p, int64_t j) const { return tb ? B[j + p * ldb] : B[p + j * ldb]; }
  // acc[i] = sum over p of op(A)[i, p] op(B)[p, j], i < m.
  void column(int64_t j, double* acc) {
    for (int64_t i = 0; i < m; ++i) acc[i] = 0.0;
    if (zero) return;
    for (int64_t p = 0; p < k; ++p) bcol[static_cast<size_t>(p)] = b_at(p, j);
    for (int64_t p = 0; p < k; ++p) {
      const double b = bcol[static_cast<size_t>(p)];
      const float* ac = a + p * la;
      for (int64_t i = 0; i < m; ++i) acc[i] += static_cast<double>(ac[i]) * b;
    }
  }
};

}  // namespace
}  // namespace irc_stand_in
