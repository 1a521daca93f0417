// Refcounted storage and tensors. A Tensor is a contiguous view (offset + shape) into a Storage.
// Queued ops hold shared_ptrs to their inputs and outputs, so disposing a JS handle never frees memory a
// pending kernel still uses.
#pragma once
#include <memory>
#include <string>

#include "../ops/op_api.h"

namespace irc {

size_t dtype_size(DType d);

enum class Device : int32_t { cpu = 0, cuda = 1 };
const char* device_name(Device d);

// CPU memory is allocated when first used (normally when the producing kernel runs on the executor), not when
// the op is enqueued: the JS thread runs far ahead of the executor, so eager allocation would hold every
// intermediate of a whole forward at once. CUDA memory is allocated at enqueue, in stream order.
struct Storage {
  size_t bytes = 0;
  Device device = Device::cpu;
  // Set (on the executor thread only) when the op that produced this storage failed; later ops that read it
  // fail with the same message, and reads reject with it.
  std::string error;
  // Non-zero when made while a graph capture was open (its number): on CUDA its memory then belongs to that graph.
  const uint64_t capture = 0;
  // JS handles (tensors and views) naming this storage; changed on the JS thread only (binding.cpp). Queued ops
  // may still hold tensors whose handles are gone: they run before anything submitted later.
  int js_handles = 0;
  Storage(size_t bytes, Device device);
  void* data() {
    if (!data_) data_ = allocate();
    return data_;
  }
  bool materialized() const { return data_ != nullptr; }
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

 private:
  void* allocate();
  void* data_ = nullptr;
};

struct Tensor {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape shape;
  DType dtype = DType::f32;
  Device device() const { return storage->device; }
  int64_t numel() const { return irc::numel(shape); }
  size_t bytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  void* ptr() const { return static_cast<char*>(storage->data()) + offset * dtype_size(dtype); }
};
using TensorP = std::shared_ptr<Tensor>;

TensorP new_tensor(const Shape& shape, DType dtype, Device device = Device::cpu);  // uninitialised, pooled

// The memory pool: exact-size free lists with a cap on cached bytes. Thread-safe.
struct MemStats {
  int64_t live_storages, live_bytes, cached_bytes, peak_bytes;
};
MemStats mem_stats();

// Graph-capture bookkeeping (captures are opened and closed by executor.cpp): the number of the open capture
// (0: none, or sealed), the capture whose storages are counted (until it ends), how many of them are alive.
uint64_t capture_open();
uint64_t capture_counting();
void set_capture_open(uint64_t number);  // 0 ends it
void seal_capture();  // stops tagging (and the rules) but keeps counting
int64_t capture_live_storages();
void pool_trim();  // release cached blocks
void reset_peak();  // peak_bytes <- live_bytes

}  // namespace irc
