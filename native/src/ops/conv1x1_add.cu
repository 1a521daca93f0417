// CUDA conv1x1_add (the math and its backward are written out in conv1x1_add.cpp). Forward: the group weights
// W_g = diag(a_g) w diag(s) and the bias b s are formed by a tiny kernel into scratch (w and b themselves when there
// is no a or s); then one cuBLASLt GEMM, a strided batch over the sample groups (one group of all rows without a),
// reads the residual r as its C matrix (beta 1, D = y apart from it) with the bias epilogue: no pass over y besides
// the GEMM's. Without cuBLASLt:
// y = r + b s by a row kernel, then one strided-batched cuBLAS GEMM over the groups accumulating into y. Backward:
// G_g = x_g^T dy_g (one strided batch) and S = column sums of dy, then small kernels for ds, db, da and dw from
// them, and dx_g = dy_g W_g^T (one strided batch). TF32 as conv2d's (IRCONSTYLE_TF32). With a Linear's weight
// [Co, Ci] (no s, no a) the GEMMs take it transposed, in FP32 as PyTorch's matmul. IRCONSTYLE_PW_SIMT=1: the forward,
// and the backward's dx with dy's column sums, by the SIMT kernel (pw_simt.h) where it takes the shape.
#include <cstdint>

#include "../cuda/blas.cuh"
#include "../cuda/common.cuh"
#include "../cuda/warp.cuh"
#include "conv1x1_add.h"
#include "pw_simt.h"

namespace irc {
namespace {

// W[g, k, c] = w[k, c] a[g, k] s[c] (a, s may be null: factor 1) for g < groups.
__global__ void group_w_k(const float* __restrict__ w, const float* __restrict__ a, const float* __restrict__ s,
                          float* __restrict__ W, int64_t groups, int64_t Ci, int64_t Co) {
  IRC_GRID_LOOP(e, groups * Ci * Co) {
    const int64_t c = e % Co, kk = (e / Co) % Ci, g = e / (Ci * Co);
    float v = w[kk * Co + c];
    if (a) v *= a[g * Ci + kk];
    if (s) v *= s[c];
    W[e] = v;
  }
}

// bs[c] = b[c] s[c].
__global__ void bias_scale_k(const float* __restrict__ b, const float* __restrict__ s, float* __restrict__ bs,
                             int64_t Co) {
  IRC_GRID_LOOP(c, Co) bs[c] = b[c] * s[c];
}

// y[r, c] = res[r, c] + b[c] (b may be null: a copy).
__global__ void add_rows_k(const float* __restrict__ res, const float* __restrict__ b, float* __restrict__ y,
                           int64_t n, int64_t Co) {
  IRC_GRID_LOOP(e, n) y[e] = b ? res[e] + b[e % Co] : res[e];
}

// Per output channel c, from G [groups, Ci, Co] and S (the column sums of dy): ds[c] = Σ_g Σ_k a_gk w_kc G_gkc +
// b_c S_c in double (with s), db[c] = S_c s_c (S_c without s). A block takes 32 channels (threadIdx.x, coalesced
// reads of w and G) and splits the groups·Ci terms over kCgLanes rows of threads, added in row order at the end
// (deterministic): one thread per channel walking all of them took ~300 µs per call at NAFNet's shapes (run 9).
constexpr int kCgLanes = 32;
__global__ void __launch_bounds__(32 * kCgLanes)
channel_grads_k(const float* __restrict__ w, const float* __restrict__ G, const float* __restrict__ a,
                const float* __restrict__ b, const float* __restrict__ S, const float* __restrict__ s,
                float* __restrict__ db, float* __restrict__ ds, int64_t groups, int64_t Ci, int64_t Co) {
  __shared__ double part[kCgLanes][33];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c = blockIdx.x * 32 + tx;
  double t = 0.0;
  if (s && c < Co)
    for (int64_t g = 0; g < groups; ++g)
      for (int64_t kk = ty; kk < Ci; kk += kCgLanes) {
        const int64_t e = g * Ci + kk;
        t += (a ? static_cast<double>(a[e]) : 1.0) * w[kk * Co + c] * G[e * Co + c];
      }
  part[ty][tx] = t;
  __syncthreads();
  if (ty != 0 || c >= Co) return;
  if (s) {
    double u = static_cast<double>(b[c]) * S[c];
    for (int r = 0; r < kCgLanes; ++r) u += part[r][tx];
    ds[c] = static_cast<float>(u);
  }
  db[c] = s ? S[c] * s[c] : S[c];
}

void launch_channel_grads(cudaStream_t st, const float* w, const float* G, const float* a, const float* b,
                          const float* S, const float* s, float* db, float* ds, int64_t groups, int64_t Ci,
                          int64_t Co) {
  if (Co <= 0) return;
  channel_grads_k<<<static_cast<unsigned>((Co + 31) / 32), dim3(32, kCgLanes), 0, st>>>(w, G, a, b, S, s, db, ds,
                                                                                        groups, Ci, Co);
}

// da[g, k] = Σ_c w_kc s_c G_gkc (double): a warp per (g, k), its lanes over c (coalesced), summed by shuffles.
__global__ void input_scale_grads_k(const float* __restrict__ w, const float* __restrict__ G,
                                    const float* __restrict__ s, float* __restrict__ da, int64_t groups, int64_t Ci,
                                    int64_t Co) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = (static_cast<int64_t>(gridDim.x) * blockDim.x) >> 5;
  for (int64_t e = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) >> 5; e < groups * Ci; e += warps) {
    const int64_t kk = e % Ci;
    const float *Gr = G + e * Co, *wr = w + kk * Co;
    double t = 0.0;
    for (int64_t c = lane; c < Co; c += 32) t += static_cast<double>(wr[c]) * s[c] * Gr[c];
    t = warp_sum(t);
    if (lane == 0) da[e] = static_cast<float>(t);
  }
}

