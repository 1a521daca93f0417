// The CUDA runtime layer: device 0, one non-blocking stream, a stream-ordered caching allocator (the
// cudaMallocAsync pool with an unbounded release threshold), transfers, host steps, kernel-file helpers.
// Not yet run on hardware (see README.md in this folder).
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "common.cuh"
#include "device.h"
#include "probe.h"

namespace irc {
namespace {

struct State {
  std::once_flag once;
  bool ok = false;
  std::string why;
  cudaStream_t stream = nullptr;
  std::atomic<size_t> live{0};
  std::mutex mu;
  std::vector<void*> pinned_to_free;  // freed on the next JS-thread entry (host funcs may not call CUDA)
  std::vector<void*> device_to_free;  // storages released inside a stream callback, freed likewise
  std::atomic<bool> capturing{false};  // set by the JS thread
  std::atomic<int> lost{0};  // the error that made the context unusable (context_lost), once one has been seen
  // JS thread only: instantiated graphs alive; graphs destroyed while a capture was open (destroyed after it);
  // scratch blocks replaced while graphs were alive (a graph may have their addresses baked in: freed when none is).
  int graphs = 0;
  std::vector<void*> graphs_to_destroy;
  std::vector<void*> retired_scratch;
  void* scratch[cu::kScratchSlots] = {};
  size_t scratch_cap[cu::kScratchSlots] = {};
};
State& st() {
  static State* s = new State();  // never destroyed: storages may be released during teardown
  return *s;
}

// A kernel exception (an illegal or misaligned address, a device-side assert, a trap, an illegal instruction, a
// timeout, a launch failure) or an uncorrectable ECC error: the CUDA context is unusable from then on, and every
// later call fails with it. The first one seen is kept (State::lost), and every later op fails with E_DEVICE_LOST
// and lost_text at once. (Not the launch errors in between, e.g. 701, too many resources requested: those fail the
// one launch.)
bool context_lost(cudaError_t e) {
  switch (static_cast<int>(e)) {
    case 214:  // cudaErrorECCUncorrectable
    case 700:  // cudaErrorIllegalAddress
    case 702:  // cudaErrorLaunchTimeout
    case 710:  // cudaErrorAssert
    case 714:  // cudaErrorHardwareStackError
    case 715:  // cudaErrorIllegalInstruction
    case 716:  // cudaErrorMisalignedAddress
    case 717:  // cudaErrorInvalidAddressSpace
    case 718:  // cudaErrorInvalidPc
    case 719:  // cudaErrorLaunchFailure
      return true;
    default:
      return false;
  }
}
void note(cudaError_t e) {
  int none = 0;
  if (context_lost(e)) st().lost.compare_exchange_strong(none, static_cast<int>(e));
}
// Said without calling the CUDA API (stream callbacks may not), with no ": " (the binding reads the text before the
// first one as the failing op's name).
std::string lost_text(int code) {
  const char* what = code == 700   ? "an illegal memory access"
                     : code == 716 ? "a misaligned memory access"
                     : code == 710 ? "a device-side assert"
                     : code == 214 ? "an uncorrectable ECC error"
                                   : "a kernel failure";
  return std::string("the GPU stopped with ") + what + " (CUDA error " + std::to_string(code) +
         ") in work queued earlier; CUDA cannot be used again in this process, and every later CUDA op fails so. "
         "Restart the process to use the GPU (or set IRCONSTYLE_BACKEND=cpu)";
}

// The message of a failed CUDA call, which also clears the thread's last error that the failed call left: the next
// launch check would otherwise report it against an unrelated op (every failure path builds its message here;
// sticky errors stay sticky regardless).
std::string err(cudaError_t e) {
  cudaGetLastError();
  note(e);
  return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}

void init() {
  State& s = st();
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    s.why = cuda_unavailable(e);  // (no driver, or one too old: said as such)
    return;
  }
  if (n == 0) {
    s.why = "no CUDA device";
    return;
  }
  if ((e = cudaSetDevice(0)) != cudaSuccess || (e = cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking)) != cudaSuccess) {
    s.why = err(e);
    return;
  }
  cudaMemPool_t pool;
  if (cudaDeviceGetDefaultMemPool(&pool, 0) == cudaSuccess) {
    uint64_t keep = UINT64_MAX;  // cache freed blocks instead of returning them to the driver
    cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
  }
  s.ok = true;
}

