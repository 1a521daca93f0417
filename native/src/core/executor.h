// The CPU executor: one native queue thread that runs enqueued tasks in order; kernels inside a task use the
// thread pool. Enqueueing never blocks on the work itself.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "../ops/registry.h"
#include "tensor.h"

namespace irc {

void executor_start();
void executor_stop();  // drains nothing: pending tasks are dropped (process teardown)
void enqueue(std::function<void()> task);

// Validate and shape-infer synchronously (throws OpError), allocate outputs on the inputs' device, and run the
// kernel: CPU ops are queued on the executor; CUDA ops are enqueued on the CUDA stream from this (JS) thread.
// `device` is used only by ops without inputs (fill).
std::vector<TensorP> submit_op(const OpEntry& op, std::vector<TensorP> inputs, std::vector<double> attrs,
                               Device device = Device::cpu);

// Copy of t on another device, ordered after everything queued on both devices that writes t.
TensorP copy_to_device(const TensorP& t, Device device);

// Graph capture (lib/infer/graph.ts). While a capture is open, ops are recorded on `device` and must stay there;
// host data, reads, syncs and transfers are refused (E_CAPTURE) so that what is recorded is exactly the device
// work. On CUDA the stream is captured into a graph; on the CPU nothing is recorded, but the same rules are
// checked, so a function that captures on the CPU captures on CUDA. capture_end(keep): closes it; with keep, fails
// (E_CAPTURE) if tensors made inside are still alive, and returns the instantiated CUDA graph (nullptr on the CPU,
// after waiting for the CPU executor to finish the recorded work). Without keep, discards it.
// `kept` (with a graph returned): the storages made before the capture that its recorded work reads or writes —
// the graph holds only their addresses, so its owner keeps them alive for as long as it may be replayed.
void capture_begin(Device device);
void* capture_end(bool keep, std::vector<std::shared_ptr<Storage>>* kept = nullptr);
// CPU captures: closes the recording without waiting (the rules end; storages made inside are still counted), so
// that the caller can await the executor instead of capture_end blocking on it.
void capture_seal();
// Throws E_CAPTURE naming `what` while a capture is open.
void refuse_in_capture(const char* what);
// Inside a catch block: the message of the exception being handled as set on failed storages and read by JS
// ("E_CODE: ..."; E_OOM for bad_alloc, E_INTERNAL otherwise, naming `what`).
std::string error_text(const char* what);
// Throws E_CAPTURE if t is a CUDA tensor made inside a capture that has ended (it outlived a failed capture: its
// memory belonged to a graph that was never made).
void refuse_orphan(const Tensor& t, const char* what);

// How many times each op id was submitted (for the test-coverage check).
uint64_t op_submissions(int id);

// Kernel-time profiling per op (off by default). Turning it on resets the counters.
// Also host time: host_ns = time spent submitting the op (shape inference, output allocation, and for CUDA the
// kernel launches); dispose time of tensor handles is collected apart (profile_dispose / dispose_ns).
// shapes: also collect the split by shapes (shape_profile), which costs host time per op while on.
void set_profiling(bool on, bool shapes = false, bool exact = false);  // exact: see cudev::hold_stream
bool profiling();
void op_profile(int id, uint64_t& ns, uint64_t& calls, uint64_t& host_ns);
void profile_dispose(uint64_t ns);
uint64_t dispose_ns();
// The kernel time split by op and shapes: key "op [in0 shape] -> [out0 shape]".
struct ShapeTime {
  std::string key;
  uint64_t ns, calls;
};
std::vector<ShapeTime> shape_profile();

}  // namespace irc
