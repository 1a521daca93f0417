// A fixed pool of worker threads for parallel_for. Work is split into one contiguous chunk per participant;
// chunk boundaries depend only on (n, grain, pool size), so results are deterministic.
#include "threadpool.h"

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "../ops/op_api.h"

namespace irc {
namespace {

struct Pool {
  int size = 1;  // participants including the calling (executor) thread
  std::vector<std::thread> workers;
  std::mutex mu;
  std::condition_variable cv_work, cv_done;
  const std::function<void(int64_t, int64_t)>* fn = nullptr;
  int64_t n = 0, chunk = 0;
  int chunks = 0;
  uint64_t generation = 0;
  int pending = 0;
  bool stop = false;
  std::exception_ptr error;  // the first exception a chunk threw in this call (rethrown by parallel_for)
};

Pool* g_pool = nullptr;
thread_local bool t_in_parallel = false;

// Runs chunk c. An exception (an OpError from a kernel body, an allocation failure) must not escape a worker
// thread, which would terminate the process: the first one is kept and rethrown on the calling thread.
void run_chunk(Pool& p, int c) {
  int64_t b = c * p.chunk, e = b + p.chunk;
  if (e > p.n) e = p.n;
  try {
    if (b < e) (*p.fn)(b, e);
  } catch (...) {
    std::lock_guard<std::mutex> lk(p.mu);
    if (!p.error) p.error = std::current_exception();
  }
}

void worker_main(Pool* p, int id) {
  t_in_parallel = true;
  uint64_t seen = 0;
  for (;;) {
    std::unique_lock<std::mutex> lk(p->mu);
    p->cv_work.wait(lk, [&] { return p->stop || p->generation != seen; });
    if (p->stop) return;
    seen = p->generation;
    int chunks = p->chunks;
    lk.unlock();
    if (id < chunks) run_chunk(*p, id);
    lk.lock();
    if (--p->pending == 0) p->cv_done.notify_one();
  }
}

}  // namespace

void threadpool_init(int threads) {
  if (g_pool) return;
  if (threads <= 0) {
    const char* env = std::getenv("IRCONSTYLE_THREADS");
    threads = env ? std::atoi(env) : 0;
    if (threads <= 0) threads = static_cast<int>(std::thread::hardware_concurrency());
    if (threads <= 0) threads = 1;
  }
  g_pool = new Pool();
  g_pool->size = threads;
  for (int i = 1; i < threads; ++i) g_pool->workers.emplace_back(worker_main, g_pool, i);
}

void threadpool_shutdown() {
  if (!g_pool) return;
  {
    std::lock_guard<std::mutex> lk(g_pool->mu);
    g_pool->stop = true;
  }
  g_pool->cv_work.notify_all();
  for (auto& t : g_pool->workers) t.join();
  delete g_pool;
  g_pool = nullptr;
}

int num_threads() { return g_pool ? g_pool->size : 1; }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  int parts = num_threads();
  if (n / grain < parts) parts = static_cast<int>(n / grain);
  if (parts <= 1 || t_in_parallel || !g_pool) {
    fn(0, n);
    return;
  }
  Pool& p = *g_pool;
  {
    std::lock_guard<std::mutex> lk(p.mu);
    p.fn = &fn;
    p.n = n;
    p.chunk = (n + parts - 1) / parts;
    p.chunks = parts;
    p.pending = p.size - 1;
    ++p.generation;
  }
  p.cv_work.notify_all();
  t_in_parallel = true;
  run_chunk(p, 0);
  t_in_parallel = false;
  std::unique_lock<std::mutex> lk(p.mu);
  p.cv_done.wait(lk, [&] { return p.pending == 0; });
  if (p.error) {  // every chunk has finished (fn is no longer used): report the failure here
    std::exception_ptr e = p.error;
    p.error = nullptr;
    lk.unlock();
    std::rethrow_exception(e);
  }
}

float* scratch(size_t floats, int slot) {
  struct Buf {
    float* p = nullptr;
    size_t cap = 0;
    ~Buf() { std::free(p); }
  };
  thread_local Buf bufs[4];
  Buf& b = bufs[slot & 3];
  if (floats > b.cap) {
    std::free(b.p);
    size_t bytes = ((floats * sizeof(float) + 63) / 64) * 64;
    b.p = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (!b.p) op_fail("E_OOM", "scratch: cannot allocate " + std::to_string(bytes) + " bytes");
    b.cap = floats;
  }
  return b.p;
}

}  // namespace irc
