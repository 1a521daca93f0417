// The CUDA emulator's runtime (IRCONSTYLE_CUDA=EMU builds only; see cuda_runtime.h in this folder): one emulated
// device whose memory is host memory (emu_memory.cpp), streams as worker threads running their work in order, graphs
// as recorded work, and kernels run block by block with each thread of a block a fiber that yields at barriers and
// warp shuffles. A kernel that cannot finish (lanes of a warp waiting at different barriers, a shuffle that reads an
// exited lane) or is launched with a configuration the GPU refuses fails with a message on stderr naming the
// launch's file and line, and, as a failed kernel fails a real context, every later call reports the failure.
#include <cuda_runtime.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#if !defined(__x86_64__)
#include <ucontext.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "emu_internal.h"

namespace irc_emu {

ThreadState* g_thread = nullptr;

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kSms = 132;                       // what the emulated device reports (an H100's figures)
constexpr int kSmemOptin = 227 * 1024;
constexpr size_t kSmemDefault = 48 * 1024;
constexpr size_t kStack = 256 * 1024;           // per fiber, with a guard page below it
constexpr size_t kPage = 4096;

thread_local cudaError_t t_last = cudaSuccess;  // launch errors of the calling thread
std::atomic<int> g_sticky{cudaSuccess};         // a failed kernel fails the device, as a real context

std::mutex g_attr_mu;
std::map<const void*, int> g_smem_optin;        // cudaFuncAttributeMaxDynamicSharedMemorySize per kernel

std::mutex g_streams_mu;
std::vector<Stream*> g_streams;  // every stream alive (a graph's memory is freed once all have drained)

// Capture rules (thread-local mode, the only one the backend uses): while this thread captures, a call that would
// wait for the device, reach pageable host memory or add a stream callback is refused and invalidates the capture.
thread_local Stream* t_capturing = nullptr;

}  // namespace

// ---- streams (emu_internal.h) ------------------------------------------------------------------------------------
cudaError_t fail(cudaError_t e) {
  t_last = e;
  return e;
}

Stream* new_stream() {
  auto* s = new Stream();
  std::lock_guard<std::mutex> lk(g_streams_mu);
  g_streams.push_back(s);
  return s;
}
void drain_all() {
  std::vector<Stream*> all;
  {
    std::lock_guard<std::mutex> lk(g_streams_mu);
    all = g_streams;
  }
  for (Stream* s : all) s->drain();
}
Stream* default_stream() {
  static Stream* s = new_stream();  // never destroyed (work may be pending at exit)
  return s;
}
Stream* S(cudaStream_t s) { return s ? reinterpret_cast<Stream*>(s) : default_stream(); }

cudaError_t refuse_in_capture() {
  Stream* st = t_capturing;
  if (!st) return cudaSuccess;
  std::lock_guard<std::mutex> lk(st->mu);
  if (st->capture) st->capture->invalid = true;
  return fail(cudaErrorStreamCaptureUnsupported);
}

