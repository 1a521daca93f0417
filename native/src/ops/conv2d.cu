// CUDA conv2d / conv2d_backward (ops.def; math in conv2d.h). x NHWC, w [KH, KW, Ci/G, Co], optional bias.
// Paths:
//  - depthwise (G == Ci == Co, G > 1): own NHWC kernels. 3x3 stride-1 pad-1 (depthwise3x3.h, shared with
//    dwconv_gate): a sliding-window forward, and for the backward one pass over dy for dx and the dw / db
//    partials. Other depthwise convs: float4 over channels when C % 4 == 0; backward dx as the transposed
//    stencil (a gather, no atomics), dw / db as a fixed-geometry two-pass reduction over the pixels;
//  - 3x3 stride 1 pad 1 groups 1 with at most 4 input or output channels (the image convs): direct kernels
//    (conv_thin.h) for the forward to <= 4 output channels (IRCONSTYLE_THIN_CONV: all / none);
//  - 1x1 stride 1 pad 0 groups 1: one GEMM ([pixels, Ci] . [Ci, Co]). With a bias, cuBLASLt adds it in the GEMM's
//    epilogue (where cuBLASLt cannot: the bias pre-filled and a cuBLAS GEMM with beta = 1). Backward: dx and dW as
//    cuBLAS GEMMs, db as column sums of dy;
//  - otherwise cuDNN's legacy API on NHWC tensors with KRSC filters (our RSCK weight is transposed to KRSC in
//    scratch, the filter gradient transposed back); deterministic algorithms picked once per shape with the _v7
//    heuristics, or with IRCONSTYLE_CUDNN_FIND=1 by timing them at the shape's first call (tune()); bias added by
//    a kernel. Without cuDNN (or when it finds no algorithm): im2col + cuBLAS.
// TF32: convolutions follow cu::tf32_convolutions() (PyTorch's default allows it; IRCONSTYLE_TF32=0 turns off).
// Scratch slots: 0 cuDNN fwd / bwd-data workspace, 1 KRSC weights (and the depthwise 3x3 partials), 2 KRSC filter
// gradient, 3 bwd-filter workspace, 4 reduction partials, 5 im2col columns; the cuBLASLt helpers use 7 (matmul.cu).
#include <cuda_runtime.h>

#include <array>
#include <climits>
#include <cstdio>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "../cuda/blas.cuh"
#include "../cuda/common.cuh"
#include "../cuda/gpu_libs.h"
#include "conv_thin.h"
#include "depthwise3x3.h"
#include "switches.h"

namespace irc {
namespace {

struct Geo {
  int64_t N, H, W, Ci, KH, KW, Co, S, P, G, Ho, Wo, cig, cog;
};

Geo geo_of(const Shape& x, const Shape& w, const KernelCtx& k) {
  Geo g{x[0], x[1], x[2], x[3], w[0], w[1], w[3], k.ai(0), k.ai(1), k.ai(2), 0, 0, 0, 0};
  g.cig = g.Ci / g.G;
  g.cog = g.Co / g.G;
  g.Ho = (g.H + 2 * g.P - g.KH) / g.S + 1;
  g.Wo = (g.W + 2 * g.P - g.KW) / g.S + 1;
  return g;
}
bool is_depthwise(const Geo& g) { return g.G > 1 && g.cig == 1 && g.cog == 1; }
bool is_pointwise(const Geo& g) { return g.G == 1 && g.KH == 1 && g.KW == 1 && g.S == 1 && g.P == 0; }
// A dense 3x3 stride-1 padding-1 conv with at most 4 input or output channels: the direct kernels of conv_thin.cu.
bool is_thin3x3(const Geo& g) {
  return g.G == 1 && g.KH == 3 && g.KW == 3 && g.S == 1 && g.P == 1 && (g.Ci <= 4 || g.Co <= 4);
}

// V floats at p (V = 1 or 4; p 16-byte aligned when V = 4).
template <int V>
__device__ __forceinline__ void ldv(const float* p, float (&r)[V]) {
  if constexpr (V == 4) {
    const float4 t = *reinterpret_cast<const float4*>(p);
    r[0] = t.x, r[1] = t.y, r[2] = t.z, r[3] = t.w;
  } else {
    r[0] = *p;
  }
}
template <int V>
__device__ __forceinline__ void stv(float* p, const float (&r)[V]) {
  if constexpr (V == 4) {
    *reinterpret_cast<float4*>(p) = make_float4(r[0], r[1], r[2], r[3]);
  } else {
    *p = r[0];
  }
}

// ---- depthwise ------------------------------------------------------------------------------------------------
// y[n,oh,ow,c] = b[c] + sum_{kh,kw} x[n, oh*S-P+kh, ow*S-P+kw, c] * w[kh,kw,0,c]   (sum order: bias, kh, kw)
// I: the index type of the per-element division (int where the element count allows: 64-bit division costs tens
// of instructions per element).
template <int V, class I>
__global__ void dw_fwd_k(Geo g, const float* __restrict__ x, const float* __restrict__ w,
                         const float* __restrict__ b, float* __restrict__ y) {
  const int64_t C = g.Co;
  const I CV = static_cast<I>(C / V), n_out = static_cast<I>(g.N * g.Ho * g.Wo) * CV, Wo = static_cast<I>(g.Wo),
          Ho = static_cast<I>(g.Ho);
  for (I e = blockIdx.x * I(blockDim.x) + threadIdx.x; e < n_out; e += I(gridDim.x) * I(blockDim.x)) {
    const I cv = e % CV, p = e / CV, ow = p % Wo, t = p / Wo, oh = t % Ho, n = t / Ho;
    const int64_t c = int64_t(cv) * V;
    float acc[V], xv[V], wv[V];
    if (b) {
      ldv<V>(b + c, acc);
    } else {
#pragma unroll
      for (int l = 0; l < V; ++l) acc[l] = 0.f;
    }
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      const int64_t ih = oh * g.S - g.P + kh;
      if (ih < 0 || ih >= g.H) continue;
      const float* xr = x + ((n * g.H + ih) * g.W) * C + c;
      const float* wr = w + kh * g.KW * C + c;
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        const int64_t iw = ow * g.S - g.P + kw;
        if (iw < 0 || iw >= g.W) continue;
        ldv<V>(xr + iw * C, xv);
        ldv<V>(wr + kw * C, wv);
#pragma unroll
        for (int l = 0; l < V; ++l) acc[l] = fmaf(xv[l], wv[l], acc[l]);
      }
    }
    stv<V>(y + int64_t(p) * C + c, acc);
  }
}

