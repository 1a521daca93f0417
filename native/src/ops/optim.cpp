// Optimiser updates, in place.
//   adamw_step       (param, grad, m, v) same shape f32, attrs [lr, beta1, beta2, eps, wd, step]
//                    torch.optim.AdamW (decoupled weight decay, amsgrad off), in torch's operation order:
//                      p = p * (1 - lr wd)
//                      m = m + (1 - b1) (g - m)                 (lerp, = b1 m + (1 - b1) g)
//                      v = v b2 + (1 - b2) g g
//                      p = p + (-lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps),  bc_i = 1 - b_i^step
//                    scalar factors are computed in double (torch uses Python floats) and applied in float.
//                    Optional input factors f32 [3] = [1 - lr wd, -lr / bc1, sqrt(bc2)]: those three read from the
//                    tensor instead (the caller computes them the same way; they can change between graph replays).
//   momentum_update  (target, src), attrs [m] -> target = target m + src (1 - m)   (EMA of weights)
//   queue_swap       (queue [K,D], q [n,D], ptr i32 [1]) -> next = rows (p+n)%K .. +n, old = rows p .. p+n (copies),
//                    then rows p .. p+n <- q. The MoCo queue step with its pointer on the device (p = ptr[0]).
#include <cmath>
#include <cstring>

#include "op_api.h"

namespace irc {

void infer_adamw_step(InferCtx& c) {
  const char* names[] = {"param", "grad", "m", "v"};
  for (size_t i = 0; i < 4; ++i) {
    c.need_f32(i);
    if (c.in[i].shape != c.in[0].shape)
      op_fail("E_SHAPE", std::string("adamw_step: ") + names[i] + " must have the shape of param " +
                             shape_str(c.in[0].shape) + ", got " + shape_str(c.in[i].shape));
  }
  c.need_attrs(6);
  const double lr = c.af(0), b1 = c.af(1), b2 = c.af(2), eps = c.af(3), wd = c.af(4);
  const int64_t step = c.ai(5);
  if (!(lr >= 0)) op_fail("E_ATTR", "adamw_step: lr must be >= 0, got " + std::to_string(lr));
  if (!(b1 >= 0 && b1 < 1)) op_fail("E_ATTR", "adamw_step: beta1 must be in [0, 1), got " + std::to_string(b1));
  if (!(b2 >= 0 && b2 < 1)) op_fail("E_ATTR", "adamw_step: beta2 must be in [0, 1), got " + std::to_string(b2));
  if (!(eps >= 0)) op_fail("E_ATTR", "adamw_step: eps must be >= 0, got " + std::to_string(eps));
  if (!(wd >= 0)) op_fail("E_ATTR", "adamw_step: weight decay must be >= 0, got " + std::to_string(wd));
  if (step < 1) op_fail("E_ATTR", "adamw_step: step must be >= 1 (1 for the first update), got " + std::to_string(step));
  if (c.in.size() == 5) {
    c.need_f32(4);
    if (c.in[4].shape != Shape{3})
      op_fail("E_SHAPE", "adamw_step: factors must have shape [3] ([1 - lr wd, -lr / bc1, sqrt(bc2)]), got " +
                             shape_str(c.in[4].shape));
  }
}

void cpu_adamw_step(KernelCtx& c) {
  const double lr = c.af(0), b1 = c.af(1), b2 = c.af(2), eps = c.af(3), wd = c.af(4);
  const double step = static_cast<double>(c.ai(5));
  const double bc1 = 1.0 - std::pow(b1, step), bc2 = 1.0 - std::pow(b2, step);
  const float* f = c.in.size() == 5 ? c.in[4].f() : nullptr;
  const float decay = f ? f[0] : static_cast<float>(1.0 - lr * wd);
  const float w1 = static_cast<float>(1.0 - b1);
  const float fb2 = static_cast<float>(b2), w2 = static_cast<float>(1.0 - b2);
  const float neg_step = f ? f[1] : static_cast<float>(-(lr / bc1));
  const float bc2s = f ? f[2] : static_cast<float>(std::sqrt(bc2));
  const float feps = static_cast<float>(eps);
  float *p = c.in[0].f(), *m = c.in[2].f(), *v = c.in[3].f();
  const float* g = c.in[1].f();
  parallel_for(c.in[0].n, 1 << 15, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float gi = g[i];
      const float pi = p[i] * decay;
      const float mi = m[i] + w1 * (gi - m[i]);
      const float vi = v[i] * fb2 + w2 * gi * gi;
      const float den = std::sqrt(vi) / bc2s + feps;
      p[i] = pi + neg_step * mi / den;
      m[i] = mi;
      v[i] = vi;
    }
  });
}

void infer_momentum_update(InferCtx& c) {
  c.need_f32(0);
  c.need_f32(1);
  if (c.in[0].shape != c.in[1].shape)
    op_fail("E_SHAPE", "momentum_update: src must have the shape of target " + shape_str(c.in[0].shape) + ", got " +
                           shape_str(c.in[1].shape));
  c.need_attrs(1);
  const double m = c.af(0);
  if (!(m >= 0 && m <= 1)) op_fail("E_ATTR", "momentum_update: m must be in [0, 1], got " + std::to_string(m));
}

void cpu_momentum_update(KernelCtx& c) {
  const float m = static_cast<float>(c.af(0)), w = static_cast<float>(1.0 - c.af(0));
  float* t = c.in[0].f();
  const float* s = c.in[1].f();
  parallel_for(c.in[0].n, 1 << 15, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) t[i] = t[i] * m + s[i] * w;
  });
}

void infer_queue_swap(InferCtx& c) {
  c.need_f32(0);
  c.need_f32(1);
  c.need_rank(0, 2);
  c.need_rank(1, 2);
  const int64_t K = c.in[0].shape[0], D = c.in[0].shape[1], n = c.in[1].shape[0];
  if (c.in[1].shape[1] != D || n < 1 || K % n != 0)
    op_fail("E_SHAPE", "queue_swap: q must be [n, " + std::to_string(D) + "] with n >= 1 dividing the queue's " +
                           std::to_string(K) + " rows, got " + shape_str(c.in[1].shape));
  if (c.in[2].dtype != DType::i32 || c.in[2].shape != Shape{1})
    op_fail("E_DTYPE", "queue_swap: ptr must be an int32 tensor of shape [1], got " + shape_str(c.in[2].shape));
  c.out.push_back({{n, D}, DType::f32});
  c.out.push_back({{n, D}, DType::f32});
}

void cpu_queue_swap(KernelCtx& c) {
  const int64_t K = c.in[0].shape[0], D = c.in[0].shape[1], n = c.in[1].shape[0];
  const int64_t p = c.in[2].i()[0];
  if (p < 0 || p >= K || p % n != 0)
    op_fail("E_ARG", "queue_swap: the pointer must be a multiple of " + std::to_string(n) + " in [0, " +
                         std::to_string(K) + "), got " + std::to_string(p));
  float* q = c.in[0].f();
  const size_t row = static_cast<size_t>(D) * sizeof(float), block = row * static_cast<size_t>(n);
  std::memcpy(c.out[0].f(), q + ((p + n) % K) * D, block);
  std::memcpy(c.out[1].f(), q + p * D, block);
  std::memcpy(q + p * D, c.in[1].f(), block);
}

}  // namespace irc
