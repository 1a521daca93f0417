// The CUDA emulator's own check (built with IRCONSTYLE_CUDA=EMU as build-emu/emu-selftest; run by
// scripts/check-emu.mjs): block reductions through shared memory and warp shuffles give the exact sums, dynamic shared
// memory is per launch, stream order holds for copies, kernels and pinned buffers, a capture replays (and one that
// breaks the capture rules fails), and what the GPU refuses or a broken kernel does (too much shared memory, a shuffle
// from an exited lane, lanes of a warp split between two barriers) fails as on the GPU. One line per check; exit
// status 1 on any failure.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>
#include <vector>

namespace {
int g_failed = 0;
void check(bool ok, const char* what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what);
  if (!ok) g_failed++;
}

__global__ void block_sum_k(const float* x, float* out, int n) {
  __shared__ float sh[32];
  float v = 0.f;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) v += x[i];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
  __syncthreads();
  if (threadIdx.x < 32) {
    v = threadIdx.x < blockDim.x / 32 ? sh[threadIdx.x] : 0.f;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (threadIdx.x == 0) out[blockIdx.x] = v;
  }
}

__global__ void reverse_k(float* y) {  // 2-D block: shared memory written by one thread, read by another
  extern __shared__ float s[];
  const int t = threadIdx.y * blockDim.x + threadIdx.x, n = blockDim.x * blockDim.y;
  s[t] = static_cast<float>(blockIdx.x * 1000 + t);
  __syncthreads();
  y[blockIdx.x * n + t] = s[n - 1 - t];
}

__global__ void broadcast_k(int* y) {  // __shfl_sync from lane 5 of each warp
  y[threadIdx.x] = __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x) * 10, 5);
}

__global__ void exited_lane_k(float* y) {
  if (threadIdx.x < 10) return;
  y[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.f, 3);  // lanes 10, 11 read lanes 9, 8
}

__global__ void split_barrier_k(float* y) {  // half of warp 0 waits at __syncwarp, everyone else at __syncthreads
  if (threadIdx.x < 16) __syncwarp();
  else __syncthreads();
  y[threadIdx.x] = 1.f;
}
}  // namespace

