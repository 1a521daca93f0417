// CUDA kernels for add/sub/mul (numpy broadcasting), sum_to and scale (CPU twin: elementwise.cpp).
// Broadcasting is normalised as on the CPU (size-1 output dims dropped, neighbours that broadcast alike merged),
// then dispatched to:
//   same shape            y = a op b, float4 when the three pointers are 16-byte aligned (scalar tail)
//   channel broadcast     one side full, the other indexed (i / P) * C + i % C: covers a scalar [1] (P = 0, C = 1),
//                         trailing channels [C] (P = 0) and per-sample channels [N,1,1,C] (P = H*W*C);
//                         float4 when C % 4 == 0 (or scalar) and aligned
//   general               merged sizes / strides passed by value, index decomposition per element
// sum_to: two passes with a geometry fixed by the shapes (deterministic): pass 1 writes double partials of fixed
// row chunks (thread per output column when the last dim is kept, warp per output row otherwise), pass 2 sums
// each output's partials in a fixed warp-tree order. A single chunk writes y directly.
#include <cstdint>
#include <string>
#include <vector>

#include "../cuda/common.cuh"

namespace irc {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxDims = 8;

enum { kAdd = 0, kSub = 1, kMul = 2 };


template <int OP>
__device__ __forceinline__ float ap(float a, float b) {
  return OP == kAdd ? a + b : OP == kSub ? a - b : a * b;
}
template <int OP>
__device__ __forceinline__ float4 ap4(float4 a, float4 b) {
  return make_float4(ap<OP>(a.x, b.x), ap<OP>(a.y, b.y), ap<OP>(a.z, b.z), ap<OP>(a.w, b.w));
}

__device__ __forceinline__ int64_t gtid() { return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t gstride() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

// ---- same shape -------------------------------------------------------------------------------------------
template <int OP>
__global__ void k_same4(const float* __restrict a, const float* __restrict b, float* __restrict y, int64_t n) {
  const int64_t n4 = n >> 2, t = gtid(), st = gstride();
  const float4* a4 = reinterpret_cast<const float4*>(a);
  const float4* b4 = reinterpret_cast<const float4*>(b);
  float4* y4 = reinterpret_cast<float4*>(y);
  for (int64_t i = t; i < n4; i += st) y4[i] = ap4<OP>(a4[i], b4[i]);
  const int64_t j = (n4 << 2) + t;
  if (j < n) y[j] = ap<OP>(a[j], b[j]);
}

template <int OP>
__global__ void k_same(const float* __restrict a, const float* __restrict b, float* __restrict y, int64_t n) {
  for (int64_t i = gtid(); i < n; i += gstride()) y[i] = ap<OP>(a[i], b[i]);
}

// ---- channel broadcast ------------------------------------------------------------------------------------
// f: the full operand; q: the broadcast one, q index = (P ? (i / P) * C : 0) + i % C. BA: q is the left operand.
template <class I>
__device__ __forceinline__ I chan_index(I i, I C, I P) {
  return (P ? (i / P) * C : I(0)) + (C > 1 ? i % C : I(0));
}

template <int OP, bool BA, class I>
__global__ void k_chan(const float* __restrict f, const float* __restrict q, float* __restrict y, I n, I C, I P) {
  const I st = static_cast<I>(gridDim.x) * blockDim.x;
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += st) {
    const float qv = q[chan_index(i, C, P)];
    y[i] = BA ? ap<OP>(qv, f[i]) : ap<OP>(f[i], qv);
  }
}

// Requires f, y 16-byte aligned and either C == 1 (scalar per segment) or C % 4 == 0 with q aligned.
template <int OP, bool BA, class I>
__global__ void k_chan4(const float* __restrict f, const float* __restrict q, float* __restrict y, I n, I C, I P) {
  const I n4 = n >> 2, st = static_cast<I>(gridDim.x) * blockDim.x;
  const I t = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x;
  const float4* f4 = reinterpret_cast<const float4*>(f);
  float4* y4 = reinterpret_cast<float4*>(y);
  for (I v = t; v < n4; v += st) {
    const I ci = chan_index(v << 2, C, P);
    float4 qv;
    if (C == 1) {
      const float s = q[ci];
      qv = make_float4(s, s, s, s);
    } else {
      qv = *reinterpret_cast<const float4*>(q + ci);
    }
    const float4 fv = f4[v];
    y4[v] = BA ? ap4<OP>(qv, fv) : ap4<OP>(fv, qv);
  }
  const I j = (n4 << 2) + t;
  if (j < n) {
    const float qv = q[chan_index(j, C, P)];
    y[j] = BA ? ap<OP>(qv, f[j]) : ap<OP>(f[j], qv);
  }
}

// ---- general broadcast ------------------------------------------------------------------------------------
template <class I>
struct BGeom {
  int m;
  I sz[kMaxDims], sa[kMaxDims], sb[kMaxDims];
};

template <int OP, class I>
__global__ void k_general(const float* __restrict a, const float* __restrict b, float* __restrict y, I n, BGeom<I> g) {
  const I st = static_cast<I>(gridDim.x) * blockDim.x;
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += st) {
    I rem = i, oa = 0, ob = 0;
#pragma unroll
    for (int d = kMaxDims - 1; d >= 0; --d) {
      if (d < g.m) {
        const I q = rem / g.sz[d];
        const I k = rem - q * g.sz[d];
        oa += k * g.sa[d];
        ob += k * g.sb[d];
        rem = q;
      }
    }
    y[i] = ap<OP>(a[oa], b[ob]);
  }
}

