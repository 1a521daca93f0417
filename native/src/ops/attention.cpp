// Restormer's MDTA core as one op (ops.def), NHWC, on the CPU:
//   channel_attention           (qkv[N,H,W,3C], t[heads]), attrs [heads, eps] -> y[N,H,W,C], cos[N,heads,c,c],
//                               norms[N,2C]
//   channel_attention_backward  (dy, qkv, t, cos, norms), attrs [heads, eps] -> dqkv, dt
// For sample n and head h (c = C / heads channels; Q, K, V are the head's channels of the three thirds of qkv, each
// a [P, c] matrix over the P = H W pixels with rows 3C apart):
//   norms  nq_i = |Q[:, i]|, nk_j = |K[:, j]| (double sums, not clamped); q̂ = max(nq, eps), k̂ = max(nk, eps)
//   cos    = Q^T K / (q̂_i k̂_j)      A = softmax_j(t_h cos)      Y = V A^T (y's head channels)
// which is the official F.normalize(q) @ F.normalize(k)^T · t, softmax, @ v on [N, heads, c, P] tensors, without
// materialising the transposed copies. Backward (dY = dy's head channels):
//   dA = dY^T V    dV = dY A    dS = A ⊙ (dA - rowsum(dA ⊙ A))    dt_h = Σ dS ⊙ cos    dC = t_h dS
//   M = dC / (q̂_i k̂_j)    dQ = K M^T + α ⊙ Q    dK = Q M + β ⊙ K
//   α_i = -Σ_j dC_ij cos_ij / nq_i², β_j = -Σ_i dC_ij cos_ij / nk_j² (0 where the norm is below eps: the clamp
//   passes no gradient to it, as torch's clamp_min)
// The GEMMs run per head, batched over the samples (sgemm_batched with the pixel strides); row statistics are summed
// in double in a fixed order (deterministic for any thread count).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "../cpu/gemm.h"
#include "attention.h"
#include "op_api.h"

namespace irc {
namespace {

AttnGeom check_ca(InferCtx& c, size_t qi, size_t ti) {
  const std::string op = c.op;
  c.need_attrs(2);
  c.need_f32(qi);
  c.need_f32(ti);
  c.need_rank(qi, 4);
  const Shape& x = c.in[qi].shape;
  const int64_t heads = c.ai(0);
  if (x[3] % 3 != 0 || x[3] == 0)
    op_fail("E_SHAPE", op + ": qkv must have 3C channels (q, k, v), C >= 1, got " + shape_str(x));
  if (heads < 1 || (x[3] / 3) % heads != 0)
    op_fail("E_ATTR", op + ": heads must be >= 1 and divide C = " + std::to_string(x[3] / 3) + ", got " +
                          std::to_string(heads));
  if (!(c.af(1) >= 0.0)) op_fail("E_ATTR", op + ": eps must be >= 0, got " + std::to_string(c.af(1)));
  if (numel(c.in[ti].shape) != heads)
    op_fail("E_SHAPE", op + ": t must have " + std::to_string(heads) + " elements (one temperature per head), got " +
                           shape_str(c.in[ti].shape));
  return attn_geom(x, c.attrs);
}

// norms[n, a] = |qkv[n, :, a]| for a < 2C, in double over fixed row parts added in order.
void column_norms(const AttnGeom& g, const float* qkv, float* norms) {
  const int64_t C2 = 2 * g.C, C3 = 3 * g.C;
  const int64_t parts = std::clamp<int64_t>(g.P / 512, 1, 16), units = g.N * parts;
  std::vector<double> part(static_cast<size_t>(units * C2), 0.0);
  parallel_for(units, 1, [&](int64_t u0, int64_t u1) {
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t n = u / parts, q = u % parts;
      double* s = part.data() + u * C2;
      for (int64_t p = g.P * q / parts; p < g.P * (q + 1) / parts; ++p) {
        const float* r = qkv + (n * g.P + p) * C3;
        for (int64_t a = 0; a < C2; ++a) s[a] += static_cast<double>(r[a]) * r[a];
      }
    }
  });
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t a = 0; a < C2; ++a) {
      double t = 0.0;
      for (int64_t q = 0; q < parts; ++q) t += part[(n * parts + q) * C2 + a];
      norms[n * C2 + a] = static_cast<float>(std::sqrt(t));
    }
}

// The clamped norm max(n, eps) and the weight of the norm's own gradient, -1 / n² (0 when clamped).
inline double clamped(float n, double eps) { return std::max(static_cast<double>(n), eps); }
inline double norm_grad(float n, double eps) {
  return static_cast<double>(n) >= eps && n > 0.f ? -1.0 / (static_cast<double>(n) * n) : 0.0;
}

