// Direct 3x3 convolutions (stride 1, padding 1, groups 1) with at most 4 input or output channels (conv_thin.h).
// One convolution kernel per side that is thin, used for the forward and, with the flipped and transposed kernel,
// for dx (a stride-1 padding-1 3x3 conv's dx is the convolution of dy with w_t[kh, kw, co, ci] = w[2-kh, 2-kw, ci, co]):
//   thin_in_k  (CI <= 4 input channels): a thread per (pixel, output channel); the 9 CI inputs come through L1,
//              the weights from shared memory;
//   thin_out_k (CO <= 4 output channels): a thread per pixel holding CO sums over the 9 taps and all input
//              channels (float4 loads when the channels allow), the weights from shared memory.
// dw / db: blocks own fixed ranges of 2x16-pixel tiles; a tile's input halo and dy are staged in shared memory and
// each thread accumulates up to 12 of the 9 Ci Co + Co outputs over it; the per-block partials are summed in block
// order in double (deterministic). The summation order differs from cuDNN's, within float rounding.
#include <climits>
#include <cstdint>
#include <cstdlib>

#include "../cuda/common.cuh"
#include "conv_thin.h"
#include "switches.h"

namespace irc {
namespace {

constexpr int kTH = 2, kTW = 16;          // dw tile: output rows x columns
constexpr int kMaxOut = 12;               // dw / db outputs per thread (256 threads: up to 3072)
constexpr int64_t kMaxWeights = 9 * 340;  // 9 Ci Co: the shared-memory weights and the dw outputs

// Weight of tap t (= 3 kh + kw), conv input channel a, conv output channel b for the forward (T = false: w[t, a, b]
// of w [3, 3, Ci, Co]) or the dx convolution (T = true: input channels = Co, outputs = Ci, w[8 - t, b, a]).
template <bool T>
__device__ __forceinline__ float wt(const float* __restrict__ w, int t, int a, int b, int Ci, int Co) {
  return T ? w[((8 - t) * Ci + b) * Co + a] : w[(t * Ci + a) * Co + b];
}

// out[p, j] = bias[j] + Σ_{t, a < CI} in[p + off(t), a] ws[t, a, j] over P pixels of N H W, Cout output channels.
template <int CI, bool T>
__global__ void __launch_bounds__(256) thin_in_k(const float* __restrict__ in, const float* __restrict__ w,
                                                 const float* __restrict__ bias, float* __restrict__ out, int H, int W,
                                                 int Cout, int Ci, int Co, int total) {
  extern __shared__ float ws[];  // [9][CI][Cout]
  for (int e = threadIdx.x; e < 9 * CI * Cout; e += blockDim.x) {
    const int t = e / (CI * Cout), a = (e / Cout) % CI, b = e % Cout;
    ws[e] = wt<T>(w, t, a, b, Ci, Co);
  }
  __syncthreads();
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += gridDim.x * blockDim.x) {
    const int j = e % Cout, p = e / Cout;
    const int ow = p % W, oh = (p / W) % H, base = p - oh * W - ow;  // base = n H W
    float acc = bias ? bias[j] : 0.f;
#pragma unroll
    for (int t = 0; t < 9; ++t) {
      const int ih = oh + t / 3 - 1, iw = ow + t % 3 - 1;
      if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
      const float* src = in + (int64_t(base) + ih * W + iw) * CI;
#pragma unroll
      for (int a = 0; a < CI; ++a) acc += src[a] * ws[(t * CI + a) * Cout + j];
    }
    out[e] = acc;
  }
}

// out[p, j < CO] = bias[j] + Σ_{t, a < Cin} in[p + off(t), a] ws[t, a, j]; V = 4: float4 loads (Cin % 4 == 0).
template <int CO, int V, bool T>
__global__ void __launch_bounds__(256) thin_out_k(const float* __restrict__ in, const float* __restrict__ w,
                                                  const float* __restrict__ bias, float* __restrict__ out, int H,
                                                  int W, int Cin, int Ci, int Co, int P) {
  extern __shared__ float ws[];  // [9][Cin][CO]
  for (int e = threadIdx.x; e < 9 * Cin * CO; e += blockDim.x) {
    const int t = e / (Cin * CO), a = (e / CO) % Cin, b = e % CO;
    ws[e] = wt<T>(w, t, a, b, Ci, Co);
  }
  __syncthreads();
  for (int p = blockIdx.x * blockDim.x + threadIdx.x; p < P; p += gridDim.x * blockDim.x) {
    const int ow = p % W, oh = (p / W) % H, base = p - oh * W - ow;
    float acc[CO];
#pragma unroll
    for (int j = 0; j < CO; ++j) acc[j] = bias ? bias[j] : 0.f;
    for (int t = 0; t < 9; ++t) {
      const int ih = oh + t / 3 - 1, iw = ow + t % 3 - 1;
      if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
      const float* src = in + (int64_t(base) + ih * W + iw) * Cin;
      const float* wr = ws + t * Cin * CO;
      if constexpr (V == 4) {
        for (int a = 0; a < Cin; a += 4) {
          const float4 v = *reinterpret_cast<const float4*>(src + a);
#pragma unroll
          for (int j = 0; j < CO; ++j)
            acc[j] += v.x * wr[a * CO + j] + v.y * wr[(a + 1) * CO + j] + v.z * wr[(a + 2) * CO + j] +
                      v.w * wr[(a + 3) * CO + j];
        }
      } else {
        for (int a = 0; a < Cin; ++a) {
          const float v = src[a];
#pragma unroll
          for (int j = 0; j < CO; ++j) acc[j] += v * wr[a * CO + j];
        }
      }
    }
#pragma unroll
    for (int j = 0; j < CO; ++j) out[int64_t(p) * CO + j] = acc[j];
  }
}

// dw / db partials: block b takes tiles [T b / G, T (b + 1) / G) of kTH x kTW output pixels (tiles row-major over
// (n, tile row, tile column)); part[b O + o] for o < O = 9 Ci Co (dw[t, ci, co], the RSCK order) then Co (db).
__global__ void __launch_bounds__(256) thin_dw_k(const float* __restrict__ dy, const float* __restrict__ x,
                                                 float* __restrict__ part, int N, int H, int W, int Ci, int Co, int G) {
  extern __shared__ float sm[];
  float* xs = sm;                                  // [kTH + 2][kTW + 2][Ci]
  float* ds = sm + (kTH + 2) * (kTW + 2) * Ci;     // [kTH][kTW][Co]
  const int tr = (H + kTH - 1) / kTH, tc = (W + kTW - 1) / kTW, T = N * tr * tc;
  const int O = 9 * Ci * Co + Co, ICo = Ci * Co;
  const int t0 = static_cast<int>(int64_t(T) * blockIdx.x / G), t1 = static_cast<int>(int64_t(T) * (blockIdx.x + 1) / G);
  float acc[kMaxOut];
#pragma unroll
  for (int q = 0; q < kMaxOut; ++q) acc[q] = 0.f;
  for (int tile = t0; tile < t1; ++tile) {
    const int n = tile / (tr * tc), oh0 = (tile / tc) % tr * kTH, ow0 = tile % tc * kTW;
    __syncthreads();  // the previous tile's readers are done
    for (int e = threadIdx.x; e < (kTH + 2) * (kTW + 2) * Ci; e += blockDim.x) {
      const int c = e % Ci, u = e / Ci, ih = oh0 - 1 + u / (kTW + 2), iw = ow0 - 1 + u % (kTW + 2);
      xs[e] = ih >= 0 && ih < H && iw >= 0 && iw < W ? x[((int64_t(n) * H + ih) * W + iw) * Ci + c] : 0.f;
    }
    for (int e = threadIdx.x; e < kTH * kTW * Co; e += blockDim.x) {
      const int c = e % Co, u = e / Co, oh = oh0 + u / kTW, ow = ow0 + u % kTW;
      ds[e] = oh < H && ow < W ? dy[((int64_t(n) * H + oh) * W + ow) * Co + c] : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int q = 0; q < kMaxOut; ++q) {
      const int o = threadIdx.x + q * blockDim.x;
      if (o >= O) break;
      float s = 0.f;
      if (o < 9 * ICo) {
        const int t = o / ICo, ci = (o / Co) % Ci, co = o % Co, kh = t / 3, kw = t % 3;
#pragma unroll 1  // unrolled inside the unrolled q loop it spilled (255 registers); 62 without
        for (int u = 0; u < kTH * kTW; ++u) {
          const int ty = u / kTW, tx = u % kTW;
          s += xs[((ty + kh) * (kTW + 2) + tx + kw) * Ci + ci] * ds[u * Co + co];
        }
      } else {
#pragma unroll 1
        for (int u = 0; u < kTH * kTW; ++u) s += ds[u * Co + (o - 9 * ICo)];
      }
      acc[q] += s;
    }
  }
#pragma unroll
  for (int q = 0; q < kMaxOut; ++q) {
    const int o = threadIdx.x + q * blockDim.x;
    if (o < O) part[int64_t(blockIdx.x) * O + o] = acc[q];
  }
}

// dw[o] / db: the G partials of each output added in block order in double.
__global__ void thin_dw_finish_k(const float* __restrict__ part, int G, int O, int WO, float* __restrict__ dw,
                                 float* __restrict__ db) {
  for (int o = blockIdx.x * blockDim.x + threadIdx.x; o < O; o += gridDim.x * blockDim.x) {
    double s = 0.0;
    for (int b = 0; b < G; ++b) s += part[int64_t(b) * O + o];
    if (o < WO) {
      dw[o] = static_cast<float>(s);
    } else {
      db[o - WO] = static_cast<float>(s);
    }
  }
}

// Launches the convolution of `in` (Cin channels) into `out` (Cout channels), one side at most 4 channels, with the
// forward (T = false) or dx (T = true) weights.
template <bool T>
void thin_conv(cudaStream_t s, int N, int H, int W, int Cin, int Cout, int Ci, int Co, const float* in,
               const float* w, const float* bias, float* out) {
  const int P = N * H * W;
  if (Cin <= 4) {
    const int total = P * Cout;
    const size_t sm = sizeof(float) * 9 * Cin * Cout;
    const unsigned blocks = cu::blocks_for(total);
    switch (Cin) {
      case 1: thin_in_k<1, T><<<blocks, 256, sm, s>>>(in, w, bias, out, H, W, Cout, Ci, Co, total); break;
      case 2: thin_in_k<2, T><<<blocks, 256, sm, s>>>(in, w, bias, out, H, W, Cout, Ci, Co, total); break;
      case 3: thin_in_k<3, T><<<blocks, 256, sm, s>>>(in, w, bias, out, H, W, Cout, Ci, Co, total); break;
      default: thin_in_k<4, T><<<blocks, 256, sm, s>>>(in, w, bias, out, H, W, Cout, Ci, Co, total); break;
    }
    return;
  }
  const size_t sm = sizeof(float) * 9 * Cin * Cout;
  const unsigned blocks = cu::blocks_for(P);
  const bool v4 = Cin % 4 == 0 && aligned16(in);
#define IRC_THIN_OUT(CO)                                                                                  \
  (v4 ? thin_out_k<CO, 4, T> : thin_out_k<CO, 1, T>)<<<blocks, 256, sm, s>>>(in, w, bias, out, H, W, Cin, Ci, \
                                                                             Co, P)
  switch (Cout) {
    case 1: IRC_THIN_OUT(1); break;
    case 2: IRC_THIN_OUT(2); break;
    case 3: IRC_THIN_OUT(3); break;
    default: IRC_THIN_OUT(4); break;
  }
#undef IRC_THIN_OUT
}

}  // namespace

