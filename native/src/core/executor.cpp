#include "executor.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <future>
#include <deque>
#include <map>
#include <mutex>
#include <new>
#include <thread>

#include "../cpu/threadpool.h"
#include "../cuda/device.h"
#include "../ops/switches.h"

namespace irc {
namespace {

struct Queue {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::function<void()>> tasks;
  bool stop = false;
  std::thread thread;
  // IRCONSTYLE_CPU_QUEUE_DEPTH=n (n > 0): enqueue waits while n tasks are queued or running, so the JS thread stays
  // at most n ops ahead. Default 0: unbounded. With n = 1 CPU memory is held over the same program-order intervals
  // as on CUDA (allocated at submission, freed when JS releases it): a CPU model of the GPU's peak memory.
  int depth = 0;
  int pending = 0;  // queued + running (only counted when depth > 0)
  std::condition_variable drained;
};
Queue* g_q = nullptr;
std::atomic<uint64_t> g_submissions[512];
// Per-op kernel time in nanoseconds and call counts, collected while profiling is on.
std::atomic<bool> g_profile{false};
std::atomic<bool> g_profile_shapes{false};  // also split by shapes (formats a key per op: extra host time)
std::atomic<bool> g_profile_exact{false};   // CUDA: the stream held while each op is enqueued (cudev::hold_stream)
std::atomic<uint64_t> g_prof_ns[512], g_prof_calls[512], g_host_ns[512], g_dispose_ns{0};
// CUDA ops are timed with a pair of events around their launches (JS thread only); resolved when read.
struct CudaTiming {
  int id;
  void* start;
  void* end;
  std::string key;
};
std::vector<CudaTiming> g_cuda_pending;
// The same totals split by op and shapes ("op [in0] -> [out0]"), written by the JS thread (CUDA) or the queue
// thread (CPU) while profiling.
std::mutex g_shape_mu;
std::map<std::string, std::pair<uint64_t, uint64_t>> g_shape_prof;

std::string shape_key(const char* name, const std::vector<TensorP>& in, const std::vector<TensorP>& out) {
  std::string k = name;
  if (!in.empty()) k += " " + shape_str(in[0]->shape);
  if (!out.empty()) k += " -> " + shape_str(out[0]->shape);
  return k;
}
void add_shape_time(const std::string& key, uint64_t ns) {
  if (key.empty()) return;
  std::lock_guard<std::mutex> lk(g_shape_mu);
  auto& e = g_shape_prof[key];
  e.first += ns;
  e.second++;
}

void resolve_cuda_timings() {
  for (auto& t : g_cuda_pending) {
    float ms = cudev::elapsed_ms(t.start, t.end);
    if (ms < 0) continue;
    g_prof_ns[t.id] += static_cast<uint64_t>(ms * 1e6);
    g_prof_calls[t.id]++;
    add_shape_time(t.key, static_cast<uint64_t>(ms * 1e6));
  }
  g_cuda_pending.clear();
}

void queue_main(Queue* q) {
  threadpool_init(0);
  cudev::defer_releases_on_this_thread();
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lk(q->mu);
      q->cv.wait(lk, [&] { return q->stop || !q->tasks.empty(); });
      if (q->stop) break;
      task = std::move(q->tasks.front());
      q->tasks.pop_front();
    }
    try {
      task();  // tasks catch their own errors (an exception escaping this thread would abort the process)
    } catch (...) {
    }
    task = nullptr;  // release the task's tensors before it counts as done
    if (q->depth > 0) {
      std::lock_guard<std::mutex> lk(q->mu);
      q->pending--;
      q->drained.notify_all();
    }
  }
  threadpool_shutdown();
}

}  // namespace

std::string error_text(const char* what) {
  try {
    throw;
  } catch (const OpError& e) {
    return e.code + ": " + e.msg;
  } catch (const std::bad_alloc&) {
    return std::string("E_OOM: ") + what + ": out of memory";
  } catch (const std::exception& e) {
    return std::string("E_INTERNAL: ") + what + ": " + e.what();
  } catch (...) {
    return std::string("E_INTERNAL: ") + what + ": unknown exception";
  }
}