namespace {

void free_graph(Graph* g) {
  release_graph_memory(*g);
  delete g;
}

struct Event {
  std::mutex mu;
  std::condition_variable cv;
  bool done = true;
  Clock::time_point at{};
};

// ---- fibers ------------------------------------------------------------------------------------------------------
// A fiber's saved context. On x86-64 the switch saves the callee-saved registers on the stack and swaps stack
// pointers (no system call: swapcontext's signal-mask call per switch was half of the emulator's time); elsewhere
// ucontext.
#if defined(__x86_64__)
extern "C" void irc_emu_switch(void** save_sp, void* load_sp);
asm(R"(
  .text
  .globl irc_emu_switch
  .hidden irc_emu_switch
  .type irc_emu_switch, @function
irc_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size irc_emu_switch, .-irc_emu_switch
)");
struct Ctx {
  void* sp = nullptr;
  // The first switch to it "returns" into fn with the stack aligned as after a call (fn must never return).
  void start(char* stack, size_t size, void (*fn)()) {
    auto* top = reinterpret_cast<uintptr_t*>((reinterpret_cast<uintptr_t>(stack) + size) & ~uintptr_t(15));
    *--top = 0;                                    // fn's (never used) return address
    *--top = reinterpret_cast<uintptr_t>(fn);      // popped by ret
    for (int i = 0; i < 6; i++) *--top = 0;        // rbp rbx r12 r13 r14 r15
    sp = top;
  }
};
inline void switch_to(Ctx& from, Ctx& to) { irc_emu_switch(&from.sp, to.sp); }
#else
struct Ctx {
  ucontext_t uc;
  void start(char* stack, size_t size, void (*fn)()) {
    getcontext(&uc);
    uc.uc_stack.ss_sp = stack;
    uc.uc_stack.ss_size = size;
    uc.uc_link = nullptr;
    makecontext(&uc, fn, 0);
  }
};
inline void switch_to(Ctx& from, Ctx& to) { swapcontext(&from.uc, &to.uc); }
#endif

enum class FS { Ready, BlockBarrier, WarpBarrier, Done };
struct Fiber {
  Ctx ctx;
  char* stack = nullptr;
  FS state = FS::Ready;
  ThreadState ts;
  int index = 0;
};

struct Block {
  std::vector<Fiber> fibers;
  Ctx sched;
  Fiber* cur = nullptr;
  const std::function<void()>* body = nullptr;
  std::vector<uint64_t> slots;  // per lane: the value it offers to a shuffle
  std::vector<char> smem;
  bool failed = false;
  std::string error;
};
Block* g_block = nullptr;  // the block the stream thread runs now

// IRCONSTYLE_EMU_ORDER=reverse runs the threads of a block from the last to the first between two barriers: a
// missing barrier between a shared-memory write and another thread's read then shows in one of the two orders.
const bool g_reverse = [] {
  const char* v = std::getenv("IRCONSTYLE_EMU_ORDER");
  return v && std::strcmp(v, "reverse") == 0;
}();

char* stack_at(size_t i) {  // fiber stacks, made once and reused by every block (under g_run_mu)
  static std::vector<char*> stacks;
  while (stacks.size() <= i) {
    void* m = mmap(nullptr, kStack + kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return nullptr;
    mprotect(m, kPage, PROT_NONE);  // overflow faults instead of corrupting the next stack
    stacks.push_back(static_cast<char*>(m) + kPage);
  }
  return stacks[i];
}

void fiber_main() {
  Block* b = g_block;
  (*b->body)();
  b->cur->state = FS::Done;
  switch_to(b->cur->ctx, b->sched);
}

void yield(FS why) {
  Block* b = g_block;
  Fiber* f = b->cur;
  f->state = why;
  switch_to(f->ctx, b->sched);
}

std::string where(const Config& c) { return std::string(c.file) + ":" + std::to_string(c.line); }

// Runs one block to completion; false (b.error set) on a deadlock or a fault found by the emulator.
bool run_block(Block& b, const Config& c, uint3 bid) {
  const unsigned nt = c.block.x * c.block.y * c.block.z;
  b.fibers.resize(nt);
  b.slots.assign(((nt + 31) / 32) * 32, 0);
  for (unsigned i = 0; i < nt; i++) {
    Fiber& f = b.fibers[i];
    f.index = static_cast<int>(i);
    f.state = FS::Ready;
    f.ts = ThreadState{uint3{i % c.block.x, (i / c.block.x) % c.block.y, i / (c.block.x * c.block.y)}, bid, c.block,
                       c.grid};
    f.stack = stack_at(i);
    if (!f.stack) {
      b.error = "cannot map fiber stacks";
      return false;
    }
    f.ctx.start(f.stack, kStack, fiber_main);
  }
  unsigned live = nt;
  while (live > 0) {
    for (unsigned k = 0; k < nt; k++) {
      Fiber& f = b.fibers[g_reverse ? nt - 1 - k : k];
      if (f.state != FS::Ready) continue;
      b.cur = &f;
      g_thread = &f.ts;
      switch_to(b.sched, f.ctx);
      if (b.failed) return false;
    }
    // every thread now waits at a barrier or has finished: release what may go on
    live = 0;
    unsigned at_block = 0;
    bool released = false;
    for (unsigned w = 0; w < nt; w += 32) {
      const unsigned end = std::min(nt, w + 32);
      unsigned warp_live = 0, at_warp = 0;
      for (unsigned i = w; i < end; i++) {
        FS s = b.fibers[i].state;
        if (s != FS::Done) warp_live++;
        if (s == FS::WarpBarrier) at_warp++;
        if (s == FS::BlockBarrier) at_block++;
      }
      live += warp_live;
      if (at_warp > 0 && at_warp == warp_live) {
        for (unsigned i = w; i < end; i++)
          if (b.fibers[i].state == FS::WarpBarrier) b.fibers[i].state = FS::Ready;
        released = true;
      }
    }
    if (live > 0 && !released) {
      if (at_block == live) {
        for (Fiber& f : b.fibers)
          if (f.state == FS::BlockBarrier) f.state = FS::Ready;
      } else {
        b.error = "deadlock: " + std::to_string(at_block) + " of " + std::to_string(live) +
                  " live threads wait at __syncthreads while the others wait at a warp-level sync";
        return false;
      }
    }
  }
  return true;
}

// Grids run one at a time in the process (streams may overlap on a GPU, they need not): the running block, its
// fibers and the kernels' static shared memory are process-wide.
std::mutex g_run_mu;

// IRCONSTYLE_EMU_FAULT=<n>: the n-th grid to run (from 1) faults as a kernel reading an illegal address would, which
// fails the device for the rest of the process (scripts/service-scenarios.mjs: what a service sees then).
bool injected_fault(const Config& c) {
  static const long long at = [] {
    const char* v = std::getenv("IRCONSTYLE_EMU_FAULT");
    return v && *v ? std::atoll(v) : 0LL;
  }();
  static long long grids = 0;  // under g_run_mu
  if (at <= 0 || ++grids != at) return false;
  std::fprintf(stderr, "[irconstyle cuda-emu] IRCONSTYLE_EMU_FAULT: grid %lld (launched at %s) faults\n", at,
               where(c).c_str());
  g_sticky = cudaErrorIllegalAddress;
  return true;
}

void run_grid(const Config& c, const std::function<void()>& body) {
  std::lock_guard<std::mutex> lk(g_run_mu);
  if (g_sticky.load() != cudaSuccess || injected_fault(c)) return;
  Block b;
  b.body = &body;
  b.smem.assign(c.smem ? c.smem : 1, 0);
  g_block = &b;
  for (unsigned z = 0; z < c.grid.z; z++)
    for (unsigned y = 0; y < c.grid.y; y++)
      for (unsigned x = 0; x < c.grid.x; x++) {
        if (!run_block(b, c, uint3{x, y, z})) {
          std::fprintf(stderr, "[irconstyle cuda-emu] kernel launched at %s failed in block (%u,%u,%u): %s\n",
                       where(c).c_str(), x, y, z, b.error.c_str());
          g_sticky = cudaErrorLaunchFailure;
          g_block = nullptr;
          g_thread = nullptr;
          return;
        }
      }
  g_block = nullptr;
  g_thread = nullptr;
}

}  // namespace

// ---- kernel-side entry points --------------------------------------------------------------------------------------
void syncthreads() { yield(FS::BlockBarrier); }
void syncwarp() { yield(FS::WarpBarrier); }
int lane() { return g_block->cur->index & 31; }
void* dyn_smem() { return g_block->smem.data(); }
uint64_t globaltimer_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

uint64_t shfl(uint64_t v, int src) {
  Block* b = g_block;
  const int me = b->cur->index;
  const int base = me & ~31;
  b->slots[me] = v;
  yield(FS::WarpBarrier);  // every live lane has offered its value
  const size_t from = static_cast<size_t>(base + (src & 31));
  uint64_t r = 0;
  if (from >= b->fibers.size() || b->fibers[from].state == FS::Done) {
    b->failed = true;
    b->error = "lane " + std::to_string(me & 31) + " of warp " + std::to_string(me / 32) + " shuffles from lane " +
               std::to_string(src & 31) + ", which has exited or does not exist";
    switch_to(b->cur->ctx, b->sched);  // never resumed
  } else {
    r = b->slots[from];
  }
  yield(FS::WarpBarrier);  // every lane has read before any offers its next value
  return r;
}

namespace {
// IRCONSTYLE_EMU_COVERAGE=<file>: the launch sites (file:line) this process ran are appended to it at exit
// (scripts/check-emu.mjs sets it on the device check's workers and lists the sites no case reached).
struct Coverage {
  std::mutex mu;
  std::set<std::string> sites;
  ~Coverage() {
    const char* path = std::getenv("IRCONSTYLE_EMU_COVERAGE");
    if (!path || sites.empty()) return;
    std::string text;
    for (const std::string& s : sites) text += s + "\n";
    const int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);  // one write: workers may end at the same time
    if (fd < 0) return;
    if (write(fd, text.data(), text.size()) < 0) std::perror("IRCONSTYLE_EMU_COVERAGE");
    close(fd);
  }
};
Coverage g_coverage;
}  // namespace

