// CUDA kernels for the activations and their gradients (CPU twins: activation.cpp, activation2.cpp).
//   elementwise   leaky_relu, gelu (erff / expf), relu, sigmoid and their backwards: one functor per op over a
//                 float4 grid-stride map when every pointer is 16-byte aligned (scalar tail), scalar otherwise
//   prelu         a[1] (or C == 1) as a scalar map; a[C] by channel i % C (float4 when C % 4 == 0 and aligned)
//   prelu_backward  dx in the same pass as the da partials: fixed chunks (contiguous blocks for a[1], thread per
//                 (channel, row chunk) for a[C]) write double partials; a warp per output sums them in a fixed
//                 order (deterministic); one chunk writes da directly
//   softmax, l2_normalize (+ backwards)  last axis: one warp per row with the row in registers (C <= 1024),
//                 one 256-thread block per row beyond; sums in double as on the CPU, max in float
#include <cmath>
#include <cstdint>

#include "../cuda/common.cuh"
#include "../cuda/gelu.cuh"
#include "../cuda/warp.cuh"

namespace irc {
namespace {

constexpr int kThreads = 256;

inline int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

__device__ __forceinline__ int64_t gtid() { return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t gstride() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

// ---- functors ---------------------------------------------------------------------------------------------
struct LeakyF {
  float s;
  __device__ float operator()(float x) const { return x > 0.f ? x : x * s; }
};
struct LeakyB {
  float s;
  __device__ float operator()(float dy, float x) const { return x > 0.f ? dy : dy * s; }
};
struct GeluF {
  __device__ float operator()(float x) const { return gelu_f(x); }
};
struct GeluB {
  __device__ float operator()(float dy, float x) const {
    float dg;
    gelu_d_f(x, dg);
    return dy * dg;
  }
};
struct ReluF {  // NaN propagates (x < 0 is false for NaN), as torch.relu
  __device__ float operator()(float x) const { return x < 0.f ? 0.f : x; }
};
struct ReluB {
  __device__ float operator()(float dy, float x) const { return x > 0.f ? dy : 0.f; }
};
struct SigF {
  __device__ float operator()(float x) const { return 1.f / (1.f + expf(-x)); }
};
struct SigB {  // second operand is the forward output y
  __device__ float operator()(float dy, float y) const { return dy * y * (1.f - y); }
};
struct PreluScalarF {  // a on the device: one cached load per element
  const float* a;
  __device__ float operator()(float x) const { return x > 0.f ? x : __ldg(a) * x; }
};

// ---- elementwise maps -------------------------------------------------------------------------------------
template <class F>
__global__ void k_map1_4(const float* __restrict x, float* __restrict y, int64_t n, F f) {
  const int64_t n4 = n >> 2, t = gtid(), st = gstride();
  const float4* x4 = reinterpret_cast<const float4*>(x);
  float4* y4 = reinterpret_cast<float4*>(y);
  for (int64_t i = t; i < n4; i += st) {
    const float4 v = x4[i];
    y4[i] = make_float4(f(v.x), f(v.y), f(v.z), f(v.w));
  }
  const int64_t j = (n4 << 2) + t;
  if (j < n) y[j] = f(x[j]);
}
template <class F>
__global__ void k_map1(const float* __restrict x, float* __restrict y, int64_t n, F f) {
  for (int64_t i = gtid(); i < n; i += gstride()) y[i] = f(x[i]);
}
template <class F>
__global__ void k_map2_4(const float* __restrict a, const float* __restrict b, float* __restrict y, int64_t n, F f) {
  const int64_t n4 = n >> 2, t = gtid(), st = gstride();
  const float4* a4 = reinterpret_cast<const float4*>(a);
  const float4* b4 = reinterpret_cast<const float4*>(b);
  float4* y4 = reinterpret_cast<float4*>(y);
  for (int64_t i = t; i < n4; i += st) {
    const float4 u = a4[i], v = b4[i];
    y4[i] = make_float4(f(u.x, v.x), f(u.y, v.y), f(u.z, v.z), f(u.w, v.w));
  }
  const int64_t j = (n4 << 2) + t;
  if (j < n) y[j] = f(a[j], b[j]);
}
template <class F>
__global__ void k_map2(const float* __restrict a, const float* __restrict b, float* __restrict y, int64_t n, F f) {
  for (int64_t i = gtid(); i < n; i += gstride()) y[i] = f(a[i], b[i]);
}

template <class F>
void map1(KernelCtx& c, F f) {
  const int64_t n = c.in[0].n;
  if (n <= 0) return;
  const float* x = c.in[0].f();
  float* y = c.out[0].f();
  cudaStream_t s = cu::stream(c);
  if (aligned16(x) && aligned16(y)) k_map1_4<F><<<cu::blocks_for(cdiv(n, 4), kThreads), kThreads, 0, s>>>(x, y, n, f);
  else k_map1<F><<<cu::blocks_for(n, kThreads), kThreads, 0, s>>>(x, y, n, f);
  cu::check_launch(c);
}
template <class F>
void map2(KernelCtx& c, F f) {
  const int64_t n = c.in[0].n;
  if (n <= 0) return;
  const float *a = c.in[0].f(), *b = c.in[1].f();
  float* y = c.out[0].f();
  cudaStream_t s = cu::stream(c);
  if (aligned16(a) && aligned16(b) && aligned16(y))
    k_map2_4<F><<<cu::blocks_for(cdiv(n, 4), kThreads), kThreads, 0, s>>>(a, b, y, n, f);
  else
    k_map2<F><<<cu::blocks_for(n, kThreads), kThreads, 0, s>>>(a, b, y, n, f);
  cu::check_launch(c);
}

// ---- reductions -------------------------------------------------------------------------------------------
// Block-wide reductions (blockDim.x a multiple of 32, <= 1024); every thread gets the result. The leading
// __syncthreads protects sh from the readers of a previous call.
__device__ __forceinline__ double block_sum(double v, double* sh) {
  v = warp_sum(v);
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  __syncthreads();
  if (lane == 0) sh[w] = v;
  __syncthreads();
  return warp_sum(lane < nw ? sh[lane] : 0.0);
}
__device__ __forceinline__ float block_max(float v, float* sh) {
  v = warp_max(v);
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  __syncthreads();
  if (lane == 0) sh[w] = v;
  __syncthreads();
  return warp_max(lane < nw ? sh[lane] : -INFINITY);
}

// Pass 2: warp per output o, summing part[o * G .. o * G + G) in a fixed order.
__global__ void k_sum_partials(const double* __restrict part, float* __restrict y, int64_t on, int64_t G) {
  const int lane = threadIdx.x & 31;
  const int64_t wpb = blockDim.x >> 5;
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * wpb + (threadIdx.x >> 5); o < on;
       o += static_cast<int64_t>(gridDim.x) * wpb) {
    double s = 0;
    for (int64_t g = lane; g < G; g += 32) s += part[o * G + g];
    s = warp_sum(s);
    if (lane == 0) y[o] = static_cast<float>(s);
  }
}

// ---- prelu ------------------------------------------------------------------------------------------------
__global__ void k_prelu_chan(const float* __restrict x, const float* __restrict a, float* __restrict y, int64_t n,
                             int64_t C) {
  for (int64_t i = gtid(); i < n; i += gstride()) {
    const float v = x[i];
    y[i] = v > 0.f ? v : a[i % C] * v;
  }
}
// C % 4 == 0 and x, a, y 16-byte aligned (so n % 4 == 0).
__global__ void k_prelu_chan4(const float* __restrict x, const float* __restrict a, float* __restrict y, int64_t n4,
                              int64_t C4) {
  const float4* x4 = reinterpret_cast<const float4*>(x);
  const float4* a4 = reinterpret_cast<const float4*>(a);
  float4* y4 = reinterpret_cast<float4*>(y);
  for (int64_t i = gtid(); i < n4; i += gstride()) {
    const float4 v = x4[i], w = a4[i % C4];
    y4[i] = make_float4(v.x > 0.f ? v.x : w.x * v.x, v.y > 0.f ? v.y : w.y * v.y, v.z > 0.f ? v.z : w.z * v.z,
                        v.w > 0.f ? v.w : w.w * v.w);
  }
}

// Shared a: block g owns the contiguous chunk [g*chunk, (g+1)*chunk); dx and a block-reduced double partial.
__global__ void k_prelu_back_flat(const float* __restrict dy, const float* __restrict x, const float* __restrict a,
                                  float* __restrict dx, double* __restrict part, float* __restrict da, int64_t n,
                                  int64_t chunk, int64_t G) {
  __shared__ double sh[32];
  const float av = a[0];
  for (int64_t g = blockIdx.x; g < G; g += gridDim.x) {  // block-uniform
    const int64_t i0 = g * chunk, i1 = i0 + chunk < n ? i0 + chunk : n;
    double s = 0;
    for (int64_t i = i0 + threadIdx.x; i < i1; i += blockDim.x) {
      const float v = x[i], d = dy[i];
      const bool pos = v > 0.f;
      dx[i] = pos ? d : av * d;
      s += pos ? 0.0 : static_cast<double>(v) * d;
    }
    s = block_sum(s, sh);
    if (threadIdx.x == 0) {
      if (G == 1) da[0] = static_cast<float>(s);
      else part[g] = s;
    }
  }
}

// a[C]: thread per (channel j, row chunk g); consecutive threads take consecutive channels.
__global__ void k_prelu_back_chan(const float* __restrict dy, const float* __restrict x, const float* __restrict a,
                                  float* __restrict dx, double* __restrict part, float* __restrict da, int64_t rows,
                                  int64_t C, int64_t chunk, int64_t G) {
  const int64_t total = C * G;
  for (int64_t t = gtid(); t < total; t += gstride()) {
    const int64_t j = t % C, g = t / C;
    const int64_t r0 = g * chunk, r1 = r0 + chunk < rows ? r0 + chunk : rows;
    const float aj = a[j];
    double s = 0;
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t i = r * C + j;
      const float v = x[i], d = dy[i];
      const bool pos = v > 0.f;
      dx[i] = pos ? d : aj * d;
      s += pos ? 0.0 : static_cast<double>(v) * d;
    }
    if (G == 1) da[j] = static_cast<float>(s);
    else part[j * G + g] = s;
  }
}

// max(n, eps) as std::max(n, eps) on the CPU (a NaN norm stays NaN).
__device__ __forceinline__ double clamp_norm(double n, double eps) { return n < eps ? eps : n; }

// ---- row ops (last axis) ----------------------------------------------------------------------------------
// Warp per row, VPL values per lane in registers (C <= 32 * VPL). Row loops are warp-uniform.
#define IRC_ROW_LOOP                                                                                    \
  const int lane = threadIdx.x & 31;                                                                    \
  const int64_t wpb = blockDim.x >> 5;                                                                  \
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * wpb + (threadIdx.x >> 5); r < rows;               \
       r += static_cast<int64_t>(gridDim.x) * wpb)