template <int OP, bool BA, class I>
void launch_chan(cudaStream_t s, const float* f, const float* q, float* y, int64_t n, int64_t C, int64_t P) {
  const bool vec = aligned16(f) && aligned16(y) && (C == 1 || (C % 4 == 0 && aligned16(q)));
  if (vec)
    k_chan4<OP, BA, I><<<cu::blocks_for((n + 3) / 4, kThreads), kThreads, 0, s>>>(f, q, y, static_cast<I>(n),
                                                                                 static_cast<I>(C), static_cast<I>(P));
  else
    k_chan<OP, BA, I><<<cu::blocks_for(n, kThreads), kThreads, 0, s>>>(f, q, y, static_cast<I>(n), static_cast<I>(C),
                                                                      static_cast<I>(P));
}

template <int OP, class I>
void launch_general(cudaStream_t s, const float* a, const float* b, float* y, int64_t n, const std::vector<int64_t>& sz,
                    const std::vector<int64_t>& sa, const std::vector<int64_t>& sb) {
  BGeom<I> g{};
  g.m = static_cast<int>(sz.size());
  for (int d = 0; d < g.m; ++d) {
    g.sz[d] = static_cast<I>(sz[d]);
    g.sa[d] = static_cast<I>(sa[d]);
    g.sb[d] = static_cast<I>(sb[d]);
  }
  k_general<OP, I><<<cu::blocks_for(n, kThreads), kThreads, 0, s>>>(a, b, y, static_cast<I>(n), g);
}

