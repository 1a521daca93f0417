// CUDA NAFNet blocks, NHWC (semantics: nafnet.cpp, nafnet_fused.cpp).
//   simple_gate (+backward), global_avg_pool_backward, channel_scale, scaled_add   elementwise (float4 when the
//       channel count allows it and the pointers are 16-byte aligned; 32-bit index math where it cannot overflow)
//   global_avg_pool, channel_scale_backward (ds), scaled_add_backward (ds)   column sums over pixels/rows: pass 1,
//       blocks of 256 threads as (row lanes x channel vectors), each block summing a fixed row range in double into
//       a partial; pass 2, one warp per output, sums the partials in a fixed order (deterministic). dx / db are
//       written by pass 1 on the way.
//   dwconv_gate (act 0: z1 z2, NAFNet; act 1: GELU(z1) z2, Restormer's GDFN): 3x3 with padding 1 by the
//       sliding-window kernel of depthwise3x3.cu (a thread slides a 3x3 register window along a row segment, both
//       halves at once); other kernels: one thread per output pixel and channel (vector) computes z for both
//       halves, as z_pix on the CPU (floats with GELU).
//   dwconv_gate_backward: (1) dz into scratch (3x3 padding 1: the sliding kernel); (2) for 3x3 with padding 1,
//       one sliding pass over dz gathers dx and accumulates the partials (depthwise3x3_backward, also used by
//       conv2d.cu); other kernels: a dw / db partial pass, one tap per block row, then dx gathers dz through the
//       flipped taps; (3) the partials are summed in a fixed order.
//       With IRCONSTYLE_DWGATE_BWD=one-pass (3x3, padding 1; slower on the H100): one sliding pass
//       (dwgate3x3_backward) computes dz = [dy z2 a'(z1), dy a(z1)] where it needs it, z recomputed, gathers dx and
//       accumulates the dw / db partials, then the partials are summed in a fixed order.
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "../cuda/common.cuh"
#include "../cuda/gelu.cuh"
#include "depthwise3x3.h"
#include "partials.cuh"
#include "switches.h"