// True on a CUDA callback thread while a stream callback (or the destruction of its captures) runs: a tensor
// whose last reference drops there must not call cudaFreeAsync (callbacks may not call the CUDA API).
thread_local bool t_in_callback = false;
thread_local bool t_defer_release = false;  // set on the CPU executor's thread

void destroy_graph(void* x) {
  State& s = st();
  cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(x));  // a replay still in flight completes first
  if (--s.graphs == 0) {
    cudaDeviceGraphMemTrim(0);  // the graphs' reserved memory back to the device (what no replay in flight uses)
    std::lock_guard<std::mutex> lk(s.mu);
    s.device_to_free.insert(s.device_to_free.end(), s.retired_scratch.begin(), s.retired_scratch.end());
    s.retired_scratch.clear();
  }
}

void drain_deferred() {
  State& s = st();
  if (!s.capturing) {
    std::vector<void*> gs;
    gs.swap(s.graphs_to_destroy);
    for (void* x : gs) destroy_graph(x);
  }
  std::vector<void*> pinned, dev;
  {
    std::lock_guard<std::mutex> lk(s.mu);
    pinned.swap(s.pinned_to_free);
    dev.swap(s.device_to_free);
  }
  for (void* p : pinned) cudaFreeHost(p);
  for (void* p : dev) cudaFreeAsync(p, s.stream);  // every use was enqueued before the callback that dropped it
}

bool g_held = false;  // the stream is held by hold_stream (exact profiling)

// When the card is full: gives back what nothing uses (the frees deferred to this thread, the stream's pending
// frees, for which it waits, the blocks the pool keeps cached and the graphs' unused reserve), so that the failed
// call can be made once more. False (nothing to try again) inside a capture (its allocations are the graph's; no
// wait allowed), while the stream is held (the wait would last until the release), or on a failed stream.
bool reclaim(cudaStream_t s) {
  cudaGetLastError();  // (see err)
  if (st().capturing || g_held) return false;
  drain_deferred();
  if (cudaStreamSynchronize(s) != cudaSuccess) return false;  // (its error surfaces at the next read)
  cudaMemPool_t pool;
  if (cudaDeviceGetDefaultMemPool(&pool, 0) == cudaSuccess) cudaMemPoolTrimTo(pool, 0);
  cudaDeviceGraphMemTrim(0);
  cudaGetLastError();
  return true;
}

// cudaMallocAsync, once more after reclaim() when the card is full.
cudaError_t malloc_or_reclaim(void** p, size_t bytes, cudaStream_t s) {
  const cudaError_t e = cudaMallocAsync(p, bytes, s);
  return e == cudaErrorMemoryAllocation && reclaim(s) ? cudaMallocAsync(p, bytes, s) : e;
}

std::string mib(size_t bytes) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return b;
}

// "(tensors hold 12.0 MiB; the card has 3.1 MiB free of 48.0 MiB)"
std::string card_state() {
  cudaGetLastError();  // (see err)
  std::string m = "(tensors hold " + mib(st().live.load());
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess)
    m += "; the card has " + mib(free_b) + " free of " + mib(total_b);
  cudaGetLastError();
  return m + ")";
}

// "cannot allocate 64.0 MiB of GPU memory (tensors hold 12.0 MiB; the card has 3.1 MiB free of 48.0 MiB)"
std::string oom_message(size_t bytes, const char* what) {
  return "cannot allocate " + mib(bytes) + " of " + what + " " + card_state();
}