template <int OP>
void binary(KernelCtx& c) {
  const TArg &A = c.in[0], &B = c.in[1], &Y = c.out[0];
  if (Y.n <= 0) return;
  cudaStream_t s = cu::stream(c);
  const Shape& ys = Y.shape;
  const size_t r = ys.size();
  std::vector<int64_t> sz;
  std::vector<int> va, vb;
  for (size_t i = 0; i < r; ++i) {
    if (ys[i] == 1) continue;
    const int64_t da = i < r - A.shape.size() ? 1 : A.shape[i - (r - A.shape.size())];
    const int64_t db = i < r - B.shape.size() ? 1 : B.shape[i - (r - B.shape.size())];
    const int fa = da != 1, fb = db != 1;
    if (!sz.empty() && va.back() == fa && vb.back() == fb) {
      sz.back() *= ys[i];
    } else {
      sz.push_back(ys[i]);
      va.push_back(fa);
      vb.push_back(fb);
    }
  }
  const int m = static_cast<int>(sz.size());
  const float *a = A.f(), *b = B.f();
  float* y = Y.f();
  const int64_t n = Y.n;
  const bool small = cu::index32(n, int64_t(1) << 31);
  // Pattern of the broadcast side q (the full side varies along every merged dim).
  auto full = [&](const std::vector<int>& v) {
    for (int x : v)
      if (!x) return false;
    return true;
  };
  const bool fullA = full(va), fullB = full(vb);
  if (fullA && fullB && m >= 1) {  // same shape (m == 1 after merging)
    if (aligned16(a) && aligned16(b) && aligned16(y))
      k_same4<OP><<<cu::blocks_for((n + 3) / 4, kThreads), kThreads, 0, s>>>(a, b, y, n);
    else
      k_same<OP><<<cu::blocks_for(n, kThreads), kThreads, 0, s>>>(a, b, y, n);
    cu::check_launch(c);
    return;
  }
  // Channel patterns of q: none varies (scalar) | [0,1] | [1,0,1] (over merged dims).
  int64_t C = -1, P = 0;
  bool qIsA = false;
  if (fullA || fullB || m == 0) {
    qIsA = !fullA;  // m == 0: both are single elements; treat b as the broadcast one
    const std::vector<int>& vq = qIsA ? va : vb;
    bool none = true;
    for (int x : vq) none = none && !x;
    if (none) {
      C = 1;
      P = 0;
    } else if (m == 2 && !vq[0] && vq[1]) {
      C = sz[1];
      P = 0;
    } else if (m == 3 && vq[0] && !vq[1] && vq[2]) {
      C = sz[2];
      P = sz[1] * sz[2];
    }
  }
  if (C > 0) {
    const float* f = qIsA ? b : a;
    const float* q = qIsA ? a : b;
    if (small) {
      if (qIsA) launch_chan<OP, true, uint32_t>(s, f, q, y, n, C, P);
      else launch_chan<OP, false, uint32_t>(s, f, q, y, n, C, P);
    } else {
      if (qIsA) launch_chan<OP, true, int64_t>(s, f, q, y, n, C, P);
      else launch_chan<OP, false, int64_t>(s, f, q, y, n, C, P);
    }
    cu::check_launch(c);
    return;
  }
  if (m > kMaxDims)
    op_fail("E_SHAPE", std::string(c.op) + ": the CUDA kernel supports at most " + std::to_string(kMaxDims) +
                           " non-mergeable broadcast dims, got " + std::to_string(m) + " for " + shape_str(A.shape) +
                           " and " + shape_str(B.shape));
  std::vector<int64_t> sa(m), sb(m);
  int64_t pa = 1, pb = 1;
  for (int d = m - 1; d >= 0; --d) {
    sa[d] = va[d] ? pa : 0;
    sb[d] = vb[d] ? pb : 0;
    if (va[d]) pa *= sz[d];
    if (vb[d]) pb *= sz[d];
  }
  if (small) launch_general<OP, uint32_t>(s, a, b, y, n, sz, sa, sb);
  else launch_general<OP, int64_t>(s, a, b, y, n, sz, sa, sb);
  cu::check_launch(c);
}

// ---- sum_to -----------------------------------------------------------------------------------------------
struct RedGeom {
  int nk, nr;                        // kept dims (output order) and reduced dims, x strides for each
  int64_t ksz[kMaxDims], kst[kMaxDims];
  int64_t rsz[kMaxDims], rst[kMaxDims];
  int64_t on, R, G, chunk;           // outputs, reduction length, chunks per output, chunk length
};

__device__ __forceinline__ int64_t kept_off(const RedGeom& g, int64_t o) {
  int64_t off = 0;
  for (int d = g.nk - 1; d >= 0; --d) {
    const int64_t q = o / g.ksz[d];
    off += (o - q * g.ksz[d]) * g.kst[d];
    o = q;
  }
  return off;
}
__device__ __forceinline__ int64_t red_off(const RedGeom& g, int64_t k) {
  if (g.nr == 1) return k * g.rst[0];
  int64_t off = 0;
  for (int d = g.nr - 1; d >= 0; --d) {
    const int64_t q = k / g.rsz[d];
    off += (k - q * g.rsz[d]) * g.rst[d];
    k = q;
  }
  return off;
}