template <int VPL>
__global__ void k_softmax_warp(const float* __restrict x, float* __restrict y, int64_t rows, int C) {
  IRC_ROW_LOOP {
    const float* xr = x + r * C;
    float* yr = y + r * C;
    float v[VPL];
    float m = -INFINITY;
#pragma unroll
    for (int k = 0; k < VPL; ++k) {
      const int j = lane + 32 * k;
      v[k] = j < C ? xr[j] : -INFINITY;
      m = fmaxf(m, v[k]);
    }
    m = warp_max(m);
    double s = 0;
#pragma unroll
    for (int k = 0; k < VPL; ++k) {
      const int j = lane + 32 * k;
      v[k] = j < C ? expf(v[k] - m) : 0.f;
      s += v[k];
    }
    const float inv = static_cast<float>(1.0 / warp_sum(s));
#pragma unroll
    for (int k = 0; k < VPL; ++k) {
      const int j = lane + 32 * k;
      if (j < C) yr[j] = v[k] * inv;
    }
  }
}

template <int VPL>
__global__ void k_softmax_back_warp(const float* __restrict dy, const float* __restrict y, float* __restrict dx,
                                    int64_t rows, int C) {
  IRC_ROW_LOOP {
    const int64_t o = r * C;
    float g[VPL], w[VPL];
    double s = 0;
#pragma unroll
    for (int k = 0; k < VPL; ++k) {
      const int j = lane + 32 * k;
      g[k] = j < C ? dy[o + j] : 0.f;
      w[k] = j < C ? y[o + j] : 0.f;
      s += static_cast<double>(g[k]) * w[k];
    }
    const float d = static_cast<float>(warp_sum(s));
#pragma unroll
    for (int k = 0; k < VPL; ++k) {
      const int j = lane + 32 * k;
      if (j < C) dx[o + j] = w[k] * (g[k] - d);
    }
  }
}