// dx[n,ih,iw,c] = sum over (kh,kw) with oh = (ih+P-kh)/S, ow = (iw+P-kw)/S exact and in range of dy[n,oh,ow,c]*w.
template <int V>
__global__ void dw_dx_k(Geo g, const float* __restrict__ dy, const float* __restrict__ w, float* __restrict__ dx) {
  const int64_t C = g.Ci, CV = C / V, n_in = g.N * g.H * g.W * CV;
  IRC_GRID_LOOP(e, n_in) {
    const int64_t c = (e % CV) * V, p = e / CV, iw = p % g.W, t = p / g.W, ih = t % g.H, n = t / g.H;
    float acc[V], dv[V], wv[V];
#pragma unroll
    for (int l = 0; l < V; ++l) acc[l] = 0.f;
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      const int64_t th = ih + g.P - kh;
      if (th < 0 || th % g.S) continue;
      const int64_t oh = th / g.S;
      if (oh >= g.Ho) continue;
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        const int64_t tw = iw + g.P - kw;
        if (tw < 0 || tw % g.S) continue;
        const int64_t ow = tw / g.S;
        if (ow >= g.Wo) continue;
        ldv<V>(dy + ((n * g.Ho + oh) * g.Wo + ow) * C + c, dv);
        ldv<V>(w + (kh * g.KW + kw) * C + c, wv);
#pragma unroll
        for (int l = 0; l < V; ++l) acc[l] = fmaf(dv[l], wv[l], acc[l]);
      }
    }
    stv<V>(dx + p * C + c, acc);
  }
}

// Pass 1 of dw/db: unit u = (tap, channel block); tap == KH*KW stands for db (factor 1). Part q = blockIdx.y
// sums the output pixels [pix*q/parts, pix*(q+1)/parts) in order into part[q][tap*C + c].
template <int V>
__global__ void dw_dwdb_part_k(Geo g, const float* __restrict__ dy, const float* __restrict__ x, int parts,
                               float* __restrict__ part) {
  const int64_t C = g.Ci, CV = C / V, KK = g.KH * g.KW, units = (KK + 1) * CV;
  const int64_t u = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (u >= units) return;
  const int64_t tap = u / CV, c = (u % CV) * V, kh = tap / g.KW, kw = tap % g.KW;
  const int q = blockIdx.y;
  const int64_t pix = g.N * g.Ho * g.Wo, p0 = pix * q / parts, p1 = pix * (q + 1) / parts;
  float acc[V], dv[V], xv[V];
#pragma unroll
  for (int l = 0; l < V; ++l) acc[l] = 0.f;
  int64_t ow = p0 % g.Wo, oh = (p0 / g.Wo) % g.Ho, n = p0 / (g.Wo * g.Ho);
  for (int64_t p = p0; p < p1; ++p) {
    ldv<V>(dy + p * C + c, dv);
    if (tap == KK) {
#pragma unroll
      for (int l = 0; l < V; ++l) acc[l] += dv[l];
    } else {
      const int64_t ih = oh * g.S - g.P + kh, iw = ow * g.S - g.P + kw;
      if (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W) {
        ldv<V>(x + ((n * g.H + ih) * g.W + iw) * C + c, xv);
#pragma unroll
        for (int l = 0; l < V; ++l) acc[l] = fmaf(xv[l], dv[l], acc[l]);
      }
    }
    if (++ow == g.Wo) {
      ow = 0;
      if (++oh == g.Ho) {
        oh = 0;
        ++n;
      }
    }
  }
  stv<V>(part + int64_t(q) * (KK + 1) * C + tap * C + c, acc);
}

// Pass 2: dw[f] (f < KK*C) or db[f - KK*C] = sum over the parts: one warp per f, lane j taking parts j, j + 32, ...
// in order, then a fixed shuffle tree (deterministic).
__global__ void dw_dwdb_final_k(const float* __restrict__ part, int parts, int64_t KKC, int64_t C,
                                float* __restrict__ dw, float* __restrict__ db) {
  const int64_t total = KKC + C, warps = (static_cast<int64_t>(gridDim.x) * blockDim.x) >> 5;
  const int lane = threadIdx.x & 31;
  for (int64_t f = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5; f < total; f += warps) {
    float s = 0.f;
    for (int q = lane; q < parts; q += 32) s += part[int64_t(q) * total + f];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane != 0) continue;
    if (f < KKC) {
      dw[f] = s;
    } else {
      db[f - KKC] = s;
    }
  }
}