void launch(const Config& c, const void* kernel, std::function<void()> body) {
  {
    std::lock_guard<std::mutex> lk(g_coverage.mu);
    g_coverage.sites.insert(where(c));
  }
  const uint64_t threads = uint64_t(c.block.x) * c.block.y * c.block.z;
  std::string why;
  if (threads == 0 || threads > 1024 || c.block.z > 64) why = "block of " + std::to_string(threads) + " threads";
  else if (c.grid.x == 0 || c.grid.y == 0 || c.grid.z == 0 || c.grid.y > 65535 || c.grid.z > 65535)
    why = "grid (" + std::to_string(c.grid.x) + "," + std::to_string(c.grid.y) + "," + std::to_string(c.grid.z) + ")";
  else if (c.smem > kSmemDefault) {
    std::lock_guard<std::mutex> lk(g_attr_mu);
    auto it = g_smem_optin.find(kernel);
    if (it == g_smem_optin.end() || c.smem > static_cast<size_t>(it->second))
      why = std::to_string(c.smem) + " bytes of dynamic shared memory without cudaFuncSetAttribute";
  }
  if (!why.empty()) {
    std::fprintf(stderr, "[irconstyle cuda-emu] invalid launch at %s: %s\n", where(c).c_str(), why.c_str());
    fail(cudaErrorInvalidConfiguration);
    return;
  }
  Config cfg = c;
  S(c.stream)->push([cfg, body = std::move(body)] { run_grid(cfg, body); });
}