template <int VPL>
__global__ void k_l2n_warp(const float* __restrict x, float* __restrict y, int64_t rows, int C, double eps) {
  IRC_ROW_LOOP {
    const int64_t o = r * C;
    float v[VPL];
    double s = 0;
#pragma unroll
    for (int k = 0; k < VPL; ++k) {
      const int j = lane + 32 * k;
      v[k] = j < C ? x[o + j] : 0.f;
      s += static_cast<double>(v[k]) * v[k];
    }
    const double n = clamp_norm(sqrt(warp_sum(s)), eps);
    const float inv = static_cast<float>(1.0 / n);
#pragma unroll
    for (int k = 0; k < VPL; ++k) {
      const int j = lane + 32 * k;
      if (j < C) y[o + j] = v[k] * inv;
    }
  }
}

// n >= eps (and n > 0): dx = dy/n - x (x.dy)/n^3; otherwise dx = dy/eps (torch's clamp_min passes no gradient
// to n below eps).
// Returns whether the full (unclamped) formula applies.
__device__ __forceinline__ bool l2n_back_coef(double ss, double dd, double eps, float& a, float& b) {
  const double n = sqrt(ss);
  if (n >= eps && n > 0) {
    a = static_cast<float>(1.0 / n);
    b = static_cast<float>(dd / (n * n * n));
    return true;
  }
  a = static_cast<float>(1.0 / eps);
  b = 0.f;
  return false;
}