// `emu-selftest deadlock`: barriers that can never be released (a fresh process: a failure fails the device)
int deadlock() {
  float* y = nullptr;
  cudaMalloc(reinterpret_cast<void**>(&y), 64 * sizeof(float));
  split_barrier_k<<<1, 64>>>(y);
  check(cudaDeviceSynchronize() == cudaErrorLaunchFailure,
        "lanes split between __syncwarp and __syncthreads fail the kernel");
  return g_failed ? 1 : 0;
}

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "deadlock") == 0) return deadlock();
  cudaStream_t s;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess, "stream created");
  const int n = 100003;
  std::vector<float> h(n);
  double want = 0;
  for (int i = 0; i < n; i++) want += (h[i] = static_cast<float>(i % 7) * 0.5f);
  float *x = nullptr, *part = nullptr, *pinned = nullptr;
  cudaMallocAsync(reinterpret_cast<void**>(&x), n * sizeof(float), s);
  cudaMallocAsync(reinterpret_cast<void**>(&part), 64 * sizeof(float), s);
  cudaMemcpyAsync(x, h.data(), n * sizeof(float), cudaMemcpyHostToDevice, s);
  std::fill(h.begin(), h.end(), -1.f);  // pageable: the copy above was staged at the call
  block_sum_k<<<64, 256, 0, s>>>(x, part, n);
  cudaMallocHost(reinterpret_cast<void**>(&pinned), 64 * sizeof(float));
  cudaMemcpyAsync(pinned, part, 64 * sizeof(float), cudaMemcpyDeviceToHost, s);
  check(cudaStreamSynchronize(s) == cudaSuccess, "reduction ran");
  double got = 0;
  for (int i = 0; i < 64; i++) got += pinned[i];
  check(got == want, "block reduction (shared memory + shuffles) gives the exact sum");

  float* y = nullptr;
  cudaMallocAsync(reinterpret_cast<void**>(&y), 3 * 96 * sizeof(float), s);
  reverse_k<<<3, dim3(32, 3), 96 * sizeof(float), s>>>(y);
  std::vector<float> r(3 * 96);
  cudaMemcpyAsync(r.data(), y, r.size() * sizeof(float), cudaMemcpyDeviceToHost, s);  // pageable: waits
  bool rev = true;
  for (int b = 0; b < 3; b++)
    for (int t = 0; t < 96; t++) rev = rev && r[b * 96 + t] == static_cast<float>(b * 1000 + 95 - t);
  check(rev, "dynamic shared memory and 2-D blocks: each thread reads another's write after __syncthreads");

  int* yi = nullptr;
  cudaMallocAsync(reinterpret_cast<void**>(&yi), 64 * sizeof(int), s);
  broadcast_k<<<1, 64, 0, s>>>(yi);
  std::vector<int> ri(64);
  cudaMemcpyAsync(ri.data(), yi, 64 * sizeof(int), cudaMemcpyDeviceToHost, s);
  check(ri[0] == 50 && ri[31] == 50 && ri[32] == 370 && ri[63] == 370, "__shfl_sync broadcasts within each warp");

  // a capture records; each replay runs the work again
  cudaGraph_t g = nullptr;
  cudaGraphExec_t gx = nullptr;
  cudaMemsetAsync(part, 0, 64 * sizeof(float), s);
  check(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess, "capture begins");
  block_sum_k<<<64, 256, 0, s>>>(x, part, n);
  cudaStreamEndCapture(s, &g);
  cudaStreamSynchronize(s);
  std::vector<float> p0(64);
  cudaMemcpyAsync(p0.data(), part, 64 * sizeof(float), cudaMemcpyDeviceToHost, s);
  check(p0[0] == 0.f, "captured work does not run at capture");
  cudaGraphInstantiate(&gx, g, 0);
  cudaGraphDestroy(g);
  cudaGraphLaunch(gx, s);
  cudaMemcpyAsync(p0.data(), part, 64 * sizeof(float), cudaMemcpyDeviceToHost, s);
  got = 0;
  for (float v : p0) got += v;
  check(got == want, "a replay runs the captured kernel");
  cudaGraphExecDestroy(gx);
  // a capture that uploads pageable host memory is refused and invalidated, as in CUDA's thread-local mode
  cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
  const cudaError_t up = cudaMemcpyAsync(x, h.data(), 16, cudaMemcpyHostToDevice, s);
  const cudaError_t end = cudaStreamEndCapture(s, &g);
  cudaGetLastError();
  check(up == cudaErrorStreamCaptureUnsupported && end == cudaErrorStreamCaptureInvalidated && !g,
        "a pageable upload inside a capture invalidates it");

  // what the GPU refuses
  reverse_k<<<1, 64, 64 * 1024, s>>>(y);
  check(cudaGetLastError() == cudaErrorInvalidConfiguration, "64 KiB of dynamic shared memory without the attribute");
  block_sum_k<<<1, 2048, 0, s>>>(x, part, n);
  check(cudaGetLastError() == cudaErrorInvalidConfiguration, "a block of 2048 threads");
  check(cudaFuncSetAttribute(reverse_k, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024) == cudaSuccess &&
            (reverse_k<<<1, 64, 64 * 1024, s>>>(y), cudaGetLastError() == cudaSuccess),
        "64 KiB after cudaFuncSetAttribute");
  check(cudaStreamSynchronize(s) == cudaSuccess, "no error so far");

  // broken kernels fail the stream (and, as a real context, everything after)
  exited_lane_k<<<1, 32, 0, s>>>(y);
  check(cudaStreamSynchronize(s) == cudaErrorLaunchFailure, "a shuffle from an exited lane fails the kernel");
  std::printf("(the emulator's message about it above is expected)\n");
  block_sum_k<<<64, 256, 0, s>>>(x, part, n);
  check(cudaStreamSynchronize(s) == cudaErrorLaunchFailure, "the device stays failed");
  std::printf("%d failed\n", g_failed);
  return g_failed ? 1 : 0;
}