bool thin_conv_fits(int64_t N, int64_t H, int64_t W, int64_t Ci, int64_t Co, bool backward) {
  // read at every call, as every switch (switches.h): a trainer's tuning scope or setSwitch may change it
  const bool all = env_is("IRCONSTYLE_THIN_CONV", "1"), none = env_is("IRCONSTYLE_THIN_CONV", "0");
  if (none || (!all && (backward || Co > 4))) return false;
  if (Ci < 1 || Co < 1 || (Ci > 4 && Co > 4) || 9 * Ci * Co > kMaxWeights || 9 * Ci * Co + Co > kMaxOut * 256)
    return false;
  // shared memory of the dw tile (under the 48 KiB default) and 32-bit index math (below 2^30: a grid-stride loop's
  // index plus its stride, at most 2^29 threads, stays below INT_MAX)
  if (((kTH + 2) * (kTW + 2) * Ci + kTH * kTW * Co) * int64_t(sizeof(float)) > 48 * 1024) return false;
  const int64_t C = Ci > Co ? Ci : Co;
  return N * H * W > 0 && cu::index32(N * H * W * C);
}

bool thin_conv_forward(const KernelCtx& k, int64_t N, int64_t H, int64_t W, int64_t Ci, int64_t Co, const float* x,
                       const float* w, const float* b, float* y) {
  if (!thin_conv_fits(N, H, W, Ci, Co, false)) return false;
  thin_conv<false>(cu::stream(k), int(N), int(H), int(W), int(Ci), int(Co), int(Ci), int(Co), x, w, b, y);
  cu::check_launch(k);
  return true;
}