// A[j] = softmax_j(t cos[j]) over one row of c (max-subtracted, double sum).
void softmax_row(const float* cos, float t, int64_t c, float* A) {
  float m = t * cos[0];
  for (int64_t j = 1; j < c; ++j) m = std::max(m, t * cos[j]);
  double s = 0.0;
  for (int64_t j = 0; j < c; ++j) {
    A[j] = std::exp(t * cos[j] - m);
    s += A[j];
  }
  const float inv = static_cast<float>(1.0 / s);
  for (int64_t j = 0; j < c; ++j) A[j] *= inv;
}

// For each head h: C_h[n] = op(A_h[n]) op(B_h[n]) (+ C when beta 1), batched over the N samples.
struct Mat {
  const float* p;
  int64_t ld, sample;  // row stride, stride between samples
  int64_t head;        // offset between heads
};
void head_gemms(const AttnGeom& g, bool tA, bool tB, int64_t M, int64_t Nn, int64_t K, const Mat& A, const Mat& B, float beta,
                float* C, int64_t ldc, int64_t sC, int64_t hC) {
  for (int64_t h = 0; h < g.heads; ++h)
    sgemm_batched(g.N, tA, tB, M, Nn, K, 1.f, A.p + h * A.head, A.ld, A.sample, B.p + h * B.head, B.ld, B.sample, beta,
                  C + h * hC, ldc, sC);
}

}  // namespace

// ---- channel_attention ------------------------------------------------------------------------------------------
void infer_channel_attention(InferCtx& c) {
  c.op = "channel_attention";
  const AttnGeom g = check_ca(c, 0, 1);
  const Shape& x = c.in[0].shape;
  c.add_out({x[0], x[1], x[2], g.C});
  c.add_out({g.N, g.heads, g.c, g.c});
  c.add_out({g.N, 2 * g.C});
}

void cpu_channel_attention(KernelCtx& k) {
  const AttnGeom g = attn_geom(k.in[0].shape, k.attrs);
  const float *qkv = k.in[0].f(), *t = k.in[1].f();
  float *y = k.out[0].f(), *cos = k.out[1].f(), *norms = k.out[2].f();
  const int64_t C = g.C, c = g.c, hc2 = g.heads * c * c, rows = g.N * g.heads * c;
  if (g.N == 0) return;
  column_norms(g, qkv, norms);
  // cos <- Q^T K (raw), then normalised in place; A in a buffer
  std::vector<float> A(static_cast<size_t>(g.N * hc2));
  if (g.P > 0) {
    head_gemms(g, true, false, c, c, g.P, {qkv, 3 * C, g.P * 3 * C, c}, {qkv + C, 3 * C, g.P * 3 * C, c}, 0.f, cos, c,
               hc2, c * c);
  } else {
    std::fill(cos, cos + g.N * hc2, 0.f);
  }
  parallel_for(rows, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / (g.heads * c), h = (r / c) % g.heads, i = r % c;
      const double qi = clamped(norms[n * 2 * C + h * c + i], g.eps);
      const float* nk = norms + n * 2 * C + C + h * c;
      float* cr = cos + r * c;
      for (int64_t j = 0; j < c; ++j) cr[j] = static_cast<float>(cr[j] / (qi * clamped(nk[j], g.eps)));
      softmax_row(cr, t[h], c, A.data() + r * c);
    }
  });
  if (g.P > 0)
    head_gemms(g, false, true, g.P, c, c, {qkv + 2 * C, 3 * C, g.P * 3 * C, c}, {A.data(), c, hc2, c * c}, 0.f, y, C,
               g.P * C, c);
}

void infer_channel_attention_backward(InferCtx& c) {
  c.op = "channel_attention_backward";
  const AttnGeom g = check_ca(c, 1, 2);
  for (size_t i : {0, 3, 4}) c.need_f32(i);
  const Shape& x = c.in[1].shape;
  const Shape wants[3] = {{x[0], x[1], x[2], g.C}, {g.N, g.heads, g.c, g.c}, {g.N, 2 * g.C}};
  const char* names[3] = {"dy", "cos", "norms"};
  const size_t at[3] = {0, 3, 4};
  for (int q = 0; q < 3; ++q)
    if (c.in[at[q]].shape != wants[q])
      op_fail("E_SHAPE", std::string("channel_attention_backward: ") + names[q] + " must have shape " +
                             shape_str(wants[q]) + ", got " + shape_str(c.in[at[q]].shape));
  c.add_out(x);
  c.add_out(c.in[2].shape);
}

