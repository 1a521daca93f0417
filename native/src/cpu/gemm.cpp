// sgemm driver (gemm.h): Goto-style blocking. op(B) is packed once per call into NR-wide column panels
// (per KC block), shared by all threads; each thread owns a fixed rectangle of C (MR-row / NR-column units),
// packs its MC x KC blocks of op(A) into MR-row panels and runs the ISA micro-kernel over them.
// Sum order of every C element: KC blocks in order, k in order inside a block => independent of threads.
#include "gemm.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "../ops/op_api.h"

namespace irc {
namespace gemm_detail {
namespace {

// ---- portable scalar micro-kernel (4 x 16) -----------------------------------------------------------
template <int NRW>
void kern_scalar(int64_t kc, const float* a, const float* b, int64_t bs, float* c, int64_t ldc, float alpha,
                 float beta) {
  float acc[4][NRW] = {};
  for (int64_t k = 0; k < kc; ++k) {
    for (int i = 0; i < 4; ++i) {
      const float av = a[i];
      for (int j = 0; j < NRW; ++j) acc[i][j] += av * b[j];
    }
    a += 4;
    b += bs;
  }
  for (int i = 0; i < 4; ++i) {
    float* cr = c + i * ldc;
    for (int j = 0; j < NRW; ++j) {
      const float v = alpha * acc[i][j];
      cr[j] = beta == 0.f ? v : (beta == 1.f ? cr[j] + v : v + beta * cr[j]);
    }
  }
}

KernelSet pick_kernels() {
  const char* env = std::getenv("IRCONSTYLE_GEMM_ISA");
  const std::string force = env ? env : "";
  if (force != "scalar" && force != "avx2" && have_avx512()) return avx512_kernels();
  if (force != "scalar" && have_avx2()) return avx2_kernels();
  return KernelSet{"scalar", 4, 16, &kern_scalar<16>, &kern_scalar<8>};
}

const KernelSet& kernels() {
  static const KernelSet ks = pick_kernels();
  return ks;
}

constexpr int64_t KC = 256;
constexpr int64_t MC_ROWS = 144;           // rounded down to a multiple of MR (A block ~144 KiB in L2)
constexpr int64_t MAX_PACKED_B = 8 << 20;  // floats of packed op(B) per pass over N (32 MiB)

inline float a_at(bool tA, const float* A, int64_t lda, int64_t i, int64_t k) {
  return tA ? A[k * lda + i] : A[i * lda + k];
}

// Pack op(A)[i0 : i0+mc, p0 : p0+kc] into MR-row panels: dst[panel][k][r], rows past mc zero-filled.
void pack_a(bool tA, const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t p0, int64_t kc, int mr,
            float* dst) {
  for (int64_t ip = 0; ip < mc; ip += mr) {
    const int64_t rows = std::min<int64_t>(mr, mc - ip);
    if (!tA) {
      const float* src[16];
      for (int64_t r = 0; r < mr; ++r) src[r] = A + (i0 + ip + std::min<int64_t>(r, rows - 1)) * lda + p0;
      if (rows == mr) {
        for (int64_t k = 0; k < kc; ++k)
          for (int r = 0; r < mr; ++r) dst[k * mr + r] = src[r][k];
      } else {
        for (int64_t k = 0; k < kc; ++k)
          for (int r = 0; r < mr; ++r) dst[k * mr + r] = r < rows ? src[r][k] : 0.f;
      }
    } else {
      for (int64_t k = 0; k < kc; ++k) {
        const float* src = A + (p0 + k) * lda + i0 + ip;
        float* d = dst + k * mr;
        int64_t r = 0;
        for (; r < rows; ++r) d[r] = src[r];
        for (; r < mr; ++r) d[r] = 0.f;
      }
    }
    dst += kc * mr;
  }
}

// Pack op(B)[p0 : p0+kc, j0 : j0+nr] (one panel) into dst[k][c], columns past the edge zero-filled.
void pack_b_panel(bool tB, const float* B, int64_t ldb, int64_t p0, int64_t kc, int64_t j0, int64_t cols, int nr,
                  float* dst) {
  if (!tB) {
    for (int64_t k = 0; k < kc; ++k) {
      const float* src = B + (p0 + k) * ldb + j0;
      float* d = dst + k * nr;
      int64_t c = 0;
      for (; c < cols; ++c) d[c] = src[c];
      for (; c < nr; ++c) d[c] = 0.f;
    }
  } else {
    for (int64_t c = 0; c < cols; ++c) {
      const float* src = B + (j0 + c) * ldb + p0;
      for (int64_t k = 0; k < kc; ++k) dst[k * nr + c] = src[k];
    }
    for (int64_t c = cols; c < nr; ++c)
      for (int64_t k = 0; k < kc; ++k) dst[k * nr + c] = 0.f;
  }
}

struct Problem {
  bool tA, tB;
  int64_t M, N, K;
  float alpha, beta;
  const float* A;
  int64_t lda;
  const float* B;
  int64_t ldb;
  float* C;
  int64_t ldc;
};

// Offset of panel jp (NR columns) of KC block starting at p0, inside a packed op(B) covering npan panels.
inline int64_t b_offset(int64_t p0, int64_t kc, int64_t jp, int64_t npan, int nr) {
  return p0 * npan * nr + jp * kc * nr;
}

// Compute C rows [m0, m1) x panels [jp0, jp1) of the current N pass (columns j_base + ...).
void compute_block(const Problem& P, const KernelSet& ks, const float* pb, int64_t npan, int64_t j_base,
                   int64_t ncols, int64_t m0, int64_t m1, int64_t jp0, int64_t jp1) {
  const int mr = ks.mr, nr = ks.nr;
  const int64_t mc_max = std::max<int64_t>(mr, MC_ROWS / mr * mr);
  float* pa = scratch(static_cast<size_t>(mc_max * std::min(KC, P.K)), 3);
  float tmp[16 * 32];
  for (int64_t i0 = m0; i0 < m1; i0 += mc_max) {
    const int64_t mc = std::min(mc_max, m1 - i0);
    for (int64_t p0 = 0; p0 < P.K; p0 += KC) {
      const int64_t kc = std::min(KC, P.K - p0);
      const float beta = p0 == 0 ? P.beta : 1.f;
      pack_a(P.tA, P.A, P.lda, i0, mc, p0, kc, mr, pa);
      for (int64_t jp = jp0; jp < jp1; ++jp) {
        const float* b = pb + b_offset(p0, kc, jp, npan, nr);
        const int64_t j = jp * nr;
        const int64_t cols = std::min<int64_t>(nr, ncols - j);
        const bool half = ks.half && cols <= nr / 2;
        const int wcols = half ? nr / 2 : nr;
        for (int64_t ip = 0; ip < mc; ip += mr) {
          const int64_t rows = std::min<int64_t>(mr, mc - ip);
          const float* a = pa + ip * kc;
          float* c = P.C + (i0 + ip) * P.ldc + j_base + j;
          MicroKernel kern = half ? ks.half : ks.full;
          if (rows == mr && cols == wcols) {
            kern(kc, a, b, nr, c, P.ldc, P.alpha, beta);
          } else {
            kern(kc, a, b, nr, tmp, wcols, P.alpha, 0.f);
            for (int64_t r = 0; r < rows; ++r) {
              float* dst = c + r * P.ldc;
              const float* t = tmp + r * wcols;
              if (beta == 0.f) {
                for (int64_t cc = 0; cc < cols; ++cc) dst[cc] = t[cc];
              } else if (beta == 1.f) {
                for (int64_t cc = 0; cc < cols; ++cc) dst[cc] += t[cc];
              } else {
                for (int64_t cc = 0; cc < cols; ++cc) dst[cc] = t[cc] + beta * dst[cc];
              }
            }
          }
        }
      }
    }
  }
}

void scale_c(const Problem& P) {
  for (int64_t i = 0; i < P.M; ++i) {
    float* c = P.C + i * P.ldc;
    for (int64_t j = 0; j < P.N; ++j) c[j] = P.beta == 0.f ? 0.f : P.beta * c[j];
  }
}

// Small M, N (<= SPLIT_MAX_MN) with a long K (attention q k^T, weight gradients over pixels): split_chunks(K) fixed
// K chunks (KC multiples; the count depends on K only), each summed into its own M x N partial in sub-blocks of
// SPLIT_SUB (KC blocks in order, packed B of a sub-block stays in L2); the chunks run in parallel and the partials
// are added in chunk order: the same bits for any thread count, and when the whole problem runs on one thread.
// A . B^T (rows of both contiguous in k) skips packing: dot_kernel (gemm_dot.cpp) over each chunk.
constexpr int64_t SPLIT_MAX_MN = 128, SPLIT_MIN_K = 4096, SPLIT_SUB = 1024;
inline int64_t split_chunks(int64_t K) { return std::min<int64_t>(16, K / 2048); }

void run(const Problem& P);

void run_split_k(const Problem& P) {
  const int64_t nch = split_chunks(P.K), mn = P.M * P.N;
  std::vector<float> part(static_cast<size_t>(nch * mn));
  auto bound = [&](int64_t q) { return q == nch ? P.K : P.K * q / nch / KC * KC; };
  const DotKernel dot = !P.tA && P.tB ? dot_kernel(kernels().name) : nullptr;  // A . B^T: rows contiguous in k
  parallel_for(nch, 1, [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) {
      if (dot) {
        const int64_t s = bound(q);
        dot(P.M, P.N, bound(q + 1) - s, P.A + s, P.lda, P.B + s, P.ldb, part.data() + q * mn, P.N);
        continue;
      }
      for (int64_t s = bound(q); s < bound(q + 1); s += SPLIT_SUB) {
        Problem Q = P;
        Q.K = std::min(SPLIT_SUB, bound(q + 1) - s);
        Q.A = P.tA ? P.A + s * P.lda : P.A + s;
        Q.B = P.tB ? P.B + s : P.B + s * P.ldb;
        Q.alpha = 1.f;
        Q.beta = s == bound(q) ? 0.f : 1.f;
        Q.C = part.data() + q * mn;
        Q.ldc = P.N;
        run(Q);
      }
    }
  });
  for (int64_t i = 0; i < P.M; ++i) {
    float* c = P.C + i * P.ldc;
    for (int64_t j = 0; j < P.N; ++j) {
      float acc = 0.f;
      for (int64_t q = 0; q < nch; ++q) acc += part[q * mn + i * P.N + j];
      c[j] = P.beta == 0.f ? P.alpha * acc : P.alpha * acc + P.beta * c[j];
    }
  }
}

// One K block (K <= KC), at most MC_ROWS rows, many columns (attention A.V: M = K = c, N = pixels): packing all of
// op(B) up front would round-trip it through memory, so fixed groups of LOCAL_PANELS panels are packed into per-thread
// scratch right before use. Sums are the same single KC block as in the general path (identical results).
constexpr int64_t LOCAL_PANELS = 16;

void run_local_b(const Problem& P, const KernelSet& ks) {
  const int nr = ks.nr;
  const int64_t npan = (P.N + nr - 1) / nr, ngroups = (npan + LOCAL_PANELS - 1) / LOCAL_PANELS;
  parallel_for(ngroups, 1, [&](int64_t g0, int64_t g1) {
    float* pb = scratch(static_cast<size_t>(LOCAL_PANELS * nr * P.K), 2);
    for (int64_t gi = g0; gi < g1; ++gi) {
      const int64_t jbase = gi * LOCAL_PANELS * nr, ncols = std::min(LOCAL_PANELS * nr, P.N - jbase);
      const int64_t gp = (ncols + nr - 1) / nr;
      for (int64_t jp = 0; jp < gp; ++jp)
        pack_b_panel(P.tB, P.B, P.ldb, 0, P.K, jbase + jp * nr, std::min<int64_t>(nr, ncols - jp * nr), nr,
                     pb + b_offset(0, P.K, jp, gp, nr));
      compute_block(P, ks, pb, gp, jbase, ncols, 0, P.M, 0, gp);
    }
  });
}

void run(const Problem& P) {
  if (P.M <= 0 || P.N <= 0) return;
  if (P.K <= 0 || P.alpha == 0.f) {
    scale_c(P);
    return;
  }
  if (P.M <= SPLIT_MAX_MN && P.N <= SPLIT_MAX_MN && P.K >= SPLIT_MIN_K) {
    run_split_k(P);
    return;
  }
  const KernelSet& ks = kernels();
  const int mr = ks.mr, nr = ks.nr;
  if (P.K <= KC && P.M <= MC_ROWS / mr * mr && P.N >= 4 * LOCAL_PANELS * nr) {
    run_local_b(P, ks);
    return;
  }
  const double flops = 2.0 * P.M * P.N * P.K;
  const int nt = flops < 2e5 ? 1 : num_threads();
  // N passes: each packs op(B)[:, jbase : jbase + ncols] entirely.
  int64_t pass_cols = std::max<int64_t>(nr, MAX_PACKED_B / std::max<int64_t>(P.K, 1) / nr * nr);
  for (int64_t jbase = 0; jbase < P.N; jbase += pass_cols) {
    const int64_t ncols = std::min(pass_cols, P.N - jbase);
    const int64_t npan = (ncols + nr - 1) / nr;
    float* pb = scratch(static_cast<size_t>(npan * nr * P.K), 2);
    const int64_t nkb = (P.K + KC - 1) / KC;
    auto pack = [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t kb = t / npan, jp = t % npan;
        const int64_t p0 = kb * KC, kc = std::min(KC, P.K - p0);
        const int64_t j = jp * nr;
        pack_b_panel(P.tB, P.B, P.ldb, p0, kc, jbase + j, std::min<int64_t>(nr, ncols - j), nr,
                     pb + b_offset(p0, kc, jp, npan, nr));
      }
    };
    if (nt > 1 && P.K * ncols >= (1 << 16)) {
      parallel_for(nkb * npan, 1, pack);
    } else {
      pack(0, nkb * npan);
    }
    // Thread grid: tm x tn rectangles, splitting M first (MR units) and N (panels) only when M is short.
    const int64_t mu = (P.M + mr - 1) / mr;
    int tm = nt, tn = 1;
    for (int d = 1; d <= nt; ++d) {
      if (nt % d) continue;
      tn = d;
      tm = nt / d;
      if (mu / tm >= 8 || npan < 2 * d) break;
    }
    auto body = [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t im = t / tn, in = t % tn;
        const int64_t m0 = mu * im / tm * mr, m1 = std::min(P.M, mu * (im + 1) / tm * mr);
        const int64_t jp0 = npan * in / tn, jp1 = npan * (in + 1) / tn;
        if (m0 < m1 && jp0 < jp1) compute_block(P, ks, pb, npan, jbase, ncols, m0, m1, jp0, jp1);
      }
    };
    if (tm * tn > 1) {
      parallel_for(tm * tn, 1, body);
    } else {
      body(0, 1);
    }
  }
}

}  // namespace
}  // namespace gemm_detail