void need() {
  if (!cudev::available()) op_fail("E_CUDA", "CUDA is not available: " + st().why);
  if (const int lost = st().lost.load()) op_fail("E_DEVICE_LOST", lost_text(lost));
  // not inside a capture (a free would join the graph), nor while the stream is held: cudaFreeHost and graph
  // destruction may wait for the device, which waits for the host's release
  if (!st().capturing && !g_held) drain_deferred();
}

// Stream callbacks through cudaStreamAddCallback rather than cudaLaunchHostFunc: the latter is never called once
// the context has an error, which would leave reads / syncs pending forever and leak their pinned buffers. `fn`
// gets "" or "E_<code>: " and a description of the stream's error (built without calling the CUDA API).
struct HostFn {
  std::function<void(const std::string&)> fn;
};
void CUDART_CB run_host_fn(cudaStream_t, cudaError_t status, void* p) {
  auto* h = static_cast<HostFn*>(p);
  t_in_callback = true;
  try {
    std::string error;
    if (context_lost(status)) {
      note(status);
      error = "E_DEVICE_LOST: " + lost_text(static_cast<int>(status));
    } else if (status != cudaSuccess) {
      error = "E_CUDA: CUDA error " + std::to_string(static_cast<int>(status)) +
              " (an earlier kernel or copy on the stream failed)";
    }
    h->fn(error);
  } catch (...) {
  }
  delete h;
  t_in_callback = false;
}

void launch_host(std::function<void(const std::string&)> fn) {
  auto* h = new HostFn{std::move(fn)};
  cudaError_t e = cudaStreamAddCallback(st().stream, run_host_fn, h, 0);
  if (e != cudaSuccess) {
    delete h;
    op_fail("E_CUDA", "cudaStreamAddCallback: " + err(e));
  }
}

void free_pinned_later(void* pinned) {
  std::lock_guard<std::mutex> lk(st().mu);
  st().pinned_to_free.push_back(pinned);
}

}  // namespace

namespace cudev {

bool available() {
  State& s = st();
  std::call_once(s.once, init);
  return s.ok;
}
std::string why() {
  available();
  return st().why;
}
void* stream() { return available() ? st().stream : nullptr; }

void* alloc(size_t bytes) {
  need();
  void* p = nullptr;
  cudaError_t e = malloc_or_reclaim(&p, bytes ? bytes : 4, st().stream);
  if (e == cudaErrorMemoryAllocation) op_fail("E_OOM", oom_message(bytes, "GPU memory"));
  if (e != cudaSuccess) op_fail("E_CUDA", "cudaMallocAsync: " + err(e));
  st().live += bytes;
  return p;
}

void release(void* p, size_t bytes, bool in_graph) {
  if (!p || !st().ok) return;
  st().live -= bytes;
  if (t_in_callback || t_defer_release || (st().capturing && !in_graph)) {  // e.g. the last reference to a tensor
                                         // held by a read's callback or a CPU task, or memory made before a capture
    std::lock_guard<std::mutex> lk(st().mu);
    st().device_to_free.push_back(p);
    return;
  }
  cudaFreeAsync(p, st().stream);  // errors at teardown are ignored
}

void defer_releases_on_this_thread() { t_defer_release = true; }

void forget(size_t bytes) { st().live -= bytes; }

size_t live_bytes() { return st().live.load(); }

void upload(void* dst, const void* host, size_t bytes) {
  need();
  if (!bytes) return;
  // From pageable memory the copy is staged before the call returns, so `host` may be reused at once.
  cudaError_t e = cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, st().stream);
  if (e != cudaSuccess) op_fail("E_CUDA", "upload: " + err(e));
}

void download(const void* src, size_t bytes, std::function<void(const char*, size_t, const std::string&)> done) {
  need();
  char* pinned = static_cast<char*>(pinned_alloc(bytes ? bytes : 4));
  cudaError_t e = bytes ? cudaMemcpyAsync(pinned, src, bytes, cudaMemcpyDeviceToHost, st().stream) : cudaSuccess;
  if (e != cudaSuccess) {
    cudaFreeHost(pinned);
    op_fail("E_CUDA", "download: " + err(e));
  }
  launch_host([pinned, bytes, done = std::move(done)](const std::string& error) {
    done(pinned, error.empty() ? bytes : 0, error);
    free_pinned_later(pinned);
  });
}