void depthwise_forward(const KernelCtx& k, const Geo& g, const float* x, const float* w, const float* b, float* y) {
  // 3x3, stride 1, padding 1 (Restormer's and NAFNet's depthwise convs): the sliding-window kernel of nafnet.cu.
  if (g.KH == 3 && g.KW == 3 && g.S == 1 && g.P == 1 && depthwise3x3_forward(k, g.N, g.H, g.W, g.Ci, x, w, b, y))
    return;
  const cudaStream_t s = cu::stream(k);
  const bool v4 = g.Co % 4 == 0 && aligned16(x) && aligned16(w) && aligned16(y) && (!b || aligned16(b));
  const int64_t n = g.N * g.Ho * g.Wo * g.Co;
  const bool small = cu::index32(n);  // i + stride stays below 2^31
  if (v4) {
    (small ? dw_fwd_k<4, int> : dw_fwd_k<4, int64_t>)<<<cu::blocks_for(n / 4), 256, 0, s>>>(g, x, w, b, y);
  } else {
    (small ? dw_fwd_k<1, int> : dw_fwd_k<1, int64_t>)<<<cu::blocks_for(n), 256, 0, s>>>(g, x, w, b, y);
  }
  cu::check_launch(k);
}

void depthwise_backward(const KernelCtx& k, const Geo& g, const float* dy, const float* x, const float* w,
                        float* dx, float* dw, float* db) {
  // 3x3, stride 1, padding 1 (Restormer's and NAFNet's depthwise convs): the fused pass shared with dwconv_gate.
  if (g.KH == 3 && g.KW == 3 && g.S == 1 && g.P == 1 && depthwise3x3_backward(k, g.N, g.H, g.W, g.Ci, dy, x, w, dx, dw, db))
    return;
  const cudaStream_t s = cu::stream(k);
  const int64_t C = g.Ci;
  const bool v4 = C % 4 == 0 && aligned16(dy) && aligned16(x) && aligned16(w) && aligned16(dx);
  const int V = v4 ? 4 : 1;
  const int64_t n_in = g.N * g.H * g.W * C;
  if (n_in > 0) {
    if (v4) {
      dw_dx_k<4><<<cu::blocks_for(n_in / 4), 256, 0, s>>>(g, dy, w, dx);
    } else {
      dw_dx_k<1><<<cu::blocks_for(n_in), 256, 0, s>>>(g, dy, w, dx);
    }
    cu::check_launch(k);
  }
  // Fixed geometry from the shape only: about 2048 blocks, each part at least 32 pixels, at most 1024 parts.
  const int64_t KK = g.KH * g.KW, units = (KK + 1) * (C / V), xblocks = (units + 127) / 128;
  const int64_t pix = g.N * g.Ho * g.Wo;
  int64_t parts = (2048 + xblocks - 1) / xblocks;
  if (parts > pix / 32) parts = pix / 32;
  if (parts > 1024) parts = 1024;
  if (parts < 1) parts = 1;
  if (xblocks > INT_MAX) op_fail("E_CUDA", std::string(k.op) + ": depthwise kernel too large");
  float* part = static_cast<float*>(cu::scratch(s, sizeof(float) * parts * (KK + 1) * C, 4));
  const dim3 grid(static_cast<unsigned>(xblocks), static_cast<unsigned>(parts));
  if (v4) {
    dw_dwdb_part_k<4><<<grid, 128, 0, s>>>(g, dy, x, static_cast<int>(parts), part);
  } else {
    dw_dwdb_part_k<1><<<grid, 128, 0, s>>>(g, dy, x, static_cast<int>(parts), part);
  }
  cu::check_launch(k);
  dw_dwdb_final_k<<<cu::blocks_for((KK + 1) * C * 32), 256, 0, s>>>(part, static_cast<int>(parts), KK * C, C, dw, db);
  cu::check_launch(k);
}

// ---- small kernels for the GEMM / cuDNN paths -----------------------------------------------------------------
// out[c][r] = in[r][c] for in [R, C] (32x32 tiles through shared memory).
__global__ void transpose_k(const float* __restrict__ in, int64_t R, int64_t C, float* __restrict__ out) {
  __shared__ float t[32][33];
  const int64_t r0 = blockIdx.x * int64_t(32), c0 = blockIdx.y * int64_t(32);
  for (int j = threadIdx.y; j < 32; j += 8) {
    const int64_t r = r0 + j, c = c0 + threadIdx.x;
    if (r < R && c < C) t[j][threadIdx.x] = in[r * C + c];
  }
  __syncthreads();
  for (int j = threadIdx.y; j < 32; j += 8) {
    const int64_t c = c0 + j, r = r0 + threadIdx.x;
    if (r < R && c < C) out[c * R + r] = t[threadIdx.x][j];
  }
}

void transpose(const KernelCtx& k, const float* in, int64_t R, int64_t C, float* out) {
  if (R == 0 || C == 0) return;
  const int64_t gx = (R + 31) / 32, gy = (C + 31) / 32;
  if (gy > 65535 || gx > INT_MAX) op_fail("E_CUDA", std::string(k.op) + ": weight too large to transpose");
  transpose_k<<<dim3(static_cast<unsigned>(gx), static_cast<unsigned>(gy)), dim3(32, 8), 0, cu::stream(k)>>>(
      in, R, C, out);
  cu::check_launch(k);
}

__global__ void add_bias_k(float* __restrict__ y, const float* __restrict__ b, int64_t n, int64_t C) {
  IRC_GRID_LOOP(i, n) y[i] += b[i % C];
}
__global__ void add_bias4_k(float4* __restrict__ y, const float4* __restrict__ b, int64_t n4, int64_t C4) {
  IRC_GRID_LOOP(i, n4) {
    float4 v = y[i];
    const float4 a = b[i % C4];
    v.x += a.x, v.y += a.y, v.z += a.z, v.w += a.w;
    y[i] = v;
  }
}

void add_bias(const KernelCtx& k, float* y, const float* b, int64_t rows, int64_t C) {
  const int64_t n = rows * C;
  if (n == 0) return;
  if (C % 4 == 0 && aligned16(y) && aligned16(b)) {
    add_bias4_k<<<cu::blocks_for(n / 4), 256, 0, cu::stream(k)>>>(reinterpret_cast<float4*>(y),
                                                                   reinterpret_cast<const float4*>(b), n / 4, C / 4);
  } else {
    add_bias_k<<<cu::blocks_for(n), 256, 0, cu::stream(k)>>>(y, b, n, C);
  }
  cu::check_launch(k);
}

