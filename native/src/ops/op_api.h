// The contract between the runtime and every kernel. A kernel file includes only this header.
//
// Every op of ops.def has two functions, found by name:
//   void infer_<name>(irc::InferCtx&)   validates input metas + attrs, fills ctx.out (shapes/dtypes of the
//                                       outputs to allocate). Runs synchronously on the JS thread at enqueue
//                                       time; errors thrown here (op_fail) reach JS at the call site.
//   void cpu_<name>(irc::KernelCtx&)     computes outputs from inputs on the CPU executor thread. Outputs are
//                                       freshly allocated, contiguous and uninitialised. In-place ops (those
//                                       whose infer declares no outputs) write through ctx.in[i].ptr.
//   void cuda_<name>(irc::KernelCtx&)    optional (native/src/cuda/README.md): enqueues the op on ctx.stream
//                                       (a cudaStream_t); pointers are device memory. Runs on the JS thread and
//                                       must not synchronise. An op without it has no CUDA kernel.
// Layout rules: all buffers contiguous, row-major. Activations NHWC. Conv weights [KH, KW, Cin/groups, Cout].
// Linear weights [out, in] (PyTorch). Determinism: results must not depend on thread timing (fixed chunking).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace irc {

enum class DType : int32_t { f32 = 0, i32 = 1 };
using Shape = std::vector<int64_t>;

int64_t numel(const Shape& s);
std::string shape_str(const Shape& s);
const char* dtype_name(DType d);

// Error codes used across the project (also exported to JS):
//   E_SHAPE, E_DTYPE, E_ATTR, E_ARITY, E_DISPOSED, E_ARG, E_INTERNAL, E_OOM
struct OpError : std::exception {
  std::string code, msg;
  OpError(std::string c, std::string m) : code(std::move(c)), msg(std::move(m)) {}
  const char* what() const noexcept override { return msg.c_str(); }
};
[[noreturn]] void op_fail(const char* code, const std::string& msg);

struct Meta {
  Shape shape;
  DType dtype = DType::f32;
};

struct InferCtx {
  const char* op = "";
  std::vector<Meta> in;
  std::vector<double> attrs;
  std::vector<Meta> out;  // filled by infer_<name>

  int64_t ai(size_t k) const;   // attr k as integer (E_ATTR if missing or not integral)
  double af(size_t k) const;    // attr k as double (E_ATTR if missing)
  void need_attrs(size_t n) const;                  // at least n attrs
  void need_f32(size_t i) const;                    // input i is float32
  void need_rank(size_t i, size_t rank) const;      // input i has exactly this rank
  void need_min_rank(size_t i, size_t rank) const;  // input i has rank >= rank
  void need_same_shape(size_t i, size_t j) const;   // inputs i and j have equal shapes
  void need_shape(size_t i, const Shape& want, const char* what) const;  // input i (`what`: "dy") has shape want
  void need_dim(size_t i, int64_t axis, int64_t value, const char* what) const;  // axis may be negative
  // The optional accumulation input at i (a gradient of input xi from elsewhere, added to the op's dx in the same
  // pass), when present: float32 with xi's element count.
  void need_acc(size_t i, size_t xi) const;
  void add_out(Shape s, DType d = DType::f32) { out.push_back({std::move(s), d}); }
};

struct TArg {
  void* ptr = nullptr;
  Shape shape;
  DType dtype = DType::f32;
  int64_t n = 0;  // numel
  float* f() const { return static_cast<float*>(ptr); }
  int32_t* i() const { return static_cast<int32_t*>(ptr); }
};

struct KernelCtx {
  const char* op = "";
  std::vector<TArg> in, out;
  std::vector<double> attrs;
  void* stream = nullptr;  // cudaStream_t for cuda_<name>; null on the CPU
  int64_t ai(size_t k) const { return static_cast<int64_t>(attrs[k]); }
  double af(size_t k) const { return attrs[k]; }
};

// Thread pool shared by all CPU kernels (the executor thread takes part). fn(begin, end) is called on
// disjoint chunks covering [0, n); chunks are at least `grain` long. Chunk boundaries depend only on n, grain
// and the pool size, never on timing. Nested calls run serially.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);
int num_threads();

// IRCONSTYLE_EMULATE (a comma-separated list) asks the CPU backend to run CUDA kernels' own code through their host
// models (the tests of those kernels): whether `base` is listed.
bool emulation_requested(const char* base);

// Per-thread scratch memory for kernels (64-byte aligned, grows, reused; valid until the same thread asks
// again for the same slot). Safe inside parallel_for bodies.
float* scratch(size_t floats, int slot = 0);

}  // namespace irc
