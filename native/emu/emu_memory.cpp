// The CUDA emulator's memory (see emu.cpp): device memory is host memory, as much as IRCONSTYLE_EMU_MEMORY MiB;
// allocations happen at once, frees in stream order (kernels enqueued before may still use the block); pinned host
// memory is tracked so that copies to and from pageable memory behave as CUDA's do.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <vector>

#include "emu_internal.h"

namespace irc_emu {
namespace {

// Memory bookkeeping, under mu. Never destroyed: stream threads may still free blocks while the process exits.
struct Mem {
  std::mutex mu;
  std::set<void*> graph_owned;  // pointers of every live graph's allocations (cudaFree* of one is a no-op)
  // Device memory. IRCONSTYLE_EMU_MEMORY=<MiB> sets the card's size: an allocation that would take the live device
  // bytes past it fails with cudaErrorMemoryAllocation, as on a full card (scripts/service-scenarios.mjs). A block
  // counts from its allocation until its free runs (in stream order for cudaFreeAsync); a graph's allocations count
  // as the most of them live at once in the graph, until the graph is destroyed.
  std::map<void*, size_t> device_blocks;  // the blocks outside graphs: start -> bytes
  size_t device_live = 0;  // the bytes counted
  size_t graph_reserved = 0;  // the part of device_live that graphs hold (cudaGraphMemAttrReservedMemCurrent)
  std::map<const char*, size_t> pinned;  // page-locked host memory (cudaMallocHost, cudaHostAlloc): start -> bytes
};
Mem& M() {
  static Mem* m = new Mem();
  return *m;
}

void* host_alloc(size_t bytes) {
  void* p = nullptr;
  if (posix_memalign(&p, 256, bytes ? bytes : 1) != 0) return nullptr;
  return p;
}

// Device memory: the card's size, and allocations counted as Mem says (above).
size_t device_memory() {
  static const size_t limit = [] {
    const char* v = std::getenv("IRCONSTYLE_EMU_MEMORY");
    return v && *v ? static_cast<size_t>(std::strtoull(v, nullptr, 10)) << 20 : size_t(80) << 30;  // as an H100
  }();
  return limit;
}

bool graph_owned(void* p) {
  std::lock_guard<std::mutex> lk(M().mu);
  return M().graph_owned.count(p) > 0;
}
bool pinned(const void* p) {
  auto* c = static_cast<const char*>(p);
  std::lock_guard<std::mutex> lk(M().mu);
  auto it = M().pinned.upper_bound(c);
  if (it == M().pinned.begin()) return false;
  --it;
  return c < it->first + it->second;
}
}  // namespace

void* device_alloc(size_t bytes, Graph* g) {
  const size_t limit = device_memory();
  std::lock_guard<std::mutex> lk(M().mu);
  const size_t charge = !g ? bytes : g->live + bytes > g->peak ? g->live + bytes - g->peak : 0;
  if (charge > limit - M().device_live) return nullptr;
  void* p = host_alloc(bytes);
  if (!p) return nullptr;
  M().device_live += charge;
  if (g) {
    M().graph_reserved += charge;
    g->owned.push_back(p);
    g->open[p] = bytes;
    g->live += bytes;
    g->peak = std::max(g->peak, g->live);
    M().graph_owned.insert(p);
  } else {
    M().device_blocks[p] = bytes;
  }
  return p;
}
void device_free(void* p) {
  {
    std::lock_guard<std::mutex> lk(M().mu);
    auto it = M().device_blocks.find(p);
    if (it != M().device_blocks.end()) {
      M().device_live -= it->second;
      M().device_blocks.erase(it);
    }
  }
  std::free(p);
}

void release_graph_memory(Graph& g) {
  {
    std::lock_guard<std::mutex> lk(M().mu);
    for (void* p : g.owned) M().graph_owned.erase(p);
    M().device_live -= g.peak;
    M().graph_reserved -= g.peak;
  }
  for (void* p : g.owned) std::free(p);
  g.owned.clear();
  g.peak = 0;
}

}  // namespace irc_emu