// col[pl][(kh*KW + kw)*cig + ci] = x[n, oh*S-P+kh, ow*S-P+kw, grp*cig + ci] (0 outside), pixel p = p0 + pl.
__global__ void im2col_k(Geo g, const float* __restrict__ x, int64_t p0, int64_t np, int64_t grp,
                         float* __restrict__ col) {
  const int64_t kk = g.KH * g.KW * g.cig, n_col = np * kk;
  IRC_GRID_LOOP(e, n_col) {
    const int64_t ci = e % g.cig, r = e / g.cig, tap = r % (g.KH * g.KW), p = p0 + r / (g.KH * g.KW);
    const int64_t kh = tap / g.KW, kw = tap % g.KW, ow = p % g.Wo, t = p / g.Wo, oh = t % g.Ho, n = t / g.Ho;
    const int64_t ih = oh * g.S - g.P + kh, iw = ow * g.S - g.P + kw;
    col[e] = (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W) ? x[((n * g.H + ih) * g.W + iw) * g.Ci + grp * g.cig + ci]
                                                          : 0.f;
  }
}

// dx[n,ih,iw,grp*cig+ci] += sum over taps whose output pixel p lies in [p0, p0+np) of dcol[p-p0][tap*cig+ci].
__global__ void col2im_add_k(Geo g, const float* __restrict__ dcol, int64_t p0, int64_t np, int64_t grp,
                             float* __restrict__ dx) {
  const int64_t kk = g.KH * g.KW * g.cig, n_in = g.N * g.H * g.W * g.cig;
  IRC_GRID_LOOP(e, n_in) {
    const int64_t ci = e % g.cig, q = e / g.cig, iw = q % g.W, t = q / g.W, ih = t % g.H, n = t / g.H;
    float acc = 0.f;
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      const int64_t th = ih + g.P - kh;
      if (th < 0 || th % g.S || th / g.S >= g.Ho) continue;
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        const int64_t tw = iw + g.P - kw;
        if (tw < 0 || tw % g.S || tw / g.S >= g.Wo) continue;
        const int64_t p = (n * g.Ho + th / g.S) * g.Wo + tw / g.S - p0;
        if (p < 0 || p >= np) continue;
        acc += dcol[p * kk + (kh * g.KW + kw) * g.cig + ci];
      }
    }
    dx[q * g.Ci + grp * g.cig + ci] += acc;
  }
}

// Pixels per im2col tile: the column buffer stays under 128 MiB.
int64_t tile_pixels(const Geo& g) {
  const int64_t kk = g.KH * g.KW * g.cig, pix = g.N * g.Ho * g.Wo;
  int64_t t = (int64_t(32) << 20) / kk;
  if (t < 1) t = 1;
  return t < pix ? t : pix;
}

// ---- GEMM paths (pointwise, and the im2col fallback) ------------------------------------------------------------
void gemm_forward(const KernelCtx& k, const Geo& g, const float* x, const float* w, const float* b, float* y) {
  const bool tf32 = cu::tf32_convolutions();
  const int64_t pix = g.N * g.Ho * g.Wo, kk = g.KH * g.KW * g.cig;
  // y = x . w + b in one cuBLASLt call (bias epilogue): no pre-fill pass over y.
  if (is_pointwise(g) && b && blas::gemm_bias(k, tf32, false, false, pix, g.Co, g.Ci, x, g.Ci, w, g.Co, b, y, g.Co))
    return;
  const gpu::Cublas& cb = blas::bind(k, tf32);
  if (b) blas::fill_rows(k, y, pix, g.Co, b);
  const float beta = b ? 1.f : 0.f;
  if (is_pointwise(g)) {
    blas::gemm(k, cb, false, false, pix, g.Co, g.Ci, 1.f, x, g.Ci, w, g.Co, beta, y, g.Co);
    return;
  }
  const int64_t T = tile_pixels(g);
  float* col = static_cast<float*>(cu::scratch(cu::stream(k), sizeof(float) * T * kk, 5));
  for (int64_t p0 = 0; p0 < pix; p0 += T) {
    const int64_t np = pix - p0 < T ? pix - p0 : T;
    for (int64_t grp = 0; grp < g.G; ++grp) {
      im2col_k<<<cu::blocks_for(np * kk), 256, 0, cu::stream(k)>>>(g, x, p0, np, grp, col);
      cu::check_launch(k);
      blas::gemm(k, cb, false, false, np, g.cog, kk, 1.f, col, kk, w + grp * g.cog, g.Co, beta,
                 y + p0 * g.Co + grp * g.cog, g.Co);
    }
  }
}

void gemm_backward_dx(const KernelCtx& k, const Geo& g, const float* dy, const float* w, float* dx) {
  const gpu::Cublas& cb = blas::bind(k, cu::tf32_convolutions());
  const int64_t pix = g.N * g.Ho * g.Wo, kk = g.KH * g.KW * g.cig;
  if (is_pointwise(g)) {
    blas::gemm(k, cb, false, true, pix, g.Ci, g.Co, 1.f, dy, g.Co, w, g.Co, 0.f, dx, g.Ci);
    return;
  }
  const cudaStream_t s = cu::stream(k);
  cu::check(cudaMemsetAsync(dx, 0, sizeof(float) * g.N * g.H * g.W * g.Ci, s), k.op, "cudaMemsetAsync");
  const int64_t T = tile_pixels(g);
  float* dcol = static_cast<float*>(cu::scratch(s, sizeof(float) * T * kk, 5));
  for (int64_t p0 = 0; p0 < pix; p0 += T) {
    const int64_t np = pix - p0 < T ? pix - p0 : T;
    for (int64_t grp = 0; grp < g.G; ++grp) {
      blas::gemm(k, cb, false, true, np, kk, g.cog, 1.f, dy + p0 * g.Co + grp * g.cog, g.Co, w + grp * g.cog, g.Co,
                 0.f, dcol, kk);
      col2im_add_k<<<cu::blocks_for(g.N * g.H * g.W * g.cig), 256, 0, s>>>(g, dcol, p0, np, grp, dx);
      cu::check_launch(k);
    }
  }
}