// dw[k, c] = Σ_g a_gk G_gkc s_c (double over the groups; a, s may be null).
__global__ void weight_grads_k(const float* __restrict__ G, const float* __restrict__ a, const float* __restrict__ s,
                               float* __restrict__ dw, int64_t groups, int64_t Ci, int64_t Co) {
  IRC_GRID_LOOP(e, Ci * Co) {
    const int64_t c = e % Co, kk = e / Co;
    double t = 0.0;
    for (int64_t g = 0; g < groups; ++g) t += (a ? static_cast<double>(a[g * Ci + kk]) : 1.0) * G[g * Ci * Co + e];
    dw[e] = static_cast<float>(s ? t * s[c] : t);
  }
}

}  // namespace

void cuda_conv1x1_add(KernelCtx& k) {
  const PwGeom g = pw_geom(k.in[0].shape, k.in[1].shape);
  const float *x = k.in[0].f(), *w = k.in[1].f(), *r = k.in[2].f();
  const PwOpts o = pw_opts(k, 3, k.in[0].shape);
  float* y = k.out[0].f();
  const int64_t n = g.rows * g.Co, wsz = g.Ci * g.Co, rg = o.group_rows(g.rows);
  if (n == 0) return;
  cudaStream_t st = cu::stream(k);
  if (pw_simt_requested()) {  // the input scale, the 1x1 (or Linear: FP32 either way), the bias, the output scale and
                              // the residual in one pass
    pwsimt::Args p = pw_simt_args(x, g.rows, g.Ci, w, g.Co, g.lin, nullptr, o.b);
    p.a = o.a;
    p.group_rows = o.a ? rg : 0;
    p.s = o.s;
    p.r = r;
    p.y = y;
    if (pw_simt_cuda(k, pwsimt::kAdd, p) > 0) return;
  }
  // W_g (or w) and b s (or b)
  const float *W = w, *bs = o.b;
  if ((o.a || o.s) && wsz > 0) {
    float* Ws = static_cast<float*>(cu::scratch(st, sizeof(float) * o.groups * wsz, 0));
    group_w_k<<<cu::blocks_for(o.groups * wsz), 256, 0, st>>>(w, o.a, o.s, Ws, o.groups, g.Ci, g.Co);
    W = Ws;
  }
  if (o.b && o.s) {
    float* b2 = static_cast<float*>(cu::scratch(st, sizeof(float) * g.Co, 1));
    bias_scale_k<<<cu::blocks_for(g.Co), 256, 0, st>>>(o.b, o.s, b2, g.Co);
    bs = b2;
  }
  cu::check_launch(k);
  // TF32 as conv2d's for the conv layout; a Linear's weight (w^T in the GEMM) stays FP32, as PyTorch's matmul
  const bool tf32 = !g.lin && cu::tf32_convolutions();
  const int64_t ldw = g.lin ? g.Ci : g.Co;
  // one cuBLASLt call over the groups (the residual read by the GEMM), else a row pass and a cuBLAS batch
  const int64_t sW = W == w ? 0 : wsz;
  if (g.Ci > 0 && rg > 0 &&
      blas::gemm_bias_add(k, tf32, false, g.lin, rg, g.Co, g.Ci, x, g.Ci, rg * g.Ci, W, ldw, sW, bs, r, y, g.Co,
                          rg * g.Co, o.groups))
    return;
  add_rows_k<<<cu::blocks_for(n), 256, 0, st>>>(r, bs, y, n, g.Co);
  cu::check_launch(k);
  if (g.Ci > 0 && rg > 0)
    blas::gemm_batched(k, blas::bind(k, tf32), false, g.lin, rg, g.Co, g.Ci, x, g.Ci, rg * g.Ci, W, ldw, sW, y, g.Co,
                       rg * g.Co, o.groups, 1.f);
}

