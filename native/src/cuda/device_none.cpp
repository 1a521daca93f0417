// The CUDA device interface in builds without nvcc: nothing is available, every entry point says why.
#ifndef IRC_WITH_CUDA
#include "device.h"

#include "../ops/op_api.h"

namespace irc {
namespace cudev {
namespace {
[[noreturn]] void none() { op_fail("E_CUDA", "this build has no CUDA support (nvcc was not found at build time)"); }
}  // namespace
bool available() { return false; }
std::string why() { return "built without CUDA (nvcc was not found at build time)"; }
void* stream() { return nullptr; }
void* alloc(size_t) { none(); }
void release(void*, size_t, bool) {}
void defer_releases_on_this_thread() {}
void forget(size_t) {}
size_t live_bytes() { return 0; }
void upload(void*, const void*, size_t) { none(); }
void download(const void*, size_t, std::function<void(const char*, size_t, const std::string&)>) { none(); }
void when_done(std::function<void(const std::string&)>) { none(); }
void copy_d2d(void*, const void*, size_t) { none(); }
void host_step(std::function<void()>) { none(); }
void upload_from_pinned(void*, void*, size_t) { none(); }
void download_to_pinned(void*, const void*, size_t) { none(); }
void* pinned_alloc(size_t) { none(); }
void pinned_free(void*) {}
void* record_event() { none(); }
std::string wait_event(void*) { return ""; }
void* timing_event() { none(); }
float elapsed_ms(void*, void*) { return -1.f; }
bool hold_stream() { return false; }
void release_stream() {}
bool stream_held() { return false; }
void capture_begin() { none(); }
void* capture_end(bool) { return nullptr; }
bool capturing() { return false; }
size_t graph_bytes() { return 0; }
size_t scratch_bytes() { return 0; }
void graph_launch(void*) { none(); }
void graph_destroy(void*) {}
}  // namespace cudev
}  // namespace irc
#endif