void gemm_backward_dw(const KernelCtx& k, const Geo& g, const float* dy, const float* x, float* dw) {
  const gpu::Cublas& cb = blas::bind(k, cu::tf32_convolutions());
  const int64_t pix = g.N * g.Ho * g.Wo, kk = g.KH * g.KW * g.cig;
  if (is_pointwise(g)) {
    blas::gemm(k, cb, true, false, g.Ci, g.Co, pix, 1.f, x, g.Ci, dy, g.Co, 0.f, dw, g.Co);
    return;
  }
  const int64_t T = tile_pixels(g);
  float* col = static_cast<float*>(cu::scratch(cu::stream(k), sizeof(float) * T * kk, 5));
  for (int64_t p0 = 0; p0 < pix; p0 += T) {
    const int64_t np = pix - p0 < T ? pix - p0 : T;
    for (int64_t grp = 0; grp < g.G; ++grp) {
      im2col_k<<<cu::blocks_for(np * kk), 256, 0, cu::stream(k)>>>(g, x, p0, np, grp, col);
      cu::check_launch(k);
      blas::gemm(k, cb, true, false, kk, g.cog, np, 1.f, col, kk, dy + p0 * g.Co + grp * g.cog, g.Co,
                 p0 == 0 ? 0.f : 1.f, dw + grp * g.cog, g.Co);
    }
  }
}

// ---- cuDNN path -------------------------------------------------------------------------------------------------
enum Dir { FWD = 0, BWD_DATA = 1, BWD_FILTER = 2 };

struct Plan {
  void *xd = nullptr, *yd = nullptr, *wd = nullptr, *cd[3] = {nullptr, nullptr, nullptr};
  int algo[3] = {0, 0, 0};
  size_t ws[3] = {0, 0, 0};
  bool ok[3] = {false, false, false};
  bool tf32 = false;
  // autotuning (IRCONSTYLE_CUDNN_FIND=1): whether to time the candidates at the first call outside a graph capture,
  // whether that happened, and the workspace to time them with (the largest of the heuristics' usable candidates)
  bool tune = false, tuned[3] = {false, false, false};
  size_t tune_ws[3] = {0, 0, 0};
  std::string why;  // first failure
};

// TF32 off (exact FP32 wanted): only the direct / GEMM-type algorithms; FFT and Winograd transforms round
// differently (forward 4-7, backward data 2-5, backward filter 2 and 4-6 — FFT, Winograd, Winograd non-fused, FFT
// tiling — in cuDNN's enums).
bool transform_algo(int dir, int a) {
  return dir == FWD ? a >= 4 : dir == BWD_DATA ? a >= 2 : (a == 2 || a >= 4);
}

// The first usable candidate: succeeded, deterministic, within the workspace cap, exact FP32 when TF32 is off.
int first_usable(const gpu::CudnnAlgoPerf* perf, int n, int dir, bool tf32, size_t cap) {
  for (int i = 0; i < n && i < 16; ++i)
    if (perf[i].status == 0 && perf[i].determinism == 1 && perf[i].memory <= cap &&
        (tf32 || !transform_algo(dir, perf[i].algo)))
      return i;
  return -1;
}

std::mutex g_plan_mu;
std::map<std::array<int64_t, 12>, Plan>* g_plans = new std::map<std::array<int64_t, 12>, Plan>();  // never freed

std::string dnn_err(const gpu::Cudnn& d, int st) {
  const char* e = d.GetErrorString(st);
  return "status " + std::to_string(st) + " (" + (e ? e : "?") + ")";
}

