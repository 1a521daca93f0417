// CUDA losses (mean reduction; semantics: losses.cpp). Sums in double with a fixed launch geometry and fixed-order
// partials (deterministic).
//   cross_entropy           one block per row: max (float), sum exp(x - max) in double, per-row loss into scratch;
//                           a second one-block kernel takes the mean over N.
//   cross_entropy_backward  one block per row: dlogits = dy / N (softmax - onehot), computed in double as the CPU.
//   l1_loss / mse_loss      G fixed blocks of double partials, then one block sums them in order.
//   l1_loss_backward / mse_loss_backward   elementwise.
// Labels: a kernel cannot fail the op, so an out-of-range label (< 0 or >= K) is not reported as E_ARG as on the
// CPU; instead the row's loss is NaN (so the mean is NaN) and, in the backward, that row of dlogits is all NaN.
#include <cmath>
#include <cstdint>

#include "../cuda/common.cuh"

namespace irc {
namespace {

constexpr int kThreads = 256;  // every kernel here: a multiple of 32, at most 1024

__device__ __forceinline__ double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x == kThreads); every thread gets the result. sh: >= 32 doubles.
__device__ double block_sum(double v, double* sh) {
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // sh may still be read by a previous call
  if (lane == 0) sh[wid] = v;
  __syncthreads();
  double t = lane < nw ? sh[lane] : 0.0;
  t = warp_sum(t);
  return t;
}

__device__ float block_max(float v, float* sh) {
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) sh[wid] = v;
  __syncthreads();
  float t = lane < nw ? sh[lane] : -INFINITY;
  return warp_max(t);
}

// Row n: m = max (NaNs ignored, as std::max in row_lse), lse = m + log(sum exp(x - m)) in double.
__device__ void row_lse(const float* __restrict__ xr, int64_t K, double& lse, float* shf, double* shd) {
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < K; j += blockDim.x) m = fmaxf(m, xr[j]);
  m = block_max(m, shf);
  double s = 0.0;
  for (int64_t j = threadIdx.x; j < K; j += blockDim.x) s += exp(static_cast<double>(xr[j]) - m);
  s = block_sum(s, shd);
  lse = static_cast<double>(m) + log(s);
}

__global__ void ce_rows(const float* __restrict__ x, const int32_t* __restrict__ lab, double* __restrict__ per,
                        int64_t K) {
  __shared__ float shf[32];
  __shared__ double shd[32];
  const int64_t n = blockIdx.x;
  const int32_t l = lab[n];
  if (l < 0 || l >= K) {  // uniform over the block
    if (threadIdx.x == 0) per[n] = nan("");
    return;
  }
  const float* xr = x + n * K;
  double lse;
  row_lse(xr, K, lse, shf, shd);
  if (threadIdx.x == 0) per[n] = lse - static_cast<double>(xr[l]);
}

// out[0] = float(scale * sum of part[0..G)) (one block of kThreads, fixed order).
__global__ void finish_sum(const double* __restrict__ part, int64_t G, double scale, float* __restrict__ out) {
  __shared__ double shd[32];
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < G; i += blockDim.x) s += part[i];
  s = block_sum(s, shd);
  if (threadIdx.x == 0) out[0] = static_cast<float>(s * scale);
}

__global__ void ce_back_rows(const float* __restrict__ dy, const float* __restrict__ x,
                             const int32_t* __restrict__ lab, float* __restrict__ dx, int64_t N, int64_t K) {
  __shared__ float shf[32];
  __shared__ double shd[32];
  const int64_t n = blockIdx.x;
  const int32_t l = lab[n];
  const float* xr = x + n * K;
  float* o = dx + n * K;
  if (l < 0 || l >= K) {
    for (int64_t j = threadIdx.x; j < K; j += blockDim.x) o[j] = nanf("");
    return;
  }
  double lse;
  row_lse(xr, K, lse, shf, shd);
  const double g = static_cast<double>(dy[0]) / static_cast<double>(N);
  for (int64_t j = threadIdx.x; j < K; j += blockDim.x) {
    const double e = exp(static_cast<double>(xr[j]) - lse);
    o[j] = static_cast<float>(j == l ? g * (e - 1.0) : g * e);
  }
}