template <int VPL>
__global__ void k_l2n_back_warp(const float* __restrict dy, const float* __restrict x, float* __restrict dx,
                                int64_t rows, int C, double eps) {
  IRC_ROW_LOOP {
    const int64_t o = r * C;
    float g[VPL], v[VPL];
    double ss = 0, dd = 0;
#pragma unroll
    for (int k = 0; k < VPL; ++k) {
      const int j = lane + 32 * k;
      g[k] = j < C ? dy[o + j] : 0.f;
      v[k] = j < C ? x[o + j] : 0.f;
      ss += static_cast<double>(v[k]) * v[k];
      dd += static_cast<double>(v[k]) * g[k];
    }
    float a, b;
    const bool full = l2n_back_coef(warp_sum(ss), warp_sum(dd), eps, a, b);
#pragma unroll
    for (int k = 0; k < VPL; ++k) {
      const int j = lane + 32 * k;
      if (j < C) dx[o + j] = full ? g[k] * a - v[k] * b : g[k] * a;
    }
  }
}

// Block per row (C > 1024): the row is re-read from global memory (L1/L2) for each stage.
#define IRC_BLOCK_ROW_LOOP for (int64_t r = blockIdx.x; r < rows; r += gridDim.x)

__global__ void k_softmax_block(const float* __restrict x, float* __restrict y, int64_t rows, int64_t C) {
  __shared__ double shd[32];
  __shared__ float shf[32];
  IRC_BLOCK_ROW_LOOP {
    const float* xr = x + r * C;
    float* yr = y + r * C;
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) m = fmaxf(m, xr[j]);
    m = block_max(m, shf);
    double s = 0;
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) s += expf(xr[j] - m);
    const float inv = static_cast<float>(1.0 / block_sum(s, shd));
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) yr[j] = expf(xr[j] - m) * inv;
  }
}

__global__ void k_softmax_back_block(const float* __restrict dy, const float* __restrict y, float* __restrict dx,
                                     int64_t rows, int64_t C) {
  __shared__ double shd[32];
  IRC_BLOCK_ROW_LOOP {
    const int64_t o = r * C;
    double s = 0;
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) s += static_cast<double>(dy[o + j]) * y[o + j];
    const float d = static_cast<float>(block_sum(s, shd));
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) dx[o + j] = y[o + j] * (dy[o + j] - d);
  }
}

__global__ void k_l2n_block(const float* __restrict x, float* __restrict y, int64_t rows, int64_t C, double eps) {
  __shared__ double shd[32];
  IRC_BLOCK_ROW_LOOP {
    const int64_t o = r * C;
    double s = 0;
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) s += static_cast<double>(x[o + j]) * x[o + j];
    const double n = clamp_norm(sqrt(block_sum(s, shd)), eps);
    const float inv = static_cast<float>(1.0 / n);
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) y[o + j] = x[o + j] * inv;
  }
}

__global__ void k_l2n_back_block(const float* __restrict dy, const float* __restrict x, float* __restrict dx,
                                 int64_t rows, int64_t C, double eps) {
  __shared__ double shd[32];
  IRC_BLOCK_ROW_LOOP {
    const int64_t o = r * C;
    double ss = 0, dd = 0;
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
      const double v = x[o + j];
      ss += v * v;
      dd += v * dy[o + j];
    }
    ss = block_sum(ss, shd);
    dd = block_sum(dd, shd);
    float a, b;
    const bool full = l2n_back_coef(ss, dd, eps, a, b);
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x)
      dx[o + j] = full ? dy[o + j] * a - x[o + j] * b : dy[o + j] * a;
  }
}