// Builds the descriptors and picks, per direction, the first deterministic algorithm the heuristics rank (with at
// most 1 GiB of workspace). A direction that fails keeps ok = false (the caller falls back to im2col + cuBLAS).
Plan make_plan(const gpu::Cudnn& d, const Geo& g, bool tf32, bool tune) {
  Plan pl;
  pl.tf32 = tf32;
  pl.tune = tune;
  auto fail = [&](const std::string& what, int st) {
    if (pl.why.empty()) pl.why = what + ": " + dnn_err(d, st);
  };
  for (int64_t v : {g.N, g.H, g.W, g.Ci, g.Co, g.Ho, g.Wo, g.KH, g.KW, g.P, g.S, g.G})
    if (v > INT_MAX) {
      pl.why = "dimension beyond int";
      return pl;
    }
  const int N = int(g.N), H = int(g.H), W = int(g.W), Ci = int(g.Ci), Co = int(g.Co), Ho = int(g.Ho), Wo = int(g.Wo);
  int st = 0;
  if ((st = d.CreateTensorDescriptor(&pl.xd)) || (st = d.CreateTensorDescriptor(&pl.yd)) ||
      (st = d.CreateFilterDescriptor(&pl.wd))) {
    fail("cudnnCreate*Descriptor", st);
    return pl;
  }
  if ((st = d.SetTensor4dDescriptor(pl.xd, gpu::CUDNN_TENSOR_NHWC, gpu::CUDNN_DATA_FLOAT, N, Ci, H, W)) ||
      (st = d.SetTensor4dDescriptor(pl.yd, gpu::CUDNN_TENSOR_NHWC, gpu::CUDNN_DATA_FLOAT, N, Co, Ho, Wo)) ||
      (st = d.SetFilter4dDescriptor(pl.wd, gpu::CUDNN_DATA_FLOAT, gpu::CUDNN_TENSOR_NHWC, Co, int(g.cig), int(g.KH),
                                    int(g.KW)))) {
    fail("cudnnSet{Tensor,Filter}4dDescriptor", st);
    return pl;
  }
  const int math = tf32 ? gpu::CUDNN_DEFAULT_MATH : gpu::CUDNN_FMA_MATH;
  const size_t cap = size_t(1) << 30;
  for (int dir = 0; dir < 3; ++dir) {
    void*& cd = pl.cd[dir];
    if ((st = d.CreateConvolutionDescriptor(&cd)) ||
        (st = d.SetConvolution2dDescriptor(cd, int(g.P), int(g.P), int(g.S), int(g.S), 1, 1,
                                           gpu::CUDNN_CROSS_CORRELATION, gpu::CUDNN_DATA_FLOAT)) ||
        (st = d.SetConvolutionGroupCount(cd, int(g.G))) || (st = d.SetConvolutionMathType(cd, math))) {
      fail("cudnn convolution descriptor", st);
      continue;
    }
    gpu::CudnnAlgoPerf perf[16] = {};
    int n = 0;
    if (dir == FWD) {
      st = d.GetConvolutionForwardAlgorithm_v7(d.handle, pl.xd, pl.wd, cd, pl.yd, 16, &n, perf);
    } else if (dir == BWD_DATA) {
      st = d.GetConvolutionBackwardDataAlgorithm_v7(d.handle, pl.wd, pl.yd, cd, pl.xd, 16, &n, perf);
    } else {
      st = d.GetConvolutionBackwardFilterAlgorithm_v7(d.handle, pl.xd, pl.yd, cd, pl.wd, 16, &n, perf);
    }
    if (st) {
      fail("cudnnGetConvolution*Algorithm_v7", st);
      continue;
    }
    const int pick = first_usable(perf, n, dir, tf32, cap);
    // find's workspace: the largest any candidate it may keep needs (not the excluded ones: non-deterministic,
    // transforms in exact FP32)
    for (int i = 0; i < n && i < 16; ++i)
      if (first_usable(perf + i, 1, dir, tf32, cap) == 0 && perf[i].memory > pl.tune_ws[dir])
        pl.tune_ws[dir] = perf[i].memory;
    if (pick < 0) {
      if (pl.why.empty()) pl.why = "no deterministic cuDNN algorithm for direction " + std::to_string(dir);
      continue;
    }
    // TF32 allowed: run the algorithm with the math type the heuristics ranked it for; otherwise stay on FMA.
    if (tf32 && (st = d.SetConvolutionMathType(cd, perf[pick].mathType))) {
      fail("cudnnSetConvolutionMathType", st);
      continue;
    }
    const int algo = perf[pick].algo;
    size_t bytes = 0;
    if (dir == FWD) {
      st = d.GetConvolutionForwardWorkspaceSize(d.handle, pl.xd, pl.wd, cd, pl.yd, algo, &bytes);
    } else if (dir == BWD_DATA) {
      st = d.GetConvolutionBackwardDataWorkspaceSize(d.handle, pl.wd, pl.yd, cd, pl.xd, algo, &bytes);
    } else {
      st = d.GetConvolutionBackwardFilterWorkspaceSize(d.handle, pl.xd, pl.yd, cd, pl.wd, algo, &bytes);
    }
    if (st) {
      fail("cudnnGetConvolution*WorkspaceSize", st);
      continue;
    }
    pl.algo[dir] = algo;
    pl.ws[dir] = bytes > perf[pick].memory ? bytes : perf[pick].memory;
    pl.ok[dir] = true;
  }
  return pl;
}

void* workspace(const KernelCtx& k, size_t bytes, int slot) {
  return bytes ? cu::scratch(cu::stream(k), bytes, slot) : nullptr;
}

// IRCONSTYLE_LOG_PLANS=1 (diagnostics; the device check's parity run sets it): each cuDNN plan's algorithms on
// stderr, once when made and once more if find (IRCONSTYLE_CUDNN_FIND=1) changes them.
void log_plan(const Geo& g, const Plan& pl, const char* how) {
  if (!env_is("IRCONSTYLE_LOG_PLANS", "1")) return;
  std::fprintf(stderr,
               "cudnn plan (%s) [%lld,%lld,%lld,%lld] %lldx%lld s%lld p%lld g%lld -> %lld, tf32 %d: fwd %d, "
               "bwd data %d, bwd filter %d%s%s\n", how, (long long)g.N, (long long)g.H, (long long)g.W, (long long)g.Ci,
               (long long)g.KH, (long long)g.KW, (long long)g.S, (long long)g.P, (long long)g.G, (long long)g.Co,
               pl.tf32 ? 1 : 0, pl.ok[0] ? pl.algo[0] : -1, pl.ok[1] ? pl.algo[1] : -1, pl.ok[2] ? pl.algo[2] : -1,
               pl.why.empty() ? "" : "; ", pl.why.c_str());
}

// The plan for this shape, or nullptr without cuDNN. Plans are never freed or moved (std::map), so the pointer stays
// valid; only tune() changes one, under g_plan_mu.
Plan* plan_for(const Geo& g) {
  const gpu::Cudnn* d = gpu::cudnn();
  if (!d) return nullptr;
  const bool tf32 = cu::tf32_convolutions(), tune = env_is("IRCONSTYLE_CUDNN_FIND", "1");
  const std::array<int64_t, 12> key{g.N, g.H, g.W, g.Ci, g.KH, g.KW, g.Co, g.S, g.P, g.G, tf32 ? 1 : 0, tune ? 1 : 0};
  std::lock_guard<std::mutex> lock(g_plan_mu);
  auto it = g_plans->find(key);
  if (it == g_plans->end()) {
    it = g_plans->emplace(key, make_plan(*d, g, tf32, tune)).first;
    log_plan(g, it->second, "heuristics");
  }
  return &it->second;
}

