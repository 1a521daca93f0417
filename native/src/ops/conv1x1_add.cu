// CUDA conv1x1_add (the math and its backward are written out in conv1x1_add.cpp). Forward: with a scale s, the
// weight columns and bias are scaled first (a tiny kernel into scratch); then one cuBLASLt GEMM reads the residual
// r as its C matrix (beta 1, D = y apart from it) with the bias epilogue: no pass over y besides the GEMM's. Without
// cuBLASLt: y = r + b s by a row kernel, then a cuBLAS GEMM accumulating into y. Backward: G = x^T dy into dw and
// S = column sums of dy (the plain conv's dW GEMM and bias sums), then per output channel ds = Σ_k w G + b S,
// db = S s and dw = G s (small kernels), and dx = dy (w s)^T. TF32 as conv2d's (IRCONSTYLE_TF32).
#include <cstdint>

#include "../cuda/blas.cuh"
#include "../cuda/common.cuh"
#include "conv1x1_add.h"

namespace irc {
namespace {

// ws[k, c] = w[k, c] s[c]; bs[c] = b[c] s[c] (b may be null: bs untouched).
__global__ void scale_wb_k(const float* __restrict__ w, const float* __restrict__ b, const float* __restrict__ s,
                           float* __restrict__ ws, float* __restrict__ bs, int64_t Ci, int64_t Co) {
  IRC_GRID_LOOP(e, Ci * Co) {
    const int64_t c = e % Co;
    ws[e] = w[e] * s[c];
    if (b && e < Co) bs[e] = b[e] * s[e];
  }
}

// y[r, c] = res[r, c] + b[c] (b may be null: a copy).
__global__ void add_rows_k(const float* __restrict__ res, const float* __restrict__ b, float* __restrict__ y,
                           int64_t n, int64_t Co) {
  IRC_GRID_LOOP(e, n) y[e] = b ? res[e] + b[e % Co] : res[e];
}

// Per output channel c (G = the unscaled dw, S = column sums of dy): ds[c] = Σ_k w[k, c] G[k, c] + b[c] S[c] in
// double (with s), db[c] = S[c] s[c] (with b; S[c] without s).
__global__ void channel_grads_k(const float* __restrict__ w, const float* __restrict__ G, const float* __restrict__ b,
                                const float* __restrict__ S, const float* __restrict__ s, float* __restrict__ db,
                                float* __restrict__ ds, int64_t Ci, int64_t Co) {
  IRC_GRID_LOOP(c, Co) {
    if (s) {
      double t = static_cast<double>(b[c]) * S[c];
      for (int64_t k = 0; k < Ci; ++k) t += static_cast<double>(w[k * Co + c]) * G[k * Co + c];
      ds[c] = static_cast<float>(t);
    }
    db[c] = s ? S[c] * s[c] : S[c];
  }
}

// G[k, c] *= s[c].
__global__ void scale_cols_k(float* __restrict__ G, const float* __restrict__ s, int64_t Ci, int64_t Co) {
  IRC_GRID_LOOP(e, Ci * Co) G[e] *= s[e % Co];
}

}  // namespace

void cuda_conv1x1_add(KernelCtx& k) {
  const PwGeom g = pw_geom(k.in[0].shape, k.in[1].shape);
  const float *x = k.in[0].f(), *w = k.in[1].f(), *r = k.in[2].f();
  const float* b = k.in.size() > 3 ? k.in[3].f() : nullptr;
  const float* s = k.in.size() > 4 ? k.in[4].f() : nullptr;
  float* y = k.out[0].f();
  const int64_t n = g.rows * g.Co;
  if (n == 0) return;
  cudaStream_t st = cu::stream(k);
  const float *wv = w, *bv = b;
  if (s && g.Ci * g.Co > 0) {
    float* ws = static_cast<float*>(cu::scratch(st, sizeof(float) * (g.Ci * g.Co + g.Co), 0));
    scale_wb_k<<<cu::blocks_for(g.Ci * g.Co), 256, 0, st>>>(w, b, s, ws, ws + g.Ci * g.Co, g.Ci, g.Co);
    cu::check_launch(k);
    wv = ws;
    bv = b ? ws + g.Ci * g.Co : nullptr;
  } else if (s && b) {  // Ci == 0: y = r + b s
    float* bs = static_cast<float*>(cu::scratch(st, sizeof(float) * g.Co, 0));
    scale_wb_k<<<1, 256, 0, st>>>(b, b, s, bs, bs, 1, g.Co);  // bs = b s (the weight part rewrites the same values)
    cu::check_launch(k);
    bv = bs;
  }
  const bool tf32 = cu::tf32_convolutions();
  if (g.Ci > 0 &&
      blas::gemm_bias_add(k, tf32, false, false, g.rows, g.Co, g.Ci, x, g.Ci, wv, g.Co, bv, r, y, g.Co))
    return;
  add_rows_k<<<cu::blocks_for(n), 256, 0, st>>>(r, bv, y, n, g.Co);
  cu::check_launch(k);
  if (g.Ci > 0) blas::gemm(k, blas::bind(k, tf32), false, false, g.rows, g.Co, g.Ci, 1.f, x, g.Ci, wv, g.Co, 1.f, y, g.Co);
}

void cuda_conv1x1_add_backward(KernelCtx& k) {
  const PwGeom g = pw_geom(k.in[1].shape, k.in[2].shape);
  const float *dy = k.in[0].f(), *x = k.in[1].f(), *w = k.in[2].f();
  const float* b = k.in.size() > 3 ? k.in[3].f() : nullptr;
  const float* s = k.in.size() > 4 ? k.in[4].f() : nullptr;
  float *dx = k.out[0].f(), *dw = k.out[1].f();
  float* db = b ? k.out[2].f() : nullptr;
  float* ds = s ? k.out[3].f() : nullptr;
  cudaStream_t st = cu::stream(k);
  const int64_t wsz = g.Ci * g.Co;
  const bool tf32 = cu::tf32_convolutions();
  const gpu::Cublas& cb = blas::bind(k, tf32);
  // G = x^T dy into dw (zeros without rows); S = column sums of dy (zeros without rows)
  if (wsz > 0) blas::gemm(k, cb, true, false, g.Ci, g.Co, g.rows, 1.f, x, g.Ci, dy, g.Co, 0.f, dw, g.Co);
  if (b) {
    float* S = static_cast<float*>(cu::scratch(st, sizeof(float) * g.Co, 2));
    if (g.rows > 0) {
      blas::column_sums(k, dy, g.rows, g.Co, S, 4);
    } else {
      cu::check(cudaMemsetAsync(S, 0, sizeof(float) * g.Co, st), k.op, "memset S");
    }
    if (g.Co > 0) channel_grads_k<<<cu::blocks_for(g.Co), 256, 0, st>>>(w, dw, b, S, s, db, ds, g.Ci, g.Co);
    cu::check_launch(k);
  }
  const float* wv = w;
  if (s && wsz > 0) {
    scale_cols_k<<<cu::blocks_for(wsz), 256, 0, st>>>(dw, s, g.Ci, g.Co);
    float* ws = static_cast<float*>(cu::scratch(st, sizeof(float) * wsz, 0));
    scale_wb_k<<<cu::blocks_for(wsz), 256, 0, st>>>(w, nullptr, s, ws, nullptr, g.Ci, g.Co);
    cu::check_launch(k);
    wv = ws;
  }
  if (g.rows > 0 && g.Ci > 0)
    blas::gemm(k, cb, false, true, g.rows, g.Ci, g.Co, 1.f, dy, g.Co, wv, g.Co, 0.f, dx, g.Ci);
}

}  // namespace irc
