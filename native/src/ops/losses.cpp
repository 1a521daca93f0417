// Losses (mean reduction, PyTorch semantics). Sums are taken in double over fixed blocks combined in order.
//   cross_entropy           (logits[N,K], labels i32[N]) -> [1] = mean_n (logsumexp(logits[n]) - logits[n, label])
//   cross_entropy_backward  (dy[1], logits, labels) -> dlogits = dy / N * (softmax(logits) - onehot(label))
//   l1_loss                 (a, b) -> [1] = mean |a - b|
//   l1_loss_backward        (dy[1], a, b) -> da = dy sign(a - b) / n (sign(0) = 0), db = -da
//   mse_loss                (a, b) -> [1] = mean (a - b)^2
//   mse_loss_backward       (dy[1], a, b) -> da = dy 2 (a - b) / n
// Labels are checked on the executor before any work: an out-of-range label fails the op with E_ARG.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "op_api.h"

namespace irc {
namespace {

constexpr int64_t kBlock = 1 << 16;

void need_ce(InferCtx& c, size_t li, size_t ti, const char* op) {
  c.need_f32(li);
  if (c.in[li].shape.size() != 2)
    op_fail("E_SHAPE", std::string(op) + ": logits must have shape [N, K], got " + shape_str(c.in[li].shape));
  if (c.in[ti].dtype != DType::i32)
    op_fail("E_DTYPE", std::string(op) + ": labels must be int32, got " + dtype_name(c.in[ti].dtype));
  const int64_t N = c.in[li].shape[0], K = c.in[li].shape[1];
  if (c.in[ti].shape != Shape{N})
    op_fail("E_SHAPE", std::string(op) + ": labels must have shape [" + std::to_string(N) + "] (rows of logits " +
                           shape_str(c.in[li].shape) + "), got " + shape_str(c.in[ti].shape));
  if (N < 1 || K < 1)
    op_fail("E_SHAPE", std::string(op) + ": logits must have at least one row and one class, got " +
                           shape_str(c.in[li].shape));
}

void need_dy1(InferCtx& c, const char* op) {
  c.need_f32(0);
  if (numel(c.in[0].shape) != 1)
    op_fail("E_SHAPE", std::string(op) + ": dy must have shape [1], got " + shape_str(c.in[0].shape));
}

void check_labels(const int32_t* lab, int64_t N, int64_t K, const char* op) {
  for (int64_t n = 0; n < N; ++n)
    if (lab[n] < 0 || lab[n] >= K)
      op_fail("E_ARG", std::string(op) + ": label " + std::to_string(lab[n]) + " at row " + std::to_string(n) +
                           " is out of range [0, " + std::to_string(K) + ")");
}

// max and log(sum exp(x - max)) of one row, in double
void row_lse(const float* x, int64_t K, double& mx, double& lse) {
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < K; ++j) m = std::max(m, x[j]);
  double s = 0;
  for (int64_t j = 0; j < K; ++j) s += std::exp(static_cast<double>(x[j]) - m);
  mx = m;
  lse = m + std::log(s);
}

// sum over i in [0, n) of f(i), in double, fixed blocks combined in order
template <class F>
double block_sum(int64_t n, F f) {
  const int64_t G = std::max<int64_t>(1, (n + kBlock - 1) / kBlock);
  std::vector<double> part(G, 0.0);
  parallel_for(G, 1, [&](int64_t gb, int64_t ge) {
    for (int64_t g = gb; g < ge; ++g) {
      double s[4] = {0, 0, 0, 0};
      const int64_t i0 = g * kBlock, i1 = std::min(n, i0 + kBlock);
      int64_t i = i0;
      for (; i + 4 <= i1; i += 4)
        for (int k = 0; k < 4; ++k) s[k] += f(i + k);
      for (; i < i1; ++i) s[0] += f(i);
      part[g] = (s[0] + s[1]) + (s[2] + s[3]);
    }
  });
  double t = 0;
  for (double p : part) t += p;
  return t;
}

void need_pair(InferCtx& c, size_t i, size_t j, const char* op) {
  c.need_f32(i);
  c.need_f32(j);
  if (c.in[i].shape != c.in[j].shape)
    op_fail("E_SHAPE", std::string(op) + ": b must have the shape of a " + shape_str(c.in[i].shape) + ", got " +
                           shape_str(c.in[j].shape));
}

}  // namespace

// ---- cross_entropy ----------------------------------------------------------------------------------------
void infer_cross_entropy(InferCtx& c) {
  need_ce(c, 0, 1, "cross_entropy");
  c.add_out({1});
}