void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  gemm_detail::run(gemm_detail::Problem{transA, transB, M, N, K, alpha, beta, A, lda, B, ldb, C, ldc});
}

void sgemm_batched(int64_t batch, bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
                   const float* A, int64_t lda, int64_t strideA, const float* B, int64_t ldb, int64_t strideB,
                   float beta, float* C, int64_t ldc, int64_t strideC) {
  // Many small problems, or a batch the threads share evenly: one problem per task (serial sgemm inside, same
  // results as a parallel one); otherwise parallelise inside each.
  const double flops = 2.0 * M * N * K;
  auto one = [&](int64_t i) {
    sgemm(transA, transB, M, N, K, alpha, A + i * strideA, lda, B + i * strideB, ldb, beta, C + i * strideC, ldc);
  };
  const int64_t nt = num_threads();
  if (batch > 1 && (flops < 4e6 || batch % nt == 0 || batch >= 4 * nt)) {
    parallel_for(batch, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) one(i);
    });
  } else {
    for (int64_t i = 0; i < batch; ++i) one(i);
  }
}

const char* sgemm_isa() { return gemm_detail::kernels().name; }

double measure_fma_peak_gflops() {
  const bool v512 = gemm_detail::kernels().nr == 32;
  const bool v256 = std::string(gemm_detail::kernels().name) != "scalar";
  if (!v256) return 0.0;
  const int nt = num_threads();
  std::vector<double> done(nt, 0.0);
  const int64_t iters = 20'000'000;
  auto loop = [&](int64_t it) { return v512 ? gemm_detail::fma_loop_avx512(it) : gemm_detail::fma_loop_avx2(it); };
  loop(iters / 20);  // warm up clocks
  const auto t0 = std::chrono::steady_clock::now();
  parallel_for(nt, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) done[t] = loop(iters);
  });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double total = 0;
  for (double d : done) total += d;
  return total / s * 1e-9;
}

}  // namespace irc