namespace {

void run_kernel(const OpEntry& op, std::vector<TensorP>& in, std::vector<TensorP>& out,
                const std::vector<double>& attrs) {
  // A failed producer poisons everything downstream, in-place targets included.
  for (auto& t : in) {
    if (!t->storage->error.empty()) {
      for (auto& o : out) o->storage->error = t->storage->error;
      if (out.empty())
        for (auto& i : in) i->storage->error = t->storage->error;
      return;
    }
  }
  std::string err;
  const bool prof = g_profile.load(std::memory_order_relaxed);
  auto t0 = prof ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
  try {
    KernelCtx ctx;
    ctx.op = op.name;
    ctx.attrs = attrs;
    ctx.in.reserve(in.size());
    // ptr() allocates CPU memory on first use (here, for outputs): an allocation failure fails this op
    for (auto& t : in) ctx.in.push_back({t->ptr(), t->shape, t->dtype, t->numel()});
    for (auto& t : out) ctx.out.push_back({t->ptr(), t->shape, t->dtype, t->numel()});
    op.cpu(ctx);
    if (prof) {
      int id = static_cast<int>(&op - op_entry(0));
      const uint64_t ns =
          std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
      g_prof_ns[id] += ns;
      g_prof_calls[id]++;
      if (g_profile_shapes.load(std::memory_order_relaxed)) add_shape_time(shape_key(op.name, in, out), ns);
    }
  } catch (...) {
    err = error_text(op.name);
  }
  if (err.empty()) return;
  for (auto& o : out) o->storage->error = err;
  if (out.empty())
    for (auto& i : in) i->storage->error = err;
}

}  // namespace

void executor_start() {
  if (g_q) return;
  g_q = new Queue();
  if (const char* d = std::getenv("IRCONSTYLE_CPU_QUEUE_DEPTH")) g_q->depth = std::max(0, std::atoi(d));
  g_q->thread = std::thread(queue_main, g_q);
}

void executor_stop() {
  if (!g_q) return;
  {
    std::lock_guard<std::mutex> lk(g_q->mu);
    g_q->stop = true;
  }
  g_q->cv.notify_all();
  g_q->thread.join();
  delete g_q;
  g_q = nullptr;
}

void enqueue(std::function<void()> task) {
  executor_start();
  {
    std::unique_lock<std::mutex> lk(g_q->mu);
    if (g_q->depth > 0) {
      g_q->drained.wait(lk, [] { return g_q->pending < g_q->depth; });
      g_q->pending++;
    }
    g_q->tasks.push_back(std::move(task));
  }
  g_q->cv.notify_one();
}

void set_profiling(bool on, bool shapes, bool exact) {
  g_profile_shapes = on && shapes;
  g_profile_exact = on && exact;
  if (on) {
    resolve_cuda_timings();
    for (int i = 0; i < 512; ++i) g_prof_ns[i] = g_prof_calls[i] = g_host_ns[i] = 0;
    g_dispose_ns = 0;
    std::lock_guard<std::mutex> lk(g_shape_mu);
    g_shape_prof.clear();
  }
  g_profile = on;
}
bool profiling() { return g_profile.load(std::memory_order_relaxed); }
void profile_dispose(uint64_t ns) { g_dispose_ns += ns; }
uint64_t dispose_ns() { return g_dispose_ns.load(); }
void op_profile(int id, uint64_t& ns, uint64_t& calls, uint64_t& host_ns) {
  if (!g_cuda_pending.empty()) resolve_cuda_timings();
  ns = id >= 0 && id < 512 ? g_prof_ns[id].load() : 0;
  calls = id >= 0 && id < 512 ? g_prof_calls[id].load() : 0;
  host_ns = id >= 0 && id < 512 ? g_host_ns[id].load() : 0;
}

std::vector<ShapeTime> shape_profile() {
  if (!g_cuda_pending.empty()) resolve_cuda_timings();
  std::lock_guard<std::mutex> lk(g_shape_mu);
  std::vector<ShapeTime> rows;
  for (auto& [k, v] : g_shape_prof) rows.push_back({k, v.first, v.second});
  return rows;
}

namespace {
Device g_capture_device = Device::cpu;
uint64_t g_capture_count = 0;
std::string g_capture_broken;  // the first rule broken during the open capture (JS thread only)
std::vector<std::shared_ptr<Storage>> g_capture_kept;  // pre-capture storages the CUDA capture uses (JS thread)

[[noreturn]] void capture_fail(const std::string& msg) {
  if (g_capture_broken.empty()) g_capture_broken = msg;  // fails the capture even if the caller swallows the error
  op_fail("E_CAPTURE", msg);
}
}  // namespace

void refuse_orphan(const Tensor& t, const char* what) {
  const uint64_t c = t.storage->capture;
  if (t.device() == Device::cuda && c && c != capture_counting())
    op_fail("E_CAPTURE", std::string(what) + ": the tensor was made inside a graph capture that failed (it was not "
                         "disposed before the capture ended); its memory belonged to the graph, which was never made");
}