void cpu_cross_entropy(KernelCtx& c) {
  const int64_t N = c.in[0].shape[0], K = c.in[0].shape[1];
  const float* x = c.in[0].f();
  const int32_t* lab = c.in[1].i();
  check_labels(lab, N, K, "cross_entropy");
  std::vector<double> per(N);
  parallel_for(N, std::max<int64_t>(1, 8192 / K), [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n) {
      double mx, lse;
      row_lse(x + n * K, K, mx, lse);
      per[n] = lse - x[n * K + lab[n]];
    }
  });
  double s = 0;
  for (double v : per) s += v;
  c.out[0].f()[0] = static_cast<float>(s / N);
}

void infer_cross_entropy_backward(InferCtx& c) {
  need_dy1(c, "cross_entropy_backward");
  need_ce(c, 1, 2, "cross_entropy_backward");
  c.add_out(c.in[1].shape);
}

void cpu_cross_entropy_backward(KernelCtx& c) {
  const int64_t N = c.in[1].shape[0], K = c.in[1].shape[1];
  const float* x = c.in[1].f();
  const int32_t* lab = c.in[2].i();
  check_labels(lab, N, K, "cross_entropy_backward");
  const double g = static_cast<double>(c.in[0].f()[0]) / N;
  float* dx = c.out[0].f();
  parallel_for(N, std::max<int64_t>(1, 8192 / K), [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n) {
      double mx, lse;
      const float* xr = x + n * K;
      row_lse(xr, K, mx, lse);
      float* o = dx + n * K;
      for (int64_t j = 0; j < K; ++j) o[j] = static_cast<float>(g * std::exp(static_cast<double>(xr[j]) - lse));
      o[lab[n]] = static_cast<float>(g * (std::exp(static_cast<double>(xr[lab[n]]) - lse) - 1.0));
    }
  });
}

// ---- l1 / mse ---------------------------------------------------------------------------------------------
void infer_l1_loss(InferCtx& c) {
  need_pair(c, 0, 1, "l1_loss");
  c.add_out({1});
}

void cpu_l1_loss(KernelCtx& c) {
  const float *a = c.in[0].f(), *b = c.in[1].f();
  const int64_t n = c.in[0].n;
  const double s = block_sum(n, [&](int64_t i) { return std::fabs(static_cast<double>(a[i]) - b[i]); });
  c.out[0].f()[0] = static_cast<float>(s / static_cast<double>(n));
}

void infer_l1_loss_backward(InferCtx& c) {
  need_dy1(c, "l1_loss_backward");
  need_pair(c, 1, 2, "l1_loss_backward");
  c.add_out(c.in[1].shape);
  c.add_out(c.in[1].shape);
}

void cpu_l1_loss_backward(KernelCtx& c) {
  const float *a = c.in[1].f(), *b = c.in[2].f();
  const int64_t n = c.in[1].n;
  const float g = static_cast<float>(static_cast<double>(c.in[0].f()[0]) / static_cast<double>(n));
  float *da = c.out[0].f(), *db = c.out[1].f();
  parallel_for(n, 1 << 15, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) {
      const float d = a[i] - b[i];
      const float v = d > 0.f ? g : d < 0.f ? -g : 0.f;
      da[i] = v;
      db[i] = -v;
    }
  });
}

void infer_mse_loss(InferCtx& c) {
  need_pair(c, 0, 1, "mse_loss");
  c.add_out({1});
}

void cpu_mse_loss(KernelCtx& c) {
  const float *a = c.in[0].f(), *b = c.in[1].f();
  const int64_t n = c.in[0].n;
  const double s = block_sum(n, [&](int64_t i) {
    const double d = static_cast<double>(a[i]) - b[i];
    return d * d;
  });
  c.out[0].f()[0] = static_cast<float>(s / static_cast<double>(n));
}

void infer_mse_loss_backward(InferCtx& c) {
  need_dy1(c, "mse_loss_backward");
  need_pair(c, 1, 2, "mse_loss_backward");
  c.add_out(c.in[1].shape);
}

void cpu_mse_loss_backward(KernelCtx& c) {
  const float *a = c.in[1].f(), *b = c.in[2].f();
  const int64_t n = c.in[1].n;
  const float g = static_cast<float>(2.0 * c.in[0].f()[0] / static_cast<double>(n));
  float* da = c.out[0].f();
  parallel_for(n, 1 << 15, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) da[i] = g * (a[i] - b[i]);
  });
}

}  // namespace irc