// Autotuning (pl.tune): the first call of a direction outside a graph capture times cuDNN's candidates on its own
// buffers (cudnnFind*AlgorithmEx, as PyTorch's cudnn.benchmark; synchronous, once per shape) and keeps the fastest
// usable one (first_usable). a, b: the direction's inputs (x and w, w and dy, x and dy), out its output buffer (written
// by the timing runs; the real call follows). A missing entry point or a failed search keeps the heuristics' choice.
void tune(const KernelCtx& k, const gpu::Cudnn& d, const Geo& g, Plan& pl, int dir, const void* a, const void* b,
          void* out, int slot) {
  if (!pl.tune || !pl.ok[dir]) return;
  std::lock_guard<std::mutex> lock(g_plan_mu);
  if (pl.tuned[dir]) return;
  if (!cu::host_may_wait(cu::stream(k))) return;  // a capture or a held stream: the next call outside tunes
  pl.tuned[dir] = true;
  void* cd = pl.cd[dir];
  // at most 256 MiB to time with (scratch slots keep their largest size): candidates that need more are left out
  const size_t bytes = pl.tune_ws[dir] < (size_t(256) << 20) ? pl.tune_ws[dir] : (size_t(256) << 20);
  void* ws = nullptr;
  try {
    ws = workspace(k, bytes, slot);
  } catch (...) {  // no memory to time with: the heuristics' choice stays
    cudaGetLastError();
    return;
  }
  const int math = pl.tf32 ? gpu::CUDNN_DEFAULT_MATH : gpu::CUDNN_FMA_MATH;
  gpu::CudnnAlgoPerf perf[16] = {};
  int n = 0, st = -1;
  if (d.SetConvolutionMathType(cd, math) == 0) {
    if (dir == FWD && d.FindConvolutionForwardAlgorithmEx)
      st = d.FindConvolutionForwardAlgorithmEx(d.handle, pl.xd, a, pl.wd, b, cd, pl.yd, out, 16, &n, perf, ws, bytes);
    else if (dir == BWD_DATA && d.FindConvolutionBackwardDataAlgorithmEx)
      st = d.FindConvolutionBackwardDataAlgorithmEx(d.handle, pl.wd, a, pl.yd, b, cd, pl.xd, out, 16, &n, perf, ws,
                                                    bytes);
    else if (dir == BWD_FILTER && d.FindConvolutionBackwardFilterAlgorithmEx)
      st = d.FindConvolutionBackwardFilterAlgorithmEx(d.handle, pl.xd, a, pl.yd, b, cd, pl.wd, out, 16, &n, perf, ws,
                                                      bytes);
  }
  const int pick = st == 0 ? first_usable(perf, n, dir, pl.tf32, bytes) : -1;
  size_t need = 0;
  int st2 = -1;
  if (pick >= 0) {
    const int algo = perf[pick].algo;
    if (dir == FWD)
      st2 = d.GetConvolutionForwardWorkspaceSize(d.handle, pl.xd, pl.wd, cd, pl.yd, algo, &need);
    else if (dir == BWD_DATA)
      st2 = d.GetConvolutionBackwardDataWorkspaceSize(d.handle, pl.wd, pl.yd, cd, pl.xd, algo, &need);
    else
      st2 = d.GetConvolutionBackwardFilterWorkspaceSize(d.handle, pl.xd, pl.yd, cd, pl.wd, algo, &need);
  }
  // the chosen algorithm with its math type, or the heuristics' choice (with its math type) back
  if (pick >= 0 && st2 == 0 && (!pl.tf32 || d.SetConvolutionMathType(cd, perf[pick].mathType) == 0)) {
    const bool changed = pl.algo[dir] != perf[pick].algo;
    pl.algo[dir] = perf[pick].algo;
    pl.ws[dir] = need > perf[pick].memory ? need : perf[pick].memory;
    if (changed) log_plan(g, pl, "find");
  } else {
    gpu::CudnnAlgoPerf h[16] = {};
    int m = 0;
    if (dir == FWD)
      d.GetConvolutionForwardAlgorithm_v7(d.handle, pl.xd, pl.wd, cd, pl.yd, 16, &m, h);
    else if (dir == BWD_DATA)
      d.GetConvolutionBackwardDataAlgorithm_v7(d.handle, pl.wd, pl.yd, cd, pl.xd, 16, &m, h);
    else
      d.GetConvolutionBackwardFilterAlgorithm_v7(d.handle, pl.xd, pl.yd, cd, pl.wd, 16, &m, h);
    for (int i = 0; i < m && i < 16; ++i)
      if (h[i].algo == pl.algo[dir] && h[i].status == 0) {
        if (pl.tf32) d.SetConvolutionMathType(cd, h[i].mathType);
        break;
      }
  }
  if (st != 0) cudaGetLastError();  // a failed search leaves nothing for the next launch check to report
}

void dnn_check(const KernelCtx& k, const gpu::Cudnn& d, int st, const char* what) {
  if (st != 0) op_fail("E_CUDA", std::string(k.op) + ": " + what + " failed: " + dnn_err(d, st));
}

// The cuDNN handle keeps its stream: set it only when it changes (launches come from the JS thread only).
void bind_stream(const KernelCtx& k, const gpu::Cudnn& d) {
  static void* bound = nullptr;
  if (k.stream == bound) return;
  dnn_check(k, d, d.SetStream(d.handle, k.stream), "cudnnSetStream");
  bound = k.stream;
}