using namespace irc_emu;

cudaError_t cudaMalloc(void** p, size_t bytes) {
  if (cudaError_t e = refuse_in_capture()) return e;
  *p = device_alloc(bytes);
  return *p ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}
cudaError_t cudaFree(void* p) {
  if (!p || graph_owned(p)) return cudaSuccess;
  if (cudaError_t e = refuse_in_capture()) return e;
  drain_all();
  device_free(p);
  return cudaSuccess;
}
cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t s) {
  *p = device_alloc(bytes, S(s)->open_capture());
  return *p ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}
cudaError_t cudaFreeAsync(void* p, cudaStream_t s) {
  if (!p) return cudaSuccess;
  if (graph_owned(p)) {  // a graph's memory lives until the graph is destroyed; freed in its capture, it may be shared
    if (Graph* g = S(s)->open_capture()) {
      std::lock_guard<std::mutex> lk(M().mu);
      auto it = g->open.find(p);
      if (it != g->open.end()) {
        g->live -= it->second;
        g->open.erase(it);
      }
    }
    return cudaSuccess;
  }
  S(s)->push([p] { device_free(p); });
  return cudaSuccess;
}
cudaError_t cudaMallocHost(void** p, size_t bytes) {
  if (cudaError_t e = refuse_in_capture()) return e;
  *p = host_alloc(bytes);
  if (!*p) return fail(cudaErrorMemoryAllocation);
  std::lock_guard<std::mutex> lk(M().mu);
  M().pinned[static_cast<const char*>(*p)] = bytes ? bytes : 1;
  return cudaSuccess;
}
cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned) { return cudaMallocHost(p, bytes); }
cudaError_t cudaHostGetDevicePointer(void** d, void* h, unsigned) {
  *d = h;
  return cudaSuccess;
}
cudaError_t cudaFreeHost(void* p) {
  {
    std::lock_guard<std::mutex> lk(M().mu);
    M().pinned.erase(static_cast<const char*>(p));
  }
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s) {
  if (!bytes) return cudaSuccess;
  const bool pageable =
      (kind == cudaMemcpyHostToDevice && !pinned(src)) || (kind == cudaMemcpyDeviceToHost && !pinned(dst));
  if (pageable && S(s)->open_capture()) return refuse_in_capture();
  // As CUDA does with pageable host memory: a copy from it is staged at the call (the buffer may be reused on
  // return), and one into it has completed when the call returns. Pinned memory is read and written in stream order.
  if (pageable && kind == cudaMemcpyHostToDevice) {
    const char* from = static_cast<const char*>(src);
    auto staged = std::make_shared<std::vector<char>>(from, from + bytes);
    S(s)->push([dst, staged] { std::memcpy(dst, staged->data(), staged->size()); });
    return cudaSuccess;
  }
  S(s)->push([dst, src, bytes] { std::memmove(dst, src, bytes); });
  if (pageable) S(s)->drain();
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  cudaMemcpyAsync(dst, src, bytes, kind, nullptr);
  return cudaDeviceSynchronize();
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t s) {
  if (bytes) S(s)->push([p, value, bytes] { std::memset(p, value, bytes); });
  return cudaSuccess;
}
cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* pool, int) {
  *pool = reinterpret_cast<cudaMemPool_t>(default_stream());
  return cudaSuccess;
}
cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t, cudaMemPoolAttr, void*) { return cudaSuccess; }
cudaError_t cudaMemPoolTrimTo(cudaMemPool_t, size_t) { return cudaSuccess; }
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  std::lock_guard<std::mutex> lk(M().mu);
  *total_bytes = device_memory();
  *free_bytes = *total_bytes - M().device_live;
  return cudaSuccess;
}
cudaError_t cudaDeviceGraphMemTrim(int) { return cudaSuccess; }
cudaError_t cudaDeviceGetGraphMemAttribute(int, cudaGraphMemAttributeType, void* v) {
  std::lock_guard<std::mutex> lk(M().mu);
  *static_cast<uint64_t*>(v) = M().graph_reserved;
  return cudaSuccess;
}