bool thin_conv_backward(const KernelCtx& k, int64_t N, int64_t H, int64_t W, int64_t Ci, int64_t Co, const float* dy,
                        const float* x, const float* w, float* dx, float* dw, float* db) {
  if (!thin_conv_fits(N, H, W, Ci, Co, true)) return false;
  cudaStream_t s = cu::stream(k);
  // dx: dy (Co channels) convolved with the flipped, transposed kernel into Ci channels
  thin_conv<true>(s, int(N), int(H), int(W), int(Co), int(Ci), int(Ci), int(Co), dy, w, nullptr, dx);
  // dw, db: about 4 blocks per SM of an H100, each at least 4 tiles
  const int64_t tiles = N * ((H + kTH - 1) / kTH) * ((W + kTW - 1) / kTW);
  int64_t G = tiles / 4 < 528 ? tiles / 4 : 528;
  if (G < 1) G = 1;
  const int O = int(9 * Ci * Co + Co), WO = int(9 * Ci * Co);
  float* part = static_cast<float*>(cu::scratch(s, sizeof(float) * G * O, 4));
  const size_t sm = sizeof(float) * ((kTH + 2) * (kTW + 2) * Ci + kTH * kTW * Co);
  thin_dw_k<<<unsigned(G), 256, sm, s>>>(dy, x, part, int(N), int(H), int(W), int(Ci), int(Co), int(G));
  thin_dw_finish_k<<<cu::blocks_for(O), 256, 0, s>>>(part, int(G), O, WO, dw, db);
  cu::check_launch(k);
  return true;
}

}  // namespace irc