void when_done(std::function<void(const std::string&)> done) {
  need();
  launch_host([done = std::move(done)](const std::string& error) { done(error); });
}

void copy_d2d(void* dst, const void* src, size_t bytes) {
  need();
  if (!bytes) return;
  cudaError_t e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, st().stream);
  if (e != cudaSuccess) op_fail("E_CUDA", "copy: " + err(e));
}

void host_step(std::function<void()> fn) {
  need();
  launch_host([fn = std::move(fn)](const std::string&) { fn(); });
}

void upload_from_pinned(void* dst, void* pinned, size_t bytes) {
  need();
  cudaError_t e = bytes ? cudaMemcpyAsync(dst, pinned, bytes, cudaMemcpyHostToDevice, st().stream) : cudaSuccess;
  if (e != cudaSuccess) {
    free_pinned_later(pinned);  // owned here, and no copy reads it
    op_fail("E_CUDA", "upload: " + err(e));
  }
  launch_host([pinned](const std::string&) { free_pinned_later(pinned); });
}

void download_to_pinned(void* pinned, const void* src, size_t bytes) {
  need();
  cudaError_t e = bytes ? cudaMemcpyAsync(pinned, src, bytes, cudaMemcpyDeviceToHost, st().stream) : cudaSuccess;
  if (e != cudaSuccess) op_fail("E_CUDA", "download: " + err(e));
}

void* pinned_alloc(size_t bytes) {
  void* p = nullptr;
  cudaError_t e = cudaMallocHost(&p, bytes ? bytes : 4);
  if (e != cudaSuccess) op_fail("E_OOM", "cannot allocate " + mib(bytes) + " of pinned host memory: " + err(e));
  return p;
}
void pinned_free(void* p) {
  if (p) cudaFreeHost(p);
}

void* record_event() {
  need();
  cudaEvent_t ev;
  cudaError_t e = cudaEventCreateWithFlags(&ev, cudaEventDisableTiming);
  if (e == cudaSuccess) e = cudaEventRecord(ev, st().stream);
  if (e != cudaSuccess) op_fail("E_CUDA", "event: " + err(e));
  return ev;
}
std::string wait_event(void* ev) {
  cudaError_t e = cudaEventSynchronize(static_cast<cudaEvent_t>(ev));
  cudaEventDestroy(static_cast<cudaEvent_t>(ev));
  return e == cudaSuccess ? std::string() : err(e);
}
void* timing_event() {
  need();
  cudaEvent_t ev;
  cudaError_t e = cudaEventCreate(&ev);
  if (e == cudaSuccess) e = cudaEventRecord(ev, st().stream);
  if (e != cudaSuccess) op_fail("E_CUDA", "event: " + err(e));
  return ev;
}
// Exact profiling: a one-thread kernel holds the stream until the host has enqueued the op (see device.h). It gives
// up after 250 ms of wall time (globaltimer; an op is enqueued in well under 1 ms), so a host that never releases it,
// or one that waits for the device meanwhile (a lazily loaded module's first launch may), cannot hang the device or
// stall for long.
namespace {
unsigned* g_hold_host = nullptr;  // mapped pinned word the host writes
unsigned* g_hold_dev = nullptr;
unsigned g_hold_seq = 0;
bool g_hold_failed = false;  // the mapped word could not be made: exact profiling is not offered again
}  // namespace

__device__ __forceinline__ unsigned long long global_ns() {
#ifdef IRC_CUDA_EMU
  return irc_emu::globaltimer_ns();
#else
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
#endif
}

