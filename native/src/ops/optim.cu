// CUDA optimiser updates, in place (semantics: optim.cpp).
//   adamw_step       (param, grad, m, v), attrs [lr, beta1, beta2, eps, wd, step]: torch.optim.AdamW in torch's
//                    operation order; the scalar factors are computed on the host in double and applied in float,
//                    exactly as cpu_adamw_step does.
//                    With the optional factors input the kernels read [1 - lr wd, -lr / bc1, sqrt(bc2)] from it.
//   momentum_update  (target, src), attrs [m]: target = target m + src (1 - m)
//   queue_swap       (queue [K,D], q [n,D], ptr i32 [1]) -> next, old: one thread per element of the n×D block
//                    (reads its queue elements, then writes q over the old one: no element is read by two threads
//                    after being written, also when K == n and next and old are the same rows).
// Elementwise grid-stride kernels; float4 when every pointer is 16-byte aligned (the tail is done by scalars).
#include <cmath>
#include <cstdint>

#include "../cuda/common.cuh"

namespace irc {
namespace {

struct AdamConsts {
  float decay, w1, fb2, w2, neg_step, bc2s, eps;
  const float* factors;  // device [decay, neg_step, bc2s] overriding those three, or nullptr
};

// The per-step factors from the device when given (one load per thread, cached).
__device__ __forceinline__ AdamConsts with_factors(AdamConsts k) {
  if (k.factors) {
    k.decay = __ldg(k.factors);
    k.neg_step = __ldg(k.factors + 1);
    k.bc2s = __ldg(k.factors + 2);
  }
  return k;
}

__device__ __forceinline__ void adam_one(float& p, float g, float& m, float& v, const AdamConsts& k) {
  const float pi = p * k.decay;
  const float mi = m + k.w1 * (g - m);
  const float vi = v * k.fb2 + k.w2 * g * g;
  const float den = sqrtf(vi) / k.bc2s + k.eps;
  p = pi + k.neg_step * mi / den;
  m = mi;
  v = vi;
}

__global__ void adamw_vec4(float4* __restrict__ p, const float4* __restrict__ g, float4* __restrict__ m,
                           float4* __restrict__ v, int64_t n4, AdamConsts k0) {
  const AdamConsts k = with_factors(k0);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n4;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float4 pp = p[i], mm = m[i], vv = v[i];
    const float4 gg = g[i];
    adam_one(pp.x, gg.x, mm.x, vv.x, k);
    adam_one(pp.y, gg.y, mm.y, vv.y, k);
    adam_one(pp.z, gg.z, mm.z, vv.z, k);
    adam_one(pp.w, gg.w, mm.w, vv.w, k);
    p[i] = pp;
    m[i] = mm;
    v[i] = vv;
  }
}

__global__ void adamw_scalar(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
                             float* __restrict__ v, int64_t i0, int64_t n, AdamConsts k0) {
  const AdamConsts k = with_factors(k0);
  for (int64_t i = i0 + blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float pp = p[i], mm = m[i], vv = v[i];
    adam_one(pp, g[i], mm, vv, k);
    p[i] = pp;
    m[i] = mm;
    v[i] = vv;
  }
}

__global__ void momentum_vec4(float4* __restrict__ t, const float4* __restrict__ s, int64_t n4, float mo, float w) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n4;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float4 a = t[i];
    const float4 b = s[i];
    a.x = a.x * mo + b.x * w;
    a.y = a.y * mo + b.y * w;
    a.z = a.z * mo + b.z * w;
    a.w = a.w * mo + b.w * w;
    t[i] = a;
  }
}

__global__ void momentum_scalar(float* __restrict__ t, const float* __restrict__ s, int64_t i0, int64_t n, float mo,
                                float w) {
  for (int64_t i = i0 + blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    t[i] = t[i] * mo + s[i] * w;
}

__global__ void queue_swap_k(float* __restrict__ queue, const float* __restrict__ q, const int32_t* __restrict__ ptr,
                             float* __restrict__ next, float* __restrict__ old, int64_t K, int64_t D, int64_t n) {
  const int64_t p = ((static_cast<int64_t>(*ptr) % K) + K) % K;  // out-of-range pointers wrap instead of faulting
  const int64_t total = n * D;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / D, col = i - r * D;
    const int64_t at = ((p + r) % K) * D + col;
    next[i] = queue[((p + n + r) % K) * D + col];
    old[i] = queue[at];
    queue[at] = q[i];
  }
}

}  // namespace

void cuda_queue_swap(KernelCtx& c) {
  const int64_t K = c.in[0].shape[0], D = c.in[0].shape[1], n = c.in[1].shape[0];
  if (n * D == 0) return;
  queue_swap_k<<<cu::blocks_for(n * D), 256, 0, cu::stream(c)>>>(c.in[0].f(), c.in[1].f(), c.in[2].i(), c.out[0].f(),
                                                                  c.out[1].f(), K, D, n);
  cu::check_launch(c);
}

void cuda_adamw_step(KernelCtx& c) {
  const int64_t n = c.in[0].n;
  if (n == 0) return;
  const double lr = c.af(0), b1 = c.af(1), b2 = c.af(2), eps = c.af(3), wd = c.af(4);
  const double step = static_cast<double>(c.ai(5));
  const double bc1 = 1.0 - std::pow(b1, step), bc2 = 1.0 - std::pow(b2, step);
  AdamConsts k;
  k.decay = static_cast<float>(1.0 - lr * wd);
  k.w1 = static_cast<float>(1.0 - b1);
  k.fb2 = static_cast<float>(b2);
  k.w2 = static_cast<float>(1.0 - b2);
  k.neg_step = static_cast<float>(-(lr / bc1));
  k.bc2s = static_cast<float>(std::sqrt(bc2));
  k.eps = static_cast<float>(eps);
  k.factors = c.in.size() == 5 ? c.in[4].f() : nullptr;
  float *p = c.in[0].f(), *m = c.in[2].f(), *v = c.in[3].f();
  const float* g = c.in[1].f();
  cudaStream_t s = cu::stream(c);
  int64_t done = 0;
  if (aligned16(p) && aligned16(g) && aligned16(m) && aligned16(v) && n >= 4) {
    const int64_t n4 = n / 4;
    adamw_vec4<<<cu::blocks_for(n4), 256, 0, s>>>(reinterpret_cast<float4*>(p), reinterpret_cast<const float4*>(g),
                                                   reinterpret_cast<float4*>(m), reinterpret_cast<float4*>(v), n4, k);
    done = n4 * 4;
  }
  if (done < n) adamw_scalar<<<cu::blocks_for(n - done), 256, 0, s>>>(p, g, m, v, done, n, k);
  cu::check_launch(c);
}

void cuda_momentum_update(KernelCtx& c) {
  const int64_t n = c.in[0].n;
  if (n == 0) return;
  const float mo = static_cast<float>(c.af(0)), w = static_cast<float>(1.0 - c.af(0));
  float* t = c.in[0].f();
  const float* src = c.in[1].f();
  cudaStream_t s = cu::stream(c);
  int64_t done = 0;
  if (aligned16(t) && aligned16(src) && n >= 4) {
    const int64_t n4 = n / 4;
    momentum_vec4<<<cu::blocks_for(n4), 256, 0, s>>>(reinterpret_cast<float4*>(t),
                                                      reinterpret_cast<const float4*>(src), n4, mo, w);
    done = n4 * 4;
  }
  if (done < n) momentum_scalar<<<cu::blocks_for(n - done), 256, 0, s>>>(t, src, done, n, mo, w);
  cu::check_launch(c);
}

}  // namespace irc