cudaError_t func_set_attribute(const void* f, cudaFuncAttribute a, int v) {
  if (a != cudaFuncAttributeMaxDynamicSharedMemorySize || v < 0 || v > kSmemOptin) return fail(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lk(g_attr_mu);
  g_smem_optin[f] = v;
  return cudaSuccess;
}

cudaError_t occupancy(int* n, const void*, int threads, size_t smem) {
  if (threads <= 0 || threads > 1024) return fail(cudaErrorInvalidValue);
  int k = std::min(32, 2048 / threads);
  if (smem > 0) k = std::min<int>(k, static_cast<int>((228 * 1024) / (smem + 1024)));
  *n = k;
  return cudaSuccess;
}

// Work of a stand-in library (native/emu/stand_in: cuBLAS, cuBLASLt, cuDNN computed on the CPU) in stream order.
// run(ctx) each time the work runs (once, or at every replay of a graph that recorded it); release(ctx) when the
// last copy of the task is destroyed.
extern "C" int irc_emu_enqueue(void* stream, void (*run)(void*), void* ctx, void (*release)(void*)) {
  std::shared_ptr<void> owned(ctx, release);
  S(static_cast<cudaStream_t>(stream))->push([run, owned] { run(owned.get()); });
  return 0;
}

}  // namespace irc_emu

using namespace irc_emu;

// ---- runtime API -------------------------------------------------------------------------------------------------
cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : fail(cudaErrorInvalidValue); }
cudaError_t cudaGetDevice(int* d) {
  *d = 0;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int) {
  std::memset(p, 0, sizeof(*p));
  std::snprintf(p->name, sizeof(p->name), "irconstyle CUDA emulator (CPU)");
  p->multiProcessorCount = kSms;
  p->sharedMemPerBlockOptin = kSmemOptin;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int) {
  if (a == cudaDevAttrMultiProcessorCount) *v = kSms;
  else if (a == cudaDevAttrMaxSharedMemoryPerBlockOptin) *v = kSmemOptin;
  else return fail(cudaErrorInvalidValue);
  return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int* v) {
  *v = CUDART_VERSION;
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() {
  if (cudaError_t e = refuse_in_capture()) return e;
  drain_all();
  return static_cast<cudaError_t>(g_sticky.load());
}
cudaError_t cudaGetLastError() {
  cudaError_t e = t_last;
  t_last = cudaSuccess;
  return e != cudaSuccess ? e : static_cast<cudaError_t>(g_sticky.load());
}
cudaError_t cudaPeekAtLastError() { return t_last != cudaSuccess ? t_last : static_cast<cudaError_t>(g_sticky.load()); }
const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorNotSupported: return "cudaErrorNotSupported";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    default: return "cudaErrorUnknown";
  }
}
const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorLaunchFailure: return "a kernel failed in the emulator (see its message on stderr)";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorInvalidConfiguration: return "invalid launch configuration";
    default: return "emulated CUDA error";
  }
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
  *s = reinterpret_cast<cudaStream_t>(new_stream());
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  if (s) {
    S(s)->drain();
    {
      std::lock_guard<std::mutex> lk(g_streams_mu);
      g_streams.erase(std::find(g_streams.begin(), g_streams.end(), S(s)));
    }
    delete S(s);
  }
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  if (cudaError_t e = refuse_in_capture()) return e;
  S(s)->drain();
  return static_cast<cudaError_t>(g_sticky.load());
}
cudaError_t cudaStreamAddCallback(cudaStream_t s, cudaStreamCallback_t cb, void* data, unsigned) {
  if (S(s)->open_capture()) return refuse_in_capture();
  S(s)->push([s, cb, data] { cb(s, static_cast<cudaError_t>(g_sticky.load()), data); });
  return cudaSuccess;
}
cudaError_t cudaLaunchHostFunc(cudaStream_t s, cudaHostFn_t fn, void* data) {
  S(s)->push([fn, data] {
    if (g_sticky.load() == cudaSuccess) fn(data);
  });
  return cudaSuccess;
}