__global__ void hold_k(const volatile unsigned* flag, unsigned v) {
  const unsigned long long t0 = global_ns();
  for (;;) {
    if (*flag >= v) return;
    if (global_ns() - t0 > 250000000ull) return;
    __nanosleep(256);
  }
}

bool hold_stream() {
  need();
  if (g_held || g_hold_failed || st().capturing) return false;
  if (!g_hold_host) {
    void* h = nullptr;
    void* d = nullptr;
    if (cudaHostAlloc(&h, sizeof(unsigned), cudaHostAllocMapped) != cudaSuccess) {
      cudaGetLastError();
      g_hold_failed = true;
      return false;
    }
    if (cudaHostGetDevicePointer(&d, h, 0) != cudaSuccess) {
      cudaGetLastError();
      cudaFreeHost(h);
      g_hold_failed = true;
      return false;
    }
    g_hold_host = static_cast<unsigned*>(h);
    g_hold_dev = static_cast<unsigned*>(d);
    *static_cast<volatile unsigned*>(g_hold_host) = g_hold_seq;
  }
  cudaGetLastError();  // an earlier non-sticky error must not read as this launch's (the kernel would run unreleased)
  hold_k<<<1, 1, 0, st().stream>>>(g_hold_dev, ++g_hold_seq);
  if (cudaGetLastError() != cudaSuccess) return false;
  g_held = true;
  return true;
}

void release_stream() {
  if (!g_held) return;
  std::atomic_thread_fence(std::memory_order_seq_cst);
  *static_cast<volatile unsigned*>(g_hold_host) = g_hold_seq;
  g_held = false;
}

bool stream_held() { return g_held; }

float elapsed_ms(void* start, void* end) {
  float ms = -1.f;
  auto a = static_cast<cudaEvent_t>(start), b = static_cast<cudaEvent_t>(end);
  if (cudaEventSynchronize(b) != cudaSuccess || cudaEventElapsedTime(&ms, a, b) != cudaSuccess) ms = -1.f;
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return ms;
}

void capture_begin() {
  need();
  // Thread-local mode: a call on this thread that cannot be captured (a synchronising copy, cudaMalloc) fails the
  // capture instead of running; other threads (CUDA callbacks, the CPU executor) are not affected.
  cudaError_t e = cudaStreamBeginCapture(st().stream, cudaStreamCaptureModeThreadLocal);
  if (e != cudaSuccess) op_fail("E_CAPTURE", "cudaStreamBeginCapture: " + err(e));
  st().capturing = true;
}

void* capture_end(bool keep) {
  State& s = st();
  if (!s.capturing) return nullptr;
  cudaGraph_t g = nullptr;
  cudaError_t e = cudaStreamEndCapture(s.stream, &g);
  s.capturing = false;
  cudaGetLastError();  // a failed capture leaves its error for the next check_launch otherwise
  drain_deferred();
  if (!keep || e != cudaSuccess || !g) {
    if (g) cudaGraphDestroy(g);
    if (keep) op_fail("E_CAPTURE", "the capture failed: " + err(e) + " (an op made a call that cannot be captured)");
    return nullptr;
  }
  cudaGraphExec_t x = nullptr;
  e = cudaGraphInstantiate(&x, g, 0);
  cudaGraphDestroy(g);
  if (e == cudaErrorMemoryAllocation) op_fail("E_OOM", "cannot instantiate the CUDA graph " + card_state());
  if (e != cudaSuccess) op_fail("E_CAPTURE", "cudaGraphInstantiate: " + err(e));
  s.graphs++;
  // The graph plans its own memory (reserved at its first launch); blocks the op-by-op runs left cached in the
  // stream-ordered pool would otherwise be held twice.
  cudaMemPool_t pool;
  if (cudaDeviceGetDefaultMemPool(&pool, 0) == cudaSuccess) cudaMemPoolTrimTo(pool, 0);
  return x;
}

bool capturing() { return st().capturing; }