void cuda_conv1x1_add_backward(KernelCtx& k) {
  const PwGeom g = pw_geom(k.in[1].shape, k.in[2].shape);
  const float *dy = k.in[0].f(), *x = k.in[1].f(), *w = k.in[2].f();
  const PwOpts o = pw_opts(k, 3, k.in[1].shape);
  const auto [dx, dw, db, ds, da] = pw_grads(k, o);
  cudaStream_t st = cu::stream(k);
  const int64_t wsz = g.Ci * g.Co, rg = o.group_rows(g.rows);
  // IRCONSTYLE_PW_SIMT=1: dx by the SIMT kernel (s on the way in, a on the way out), in place of the last GEMM(s),
  // and with colsum dy's column sums from the same pass (it runs first, then)
  float* const dx_out = dx;  // (a structured binding: not capturable in C++17)
  const auto simt_dx = [&](float* colsum) {
    if (!pw_simt_requested() || g.rows == 0) return false;
    pwsimt::Args p = pw_simt_dx_args(dy, g.rows, g.Ci, g.Co, w, g.lin, o.s, o.a, rg);
    p.y = dx_out;
    return pw_simt_run(k, pwsimt::kPlain, p, colsum);
  };
  if (g.lin) {  // w [Co, Ci] (no s, no a): dw = dy^T x, db = column sums of dy, dx = dy w; FP32-accurate
    const gpu::Cublas& cb = blas::bind(k, false);
    const bool sdx = simt_dx(o.b ? db : nullptr);  // dx (and db)
    if (wsz > 0) blas::gemm(k, cb, true, false, g.Co, g.Ci, g.rows, 1.f, dy, g.Co, x, g.Ci, 0.f, dw, g.Ci);
    if (o.b && g.Co > 0 && !sdx) {
      if (g.rows > 0) {
        blas::column_sums(k, dy, g.rows, g.Co, db, 4);
      } else {
        cu::check(cudaMemsetAsync(db, 0, sizeof(float) * g.Co, st), k.op, "memset db");
      }
    }
    if (g.rows > 0 && g.Ci > 0 && !sdx)
      blas::gemm(k, cb, false, false, g.rows, g.Ci, g.Co, 1.f, dy, g.Co, w, g.Ci, 0.f, dx, g.Ci);
    return;
  }
  const bool tf32 = cu::tf32_convolutions();
  const bool direct = !o.a && !o.s;
  const gpu::Cublas& cb = blas::bind(k, tf32);
  float* S = o.b ? static_cast<float*>(cu::scratch(st, sizeof(float) * g.Co, 2)) : nullptr;
  const bool sdx = rg > 0 && g.Ci > 0 && simt_dx(S);  // dx, and S with the bias
  // G_g = x_g^T dy_g (zeros without rows: K = 0); straight into dw when it is the answer (no a, no s)
  float* G = direct ? dw : static_cast<float*>(cu::scratch(st, sizeof(float) * o.groups * wsz, 1));
  if (wsz > 0)
    blas::gemm_batched(k, cb, true, false, g.Ci, g.Co, rg, x, g.Ci, rg * g.Ci, dy, g.Co, rg * g.Co, G, g.Co, wsz,
                       o.groups, 0.f);
  if (o.b) {
    if (!sdx && g.rows > 0) {  // (with sdx: S from the SIMT pass)
      blas::column_sums(k, dy, g.rows, g.Co, S, 4);
    } else if (!sdx) {
      cu::check(cudaMemsetAsync(S, 0, sizeof(float) * g.Co, st), k.op, "memset S");
    }
    if (g.Co > 0)
      launch_channel_grads(st, w, G, o.a, o.b, S, o.s, db, ds, o.groups, g.Ci, g.Co);
  }
  if (o.a && g.Ci > 0)
    input_scale_grads_k<<<cu::blocks_for(o.groups * g.Ci * 32), 256, 0, st>>>(w, G, o.s, da, o.groups, g.Ci, g.Co);
  if (!direct && wsz > 0) weight_grads_k<<<cu::blocks_for(wsz), 256, 0, st>>>(G, o.a, o.s, dw, o.groups, g.Ci, g.Co);
  cu::check_launch(k);
  if (rg == 0 || g.Ci == 0 || sdx) return;
  const float* W = w;
  if (!direct && wsz > 0) {
    float* Ws = static_cast<float*>(cu::scratch(st, sizeof(float) * o.groups * wsz, 0));
    group_w_k<<<cu::blocks_for(o.groups * wsz), 256, 0, st>>>(w, o.a, o.s, Ws, o.groups, g.Ci, g.Co);
    cu::check_launch(k);
    W = Ws;
  }
  blas::gemm_batched(k, cb, false, true, rg, g.Ci, g.Co, dy, g.Co, rg * g.Co, W, g.Co, W == w ? 0 : wsz, dx, g.Ci,
                     rg * g.Ci, o.groups, 0.f);
}

}  // namespace irc