// KRSC copy of the RSCK weight in scratch slot 1.
const float* krsc_weight(const KernelCtx& k, const Geo& g, const float* w) {
  const int64_t R = g.KH * g.KW * g.cig;
  float* wk = static_cast<float*>(cu::scratch(cu::stream(k), sizeof(float) * R * g.Co, 1));
  transpose(k, w, R, g.Co, wk);
  return wk;
}

[[noreturn]] void no_library(const KernelCtx& k, const Plan* pl) {
  op_fail("E_CUDA", std::string(k.op) + ": no convolution library: cuDNN: " +
                        (pl ? pl->why : gpu::cudnn_why_not()) + "; cuBLAS: " + gpu::cublas_why_not());
}

}  // namespace

void cuda_conv2d(KernelCtx& k) {
  const Geo g = geo_of(k.in[0].shape, k.in[1].shape, k);
  const float *x = k.in[0].f(), *w = k.in[1].f();
  const float* b = k.in.size() > 2 ? k.in[2].f() : nullptr;
  float* y = k.out[0].f();
  if (k.out[0].n == 0) return;
  if (is_depthwise(g)) return depthwise_forward(k, g, x, w, b, y);
  if (is_pointwise(g) && gpu::cublas()) return gemm_forward(k, g, x, w, b, y);
  if (is_thin3x3(g) && thin_conv_forward(k, g.N, g.H, g.W, g.Ci, g.Co, x, w, b, y)) return;
  Plan* pl = plan_for(g);
  if (pl && pl->ok[FWD]) {
    const gpu::Cudnn& d = *gpu::cudnn();
    const float* wk = krsc_weight(k, g, w);
    const float one = 1.f, zero = 0.f;
    bind_stream(k, d);
    tune(k, d, g, *pl, FWD, x, wk, y, 0);
    void* ws = workspace(k, pl->ws[FWD], 0);
    dnn_check(k, d,
              d.ConvolutionForward(d.handle, &one, pl->xd, x, pl->wd, wk, pl->cd[FWD], pl->algo[FWD], ws,
                                   pl->ws[FWD], &zero, pl->yd, y),
              "cudnnConvolutionForward");
    if (b) add_bias(k, y, b, g.N * g.Ho * g.Wo, g.Co);
    return;
  }
  if (!gpu::cublas()) no_library(k, pl);
  gemm_forward(k, g, x, w, b, y);
}

void cuda_conv2d_backward(KernelCtx& k) {
  const Geo g = geo_of(k.in[1].shape, k.in[2].shape, k);
  const float *dy = k.in[0].f(), *x = k.in[1].f(), *w = k.in[2].f();
  float *dx = k.out[0].f(), *dw = k.out[1].f(), *db = k.out[2].f();
  const cudaStream_t s = cu::stream(k);
  const int64_t pix = g.N * g.Ho * g.Wo;
  if (pix == 0) {  // no pixels: zero gradients (dx is empty too when N == 0)
    cu::check(cudaMemsetAsync(dw, 0, sizeof(float) * k.out[1].n, s), k.op, "cudaMemsetAsync");
    cu::check(cudaMemsetAsync(db, 0, sizeof(float) * k.out[2].n, s), k.op, "cudaMemsetAsync");
    if (k.out[0].n) cu::check(cudaMemsetAsync(dx, 0, sizeof(float) * k.out[0].n, s), k.op, "cudaMemsetAsync");
    return;
  }
  if (is_depthwise(g)) return depthwise_backward(k, g, dy, x, w, dx, dw, db);
  if (is_thin3x3(g) && thin_conv_backward(k, g.N, g.H, g.W, g.Ci, g.Co, dy, x, w, dx, dw, db)) return;
  const bool pointwise_blas = is_pointwise(g) && gpu::cublas();
  Plan* pl = pointwise_blas ? nullptr : plan_for(g);
  const bool dnn_dx = pl && pl->ok[BWD_DATA], dnn_dw = pl && pl->ok[BWD_FILTER];
  if ((!dnn_dx || !dnn_dw) && !gpu::cublas()) no_library(k, pl);
  const float one = 1.f, zero = 0.f;
  if (dnn_dx || dnn_dw) {
    const gpu::Cudnn& d = *gpu::cudnn();
    bind_stream(k, d);
    if (dnn_dx) {
      const float* wk = krsc_weight(k, g, w);
      tune(k, d, g, *pl, BWD_DATA, wk, dy, dx, 0);
      void* ws = workspace(k, pl->ws[BWD_DATA], 0);
      dnn_check(k, d,
                d.ConvolutionBackwardData(d.handle, &one, pl->wd, wk, pl->yd, dy, pl->cd[BWD_DATA],
                                          pl->algo[BWD_DATA], ws, pl->ws[BWD_DATA], &zero, pl->xd, dx),
                "cudnnConvolutionBackwardData");
    }
    if (dnn_dw) {
      const int64_t R = g.KH * g.KW * g.cig;
      float* dwk = static_cast<float*>(cu::scratch(s, sizeof(float) * R * g.Co, 2));
      tune(k, d, g, *pl, BWD_FILTER, x, dy, dwk, 3);
      void* ws = workspace(k, pl->ws[BWD_FILTER], 3);
      dnn_check(k, d,
                d.ConvolutionBackwardFilter(d.handle, &one, pl->xd, x, pl->yd, dy, pl->cd[BWD_FILTER],
                                            pl->algo[BWD_FILTER], ws, pl->ws[BWD_FILTER], &zero, pl->wd, dwk),
                "cudnnConvolutionBackwardFilter");
      transpose(k, dwk, g.Co, R, dw);  // KRSC [Co, R] -> RSCK [R, Co]
    }
  }
  if (!dnn_dx) gemm_backward_dx(k, g, dy, w, dx);
  if (!dnn_dw) gemm_backward_dw(k, g, dy, x, dw);
  blas::column_sums(k, dy, pix, g.Co, db, 4);
}

}  // namespace irc