size_t graph_bytes() {
  if (!st().ok) return 0;
  uint64_t v = 0;
  if (cudaDeviceGetGraphMemAttribute(0, cudaGraphMemAttrReservedMemCurrent, &v) != cudaSuccess) return 0;
  return static_cast<size_t>(v);
}

size_t scratch_bytes() {
  size_t n = 0;
  for (size_t c : st().scratch_cap) n += c;
  return n;
}

// (The first launch reserves the graph's memory: on a full card, once more after reclaim().)
void graph_launch(void* graph) {
  need();
  const auto x = static_cast<cudaGraphExec_t>(graph);
  cudaError_t e = cudaGraphLaunch(x, st().stream);
  if (e == cudaErrorMemoryAllocation && reclaim(st().stream)) e = cudaGraphLaunch(x, st().stream);
  if (e == cudaErrorMemoryAllocation) op_fail("E_OOM", "cannot reserve the memory of a CUDA graph " + card_state());
  if (e != cudaSuccess) op_fail("E_CUDA", "cudaGraphLaunch: " + err(e));
}

void graph_destroy(void* graph) {
  if (!graph || !st().ok) return;
  if (st().capturing) st().graphs_to_destroy.push_back(graph);  // e.g. from a finalizer during a capture
  else destroy_graph(graph);
}

}  // namespace cudev

namespace cu {

void check(cudaError_t e, const char* op, const char* what) {
  if (e == cudaSuccess) return;
  const std::string m = err(e);
  if (const int lost = st().lost.load()) op_fail("E_DEVICE_LOST", std::string(op) + ": " + lost_text(lost));
  op_fail("E_CUDA", std::string(op) + ": " + what + ": " + m);
}

bool host_may_wait(cudaStream_t s) {
  cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
  return cudaStreamIsCapturing(s, &cs) == cudaSuccess && cs == cudaStreamCaptureStatusNone && !cudev::stream_held();
}

void* scratch(cudaStream_t s, size_t bytes, int slot) {
  State& g = st();
  if (slot < 0 || slot >= kScratchSlots) op_fail("E_INTERNAL", "scratch slot " + std::to_string(slot) + " out of range");
  // IRCONSTYLE_SCRATCH_EXACT=1: every request its exact size (reallocated when it differs), so that compute-sanitizer
  // sees a kernel running past its buffer (scripts/device-check.mjs --sanitize); otherwise slots only grow
  static const bool exact = [] {
    const char* v = std::getenv("IRCONSTYLE_SCRATCH_EXACT");
    return v && std::strcmp(v, "1") == 0;
  }();
  if (bytes > g.scratch_cap[slot] || (exact && bytes != g.scratch_cap[slot] && !g.capturing)) {
    if (g.capturing)  // growing would free memory made before the capture and make the new block the graph's
      op_fail("E_CAPTURE", "scratch slot " + std::to_string(slot) + " must grow to " + std::to_string(bytes) +
                               " bytes inside a capture (run the same work once before capturing)");
    if (g.scratch[slot] && g.graphs > 0) g.retired_scratch.push_back(g.scratch[slot]);  // graphs may use it
    else if (g.scratch[slot]) cudaFreeAsync(g.scratch[slot], s);
    size_t want = exact ? bytes : bytes + bytes / 4;
    cudaError_t e = malloc_or_reclaim(&g.scratch[slot], want, s);
    if (e != cudaSuccess) {
      g.scratch[slot] = nullptr;
      g.scratch_cap[slot] = 0;
      if (e == cudaErrorMemoryAllocation) op_fail("E_OOM", oom_message(want, "GPU scratch memory"));
      op_fail("E_CUDA", "scratch: " + err(e));
    }
    g.scratch_cap[slot] = want;
  }
  return g.scratch[slot];
}

bool tf32_convolutions() {
  static const bool on = [] {  // read once: every conv launch asks
    const char* v = std::getenv("IRCONSTYLE_TF32");
    return !(v && std::strcmp(v, "0") == 0);
  }();
  return on;
}

}  // namespace cu
}  // namespace irc