__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Last dim kept: thread per (output o, chunk g); consecutive threads take consecutive o (contiguous in x).
__global__ void k_sum_cols(const float* __restrict x, double* __restrict part, float* __restrict y, RedGeom g) {
  const int64_t total = g.on * g.G;
  for (int64_t t = gtid(); t < total; t += gstride()) {
    const int64_t o = t % g.on, gi = t / g.on;
    const int64_t base = kept_off(g, o);
    const int64_t k0 = gi * g.chunk, k1 = k0 + g.chunk < g.R ? k0 + g.chunk : g.R;
    double s = 0;
    if (g.nr == 1) {
      const int64_t rs = g.rst[0];
      for (int64_t k = k0; k < k1; ++k) s += x[base + k * rs];
    } else {
      for (int64_t k = k0; k < k1; ++k) s += x[base + red_off(g, k)];
    }
    if (g.G == 1) y[o] = static_cast<float>(s);
    else part[o * g.G + gi] = s;
  }
}

// Last dim reduced (stride 1 in x): warp per (output o, chunk g), lanes stride over the chunk.
__global__ void k_sum_rows(const float* __restrict x, double* __restrict part, float* __restrict y, RedGeom g) {
  const int lane = threadIdx.x & 31;
  const int64_t wpb = blockDim.x >> 5;
  const int64_t total = g.on * g.G;
  for (int64_t w = static_cast<int64_t>(blockIdx.x) * wpb + (threadIdx.x >> 5); w < total;
       w += static_cast<int64_t>(gridDim.x) * wpb) {  // warp-uniform loop
    const int64_t o = w / g.G, gi = w % g.G;
    const int64_t base = kept_off(g, o);
    const int64_t k0 = gi * g.chunk, k1 = k0 + g.chunk < g.R ? k0 + g.chunk : g.R;
    double s = 0;
    if (g.nr == 1) {
      for (int64_t k = k0 + lane; k < k1; k += 32) s += x[base + k];
    } else {
      for (int64_t k = k0 + lane; k < k1; k += 32) s += x[base + red_off(g, k)];
    }
    s = warp_sum(s);
    if (lane == 0) {
      if (g.G == 1) y[o] = static_cast<float>(s);
      else part[o * g.G + gi] = s;
    }
  }
}

// Pass 2: warp per output, lanes over its G partials (contiguous), fixed shuffle tree.
__global__ void k_sum_partials(const double* __restrict part, float* __restrict y, int64_t on, int64_t G) {
  const int lane = threadIdx.x & 31;
  const int64_t wpb = blockDim.x >> 5;
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * wpb + (threadIdx.x >> 5); o < on;
       o += static_cast<int64_t>(gridDim.x) * wpb) {
    const double* p = part + o * G;
    double s = 0;
    for (int64_t g = lane; g < G; g += 32) s += p[g];
    s = warp_sum(s);
    if (lane == 0) y[o] = static_cast<float>(s);
  }
}

// ---- scale ------------------------------------------------------------------------------------------------
__global__ void k_scale4(const float* __restrict x, float* __restrict y, int64_t n, float al, float be) {
  const int64_t n4 = n >> 2, t = gtid(), st = gstride();
  const float4* x4 = reinterpret_cast<const float4*>(x);
  float4* y4 = reinterpret_cast<float4*>(y);
  for (int64_t i = t; i < n4; i += st) {
    const float4 v = x4[i];
    y4[i] = make_float4(al * v.x + be, al * v.y + be, al * v.z + be, al * v.w + be);
  }
  const int64_t j = (n4 << 2) + t;
  if (j < n) y[j] = al * x[j] + be;
}

__global__ void k_scale(const float* __restrict x, float* __restrict y, int64_t n, float al, float be) {
  for (int64_t i = gtid(); i < n; i += gstride()) y[i] = al * x[i] + be;
}

}  // namespace

void cuda_add(KernelCtx& c) { binary<kAdd>(c); }
void cuda_sub(KernelCtx& c) { binary<kSub>(c); }
void cuda_mul(KernelCtx& c) { binary<kMul>(c); }