constexpr int64_t kWarpRowMax = 1024;

// Launches KERNEL<VPL> (warp per row) for C <= 1024 with the smallest VPL that holds the row.
#define IRC_WARP_ROWS(KERNEL, C, s, ...)                                                              \
  do {                                                                                                \
    const unsigned g_ = cu::blocks_for(rows * 32, kThreads);                                          \
    if ((C) <= 32) KERNEL<1><<<g_, kThreads, 0, s>>>(__VA_ARGS__);                                    \
    else if ((C) <= 64) KERNEL<2><<<g_, kThreads, 0, s>>>(__VA_ARGS__);                               \
    else if ((C) <= 128) KERNEL<4><<<g_, kThreads, 0, s>>>(__VA_ARGS__);                              \
    else if ((C) <= 256) KERNEL<8><<<g_, kThreads, 0, s>>>(__VA_ARGS__);                              \
    else if ((C) <= 512) KERNEL<16><<<g_, kThreads, 0, s>>>(__VA_ARGS__);                             \
    else KERNEL<32><<<g_, kThreads, 0, s>>>(__VA_ARGS__);                                             \
  } while (0)

inline unsigned row_blocks(int64_t rows) { return static_cast<unsigned>(rows < 65535LL * 32 ? rows : 65535LL * 32); }

}  // namespace

// ---- elementwise ops --------------------------------------------------------------------------------------
void cuda_leaky_relu(KernelCtx& c) { map1(c, LeakyF{static_cast<float>(c.af(0))}); }
void cuda_leaky_relu_backward(KernelCtx& c) { map2(c, LeakyB{static_cast<float>(c.af(0))}); }
void cuda_gelu(KernelCtx& c) { map1(c, GeluF{}); }
void cuda_gelu_backward(KernelCtx& c) { map2(c, GeluB{}); }
void cuda_relu(KernelCtx& c) { map1(c, ReluF{}); }
void cuda_relu_backward(KernelCtx& c) { map2(c, ReluB{}); }
void cuda_sigmoid(KernelCtx& c) { map1(c, SigF{}); }
void cuda_sigmoid_backward(KernelCtx& c) { map2(c, SigB{}); }

// ---- prelu ------------------------------------------------------------------------------------------------
void cuda_prelu(KernelCtx& c) {
  const TArg &X = c.in[0], &A = c.in[1];
  if (X.n <= 0) return;
  const int64_t C = X.shape.back();
  if (A.n == 1 || C == 1) {
    map1(c, PreluScalarF{A.f()});
    return;
  }
  const float *x = X.f(), *a = A.f();
  float* y = c.out[0].f();
  cudaStream_t s = cu::stream(c);
  if (C % 4 == 0 && aligned16(x) && aligned16(a) && aligned16(y))
    k_prelu_chan4<<<cu::blocks_for(X.n / 4, kThreads), kThreads, 0, s>>>(x, a, y, X.n / 4, C / 4);
  else
    k_prelu_chan<<<cu::blocks_for(X.n, kThreads), kThreads, 0, s>>>(x, a, y, X.n, C);
  cu::check_launch(c);
}

