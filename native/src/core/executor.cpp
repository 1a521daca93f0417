#include "executor.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <new>
#include <thread>

#include "../cpu/threadpool.h"

namespace irc {
namespace {

struct Queue {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::function<void()>> tasks;
  bool stop = false;
  std::thread thread;
};
Queue* g_q = nullptr;
std::atomic<uint64_t> g_submissions[512];
// Per-op kernel time in nanoseconds and call counts, collected while profiling is on.
std::atomic<bool> g_profile{false};
std::atomic<uint64_t> g_prof_ns[512], g_prof_calls[512];

void queue_main(Queue* q) {
  threadpool_init(0);
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lk(q->mu);
      q->cv.wait(lk, [&] { return q->stop || !q->tasks.empty(); });
      if (q->stop) break;
      task = std::move(q->tasks.front());
      q->tasks.pop_front();
    }
    task();  // tasks catch their own errors
  }
  threadpool_shutdown();
}

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
  KernelCtx ctx;
  ctx.op = op.name;
  ctx.attrs = attrs;
  ctx.in.reserve(in.size());
  for (auto& t : in) ctx.in.push_back({t->ptr(), t->shape, t->dtype, t->numel()});
  for (auto& t : out) ctx.out.push_back({t->ptr(), t->shape, t->dtype, t->numel()});
  std::string err;
  const bool prof = g_profile.load(std::memory_order_relaxed);
  auto t0 = prof ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
  try {
    op.cpu(ctx);
    if (prof) {
      int id = static_cast<int>(&op - op_entry(0));
      g_prof_ns[id] += std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
      g_prof_calls[id]++;
    }
  } catch (const OpError& e) {
    err = e.code + ": " + e.msg;
  } catch (const std::bad_alloc&) {
    err = std::string("E_OOM: ") + op.name + ": out of memory";
  } catch (const std::exception& e) {
    err = std::string("E_INTERNAL: ") + op.name + ": " + e.what();
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
    std::lock_guard<std::mutex> lk(g_q->mu);
    g_q->tasks.push_back(std::move(task));
  }
  g_q->cv.notify_one();
}

void set_profiling(bool on) {
  if (on)
    for (int i = 0; i < 512; ++i) g_prof_ns[i] = g_prof_calls[i] = 0;
  g_profile = on;
}
void op_profile(int id, uint64_t& ns, uint64_t& calls) {
  ns = id >= 0 && id < 512 ? g_prof_ns[id].load() : 0;
  calls = id >= 0 && id < 512 ? g_prof_calls[id].load() : 0;
}

uint64_t op_submissions(int id) { return id >= 0 && id < 512 ? g_submissions[id].load() : 0; }

std::vector<TensorP> submit_op(const OpEntry& op, std::vector<TensorP> inputs, std::vector<double> attrs) {
  int n = static_cast<int>(inputs.size());
  if (n < op.min_in || n > op.max_in)
    op_fail("E_ARITY", std::string(op.name) + ": expected " + std::to_string(op.min_in) +
                           (op.max_in != op.min_in ? ".." + std::to_string(op.max_in) : "") + " inputs, got " +
                           std::to_string(n));
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
    outs.push_back(new_tensor(m.shape, m.dtype));
  }
  const OpEntry* opp = &op;
  g_submissions[&op - op_entry(0)]++;
  enqueue([opp, in = std::move(inputs), out = outs, a = std::move(attrs)]() mutable { run_kernel(*opp, in, out, a); });
  return outs;
}

}  // namespace irc