void cuda_sum_to(KernelCtx& c) {
  const TArg &X = c.in[0], &Y = c.out[0];
  if (Y.n <= 0) return;
  cudaStream_t s = cu::stream(c);
  if (X.n == 0) {
    cu::check(cudaMemsetAsync(Y.ptr, 0, static_cast<size_t>(Y.n) * 4, s), c.op, "cudaMemsetAsync");
    return;
  }
  if (Y.n == X.n) {
    cu::check(cudaMemcpyAsync(Y.ptr, X.ptr, static_cast<size_t>(X.n) * 4, cudaMemcpyDeviceToDevice, s), c.op,
              "cudaMemcpyAsync");
    return;
  }
  const Shape &xs = X.shape, &ts = Y.shape;
  const size_t r = xs.size(), off = r - ts.size();
  std::vector<int64_t> sz;
  std::vector<int> kept;
  for (size_t i = 0; i < r; ++i) {
    if (xs[i] == 1) continue;
    const int k = i >= off && ts[i - off] == xs[i];
    if (!sz.empty() && kept.back() == k) {
      sz.back() *= xs[i];
    } else {
      sz.push_back(xs[i]);
      kept.push_back(k);
    }
  }
  const int m = static_cast<int>(sz.size());
  RedGeom g{};
  int64_t stride = 1;
  std::vector<int64_t> xst(m);
  for (int d = m - 1; d >= 0; --d) {
    xst[d] = stride;
    stride *= sz[d];
  }
  for (int d = 0; d < m; ++d) {
    if (kept[d] ? g.nk >= kMaxDims : g.nr >= kMaxDims)
      op_fail("E_SHAPE", "sum_to: the CUDA kernel supports at most " + std::to_string(kMaxDims) +
                             " kept and reduced dim groups, got x " + shape_str(xs) + " to " + shape_str(ts));
    if (kept[d]) {
      g.ksz[g.nk] = sz[d];
      g.kst[g.nk++] = xst[d];
    } else {
      g.rsz[g.nr] = sz[d];
      g.rst[g.nr++] = xst[d];
    }
  }
  g.on = Y.n;
  g.R = X.n / Y.n;
  const bool lastKept = kept[m - 1] != 0;  // X.n != Y.n, so at least one reduced dim exists
  auto cdiv = [](int64_t a, int64_t b) { return (a + b - 1) / b; };
  // Chunk counts depend only on the shapes: about 2^17 threads (columns) or 2^13 warps (rows) in pass 1.
  int64_t G = lastKept ? cdiv(int64_t(1) << 17, g.on) : cdiv(int64_t(1) << 13, g.on);
  const int64_t maxG = lastKept ? cdiv(g.R, 32) : cdiv(g.R, 1024);
  if (G > maxG) G = maxG;
  if (G < 1) G = 1;
  g.chunk = cdiv(g.R, G);
  g.G = cdiv(g.R, g.chunk);
  double* part = nullptr;
  if (g.G > 1) part = static_cast<double*>(cu::scratch(s, static_cast<size_t>(g.on * g.G) * sizeof(double), 0));
  float* y = Y.f();
  if (lastKept) {
    k_sum_cols<<<cu::blocks_for(g.on * g.G, kThreads), kThreads, 0, s>>>(X.f(), part, y, g);
  } else {
    k_sum_rows<<<cu::blocks_for(g.on * g.G * 32, kThreads), kThreads, 0, s>>>(X.f(), part, y, g);
  }
  cu::check_launch(c);
  if (g.G > 1) {
    k_sum_partials<<<cu::blocks_for(g.on * 32, kThreads), kThreads, 0, s>>>(part, y, g.on, g.G);
    cu::check_launch(c);
  }
}

void cuda_scale(KernelCtx& c) {
  const int64_t n = c.in[0].n;
  if (n <= 0) return;
  const float al = static_cast<float>(c.af(0)), be = static_cast<float>(c.af(1));
  const float* x = c.in[0].f();
  float* y = c.out[0].f();
  cudaStream_t s = cu::stream(c);
  if (aligned16(x) && aligned16(y))
    k_scale4<<<cu::blocks_for((n + 3) / 4, kThreads), kThreads, 0, s>>>(x, y, n, al, be);
  else
    k_scale<<<cu::blocks_for(n, kThreads), kThreads, 0, s>>>(x, y, n, al, be);
  cu::check_launch(c);
}

}  // namespace irc
