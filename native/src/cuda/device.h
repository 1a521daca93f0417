// The CUDA device as the core sees it: availability, the one stream, device memory, and transfers. Plain C++
// (implemented in runtime.cu when built with nvcc, in device_none.cpp otherwise).
#pragma once
#include <cstddef>
#include <functional>
#include <string>

namespace irc {
namespace cudev {

// Initialises the runtime on first call (device 0, one non-blocking stream). false + why() when unusable.
bool available();
std::string why();
void* stream();

// Stream-ordered device memory (cudaMallocAsync pool with a high release threshold, i.e. a caching allocator).
void* alloc(size_t bytes);  // throws OpError E_OOM / E_CUDA
// cudaFreeAsync on the stream; never throws. While a capture is open, memory made before it is freed once the
// capture has ended (a free inside would become part of the graph); in_graph: made inside the open capture.
void release(void* p, size_t bytes, bool in_graph = false);
// Releases from the calling thread are always deferred to the JS thread's next CUDA call (the CPU executor's
// thread: it may drop the last reference to a CUDA tensor while the JS thread opens a capture on the stream).
void defer_releases_on_this_thread();
void forget(size_t bytes);  // memory of a capture that ended without a graph: nothing to free, only counted
size_t live_bytes();

// JS thread: copies host bytes into new device memory at dst (the host buffer may be reused on return).
void upload(void* dst, const void* host, size_t bytes);
// JS thread: enqueues a device -> host copy; `done(bytes, error)` is called later on a CUDA callback thread
// with the copied bytes (owned by the callee only during the call).
void download(const void* src, size_t bytes, std::function<void(const char* data, size_t n, const std::string& error)> done);
// JS thread: calls `done(error)` on a CUDA callback thread once everything enqueued so far has run.
void when_done(std::function<void(const std::string& error)> done);
// Device -> device copy on the stream.
void copy_d2d(void* dst, const void* src, size_t bytes);
// Host work on the stream: `fn` runs on a CUDA callback thread when the stream reaches this point and blocks the
// stream until it returns (used to wait for the CPU executor). It must not call the CUDA API.
void host_step(std::function<void()> fn);
// Stream copies between device memory and a pinned buffer. upload_from_pinned takes ownership of `pinned` and
// frees it once the copy has run.
void upload_from_pinned(void* dst, void* pinned, size_t bytes);
void download_to_pinned(void* pinned, const void* src, size_t bytes);
// Pinned host staging buffers (JS thread or executor thread).
void* pinned_alloc(size_t bytes);
void pinned_free(void* p);
// An event recorded on the stream now; wait_event blocks the calling thread until it has passed.
void* record_event();
std::string wait_event(void* ev);  // destroys the event; "" or the CUDA error that the stream hit
// Profiling: a timing event recorded on the stream now; elapsed_ms waits for `end`, returns the milliseconds
// between the two and destroys both (negative when the stream failed).
void* timing_event();
float elapsed_ms(void* start, void* end);
// Exact per-op timing (JS thread, profiling only): hold_stream() makes the stream wait, from this point, until
// release_stream(), so that an op's launches run back to back however slowly the host enqueues them (false, nothing
// held, when it cannot: no mapped memory, a capture open, or already held). An op that must wait for the stream
// itself (cuDNN's or cuBLASLt's autotuning) checks stream_held() and does not tune then.
bool hold_stream();
void release_stream();
bool stream_held();

// Graph capture of the stream (JS thread). While open, everything enqueued is recorded, not run; allocations
// and frees inside become the graph's own memory. capture_end(true) instantiates the graph (throws E_CAPTURE
// when the capture failed) and returns it; capture_end(false) discards it and returns nullptr.
void capture_begin();
void* capture_end(bool keep);
bool capturing();
size_t graph_bytes();  // device memory reserved by instantiated graphs (their planned allocations)
size_t scratch_bytes();  // device memory held by the ops' scratch slots (they only grow; cu::scratch)
void graph_launch(void* graph);  // enqueues one replay on the stream
void graph_destroy(void* graph);  // safe while a replay is still running

}  // namespace cudev
}  // namespace irc