// Events.
cudaError_t cudaEventCreate(cudaEvent_t* e) {
  *e = reinterpret_cast<cudaEvent_t>(new Event());
  return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) { return cudaEventCreate(e); }
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  auto* ev = reinterpret_cast<Event*>(e);
  {
    std::lock_guard<std::mutex> lk(ev->mu);
    ev->done = false;
  }
  S(s)->push([ev] {
    {
      std::lock_guard<std::mutex> lk(ev->mu);
      ev->done = true;
      ev->at = Clock::now();
    }
    ev->cv.notify_all();
  });
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  if (cudaError_t r = refuse_in_capture()) return r;
  auto* ev = reinterpret_cast<Event*>(e);
  std::unique_lock<std::mutex> lk(ev->mu);
  ev->cv.wait(lk, [ev] { return ev->done; });
  return static_cast<cudaError_t>(g_sticky.load());
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  auto* x = reinterpret_cast<Event*>(a);
  auto* y = reinterpret_cast<Event*>(b);
  *ms = std::chrono::duration<float, std::milli>(y->at - x->at).count();
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  auto* ev = reinterpret_cast<Event*>(e);
  cudaEventSynchronize(e);  // (a record still queued would touch it)
  delete ev;
  return cudaSuccess;
}

// Graphs: a capture records the stream's work; a replay enqueues it again.
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode) {
  Stream* st = S(s);
  std::lock_guard<std::mutex> lk(st->mu);
  if (st->capture) return fail(cudaErrorInvalidValue);
  st->capture = new Graph();
  t_capturing = st;
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* g) {
  Stream* st = S(s);
  std::lock_guard<std::mutex> lk(st->mu);
  if (!st->capture) return fail(cudaErrorInvalidValue);
  Graph* graph = st->capture;
  st->capture = nullptr;
  if (t_capturing == st) t_capturing = nullptr;
  if (graph->invalid) {
    *g = nullptr;
    free_graph(graph);
    return fail(cudaErrorStreamCaptureInvalidated);
  }
  *g = reinterpret_cast<cudaGraph_t>(graph);
  return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus* cs) {
  *cs = S(s)->open_capture() ? cudaStreamCaptureStatusActive : cudaStreamCaptureStatusNone;
  return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* x, cudaGraph_t g, unsigned long long) {
  auto* src = reinterpret_cast<Graph*>(g);
  auto* exec = new Graph();
  exec->tasks = src->tasks;
  exec->owned.swap(src->owned);  // the memory moves to the executable graph (the template is destroyed first)
  std::swap(exec->peak, src->peak);
  *x = reinterpret_cast<cudaGraphExec_t>(exec);
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t x, cudaStream_t s) {
  auto* g = reinterpret_cast<Graph*>(x);
  for (const Task& t : g->tasks) S(s)->push(t);
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t g) {
  free_graph(reinterpret_cast<Graph*>(g));
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t x) {
  drain_all();  // replays in flight use the graph's memory
  free_graph(reinterpret_cast<Graph*>(x));
  return cudaSuccess;
}