namespace irc {
namespace {



// Index arithmetic in 32 bits where it cannot overflow (64-bit division costs tens of instructions per element,
// enough to slow these memory-bound kernels): n < 2^30 keeps a grid-stride loop's i + stride below 2^31.
inline bool small_index(int64_t n) { return cu::index32(n); }
#define IRC_LOOP(I, i, n) \
  for (I i = blockIdx.x * I(blockDim.x) + threadIdx.x; i < I(n); i += I(gridDim.x) * I(blockDim.x))
// kern<V, I> over n elements (units of V) with I = int when small_index(n), else int64_t.
#define IRC_LAUNCH_VI(kern, V, n, st, ...)                                                       \
  do {                                                                                           \
    if (small_index(n))                                                                          \
      kern<V, int><<<cu::blocks_for(n), kThreads, 0, st>>>(__VA_ARGS__);                         \
    else                                                                                         \
      kern<V, int64_t><<<cu::blocks_for(n), kThreads, 0, st>>>(__VA_ARGS__);                     \
  } while (0)

__device__ __forceinline__ float4 operator*(float4 a, float4 b) {
  return make_float4(a.x * b.x, a.y * b.y, a.z * b.z, a.w * b.w);
}
__device__ __forceinline__ float4 operator*(float4 a, float s) { return make_float4(a.x * s, a.y * s, a.z * s, a.w * s); }
__device__ __forceinline__ float4 operator+(float4 a, float4 b) {
  return make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
}

// ---- elementwise ------------------------------------------------------------------------------------------
// C in units of V for all of these.
template <class V, class I>
__global__ void gate_k(const V* __restrict__ x, V* __restrict__ y, I total, I C) {
  IRC_LOOP(I, e, total) {
    const I r = e / C, j = e - r * C;
    const V* a = x + r * 2 * C + j;
    y[e] = a[0] * a[C];
  }
}

template <class V, class I>
__global__ void gate_back_k(const V* __restrict__ dy, const V* __restrict__ x, V* __restrict__ dx, I total, I C) {
  IRC_LOOP(I, e, total) {
    const I r = e / C, j = e - r * C;
    const V d = dy[e];
    const I o = r * 2 * C + j;
    const V a = x[o], b = x[o + C];
    dx[o] = d * b;
    dx[o + C] = d * a;
  }
}

// y[e] = x[e] * s[(e / (P C)) C + e % C]   (channel_scale: x * s; gap backward: dy broadcast, scaled by inv)
template <class V, class I>
__global__ void bcast_mul_k(const V* __restrict__ x, const V* __restrict__ s, V* __restrict__ y, I total, I P, I C) {
  IRC_LOOP(I, e, total) {
    const I c = e % C, n = e / (P * C);
    y[e] = x[e] * s[n * C + c];
  }
}

// dx = dy[n, c] / P (+ acc, the gradient of x from elsewhere, when given).
template <class V, class I>
__global__ void gap_back_k(const V* __restrict__ dy, const V* __restrict__ acc, V* __restrict__ dx, I total, I P, I C,
                           float inv) {
  IRC_LOOP(I, e, total) {
    const I c = e % C, n = e / (P * C);
    const V g = dy[n * C + c] * inv;
    dx[e] = acc ? g + acc[e] : g;
  }
}

template <class V, class I>
__global__ void scaled_add_k(const V* __restrict__ a, const V* __restrict__ b, const V* __restrict__ s,
                             V* __restrict__ y, I total, I C) {
  IRC_LOOP(I, e, total) { y[e] = a[e] + b[e] * s[e % C]; }
}

// ---- column sums: part[(n G + g) C + c] = Σ_{p in group g} term(n, p, c) -------------------------------------
enum ColMode { kSum = 0, kDotScaleN = 1, kDotScale1 = 2 };

// MODE kSum: term = a.  kDotScaleN: term = a b, side[idx] = a s[n C + c].  kDotScale1: as kDotScaleN with s[c].
// Block (ng, chunk) sums rows [P g / G, P (g + 1) / G) of sample n = ng / G; Cv channels in units of V.
template <int MODE, class V>
__global__ void __launch_bounds__(256) colsum_k(const V* __restrict__ a, const V* __restrict__ b,
                                                const V* __restrict__ s, V* __restrict__ side,
                                                double* __restrict__ part, int64_t P, int Cv, int CB, int L,
                                                int64_t G) {
  constexpr int VW = VecW<V>::n;
  __shared__ double sh[kThreads * VW];
  const int t = threadIdx.x, lane = t / CB, cv = blockIdx.y * CB + t % CB;
  const bool active = lane < L && cv < Cv;
  const int64_t ng = blockIdx.x, n = ng / G, g = ng % G;
  const int64_t p0 = P * g / G, p1 = P * (g + 1) / G;
  double acc[VW];
#pragma unroll
  for (int j = 0; j < VW; ++j) acc[j] = 0.0;
  if (active) {
    const V sc = MODE == kDotScaleN ? s[n * Cv + cv] : MODE == kDotScale1 ? s[cv] : vzero<V>();
    for (int64_t p = p0 + lane; p < p1; p += L) {
      const int64_t idx = (n * P + p) * Cv + cv;
      const V av = a[idx];
      if (MODE == kSum) {
#pragma unroll
        for (int j = 0; j < VW; ++j) acc[j] += static_cast<double>(comp(av, j));
      } else {
        const V bv = b[idx];
#pragma unroll
        for (int j = 0; j < VW; ++j) acc[j] += static_cast<double>(comp(av, j)) * static_cast<double>(comp(bv, j));
        side[idx] = av * sc;
      }
    }
  }
  lane_reduce<VW>(acc, sh, CB, L, t < CB && cv < Cv, part + ng * (int64_t(Cv) * VW) + int64_t(cv) * VW);
}

// Row groups per sample (shape only): about 1024 blocks in all, each lane summing at least 8 rows.
int64_t col_groups(int64_t N, int64_t P, const Lanes& l) {
  const int64_t per = (N > 0 ? N : 1) * l.chunks;
  int64_t g = (1024 + per - 1) / per;
  const int64_t most = P / (int64_t(l.L) * 8);
  if (g > most) g = most;
  if (g < 1) g = 1;
  return g;
}

template <int MODE>
void column_sum(KernelCtx& c, const float* a, const float* b, const float* s, float* side, float* out, int64_t N,
                int64_t P, int64_t C, double scale) {
  cudaStream_t st = cu::stream(c);
  const bool v4 = C % 4 == 0 && aligned16(a) && (!b || aligned16(b)) && (!s || aligned16(s)) && (!side || aligned16(side));
  const int64_t Cv = v4 ? C / 4 : C;
  const Lanes l = lanes_of(Cv);
  const int64_t G = col_groups(N, P, l);
  if (N * G > INT_MAX || Cv > INT_MAX) op_fail("E_CUDA", std::string(c.op) + ": reduction too large");
  double* part = static_cast<double*>(cu::scratch(st, sizeof(double) * N * G * C, 1));
  const dim3 grid(static_cast<unsigned>(N * G), static_cast<unsigned>(l.chunks));
  if (v4)
    colsum_k<MODE, float4><<<grid, kThreads, 0, st>>>(
        reinterpret_cast<const float4*>(a), reinterpret_cast<const float4*>(b), reinterpret_cast<const float4*>(s),
        reinterpret_cast<float4*>(side), part, P, static_cast<int>(Cv), l.CB, l.L, G);
  else
    colsum_k<MODE, float><<<grid, kThreads, 0, st>>>(a, b, s, side, part, P, static_cast<int>(Cv), l.CB, l.L, G);
  finish_parts(st, part, N, G, C, scale, out, N * C, nullptr);
  cu::check_launch(c);
}

// ---- dwconv_gate ------------------------------------------------------------------------------------------
struct DG {
  int64_t N, H, W, C2, C, KH, KW, P, Ho, Wo;
};

DG dg_of(const Shape& x, const Shape& w, int64_t pad) {
  DG g{x[0], x[1], x[2], x[3], x[3] / 2, w[0], w[1], pad, 0, 0};
  g.Ho = g.H + 2 * pad - g.KH + 1;
  g.Wo = g.W + 2 * pad - g.KW + 1;
  return g;
}

// z at output (n, oh, ow), channel ch (units of V; C2v channels per pixel): b + Σ_{kh, kw inside} x w, in the
// CPU order (kh outer, kw inner). K > 0: a KxK kernel known at compile time.
template <int K, class V>
__device__ __forceinline__ V z_at(const DG& g, const V* __restrict__ x, const V* __restrict__ w,
                                  const V* __restrict__ b, int64_t n, int64_t oh, int64_t ow, int64_t ch,
                                  int64_t C2v) {
  const int KH = K > 0 ? K : static_cast<int>(g.KH), KW = K > 0 ? K : static_cast<int>(g.KW);
  V acc = b ? b[ch] : vzero<V>();
#pragma unroll
  for (int kh = 0; kh < KH; ++kh) {
    const int64_t ih = oh - g.P + kh;
    if (ih < 0 || ih >= g.H) continue;
    const V* xr = x + (n * g.H + ih) * g.W * C2v + ch;
#pragma unroll
    for (int kw = 0; kw < KW; ++kw) {
      const int64_t iw = ow - g.P + kw;
      if (iw < 0 || iw >= g.W) continue;
      acc = mac(acc, xr[iw * C2v], w[(kh * KW + kw) * C2v + ch]);
    }
  }
  return acc;
}

// Splits an output element index e (pixel-major, Cv channel vectors per pixel) into (n, oh, ow, c).
template <class I>
__device__ __forceinline__ void split_q(const DG& g, I e, I Cv, I& q, I& n, I& oh, I& ow, I& c) {
  q = e / Cv;
  c = e - q * Cv;
  const I r = q / I(g.Wo);
  ow = q - r * I(g.Wo);
  n = r / I(g.Ho);
  oh = r - n * I(g.Ho);
}

// Forward: y[q, c] = a(z(c)) z(c + C); C in units of V; a = GELU when GELU (V = float), else the identity.
template <int K, bool GELU, class V, class I>
__global__ void dwgate_fwd_k(DG g, const V* __restrict__ x, const V* __restrict__ w, const V* __restrict__ b,
                             V* __restrict__ y, I total, I Cv) {
  IRC_LOOP(I, e, total) {
    I q, n, oh, ow, c;
    split_q<I>(g, e, Cv, q, n, oh, ow, c);
    const V z1 = z_at<K, V>(g, x, w, b, n, oh, ow, c, 2 * Cv);
    const V z2 = z_at<K, V>(g, x, w, b, n, oh, ow, c + Cv, 2 * Cv);
    if constexpr (GELU)
      y[e] = gelu_f(z1) * z2;
    else
      y[e] = z1 * z2;
  }
}

// Backward step 1: dz[q, c] = dy z2 a'(z1), dz[q, C + c] = dy a(z1) (z recomputed).
template <int K, bool GELU, class V, class I>
__global__ void dwgate_dz_k(DG g, const V* __restrict__ dy, const V* __restrict__ x, const V* __restrict__ w,
                            const V* __restrict__ b, V* __restrict__ dz, I total, I Cv) {
  IRC_LOOP(I, e, total) {
    I q, n, oh, ow, c;
    split_q<I>(g, e, Cv, q, n, oh, ow, c);
    const V z1 = z_at<K, V>(g, x, w, b, n, oh, ow, c, 2 * Cv);
    const V z2 = z_at<K, V>(g, x, w, b, n, oh, ow, c + Cv, 2 * Cv);
    const V d = dy[e];
    V* out = dz + int64_t(q) * 2 * Cv + c;
    if constexpr (GELU) {
      float da;
      const float a = gelu_d_f(z1, da);
      out[0] = d * z2 * da;
      out[Cv] = d * a;
    } else {
      out[0] = d * z2;
      out[Cv] = d * z1;
    }
  }
}

// Backward dw / db partials for any kernel: block (32 channels of C2, 8 pixel lanes); blockIdx.y = gq T + t.
__global__ void __launch_bounds__(256) dwgate_dwdb_k(DG g, const float* __restrict__ dz, const float* __restrict__ x,
                                                     double* __restrict__ part, int64_t G) {
  __shared__ double sh[8][33];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t C2 = g.C2, c = blockIdx.x * 32 + tx, T = g.KH * g.KW + 1;
  const int64_t Q = g.N * g.Ho * g.Wo;
  for (int64_t u = blockIdx.y; u < G * T; u += gridDim.y) {
    const int64_t gq = u / T, t = u % T;
    const int64_t kh = t / g.KW, kw = t % g.KW;
    double acc = 0.0;
    if (c < C2) {
      const int64_t q1 = Q * (gq + 1) / G;
      for (int64_t q = Q * gq / G + ty; q < q1; q += 8) {
        const float d = dz[q * C2 + c];
        if (t == T - 1) {
          acc += static_cast<double>(d);
          continue;
        }
        const int64_t ow = q % g.Wo, oh = (q / g.Wo) % g.Ho, n = q / (g.Wo * g.Ho);
        const int64_t ih = oh - g.P + kh, iw = ow - g.P + kw;
        if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
        acc += static_cast<double>(d) * static_cast<double>(x[((n * g.H + ih) * g.W + iw) * C2 + c]);
      }
    }
    sh[ty][tx] = acc;
    __syncthreads();
    if (ty == 0 && c < C2) {
      double s = sh[0][tx];
      for (int k = 1; k < 8; ++k) s += sh[k][tx];
      part[u * C2 + c] = s;
    }
    __syncthreads();
  }
}

// dx[n, ih, iw, c] = Σ_{kh, kw} dz[n, ih + P - kh, iw + P - kw, c] w[kh, kw, c] (kh outer, kw inner, as dx_pix);
// C2v: channels per pixel in units of V.
template <int K, class V>
__global__ void dwgate_dx_k(DG g, const V* __restrict__ dz, const V* __restrict__ w, V* __restrict__ dx,
                            int64_t total, int64_t C2v) {
  const int KH = K > 0 ? K : static_cast<int>(g.KH), KW = K > 0 ? K : static_cast<int>(g.KW);
  IRC_GRID_LOOP(e, total) {
    const int64_t c = e % C2v;
    int64_t t = e / C2v;
    const int64_t iw = t % g.W;
    t /= g.W;
    const int64_t ih = t % g.H, n = t / g.H;
    V acc = vzero<V>();
#pragma unroll
    for (int kh = 0; kh < KH; ++kh) {
      const int64_t oh = ih + g.P - kh;
      if (oh < 0 || oh >= g.Ho) continue;
      const V* dr = dz + (n * g.Ho + oh) * g.Wo * C2v + c;
#pragma unroll
      for (int kw = 0; kw < KW; ++kw) {
        const int64_t ow = iw + g.P - kw;
        if (ow < 0 || ow >= g.Wo) continue;
        acc = mac(acc, dr[ow * C2v], w[(kh * KW + kw) * C2v + c]);
      }
    }
    dx[e] = acc;
  }
}

// dwconv_gate's act attribute: 1 = GELU on the first half (absent: 0, the product).
bool gelu_act(const KernelCtx& c) { return c.attrs.size() > 1 && c.ai(1) == 1; }

// Pixel groups for the generic dw / db partials (shape only).
int64_t dw_groups(int64_t Q, int64_t tiles) {
  int64_t g = (512 + tiles - 1) / tiles;
  const int64_t most = (Q + 63) / 64;
  if (g > most) g = most;
  if (g < 1) g = 1;
  return g;
}

}  // namespace

// ---- simple_gate ------------------------------------------------------------------------------------------
void cuda_simple_gate(KernelCtx& c) {
  const int64_t C = c.out[0].shape.back(), total = c.out[0].n;
  if (C == 0 || total == 0) return;
  const float* x = c.in[0].f();
  float* y = c.out[0].f();
  cudaStream_t s = cu::stream(c);
  if (C % 4 == 0 && aligned16(x) && aligned16(y))
    IRC_LAUNCH_VI(gate_k, float4, total / 4, s, reinterpret_cast<const float4*>(x), reinterpret_cast<float4*>(y),
                  total / 4, C / 4);
  else
    IRC_LAUNCH_VI(gate_k, float, total, s, x, y, total, C);
  cu::check_launch(c);
}

void cuda_simple_gate_backward(KernelCtx& c) {
  const int64_t C = c.in[0].shape.back(), total = c.in[0].n;
  if (C == 0 || total == 0) return;
  const float *dy = c.in[0].f(), *x = c.in[1].f();
  float* dx = c.out[0].f();
  cudaStream_t s = cu::stream(c);
  if (C % 4 == 0 && aligned16(dy) && aligned16(x) && aligned16(dx))
    IRC_LAUNCH_VI(gate_back_k, float4, total / 4, s, reinterpret_cast<const float4*>(dy),
                  reinterpret_cast<const float4*>(x), reinterpret_cast<float4*>(dx), total / 4, C / 4);
  else
    IRC_LAUNCH_VI(gate_back_k, float, total, s, dy, x, dx, total, C);
  cu::check_launch(c);
}

// ---- global_avg_pool --------------------------------------------------------------------------------------
void cuda_global_avg_pool(KernelCtx& c) {
  const Shape& s = c.in[0].shape;
  const int64_t N = s[0], P = s[1] * s[2], C = s[3];
  if (N * C == 0) return;
  column_sum<kSum>(c, c.in[0].f(), nullptr, nullptr, nullptr, c.out[0].f(), N, P, C, 1.0 / static_cast<double>(P));
}

void cuda_global_avg_pool_backward(KernelCtx& c) {
  const Shape& s = c.in[1].shape;
  const int64_t P = s[1] * s[2], C = s[3], total = c.out[0].n;
  if (P == 0 || C == 0 || total == 0) return;
  const float* dy = c.in[0].f();
  const float* acc = c.in.size() > 2 ? c.in[2].f() : nullptr;
  float* dx = c.out[0].f();
  const float inv = static_cast<float>(1.0 / static_cast<double>(P));
  cudaStream_t st = cu::stream(c);
  if (C % 4 == 0 && aligned16(dy) && aligned16(dx) && (!acc || aligned16(acc)))
    IRC_LAUNCH_VI(gap_back_k, float4, total / 4, st, reinterpret_cast<const float4*>(dy),
                  reinterpret_cast<const float4*>(acc), reinterpret_cast<float4*>(dx), total / 4, P, C / 4, inv);
  else
    IRC_LAUNCH_VI(gap_back_k, float, total, st, dy, acc, dx, total, P, C, inv);
  cu::check_launch(c);
}

// ---- channel_scale ----------------------------------------------------------------------------------------
void cuda_channel_scale(KernelCtx& c) {
  const Shape& sh = c.in[0].shape;
  const int64_t P = sh[1] * sh[2], C = sh[3], total = c.out[0].n;
  if (C == 0 || total == 0) return;
  const float *x = c.in[0].f(), *s = c.in[1].f();
  float* y = c.out[0].f();
  cudaStream_t st = cu::stream(c);
  if (C % 4 == 0 && aligned16(x) && aligned16(s) && aligned16(y))
    IRC_LAUNCH_VI(bcast_mul_k, float4, total / 4, st, reinterpret_cast<const float4*>(x),
                  reinterpret_cast<const float4*>(s), reinterpret_cast<float4*>(y), total / 4, P, C / 4);
  else
    IRC_LAUNCH_VI(bcast_mul_k, float, total, st, x, s, y, total, P, C);
  cu::check_launch(c);
}

void cuda_channel_scale_backward(KernelCtx& c) {
  const Shape& sh = c.in[1].shape;
  const int64_t N = sh[0], P = sh[1] * sh[2], C = sh[3];
  if (N * C == 0) return;
  // dx = dy * s (written by the partial pass), ds[n, c] = Σ_p dy x
  column_sum<kDotScaleN>(c, c.in[0].f(), c.in[1].f(), c.in[2].f(), c.out[0].f(), c.out[1].f(), N, P, C, 1.0);
}

// ---- scaled_add -------------------------------------------------------------------------------------------
void cuda_scaled_add(KernelCtx& c) {
  const int64_t C = c.in[0].shape.back(), total = c.in[0].n;
  if (C == 0 || total == 0) return;
  const float *a = c.in[0].f(), *b = c.in[1].f(), *s = c.in[2].f();
  float* y = c.out[0].f();
  cudaStream_t st = cu::stream(c);
  if (C % 4 == 0 && aligned16(a) && aligned16(b) && aligned16(s) && aligned16(y))
    IRC_LAUNCH_VI(scaled_add_k, float4, total / 4, st, reinterpret_cast<const float4*>(a),
                  reinterpret_cast<const float4*>(b), reinterpret_cast<const float4*>(s), reinterpret_cast<float4*>(y),
                  total / 4, C / 4);
  else
    IRC_LAUNCH_VI(scaled_add_k, float, total, st, a, b, s, y, total, C);
  cu::check_launch(c);
}

void cuda_scaled_add_backward(KernelCtx& c) {
  const int64_t C = c.in[1].shape.back(), n = c.in[1].n;
  if (C == 0) return;
  // db = dy * s (written by the partial pass), ds = Σ_rows dy b; no rows: ds = 0 (the partials are zeros)
  column_sum<kDotScale1>(c, c.in[0].f(), c.in[1].f(), c.in[2].f(), c.out[0].f(), c.out[1].f(), 1, n / C, C, 1.0);
}

// ---- dwconv_gate ------------------------------------------------------------------------------------------
template <class V>
void dwgate_forward(const DG& g, const V* x, const V* w, const V* b, V* y, int64_t total, int64_t Cv, bool k3,
                    cudaStream_t s) {
  const unsigned nb = cu::blocks_for(total);
  if (small_index(total))
    (k3 ? dwgate_fwd_k<3, false, V, int> : dwgate_fwd_k<0, false, V, int>)<<<nb, kThreads, 0, s>>>(
        g, x, w, b, y, int(total), int(Cv));
  else
    (k3 ? dwgate_fwd_k<3, false, V, int64_t> : dwgate_fwd_k<0, false, V, int64_t>)<<<nb, kThreads, 0, s>>>(
        g, x, w, b, y, total, Cv);
}

void cuda_dwconv_gate(KernelCtx& c) {
  const DG g = dg_of(c.in[0].shape, c.in[1].shape, c.ai(0));
  if (g.C == 0 || g.N == 0) return;
  const float *x = c.in[0].f(), *w = c.in[1].f(), *b = c.in.size() > 2 ? c.in[2].f() : nullptr;
  float* y = c.out[0].f();
  const int64_t total = c.out[0].n;
  cudaStream_t s = cu::stream(c);
  const bool gelu = gelu_act(c);
  if (g.KH == 3 && g.KW == 3 && g.P == 1 && dwgate3x3_forward(c, g.N, g.H, g.W, g.C, gelu, x, w, b, y)) return;
  const bool k3 = g.KH == 3 && g.KW == 3;
  if (gelu)  // other kernels with GELU (no model uses them): floats, 64-bit indices
    (k3 ? dwgate_fwd_k<3, true, float, int64_t> : dwgate_fwd_k<0, true, float, int64_t>)<<<cu::blocks_for(total),
                                                                                             kThreads, 0, s>>>(
        g, x, w, b, y, total, g.C);
  else if (g.C % 4 == 0 && aligned16(x) && aligned16(w) && (!b || aligned16(b)) && aligned16(y))
    dwgate_forward<float4>(g, reinterpret_cast<const float4*>(x), reinterpret_cast<const float4*>(w),
                           reinterpret_cast<const float4*>(b), reinterpret_cast<float4*>(y), total / 4, g.C / 4, k3, s);
  else
    dwgate_forward<float>(g, x, w, b, y, total, g.C, k3, s);
  cu::check_launch(c);
}

template <class V>
void dwgate_dz(const DG& g, const V* dy, const V* x, const V* w, const V* b, V* dz, int64_t total, int64_t Cv,
               bool k3, cudaStream_t s) {
  const unsigned nb = cu::blocks_for(total);
  if (small_index(total))
    (k3 ? dwgate_dz_k<3, false, V, int> : dwgate_dz_k<0, false, V, int>)<<<nb, kThreads, 0, s>>>(
        g, dy, x, w, b, dz, int(total), int(Cv));
  else
    (k3 ? dwgate_dz_k<3, false, V, int64_t> : dwgate_dz_k<0, false, V, int64_t>)<<<nb, kThreads, 0, s>>>(
        g, dy, x, w, b, dz, total, Cv);
}

void cuda_dwconv_gate_backward(KernelCtx& c) {
  const DG g = dg_of(c.in[1].shape, c.in[2].shape, c.ai(0));
  const float *dy = c.in[0].f(), *x = c.in[1].f(), *w = c.in[2].f(), *b = c.in.size() > 3 ? c.in[3].f() : nullptr;
  float *dx = c.out[0].f(), *dw = c.out[1].f(), *db = c.out[2].f();
  cudaStream_t s = cu::stream(c);
  const int64_t wsz = g.KH * g.KW * g.C2, T = g.KH * g.KW + 1;
  if (g.C == 0 || g.N == 0) {
    if (g.C2 > 0) {
      cu::check(cudaMemsetAsync(dw, 0, sizeof(float) * wsz, s), c.op, "memset dw");
      cu::check(cudaMemsetAsync(db, 0, sizeof(float) * g.C2, s), c.op, "memset db");
    }
    return;
  }
  const int64_t Q = g.N * g.Ho * g.Wo;
  const bool gelu = gelu_act(c), k3p1 = g.KH == 3 && g.KW == 3 && g.P == 1;
  // 3x3, padding 1: (1) dz by the sliding forward, (2) dx and the dw / db partials in one sliding pass over dz.
  // IRCONSTYLE_DWGATE_BWD=one-pass computes dz where it is needed inside the second pass instead (slower on the
  // H100: 506 against 395 µs at [16,128,128,48]).
  if (k3p1 && env_is("IRCONSTYLE_DWGATE_BWD", "one-pass") &&
      dwgate3x3_backward(c, g.N, g.H, g.W, g.C, gelu, x, w, b, dy, dx, dw, db))
    return;
  float* dz = static_cast<float*>(cu::scratch(s, sizeof(float) * Q * g.C2, 0));
  if (k3p1 && dwgate3x3_dz(c, g.N, g.H, g.W, g.C, gelu, x, w, b, dy, dz) &&
      depthwise3x3_backward(c, g.N, g.H, g.W, g.C2, dz, x, w, dx, dw, db))
    return;
  const bool k3 = g.KH == 3 && g.KW == 3;
  const bool vec = g.C % 4 == 0 && aligned16(dy) && aligned16(x) && aligned16(w) && (!b || aligned16(b)) && aligned16(dx);
  // (1) dz, z recomputed
  if (gelu)
    (k3 ? dwgate_dz_k<3, true, float, int64_t> : dwgate_dz_k<0, true, float, int64_t>)<<<cu::blocks_for(Q * g.C),
                                                                                           kThreads, 0, s>>>(
        g, dy, x, w, b, dz, Q * g.C, g.C);
  else if (vec)
    dwgate_dz<float4>(g, reinterpret_cast<const float4*>(dy), reinterpret_cast<const float4*>(x),
                      reinterpret_cast<const float4*>(w), reinterpret_cast<const float4*>(b),
                      reinterpret_cast<float4*>(dz), Q * g.C / 4, g.C / 4, k3, s);
  else
    dwgate_dz<float>(g, dy, x, w, b, dz, Q * g.C, g.C, k3, s);
  cu::check_launch(c);
  // Other kernels / paddings: (2) dw / db partials over dz and x, (3) dx gathers dz, (4) partials summed in order
  const int64_t G = dw_groups(Q, (g.C2 + 31) / 32 * T);
  double* part = static_cast<double*>(cu::scratch(s, sizeof(double) * G * T * g.C2, 1));
  const int64_t ny = G * T < 65535 ? G * T : 65535;
  dwgate_dwdb_k<<<dim3(static_cast<unsigned>((g.C2 + 31) / 32), static_cast<unsigned>(ny)), dim3(32, 8), 0, s>>>(
      g, dz, x, part, G);
  const int64_t nx = c.out[0].n;
  if (nx > 0) {
    if (g.C2 % 4 == 0 && aligned16(w) && aligned16(dx))  // dz comes from scratch (256-byte aligned)
      (k3 ? dwgate_dx_k<3, float4> : dwgate_dx_k<0, float4>)<<<cu::blocks_for(nx / 4), kThreads, 0, s>>>(
          g, reinterpret_cast<const float4*>(dz), reinterpret_cast<const float4*>(w), reinterpret_cast<float4*>(dx),
          nx / 4, g.C2 / 4);
    else
      (k3 ? dwgate_dx_k<3, float> : dwgate_dx_k<0, float>)<<<cu::blocks_for(nx), kThreads, 0, s>>>(g, dz, w, dx, nx,
                                                                                                 g.C2);
  }
  finish_parts(s, part, 1, G, T * g.C2, 1.0, dw, wsz, db);
  cu::check_launch(c);
}

}  // namespace irc