// Partial sums of |a-b| (MSE: (a-b)^2) in double: block g sums a fixed grid-stride subset.
template <bool SQ>
__global__ void pair_partials(const float* __restrict__ a, const float* __restrict__ b, int64_t n,
                              double* __restrict__ part) {
  __shared__ double shd[32];
  double s = 0.0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += stride) {
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    s += SQ ? d * d : fabs(d);
  }
  s = block_sum(s, shd);
  if (threadIdx.x == 0) part[blockIdx.x] = s;
}

__global__ void l1_back(const float* __restrict__ dy, const float* __restrict__ a, const float* __restrict__ b,
                        float* __restrict__ da, float* __restrict__ db, int64_t n) {
  const float g = static_cast<float>(static_cast<double>(dy[0]) / static_cast<double>(n));
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float d = a[i] - b[i];
    const float v = d > 0.f ? g : d < 0.f ? -g : 0.f;
    da[i] = v;
    db[i] = -v;
  }
}

__global__ void mse_back(const float* __restrict__ dy, const float* __restrict__ a, const float* __restrict__ b,
                         float* __restrict__ da, int64_t n) {
  const float g = static_cast<float>(2.0 * static_cast<double>(dy[0]) / static_cast<double>(n));
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    da[i] = g * (a[i] - b[i]);
}

// Number of partial blocks for a mean over n elements: depends on n only.
inline int64_t pair_blocks(int64_t n) {
  int64_t g = (n + 8 * kThreads - 1) / (8 * kThreads);
  if (g < 1) g = 1;
  if (g > 1024) g = 1024;
  return g;
}

template <bool SQ>
void mean_loss(KernelCtx& c) {
  const int64_t n = c.in[0].n;
  cudaStream_t s = cu::stream(c);
  const int64_t G = pair_blocks(n);
  double* part = static_cast<double*>(cu::scratch(s, sizeof(double) * G, 0));
  pair_partials<SQ><<<static_cast<unsigned>(G), kThreads, 0, s>>>(c.in[0].f(), c.in[1].f(), n, part);
  // n == 0: the partials are 0 and 0 * (1/0) is NaN, as the CPU's 0/0.
  finish_sum<<<1, kThreads, 0, s>>>(part, G, 1.0 / static_cast<double>(n), c.out[0].f());
  cu::check_launch(c);
}

}  // namespace

void cuda_cross_entropy(KernelCtx& c) {
  const int64_t N = c.in[0].shape[0], K = c.in[0].shape[1];  // infer: N, K >= 1
  cudaStream_t s = cu::stream(c);
  double* per = static_cast<double*>(cu::scratch(s, sizeof(double) * N, 0));
  ce_rows<<<static_cast<unsigned>(N), kThreads, 0, s>>>(c.in[0].f(), c.in[1].i(), per, K);
  finish_sum<<<1, kThreads, 0, s>>>(per, N, 1.0 / static_cast<double>(N), c.out[0].f());
  cu::check_launch(c);
}

void cuda_cross_entropy_backward(KernelCtx& c) {
  const int64_t N = c.in[1].shape[0], K = c.in[1].shape[1];
  cudaStream_t s = cu::stream(c);
  ce_back_rows<<<static_cast<unsigned>(N), kThreads, 0, s>>>(c.in[0].f(), c.in[1].f(), c.in[2].i(), c.out[0].f(),
                                                               N, K);
  cu::check_launch(c);
}

void cuda_l1_loss(KernelCtx& c) { mean_loss<false>(c); }

void cuda_mse_loss(KernelCtx& c) { mean_loss<true>(c); }

void cuda_l1_loss_backward(KernelCtx& c) {
  const int64_t n = c.in[1].n;
  if (n == 0) return;
  cudaStream_t s = cu::stream(c);
  l1_back<<<cu::blocks_for(n), kThreads, 0, s>>>(c.in[0].f(), c.in[1].f(), c.in[2].f(), c.out[0].f(), c.out[1].f(), n);
  cu::check_launch(c);
}

void cuda_mse_loss_backward(KernelCtx& c) {
  const int64_t n = c.in[1].n;
  if (n == 0) return;
  cudaStream_t s = cu::stream(c);
  mse_back<<<cu::blocks_for(n), kThreads, 0, s>>>(c.in[0].f(), c.in[1].f(), c.in[2].f(), c.out[0].f(), n);
  cu::check_launch(c);
}

}  // namespace irc