void cuda_prelu_backward(KernelCtx& c) {
  const TArg &DY = c.in[0], &X = c.in[1], &A = c.in[2];
  const int64_t C = X.shape.back();
  const int64_t rows = C ? X.n / C : 0;
  cudaStream_t s = cu::stream(c);
  float *dx = c.out[0].f(), *da = c.out[1].f();
  if (rows == 0 || C == 0) {
    if (A.n > 0) cu::check(cudaMemsetAsync(da, 0, static_cast<size_t>(A.n) * 4, s), c.op, "cudaMemsetAsync");
    return;
  }
  const float *dy = DY.f(), *x = X.f(), *a = A.f();
  const int64_t n = X.n;
  if (A.n == 1) {
    // Fixed contiguous chunks of >= 4096 elements, at most 1024 of them.
    int64_t G = cdiv(n, 4096);
    if (G > 1024) G = 1024;
    const int64_t chunk = cdiv(n, G);
    G = cdiv(n, chunk);
    double* part = G > 1 ? static_cast<double*>(cu::scratch(s, static_cast<size_t>(G) * sizeof(double), 0)) : nullptr;
    k_prelu_back_flat<<<static_cast<unsigned>(G), kThreads, 0, s>>>(dy, x, a, dx, part, da, n, chunk, G);
    cu::check_launch(c);
    if (G > 1) {
      k_sum_partials<<<1, 32, 0, s>>>(part, da, 1, G);
      cu::check_launch(c);
    }
    return;
  }
  // a[C]: about 2^17 (channel, chunk) threads, chunks of >= 16 rows.
  int64_t G = cdiv(int64_t(1) << 17, C);
  const int64_t maxG = cdiv(rows, 16);
  if (G > maxG) G = maxG;
  if (G < 1) G = 1;
  const int64_t chunk = cdiv(rows, G);
  G = cdiv(rows, chunk);
  double* part = G > 1 ? static_cast<double*>(cu::scratch(s, static_cast<size_t>(C * G) * sizeof(double), 0)) : nullptr;
  k_prelu_back_chan<<<cu::blocks_for(C * G, kThreads), kThreads, 0, s>>>(dy, x, a, dx, part, da, rows, C, chunk, G);
  cu::check_launch(c);
  if (G > 1) {
    k_sum_partials<<<cu::blocks_for(C * 32, kThreads), kThreads, 0, s>>>(part, da, C, G);
    cu::check_launch(c);
  }
}

// ---- softmax ----------------------------------------------------------------------------------------------
void cuda_softmax(KernelCtx& c) {
  const TArg& X = c.in[0];
  const int64_t C = X.shape.back();
  if (X.n <= 0 || C <= 0) return;
  const int64_t rows = X.n / C;
  const float* x = X.f();
  float* y = c.out[0].f();
  cudaStream_t s = cu::stream(c);
  if (C <= kWarpRowMax) IRC_WARP_ROWS(k_softmax_warp, C, s, x, y, rows, static_cast<int>(C));
  else k_softmax_block<<<row_blocks(rows), kThreads, 0, s>>>(x, y, rows, C);
  cu::check_launch(c);
}

void cuda_softmax_backward(KernelCtx& c) {
  const TArg& Y = c.in[1];
  const int64_t C = Y.shape.back();
  if (Y.n <= 0 || C <= 0) return;
  const int64_t rows = Y.n / C;
  const float *dy = c.in[0].f(), *y = Y.f();
  float* dx = c.out[0].f();
  cudaStream_t s = cu::stream(c);
  if (C <= kWarpRowMax) IRC_WARP_ROWS(k_softmax_back_warp, C, s, dy, y, dx, rows, static_cast<int>(C));
  else k_softmax_back_block<<<row_blocks(rows), kThreads, 0, s>>>(dy, y, dx, rows, C);
  cu::check_launch(c);
}

// ---- l2_normalize -----------------------------------------------------------------------------------------
void cuda_l2_normalize(KernelCtx& c) {
  const TArg& X = c.in[0];
  const int64_t C = X.shape.back();
  if (X.n <= 0 || C <= 0) return;
  const int64_t rows = X.n / C;
  const double eps = c.af(0);
  const float* x = X.f();
  float* y = c.out[0].f();
  cudaStream_t s = cu::stream(c);
  if (C <= kWarpRowMax) IRC_WARP_ROWS(k_l2n_warp, C, s, x, y, rows, static_cast<int>(C), eps);
  else k_l2n_block<<<row_blocks(rows), kThreads, 0, s>>>(x, y, rows, C, eps);
  cu::check_launch(c);
}

void cuda_l2_normalize_backward(KernelCtx& c) {
  const TArg& X = c.in[1];
  const int64_t C = X.shape.back();
  if (X.n <= 0 || C <= 0) return;
  const int64_t rows = X.n / C;
  const double eps = c.af(0);
  const float *dy = c.in[0].f(), *x = X.f();
  float* dx = c.out[0].f();
  cudaStream_t s = cu::stream(c);
  if (C <= kWarpRowMax) IRC_WARP_ROWS(k_l2n_back_warp, C, s, dy, x, dx, rows, static_cast<int>(C), eps);
  else k_l2n_back_block<<<row_blocks(rows), kThreads, 0, s>>>(dy, x, dx, rows, C, eps);
  cu::check_launch(c);
}

}  // namespace irc

#undef IRC_ROW_LOOP
#undef IRC_BLOCK_ROW_LOOP
#undef IRC_WARP_ROWS