namespace {
// Keeps t's storage for the graph being captured when it was made before the capture.
void keep_for_capture(const TensorP& t) {
  if (capture_open() && g_capture_device == Device::cuda && !t->storage->capture) g_capture_kept.push_back(t->storage);
}
}  // namespace

void refuse_in_capture(const char* what) {
  if (capture_open())
    capture_fail(std::string(what) + " is not allowed while a graph capture is open (only ops on the captured "
                                     "device are recorded; make constants and read results outside)");
}

void capture_begin(Device device) {
  if (capture_counting()) op_fail("E_CAPTURE", "a graph capture is already open");
  if (profiling()) op_fail("E_CAPTURE", "cannot capture while profiling is on");
  if (device == Device::cuda) cudev::capture_begin();
  g_capture_device = device;
  g_capture_broken.clear();
  g_capture_kept.clear();
  set_capture_open(++g_capture_count);
}

void capture_seal() {
  if (!capture_open()) op_fail("E_CAPTURE", "no graph capture is open");
  if (g_capture_device != Device::cpu) op_fail("E_CAPTURE", "only CPU captures are sealed (a CUDA stream records until the end)");
  seal_capture();
}

void* capture_end(bool keep, std::vector<std::shared_ptr<Storage>>* kept) {
  if (!capture_counting()) op_fail("E_CAPTURE", "no graph capture is open");
  if (keep && g_capture_device == Device::cpu && capture_open()) {
    // CPU storages are released by the executor thread once their tasks have run: wait for it to count them
    // (a sealed capture's caller has awaited the executor already).
    auto done = std::make_shared<std::promise<void>>();
    std::future<void> f = done->get_future();
    enqueue([done]() { done->set_value(); });
    f.wait();
  }
  const int64_t alive = capture_live_storages();
  set_capture_open(0);
  const bool ok = keep && alive == 0 && g_capture_broken.empty();
  std::vector<std::shared_ptr<Storage>> used;
  used.swap(g_capture_kept);
  void* graph = g_capture_device == Device::cuda ? cudev::capture_end(ok) : nullptr;
  if (graph && kept) kept->swap(used);
  if (keep && !g_capture_broken.empty()) op_fail("E_CAPTURE", g_capture_broken);
  if (keep && alive)
    op_fail("E_CAPTURE", std::to_string(alive) + " tensor" + (alive == 1 ? "" : "s") +
                             " made during the capture " + (alive == 1 ? "is" : "are") +
                             " still alive: everything made inside must be disposed before the capture ends");
  return graph;
}

uint64_t op_submissions(int id) { return id >= 0 && id < 512 ? g_submissions[id].load() : 0; }

namespace {
// Adds the time since construction to the op's host time (while profiling).
struct HostTimer {
  int id;
  bool on = g_profile.load(std::memory_order_relaxed);
  std::chrono::steady_clock::time_point t0 = on ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
  ~HostTimer() {
    if (on)
      g_host_ns[id] += std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
  }
};
}  // namespace

