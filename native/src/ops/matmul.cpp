// matmul (ops.def): a[..., M, K] . b[..., K, N] with optional transposes of the last two dims; batch dims of a and
// b equal, or b of rank 2 (shared). Forward only: its gradient is composed of matmuls in lib/ops/conv.ts.
#include "../cpu/gemm.h"
#include "op_api.h"

namespace irc {
namespace {

struct MM {
  bool tA, tB;
  int64_t batch, M, K, N;
};

MM dims(const Shape& a, const Shape& b, bool tA, bool tB) {
  const size_t ra = a.size(), rb = b.size();
  MM m{tA, tB, 1, tA ? a[ra - 1] : a[ra - 2], tA ? a[ra - 2] : a[ra - 1], tB ? b[rb - 2] : b[rb - 1]};
  for (size_t i = 0; i + 2 < ra; ++i) m.batch *= a[i];
  return m;
}

}  // namespace

void infer_matmul(InferCtx& c) {
  c.need_f32(0);
  c.need_f32(1);
  c.need_min_rank(0, 2);
  c.need_min_rank(1, 2);
  c.need_attrs(2);
  const int64_t ta = c.ai(0), tb = c.ai(1);
  if ((ta != 0 && ta != 1) || (tb != 0 && tb != 1))
    op_fail("E_ATTR", "matmul: transA and transB must be 0 or 1, got " + std::to_string(ta) + ", " + std::to_string(tb));
  const Shape &a = c.in[0].shape, &b = c.in[1].shape;
  const size_t ra = a.size(), rb = b.size();
  const std::string both = " (a shape " + shape_str(a) + " transA=" + std::to_string(ta) + ", b shape " +
                           shape_str(b) + " transB=" + std::to_string(tb) + ")";
  if (rb != 2 && (ra != rb || !std::equal(a.begin(), a.end() - 2, b.begin())))
    op_fail("E_SHAPE", "matmul: batch dims of a and b must be equal, or b must have rank 2" + both);
  const int64_t ka = ta ? a[ra - 2] : a[ra - 1], kb = tb ? b[rb - 1] : b[rb - 2];
  if (ka != kb)
    op_fail("E_SHAPE", "matmul: inner dims differ: a gives K = " + std::to_string(ka) + ", b gives K = " +
                           std::to_string(kb) + both);
  Shape y(a.begin(), a.end() - 2);
  y.push_back(ta ? a[ra - 1] : a[ra - 2]);
  y.push_back(tb ? b[rb - 2] : b[rb - 1]);
  c.add_out(y);
}

void cpu_matmul(KernelCtx& k) {
  const bool tA = k.ai(0) != 0, tB = k.ai(1) != 0;
  const MM m = dims(k.in[0].shape, k.in[1].shape, tA, tB);
  const bool shared_b = k.in[1].shape.size() == 2;
  const int64_t lda = tA ? m.M : m.K, ldb = tB ? m.K : m.N;
  const float *a = k.in[0].f(), *b = k.in[1].f();
  float* y = k.out[0].f();
  if (shared_b && !tA) {  // one tall GEMM over all batch rows
    sgemm(false, tB, m.batch * m.M, m.N, m.K, 1.f, a, lda, b, ldb, 0.f, y, m.N);
    return;
  }
  sgemm_batched(m.batch, tA, tB, m.M, m.N, m.K, 1.f, a, lda, m.M * m.K, b, ldb, shared_b ? 0 : m.K * m.N, 0.f, y,
                m.N, m.M * m.N);
}

}  // namespace irc
