// CUDA batch_norm1d and its backward (semantics: batch_norm1d.cpp). x [N, C]: one block of (32 channels x 8 row
// lanes) per 32 channels; statistics in double, reduced over the 8 lanes in fixed order; y / dx computed in double as
// the CPU. Training updates the running statistics in place (one thread per channel reads and writes them).
#include <cmath>
#include <cstdint>

#include "../cuda/common.cuh"

namespace irc {
namespace {

// Sum of v over the 8 row lanes (threadIdx.y) of column threadIdx.x, fixed order; every thread gets it.
__device__ double lanes_sum(double v, double (*sh)[33]) {
  __syncthreads();
  sh[threadIdx.y][threadIdx.x] = v;
  __syncthreads();
  double t = sh[0][threadIdx.x];
  for (int k = 1; k < 8; ++k) t += sh[k][threadIdx.x];
  return t;
}

__global__ void __launch_bounds__(256) bn_fwd_k(const float* __restrict__ x, const float* __restrict__ g,
                                                const float* __restrict__ b, float* __restrict__ rm,
                                                float* __restrict__ rv, float* __restrict__ y, float* __restrict__ sm,
                                                float* __restrict__ si, int64_t N, int64_t C, int training,
                                                double mom, double eps) {
  __shared__ double sh[8][33];
  const int64_t c = blockIdx.x * 32 + threadIdx.x;
  const bool ok = c < C;
  double mean, inv;
  if (training) {
    double s = 0.0;
    if (ok)
      for (int64_t n = threadIdx.y; n < N; n += 8) s += static_cast<double>(x[n * C + c]);
    s = lanes_sum(s, sh);
    mean = s / static_cast<double>(N);
    double q = 0.0;
    if (ok)
      for (int64_t n = threadIdx.y; n < N; n += 8) {
        const double d = static_cast<double>(x[n * C + c]) - mean;
        q += d * d;
      }
    q = lanes_sum(q, sh);
    inv = 1.0 / sqrt(q / static_cast<double>(N) + eps);
    if (ok && threadIdx.y == 0) {
      rm[c] = static_cast<float>((1.0 - mom) * static_cast<double>(rm[c]) + mom * mean);
      rv[c] = static_cast<float>((1.0 - mom) * static_cast<double>(rv[c]) + mom * (q / static_cast<double>(N - 1)));
    }
  } else {
    mean = ok ? static_cast<double>(rm[c]) : 0.0;
    inv = ok ? 1.0 / sqrt(static_cast<double>(rv[c]) + eps) : 1.0;
  }
  if (!ok) return;
  if (threadIdx.y == 0) {
    sm[c] = static_cast<float>(mean);
    si[c] = static_cast<float>(inv);
  }
  const double gc = g[c], bc = b[c];
  for (int64_t n = threadIdx.y; n < N; n += 8) {
    const int64_t k = n * C + c;
    y[k] = static_cast<float>((static_cast<double>(x[k]) - mean) * inv * gc + bc);
  }
}

__global__ void __launch_bounds__(256) bn_bwd_k(const float* __restrict__ dy, const float* __restrict__ x,
                                                const float* __restrict__ g, const float* __restrict__ sm,
                                                const float* __restrict__ si, float* __restrict__ dx,
                                                float* __restrict__ dg, float* __restrict__ db, int64_t N, int64_t C,
                                                int training) {
  __shared__ double sh[8][33];
  const int64_t c = blockIdx.x * 32 + threadIdx.x;
  const bool ok = c < C;
  const double m = ok ? static_cast<double>(sm[c]) : 0.0, s = ok ? static_cast<double>(si[c]) : 0.0;
  double sdy = 0.0, sdx = 0.0;
  if (ok)
    for (int64_t n = threadIdx.y; n < N; n += 8) {
      const int64_t k = n * C + c;
      const double xh = (static_cast<double>(x[k]) - m) * s;
      sdy += static_cast<double>(dy[k]);
      sdx += static_cast<double>(dy[k]) * xh;
    }
  sdy = lanes_sum(sdy, sh);
  sdx = lanes_sum(sdx, sh);
  if (!ok) return;
  if (threadIdx.y == 0) {
    dg[c] = static_cast<float>(sdx);
    db[c] = static_cast<float>(sdy);
  }
  const double gi = static_cast<double>(g[c]) * s, Nd = static_cast<double>(N);
  for (int64_t n = threadIdx.y; n < N; n += 8) {
    const int64_t k = n * C + c;
    if (training) {
      const double xh = (static_cast<double>(x[k]) - m) * s;
      dx[k] = static_cast<float>(gi * (static_cast<double>(dy[k]) - sdy / Nd - xh * sdx / Nd));
    } else {
      dx[k] = static_cast<float>(gi * static_cast<double>(dy[k]));
    }
  }
}

}  // namespace

void cuda_batch_norm1d(KernelCtx& c) {
  const TArg& X = c.in[0];
  const int64_t N = X.shape[0], C = X.shape[1];
  if (C == 0) return;
  const int training = c.ai(0) != 0 ? 1 : 0;
  bn_fwd_k<<<static_cast<unsigned>((C + 31) / 32), dim3(32, 8), 0, cu::stream(c)>>>(
      X.f(), c.in[1].f(), c.in[2].f(), c.in[3].f(), c.in[4].f(), c.out[0].f(), c.out[1].f(), c.out[2].f(), N, C,
      training, c.af(1), c.af(2));
  cu::check_launch(c);
}

void cuda_batch_norm1d_backward(KernelCtx& c) {
  const TArg& X = c.in[1];
  const int64_t N = X.shape[0], C = X.shape[1];
  if (C == 0) return;
  bn_bwd_k<<<static_cast<unsigned>((C + 31) / 32), dim3(32, 8), 0, cu::stream(c)>>>(
      c.in[0].f(), X.f(), c.in[2].f(), c.in[3].f(), c.in[4].f(), c.out[0].f(), c.out[1].f(), c.out[2].f(), N, C,
      c.ai(0) != 0 ? 1 : 0);
  cu::check_launch(c);
}

}  // namespace irc