void cpu_channel_attention_backward(KernelCtx& k) {
  const AttnGeom g = attn_geom(k.in[1].shape, k.attrs);
  const float *dy = k.in[0].f(), *qkv = k.in[1].f(), *t = k.in[2].f(), *cos = k.in[3].f(), *norms = k.in[4].f();
  float *dqkv = k.out[0].f(), *dt = k.out[1].f();
  const int64_t C = g.C, c = g.c, hc2 = g.heads * c * c, rows = g.N * g.heads * c, C3 = 3 * C;
  std::fill(dt, dt + g.heads, 0.f);
  if (g.N == 0 || g.P == 0) return;
  std::vector<float> A(static_cast<size_t>(g.N * hc2)), dA(A.size()), M(A.size());
  std::vector<double> ab(static_cast<size_t>(g.N * 2 * C)), rowdt(static_cast<size_t>(rows));
  // dA = dY^T V
  head_gemms(g, true, false, c, c, g.P, {dy, C, g.P * C, c}, {qkv + 2 * C, C3, g.P * C3, c}, 0.f, dA.data(), c, hc2,
             c * c);
  // rows: A, dS, dC (into M for now), α, the rows' dt terms
  parallel_for(rows, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / (g.heads * c), h = (r / c) % g.heads, i = r % c;
      const float *cr = cos + r * c, *dr = dA.data() + r * c;
      float *ar = A.data() + r * c, *mr = M.data() + r * c;
      softmax_row(cr, t[h], c, ar);
      double s = 0.0;
      for (int64_t j = 0; j < c; ++j) s += static_cast<double>(dr[j]) * ar[j];
      const float sf = static_cast<float>(s);
      double sdt = 0.0, sa = 0.0;
      for (int64_t j = 0; j < c; ++j) {
        const float dS = ar[j] * (dr[j] - sf);
        sdt += static_cast<double>(dS) * cr[j];
        mr[j] = dS * t[h];
        sa += static_cast<double>(mr[j]) * cr[j];
      }
      rowdt[r] = sdt;
      ab[n * 2 * C + h * c + i] = sa * norm_grad(norms[n * 2 * C + h * c + i], g.eps);
    }
  });
  // β (column sums of dC ⊙ cos), then M = dC / (q̂ k̂)
  parallel_for(g.N * g.heads, 1, [&](int64_t u0, int64_t u1) {
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t n = u / g.heads, h = u % g.heads;
      const float* nq = norms + n * 2 * C + h * c;
      const float* nk = nq + C;
      float* mb = M.data() + u * c * c;
      const float* cb = cos + u * c * c;
      for (int64_t j = 0; j < c; ++j) {
        double s = 0.0;
        for (int64_t i = 0; i < c; ++i) s += static_cast<double>(mb[i * c + j]) * cb[i * c + j];
        ab[n * 2 * C + C + h * c + j] = s * norm_grad(nk[j], g.eps);
      }
      for (int64_t i = 0; i < c; ++i)
        for (int64_t j = 0; j < c; ++j)
          mb[i * c + j] = static_cast<float>(mb[i * c + j] / (clamped(nq[i], g.eps) * clamped(nk[j], g.eps)));
    }
  });
  for (int64_t h = 0; h < g.heads; ++h) {
    double s = 0.0;
    for (int64_t n = 0; n < g.N; ++n)
      for (int64_t i = 0; i < c; ++i) s += rowdt[(n * g.heads + h) * c + i];
    dt[h] = static_cast<float>(s);
  }
  // dQ = α Q, dK = β K, then += K M^T and Q M; dV = dY A
  parallel_for(g.N * g.P, 256, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const double* w = ab.data() + (p / g.P) * 2 * C;
      const float* x = qkv + p * C3;
      float* d = dqkv + p * C3;
      for (int64_t a = 0; a < 2 * C; ++a) d[a] = static_cast<float>(w[a]) * x[a];
    }
  });
  head_gemms(g, false, true, g.P, c, c, {qkv + C, C3, g.P * C3, c}, {M.data(), c, hc2, c * c}, 1.f, dqkv, C3, g.P * C3,
             c);
  head_gemms(g, false, false, g.P, c, c, {qkv, C3, g.P * C3, c}, {M.data(), c, hc2, c * c}, 1.f, dqkv + C, C3,
             g.P * C3, c);
  head_gemms(g, false, false, g.P, c, c, {dy, C, g.P * C, c}, {A.data(), c, hc2, c * c}, 0.f, dqkv + 2 * C, C3,
             g.P * C3, c);
}

}  // namespace irc