std::vector<TensorP> submit_op(const OpEntry& op, std::vector<TensorP> inputs, std::vector<double> attrs,
                               Device device) {
  HostTimer timer{static_cast<int>(&op - op_entry(0))};
  int n = static_cast<int>(inputs.size());
  if (n < op.min_in || n > op.max_in)
    op_fail("E_ARITY", std::string(op.name) + ": expected " + std::to_string(op.min_in) +
                           (op.max_in != op.min_in ? ".." + std::to_string(op.max_in) : "") + " inputs, got " +
                           std::to_string(n));
  if (n) device = inputs[0]->device();
  for (int i = 1; i < n; ++i)
    if (inputs[i]->device() != device)
      op_fail("E_DEVICE", std::string(op.name) + ": input 0 is on " + device_name(device) + " but input " +
                              std::to_string(i) + " is on " + device_name(inputs[i]->device()) +
                              " (move it with .to(device))");
  if (device == Device::cuda && !op.cuda)
    op_fail("E_CUDA", std::string(op.name) + ": this op has no CUDA kernel yet");
  if (capture_open() && device != g_capture_device)
    capture_fail(std::string(op.name) + ": an op on " + device_name(device) + " inside a graph capture on " +
                             device_name(g_capture_device));
  for (auto& t : inputs) refuse_orphan(*t, op.name);
  InferCtx ic;
  ic.op = op.name;
  ic.attrs = attrs;
  for (auto& t : inputs) ic.in.push_back({t->shape, t->dtype});
  op.infer(ic);
  std::vector<TensorP> outs;
  outs.reserve(ic.out.size());
  for (auto& m : ic.out) {
    for (int64_t d : m.shape)
      if (d < 0) op_fail("E_INTERNAL", std::string(op.name) + ": inferred a negative dimension " + shape_str(m.shape));
    try {
      outs.push_back(new_tensor(m.shape, m.dtype, device));
    } catch (...) {  // (CUDA memory is allocated here) a capture missing this op must not succeed
      if (capture_open()) capture_fail(error_text(op.name));
      throw;
    }
  }
  g_submissions[&op - op_entry(0)]++;
  if (device == Device::cuda) {
    KernelCtx ctx;
    ctx.op = op.name;
    ctx.attrs = std::move(attrs);
    ctx.stream = cudev::stream();
    for (auto& t : inputs) ctx.in.push_back({t->ptr(), t->shape, t->dtype, t->numel()});
    for (auto& t : outs) ctx.out.push_back({t->ptr(), t->shape, t->dtype, t->numel()});
    if (g_profile.load(std::memory_order_relaxed)) {
      // exact: the GPU waits until the whole op is enqueued, so host time between its launches is not counted
      struct Hold {
        bool on;
        ~Hold() {
          if (on) cudev::release_stream();
        }
      } hold{g_profile_exact.load(std::memory_order_relaxed) && cudev::hold_stream()};
      void* start = cudev::timing_event();
      op.cuda(ctx);
      g_cuda_pending.push_back(
          {static_cast<int>(&op - op_entry(0)), start, cudev::timing_event(),
           g_profile_shapes.load(std::memory_order_relaxed) ? shape_key(op.name, inputs, outs) : std::string()});
    } else if (capture_open()) {
      for (auto& t : inputs) keep_for_capture(t);
      try {
        op.cuda(ctx);
      } catch (...) {  // nothing was recorded for this op: the capture must not succeed
        capture_fail(error_text(op.name));
      }
    } else {
      op.cuda(ctx);  // enqueues on the stream; stream order keeps the inputs' memory valid (stream-ordered frees)
    }
    return outs;
  }
  const OpEntry* opp = &op;
  enqueue([opp, in = std::move(inputs), out = outs, a = std::move(attrs), sw = switch_snapshot()]() mutable {
    SwitchScope scope(sw);  // the kernel switches as they were when the op was enqueued (as CUDA reads them)
    run_kernel(*opp, in, out, a);
  });
  return outs;
}

TensorP copy_to_device(const TensorP& t, Device device) {
  if (t->device() != device) refuse_in_capture("a transfer between devices");
  refuse_orphan(*t, "to");
  TensorP out = new_tensor(t->shape, t->dtype, device);
  const size_t bytes = t->bytes();
  if (t->device() == device) {
    if (device == Device::cuda) {
      keep_for_capture(t);
      cudev::copy_d2d(out->ptr(), t->ptr(), bytes);
    } else {
      enqueue([t, out, bytes]() {
        if (!t->storage->error.empty()) {
          out->storage->error = t->storage->error;
          return;
        }
        try {
          if (bytes) std::memcpy(out->ptr(), t->ptr(), bytes);
        } catch (...) {
          out->storage->error = error_text("copy");
        }
      });
    }
    return out;
  }
  if (device == Device::cuda) {
    // CPU -> CUDA: a host step on the stream waits for the CPU executor to reach this point, stages the bytes in
    // pinned memory, then the stream copies them up.
    void* pinned = cudev::pinned_alloc(bytes);
    auto ready = std::make_shared<std::promise<void>>();
    std::shared_future<void> fut = ready->get_future().share();
    enqueue([ready]() { ready->set_value(); });
    cudev::host_step([t, out, pinned, bytes, fut]() {
      fut.wait();
      if (!t->storage->error.empty()) out->storage->error = t->storage->error;
      else if (bytes) std::memcpy(pinned, t->ptr(), bytes);
    });
    cudev::upload_from_pinned(out->ptr(), pinned, bytes);
    return out;
  }
  // CUDA -> CPU: the stream copies into pinned memory; the CPU executor waits for that event, then copies out.
  void* pinned = cudev::pinned_alloc(bytes);
  cudev::download_to_pinned(pinned, t->ptr(), bytes);
  void* ev = cudev::record_event();
  enqueue([t, out, pinned, bytes, ev]() {
    std::string e = cudev::wait_event(ev);
    if (!e.empty()) {
      out->storage->error = "E_CUDA: to: " + e;
    } else {
      try {
        if (bytes) std::memcpy(out->ptr(), pinned, bytes);
      } catch (...) {
        out->storage->error = error_text("to");
      }
    }
    cudev::pinned_free(pinned);
  });
  return out;
}

}  // namespace irc
