#include "tensor.h"

#include "../cuda/device.h"

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <vector>

namespace irc {
namespace {

constexpr size_t kCacheCap = size_t(2) << 30;  // keep at most 2 GiB of freed blocks for reuse

struct Pool {
  std::mutex mu;
  std::multimap<size_t, void*> free_blocks;
  int64_t live_storages = 0, live_bytes = 0, cached_bytes = 0, peak_bytes = 0;
};
Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: storages may be released during process teardown
  return *p;
}

size_t round_bytes(size_t b) { return b == 0 ? 64 : ((b + 63) / 64) * 64; }

void* pool_alloc(size_t bytes) {
  Pool& p = pool();
  size_t rb = round_bytes(bytes);
  {
    std::lock_guard<std::mutex> lk(p.mu);
    auto it = p.free_blocks.find(rb);
    if (it != p.free_blocks.end()) {
      void* ptr = it->second;
      p.free_blocks.erase(it);
      p.cached_bytes -= rb;
      p.live_storages++;
      p.live_bytes += rb;
      if (p.live_bytes > p.peak_bytes) p.peak_bytes = p.live_bytes;
      return ptr;
    }
  }
  void* ptr = std::aligned_alloc(64, rb);
  if (!ptr) {
    pool_trim();
    ptr = std::aligned_alloc(64, rb);
  }
  if (!ptr) op_fail("E_OOM", "cannot allocate " + std::to_string(rb) + " bytes of host memory");
  std::lock_guard<std::mutex> lk(p.mu);
  p.live_storages++;
  p.live_bytes += rb;
  if (p.live_bytes > p.peak_bytes) p.peak_bytes = p.live_bytes;
  return ptr;
}

void pool_release(void* ptr, size_t bytes) {
  Pool& p = pool();
  size_t rb = round_bytes(bytes);
  std::lock_guard<std::mutex> lk(p.mu);
  p.live_storages--;
  p.live_bytes -= rb;
  if (p.cached_bytes + static_cast<int64_t>(rb) <= static_cast<int64_t>(kCacheCap)) {
    p.free_blocks.emplace(rb, ptr);
    p.cached_bytes += rb;
  } else {
    std::free(ptr);
  }
}

std::atomic<uint64_t> g_capture{0};   // the open capture: new storages are tagged with it (0: none, or sealed)
std::atomic<uint64_t> g_counting{0};  // the capture whose storages are counted (until it ends)
std::atomic<int64_t> g_capture_live{0};

}  // namespace

uint64_t capture_open() { return g_capture.load(); }
uint64_t capture_counting() { return g_counting.load(); }
void set_capture_open(uint64_t number) {
  g_capture_live = 0;
  g_capture = number;
  g_counting = number;
}
void seal_capture() { g_capture = 0; }
int64_t capture_live_storages() { return g_capture_live.load(); }

size_t dtype_size(DType) { return 4; }

const char* device_name(Device d) { return d == Device::cuda ? "cuda" : "cpu"; }

Storage::Storage(size_t b, Device d) : bytes(b), device(d), capture(g_capture.load()) {
  if (d == Device::cuda) data_ = cudev::alloc(b);
  if (capture) g_capture_live++;  // counted once constructed (an allocation that throws leaves no storage)
}
void* Storage::allocate() { return device == Device::cuda ? cudev::alloc(bytes) : pool_alloc(bytes); }
Storage::~Storage() {
  const bool open = capture && capture == g_counting.load();
  if (open) g_capture_live--;
  if (!data_) return;
  if (device != Device::cuda) pool_release(data_, bytes);
  else if (!capture || open) cudev::release(data_, bytes, capture != 0);  // inside the capture: part of the graph
  else cudev::forget(bytes);  // made in a capture that ended without a graph: its address was never backed
}

TensorP new_tensor(const Shape& shape, DType dtype, Device device) {
  auto t = std::make_shared<Tensor>();
  t->shape = shape;
  t->dtype = dtype;
  t->storage = std::make_shared<Storage>(t->bytes(), device);
  return t;
}

MemStats mem_stats() {
  Pool& p = pool();
  std::lock_guard<std::mutex> lk(p.mu);
  return {p.live_storages, p.live_bytes, p.cached_bytes, p.peak_bytes};
}

void reset_peak() {
  Pool& p = pool();
  std::lock_guard<std::mutex> lk(p.mu);
  p.peak_bytes = p.live_bytes;
}

void pool_trim() {
  Pool& p = pool();
  std::lock_guard<std::mutex> lk(p.mu);
  for (auto& kv : p.free_blocks) std::free(kv.second);
  p.free_blocks.clear();
  p.cached_bytes = 0;
}

}  // namespace irc
