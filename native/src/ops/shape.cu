// CUDA shape ops on NHWC tensors (semantics: shuffle.cpp, concat.cpp, pad.cpp, resample.cpp).
//   pixel_shuffle / pixel_unshuffle   gathers, one thread per output element
//   concat / split                    one launch per 16 inputs (outputs), blockIdx.y picks one; 4-byte elements, any dtype;
//   gelu_split (+backward)            split's (concat's) jobs with GELU (times GELU' of x) on each element
//   pad2d (+backward), crop2d, subsample2d (+backward)   gathers; the pad2d backward sums the mirrored gradients in
//                                     the CPU's order (the element itself, then its mirrors)
//   resize_bilinear (+backward)       torch bilinear / antialias. The tap tables are computed on the device (in
//                                     double, as build_taps on the CPU) into scratch: per destination index a first
//                                     source, a count and dense weights. The backward is the exact transpose: each
//                                     dx element gathers over the outputs whose taps include it (found by binary
//                                     search, the tap windows being monotone), in increasing output order, vertical
//                                     sums inside horizontal ones as the CPU filter: deterministic, no atomics.
// Channel-contiguous kernels use float4 when C % 4 == 0 and the pointers are 16-byte aligned.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "../cuda/common.cuh"
#include "../cuda/gelu.cuh"

namespace irc {
namespace {

constexpr int kThreads = 256;




__device__ __forceinline__ float vadd(float a, float b) { return a + b; }
__device__ __forceinline__ float4 vadd(float4 a, float4 b) {
  return make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
}
// acc + w * x
__device__ __forceinline__ float vfma(float w, float x, float acc) { return acc + w * x; }
__device__ __forceinline__ float4 vfma(float w, float4 x, float4 acc) {
  return make_float4(acc.x + w * x.x, acc.y + w * x.y, acc.z + w * x.z, acc.w + w * x.w);
}

// ---- pixel shuffle ----------------------------------------------------------------------------------------
__global__ void pixel_shuffle_k(const float* __restrict__ x, float* __restrict__ y, int64_t total, int64_t H,
                                int64_t W, int64_t C, int64_t r) {
  const int64_t Ho = H * r, Wo = W * r, Ci = C * r * r;
  IRC_GRID_LOOP(e, total) {
    const int64_t c = e % C;
    int64_t t = e / C;
    const int64_t ow = t % Wo;
    t /= Wo;
    const int64_t oh = t % Ho, n = t / Ho;
    const int64_t h = oh / r, i = oh % r, w = ow / r, j = ow % r;
    y[e] = x[((n * H + h) * W + w) * Ci + c * r * r + i * r + j];
  }
}

// x[N,H,W,C] -> y[N,H/r,W/r,C*r*r]: y[n,h,w,c*r*r + i*r + j] = x[n, h*r + i, w*r + j, c]
__global__ void pixel_unshuffle_k(const float* __restrict__ x, float* __restrict__ y, int64_t total, int64_t H,
                                  int64_t W, int64_t C, int64_t r) {
  const int64_t Ho = H / r, Wo = W / r, rr = r * r, Co = C * rr;
  IRC_GRID_LOOP(e, total) {
    const int64_t co = e % Co;
    int64_t t = e / Co;
    const int64_t wo = t % Wo;
    t /= Wo;
    const int64_t ho = t % Ho, n = t / Ho;
    const int64_t c = co / rr, q = co % rr, i = q / r, j = q % r;
    y[e] = x[((n * H + ho * r + i) * W + wo * r + j) * C + c];
  }
}

// ---- concat / split ---------------------------------------------------------------------------------------
struct CopyJob {
  const uint32_t* src;  // already offset to the first column
  uint32_t* dst;        // already offset to the first column
  int64_t sld, dld, cols;
  int vec;  // 1: src, dst (and aux), their leading dims and cols all allow 16-byte moves
  const float* aux = nullptr;  // gelu_split_backward: x's columns of this job (row stride ald)
  int64_t ald = 0;
};
struct CopyJobs {
  CopyJob j[16];
  int64_t rows;
};

// One element of a job: MODE 0 a copy (any 4-byte dtype), 1 gelu(src), 2 src * gelu'(aux).
template <int MODE>
__device__ __forceinline__ uint32_t cell(uint32_t s, float a) {
  if (MODE == 0) return s;
  if (MODE == 1) return __float_as_uint(gelu_f(__uint_as_float(s)));
  float d;
  gelu_d_f(a, d);
  return __float_as_uint(__uint_as_float(s) * d);
}

// A job's elements e = r * cols + q (or its float4s over cols / 4), grid-stride; index type I: 32-bit when the job
// has < 2^31 of them (a 32-bit division by the row length per item, without the 64-bit one's range test).
template <int MODE, class I>
__device__ __forceinline__ void copy_cols(const CopyJob& jb, int64_t rows) {
  const I stride = static_cast<I>(gridDim.x) * blockDim.x, first = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (jb.vec) {
    const I c4 = static_cast<I>(jb.cols / 4), n = static_cast<I>(rows) * c4;
    for (I e = first; e < n; e += stride) {
      const I r = e / c4, q = e - r * c4;
      const uint4 v = *reinterpret_cast<const uint4*>(jb.src + r * jb.sld + 4 * q);
      float4 a = make_float4(0.f, 0.f, 0.f, 0.f);
      if (MODE == 2) a = *reinterpret_cast<const float4*>(jb.aux + r * jb.ald + 4 * q);
      *reinterpret_cast<uint4*>(jb.dst + r * jb.dld + 4 * q) =
          make_uint4(cell<MODE>(v.x, a.x), cell<MODE>(v.y, a.y), cell<MODE>(v.z, a.z), cell<MODE>(v.w, a.w));
    }
  } else {
    const I cols = static_cast<I>(jb.cols), n = static_cast<I>(rows) * cols;
    for (I e = first; e < n; e += stride) {
      const I r = e / cols, q = e - r * cols;
      jb.dst[r * jb.dld + q] = cell<MODE>(jb.src[r * jb.sld + q], MODE == 2 ? jb.aux[r * jb.ald + q] : 0.f);
    }
  }
}

template <int MODE>
__global__ void copy_cols_k(CopyJobs jobs) {
  const CopyJob jb = jobs.j[blockIdx.y];
  // with n < 2^31, e + stride stays below 2^32: blocks_for caps the grid at 65535 * 32 blocks of 256 threads
  if (jobs.rows * jb.cols < (int64_t(1) << 31))
    copy_cols<MODE, uint32_t>(jb, jobs.rows);
  else
    copy_cols<MODE, int64_t>(jb, jobs.rows);
}

// The grid: y over the jobs, x sized for the job with the most items (float4s where it moves 16 bytes at a time, else
// elements); the others' surplus blocks exit at once.
template <int MODE>
void launch_jobs(KernelCtx& c, CopyJobs& jobs, int k) {
  int64_t items = 0;
  for (int i = 0; i < k; ++i) {
    CopyJob& jb = jobs.j[i];
    jb.vec = (jb.cols % 4 == 0 && jb.sld % 4 == 0 && jb.dld % 4 == 0 && aligned16(jb.src) && aligned16(jb.dst) &&
              (MODE != 2 || (jb.ald % 4 == 0 && aligned16(jb.aux)))) ? 1 : 0;
    items = std::max(items, jb.vec ? jb.cols / 4 : jb.cols);
  }
  if (k == 0 || jobs.rows == 0 || items == 0) return;
  dim3 grid(cu::blocks_for(jobs.rows * items), static_cast<unsigned>(k));
  copy_cols_k<MODE><<<grid, kThreads, 0, cu::stream(c)>>>(jobs);
  cu::check_launch(c);
}

// ---- pad / crop / subsample -------------------------------------------------------------------------------
__device__ __forceinline__ int64_t pad_src(int64_t o, int64_t lo, int64_t n, bool reflect) {
  const int64_t i = o - lo;
  if (i >= 0 && i < n) return i;
  if (!reflect) return -1;
  return i < 0 ? -i : 2 * (n - 1) - i;
}

// padded positions whose gradient lands on index i, in the CPU's order (itself, then the mirrors)
__device__ __forceinline__ int pad_sources(int64_t i, int64_t lo, int64_t hi, int64_t n, bool reflect,
                                           int64_t out[3]) {
  int k = 0;
  out[k++] = i + lo;
  if (reflect) {
    if (i >= 1 && i <= lo) out[k++] = lo - i;
    if (i <= n - 2 && i >= n - 1 - hi) out[k++] = lo + 2 * (n - 1) - i;
  }
  return k;
}

struct Pads {
  int64_t t, b, l, r;
  int reflect;
};

// y[N,Ho,Wo,C] from x[N,H,W,C]; C in units of V
template <class V>
__global__ void pad_k(const V* __restrict__ x, V* __restrict__ y, int64_t total, int64_t H, int64_t W, int64_t C,
                      Pads p) {
  const int64_t Ho = H + p.t + p.b, Wo = W + p.l + p.r;
  IRC_GRID_LOOP(e, total) {
    const int64_t c = e % C;
    int64_t t = e / C;
    const int64_t ow = t % Wo;
    t /= Wo;
    const int64_t oh = t % Ho, n = t / Ho;
    const int64_t ih = pad_src(oh, p.t, H, p.reflect), iw = pad_src(ow, p.l, W, p.reflect);
    y[e] = (ih < 0 || iw < 0) ? vzero<V>() : x[((n * H + ih) * W + iw) * C + c];
  }
}

template <class V>
__global__ void pad_back_k(const V* __restrict__ dy, V* __restrict__ dx, int64_t total, int64_t H, int64_t W,
                           int64_t C, Pads p) {
  const int64_t Ho = H + p.t + p.b, Wo = W + p.l + p.r;
  IRC_GRID_LOOP(e, total) {
    const int64_t c = e % C;
    int64_t t = e / C;
    const int64_t w = t % W;
    t /= W;
    const int64_t h = t % H, n = t / H;
    int64_t rs[3], cs[3];
    const int nr = pad_sources(h, p.t, p.b, H, p.reflect, rs);
    const int nc = pad_sources(w, p.l, p.r, W, p.reflect, cs);
    V acc = dy[((n * Ho + rs[0]) * Wo + cs[0]) * C + c];
    for (int a = 0; a < nr; ++a)
      for (int k = 0; k < nc; ++k)
        if (a || k) acc = vadd(acc, dy[((n * Ho + rs[a]) * Wo + cs[k]) * C + c]);
    dx[e] = acc;
  }
}

template <class V>
__global__ void crop_k(const V* __restrict__ x, V* __restrict__ y, int64_t total, int64_t H, int64_t W, int64_t C,
                       int64_t top, int64_t left, int64_t h, int64_t w) {
  IRC_GRID_LOOP(e, total) {
    const int64_t c = e % C;
    int64_t t = e / C;
    const int64_t j = t % w;
    t /= w;
    const int64_t i = t % h, n = t / h;
    y[e] = x[((n * H + top + i) * W + left + j) * C + c];
  }
}

template <class V>
__global__ void subsample_k(const V* __restrict__ x, V* __restrict__ y, int64_t total, int64_t H, int64_t W,
                            int64_t C, int64_t r, int64_t off) {
  const int64_t Ho = H / r, Wo = W / r;
  IRC_GRID_LOOP(e, total) {
    const int64_t c = e % C;
    int64_t t = e / C;
    const int64_t j = t % Wo;
    t /= Wo;
    const int64_t i = t % Ho, n = t / Ho;
    y[e] = x[((n * H + r * i + off) * W + r * j + off) * C + c];
  }
}

template <class V>
__global__ void subsample_back_k(const V* __restrict__ dy, V* __restrict__ dx, int64_t total, int64_t H, int64_t W,
                                 int64_t C, int64_t r, int64_t off) {
  const int64_t Ho = H / r, Wo = W / r;
  IRC_GRID_LOOP(e, total) {
    const int64_t c = e % C;
    int64_t t = e / C;
    const int64_t w = t % W;
    t /= W;
    const int64_t h = t % H, n = t / H;
    const int64_t i = (h - off) / r, j = (w - off) / r;
    const bool hit = h >= off && (h - off) % r == 0 && i < Ho && w >= off && (w - off) % r == 0 && j < Wo;
    dx[e] = hit ? dy[((n * Ho + i) * Wo + j) * C + c] : vzero<V>();
  }
}

// ---- resize_bilinear --------------------------------------------------------------------------------------
// Tap table of one axis: for forward destination d (an output index), taps s[d] + t (t < k[d]) with weights
// w[d * maxT + t] (0 for a tap the CPU drops). For the backward, first[j], cnt[j]: the outputs whose taps hold
// input j.
struct Axis {
  int in, out, maxT, aa;
  double scale;
  int *s, *k, *first, *cnt;
  float* w;
};

__device__ void build_axis(const Axis& a, int d) {
  const double scale = a.scale;
  float* w = a.w + static_cast<int64_t>(d) * a.maxT;
  for (int t = 0; t < a.maxT; ++t) w[t] = 0.f;
  if (a.aa) {
    const double support = scale >= 1.0 ? scale : 1.0;
    const double inv = scale >= 1.0 ? __ddiv_rn(1.0, scale) : 1.0;
    const double centre = __dmul_rn(scale, __dadd_rn(static_cast<double>(d), 0.5));
    int64_t lo = static_cast<int64_t>(__dadd_rn(__dsub_rn(centre, support), 0.5));
    if (lo < 0) lo = 0;
    int64_t hi = static_cast<int64_t>(__dadd_rn(__dadd_rn(centre, support), 0.5));
    if (hi > a.in) hi = a.in;
    if (hi < lo) hi = lo;
    if (hi - lo > a.maxT) hi = lo + a.maxT;  // cannot happen (maxT >= ceil(2 support) + 1); kept as a guard
    double tot = 0.0;
    for (int64_t j = lo; j < hi; ++j)
      tot = __dadd_rn(tot, fmax(0.0, 1.0 - fabs(__dmul_rn(__dadd_rn(__dsub_rn(static_cast<double>(j), centre), 0.5), inv))));
    for (int64_t j = lo; j < hi; ++j) {
      const double v = fmax(0.0, 1.0 - fabs(__dmul_rn(__dadd_rn(__dsub_rn(static_cast<double>(j), centre), 0.5), inv)));
      w[j - lo] = v == 0.0 ? 0.f : static_cast<float>(__ddiv_rn(v, tot));
    }
    a.s[d] = static_cast<int>(lo);
    a.k[d] = static_cast<int>(hi - lo);
  } else {
    double src = __dsub_rn(__dmul_rn(scale, __dadd_rn(static_cast<double>(d), 0.5)), 0.5);
    if (src < 0) src = 0;
    int64_t i0 = static_cast<int64_t>(floor(src));
    if (i0 > a.in - 1) i0 = a.in - 1;
    const int64_t i1 = i0 + 1 < a.in - 1 ? i0 + 1 : a.in - 1;
    const double l = fmin(fmax(__dsub_rn(src, static_cast<double>(i0)), 0.0), 1.0);
    a.s[d] = static_cast<int>(i0);
    if (i1 == i0 || l == 0.0) {
      a.k[d] = 1;
      w[0] = 1.f;
    } else {
      a.k[d] = 2;
      w[0] = static_cast<float>(1.0 - l);
      w[1] = static_cast<float>(l);
    }
  }
}

__global__ void build_taps_k(Axis v, Axis h) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t < v.out) build_axis(v, t);
  else if (t < v.out + h.out) build_axis(h, t - v.out);
}

// Outputs whose windows [s, s + k) hold input j: the windows are monotone in the output index, so they form one
// run starting at the first output with s + k > j.
__device__ void range_axis(const Axis& a, int j) {
  int lo = 0, hi = a.out;  // first d with s[d] + k[d] > j
  while (lo < hi) {
    const int mid = (lo + hi) >> 1;
    if (a.s[mid] + a.k[mid] > j) hi = mid;
    else lo = mid + 1;
  }
  int d = lo;
  while (d < a.out && a.s[d] <= j) ++d;
  a.first[j] = lo;
  a.cnt[j] = d - lo;
}

__global__ void range_taps_k(Axis v, Axis h) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t < v.in) range_axis(v, t);
  else if (t < v.in + h.in) range_axis(h, t - v.in);
}

// Tap q of destination d: source index and weight. Forward: d is an output index. Backward (BWD): d is an input
// index, the "source" is an output index, and the weight is that output's weight for input d.
template <bool BWD>
__device__ __forceinline__ int ntaps(const Axis& a, int d) {
  return BWD ? a.cnt[d] : a.k[d];
}
template <bool BWD>
__device__ __forceinline__ float tap(const Axis& a, int d, int q, int& src) {
  if (!BWD) {
    src = a.s[d] + q;
    return a.w[static_cast<int64_t>(d) * a.maxT + q];
  }
  src = a.first[d] + q;
  return a.w[static_cast<int64_t>(src) * a.maxT + (d - a.s[src])];
}

// dst[N,dH,dW,C] from src[N,sH,sW,C]; C in units of V. Per destination: sum over horizontal taps of (weight *
// sum over vertical taps of weight * src), taps in increasing source order, zero-weight taps skipped.
template <bool BWD, class V>
__global__ void resize_k(const V* __restrict__ src, V* __restrict__ dst, int64_t total, int sH, int sW, int dH,
                         int dW, int64_t C, Axis av, Axis ah) {
  IRC_GRID_LOOP(e, total) {
    const int64_t c = e % C;
    int64_t t = e / C;
    const int dc = static_cast<int>(t % dW);
    t /= dW;
    const int dr = static_cast<int>(t % dH);
    const int64_t n = t / dH;
    const V* img = src + n * sH * static_cast<int64_t>(sW) * C + c;
    const int nh = ntaps<BWD>(ah, dc), nv = ntaps<BWD>(av, dr);
    V acc = vzero<V>();
    for (int qh = 0; qh < nh; ++qh) {
      int sc;
      const float wh = tap<BWD>(ah, dc, qh, sc);
      if (wh == 0.f) continue;
      V col = vzero<V>();
      for (int qv = 0; qv < nv; ++qv) {
        int sr;
        const float wv = tap<BWD>(av, dr, qv, sr);
        if (wv == 0.f) continue;
        col = vfma(wv, img[(static_cast<int64_t>(sr) * sW + sc) * C], col);
      }
      acc = vfma(wh, col, acc);
    }
    dst[e] = acc;
  }
}

int max_taps(int64_t in, int64_t out, bool aa) {
  if (!aa) return 2;
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  const double support = scale >= 1.0 ? scale : 1.0;
  return static_cast<int>(std::ceil(2.0 * support)) + 2;
}

// Builds both axes' tables in scratch (slot 0); with `ranges`, also the transposed ranges.
void build_tables(KernelCtx& c, int64_t H, int64_t W, int64_t oh, int64_t ow, bool aa, bool ranges, Axis& v,
                  Axis& h) {
  cudaStream_t s = cu::stream(c);
  v = Axis{static_cast<int>(H), static_cast<int>(oh), max_taps(H, oh, aa), aa ? 1 : 0,
           static_cast<double>(H) / static_cast<double>(oh), nullptr, nullptr, nullptr, nullptr, nullptr};
  h = Axis{static_cast<int>(W), static_cast<int>(ow), max_taps(W, ow, aa), aa ? 1 : 0,
           static_cast<double>(W) / static_cast<double>(ow), nullptr, nullptr, nullptr, nullptr, nullptr};
  const int64_t ints = 2 * (oh + ow) + (ranges ? 2 * (H + W) : 0);
  const int64_t floats = oh * v.maxT + ow * h.maxT;
  char* base = static_cast<char*>(cu::scratch(s, 4 * static_cast<size_t>(ints + floats), 0));
  int* ip = reinterpret_cast<int*>(base);
  v.s = ip;
  v.k = ip + oh;
  h.s = ip + 2 * oh;
  h.k = ip + 2 * oh + ow;
  ip += 2 * (oh + ow);
  if (ranges) {
    v.first = ip;
    v.cnt = ip + H;
    h.first = ip + 2 * H;
    h.cnt = ip + 2 * H + W;
  }
  float* fp = reinterpret_cast<float*>(base + 4 * ints);
  v.w = fp;
  h.w = fp + oh * v.maxT;
  build_taps_k<<<cu::blocks_for(oh + ow, 128), 128, 0, s>>>(v, h);
  if (ranges) range_taps_k<<<cu::blocks_for(H + W, 128), 128, 0, s>>>(v, h);
}

template <bool BWD>
void launch_resize(KernelCtx& c, const float* src, float* dst, int64_t N, int64_t sH, int64_t sW, int64_t dH,
                   int64_t dW, int64_t C, const Axis& v, const Axis& h) {
  cudaStream_t s = cu::stream(c);
  const int64_t total = N * dH * dW * C;
  if (C % 4 == 0 && aligned16(src) && aligned16(dst)) {
    resize_k<BWD, float4><<<cu::blocks_for(total / 4), kThreads, 0, s>>>(
        reinterpret_cast<const float4*>(src), reinterpret_cast<float4*>(dst), total / 4, static_cast<int>(sH),
        static_cast<int>(sW), static_cast<int>(dH), static_cast<int>(dW), C / 4, v, h);
  } else {
    resize_k<BWD, float><<<cu::blocks_for(total), kThreads, 0, s>>>(src, dst, total, static_cast<int>(sH),
                                                                     static_cast<int>(sW), static_cast<int>(dH),
                                                                     static_cast<int>(dW), C, v, h);
  }
}

}  // namespace

void cuda_pixel_shuffle(KernelCtx& c) {
  const int64_t total = c.out[0].n;
  if (total == 0) return;
  const Shape& xs = c.in[0].shape;
  const int64_t r = c.ai(0);
  pixel_shuffle_k<<<cu::blocks_for(total), kThreads, 0, cu::stream(c)>>>(c.in[0].f(), c.out[0].f(), total, xs[1],
                                                                         xs[2], xs[3] / (r * r), r);
  cu::check_launch(c);
}

void cuda_pixel_unshuffle(KernelCtx& c) {
  const int64_t total = c.out[0].n;
  if (total == 0) return;
  const Shape& xs = c.in[0].shape;
  pixel_unshuffle_k<<<cu::blocks_for(total), kThreads, 0, cu::stream(c)>>>(c.in[0].f(), c.out[0].f(), total, xs[1],
                                                                           xs[2], xs[3], c.ai(0));
  cu::check_launch(c);
}

// Jobs 0 .. k-1, 16 per launch (the CopyJobs capacity): job(i, off, ci) for job i of width ci = cols(i), `off` the
// running sum of the widths before it (the column of the concatenated side).
template <int MODE, class Cols, class Job>
void launch_by_16(KernelCtx& c, int64_t rows, int k, Cols cols, Job job) {
  int64_t off = 0;
  for (int i0 = 0; i0 < k; i0 += 16) {
    CopyJobs jobs{};
    jobs.rows = rows;
    const int kk = k - i0 < 16 ? k - i0 : 16;
    for (int i = 0; i < kk; ++i) {
      const int64_t ci = cols(i0 + i);
      jobs.j[i] = job(i0 + i, off, ci);
      off += ci;
    }
    launch_jobs<MODE>(c, jobs, kk);
  }
}

// concat (MODE 0) and gelu_split_backward (MODE 2: the inputs after x are the parts, x's columns the aux): each
// part into its columns of the output
template <int MODE>
void concat_jobs(KernelCtx& c, int first) {
  const TArg& Y = c.out[0];
  const int64_t Ct = Y.shape.back();
  if (Y.n == 0) return;
  launch_by_16<MODE>(c, Y.n / Ct, static_cast<int>(c.in.size()) - first, [&](int i) { return c.in[first + i].shape.back(); },
                     [&](int i, int64_t off, int64_t ci) {
                       return CopyJob{static_cast<const uint32_t*>(c.in[first + i].ptr), static_cast<uint32_t*>(Y.ptr) + off,
                                      ci, Ct, ci, 0, MODE == 2 ? c.in[0].f() + off : nullptr, MODE == 2 ? Ct : 0};
                     });
}

// split (MODE 0) and gelu_split (MODE 1): each output from its columns of the input
template <int MODE>
void split_jobs(KernelCtx& c) {
  const TArg& X = c.in[0];
  const int64_t Ct = X.shape.back();
  if (X.n == 0) return;
  launch_by_16<MODE>(c, X.n / Ct, static_cast<int>(c.out.size()), [&](int i) { return c.out[i].shape.back(); },
                     [&](int i, int64_t off, int64_t ci) {
                       return CopyJob{static_cast<const uint32_t*>(X.ptr) + off, static_cast<uint32_t*>(c.out[i].ptr), Ct,
                                      ci, ci, 0};
                     });
}

void cuda_concat(KernelCtx& c) { concat_jobs<0>(c, 0); }
void cuda_split(KernelCtx& c) { split_jobs<0>(c); }
void cuda_gelu_split(KernelCtx& c) { split_jobs<1>(c); }
void cuda_gelu_split_backward(KernelCtx& c) { concat_jobs<2>(c, 1); }

void cuda_pad2d(KernelCtx& c) {
  const int64_t total = c.out[0].n;
  if (total == 0) return;
  const Shape& s = c.in[0].shape;
  const Pads p{c.ai(0), c.ai(1), c.ai(2), c.ai(3), c.ai(4) == 1 ? 1 : 0};
  const float* x = c.in[0].f();
  float* y = c.out[0].f();
  const int64_t C = s[3];
  if (C % 4 == 0 && aligned16(x) && aligned16(y))
    pad_k<float4><<<cu::blocks_for(total / 4), kThreads, 0, cu::stream(c)>>>(
        reinterpret_cast<const float4*>(x), reinterpret_cast<float4*>(y), total / 4, s[1], s[2], C / 4, p);
  else
    pad_k<float><<<cu::blocks_for(total), kThreads, 0, cu::stream(c)>>>(x, y, total, s[1], s[2], C, p);
  cu::check_launch(c);
}

void cuda_pad2d_backward(KernelCtx& c) {
  const int64_t total = c.out[0].n;
  if (total == 0) return;
  const Shape& s = c.out[0].shape;
  const Pads p{c.ai(0), c.ai(1), c.ai(2), c.ai(3), c.ai(4) == 1 ? 1 : 0};
  const float* dy = c.in[0].f();
  float* dx = c.out[0].f();
  const int64_t C = s[3];
  if (C % 4 == 0 && aligned16(dy) && aligned16(dx))
    pad_back_k<float4><<<cu::blocks_for(total / 4), kThreads, 0, cu::stream(c)>>>(
        reinterpret_cast<const float4*>(dy), reinterpret_cast<float4*>(dx), total / 4, s[1], s[2], C / 4, p);
  else
    pad_back_k<float><<<cu::blocks_for(total), kThreads, 0, cu::stream(c)>>>(dy, dx, total, s[1], s[2], C, p);
  cu::check_launch(c);
}

void cuda_crop2d(KernelCtx& c) {
  const int64_t total = c.out[0].n;
  if (total == 0) return;
  const Shape& s = c.in[0].shape;
  const int64_t t = c.ai(0), l = c.ai(1), h = c.ai(2), w = c.ai(3), C = s[3];
  const float* x = c.in[0].f();
  float* y = c.out[0].f();
  if (C % 4 == 0 && aligned16(x) && aligned16(y))
    crop_k<float4><<<cu::blocks_for(total / 4), kThreads, 0, cu::stream(c)>>>(
        reinterpret_cast<const float4*>(x), reinterpret_cast<float4*>(y), total / 4, s[1], s[2], C / 4, t, l, h, w);
  else
    crop_k<float><<<cu::blocks_for(total), kThreads, 0, cu::stream(c)>>>(x, y, total, s[1], s[2], C, t, l, h, w);
  cu::check_launch(c);
}

void cuda_subsample2d(KernelCtx& c) {
  const int64_t total = c.out[0].n;
  if (total == 0) return;
  const Shape& s = c.in[0].shape;
  const int64_t r = c.ai(0), off = c.ai(1), C = s[3];
  const float* x = c.in[0].f();
  float* y = c.out[0].f();
  if (C % 4 == 0 && aligned16(x) && aligned16(y))
    subsample_k<float4><<<cu::blocks_for(total / 4), kThreads, 0, cu::stream(c)>>>(
        reinterpret_cast<const float4*>(x), reinterpret_cast<float4*>(y), total / 4, s[1], s[2], C / 4, r, off);
  else
    subsample_k<float><<<cu::blocks_for(total), kThreads, 0, cu::stream(c)>>>(x, y, total, s[1], s[2], C, r, off);
  cu::check_launch(c);
}

void cuda_subsample2d_backward(KernelCtx& c) {
  const int64_t total = c.out[0].n;
  if (total == 0) return;
  const Shape& s = c.in[1].shape;
  const int64_t r = c.ai(0), off = c.ai(1), C = s[3];
  const float* dy = c.in[0].f();
  float* dx = c.out[0].f();
  if (C % 4 == 0 && aligned16(dy) && aligned16(dx))
    subsample_back_k<float4><<<cu::blocks_for(total / 4), kThreads, 0, cu::stream(c)>>>(
        reinterpret_cast<const float4*>(dy), reinterpret_cast<float4*>(dx), total / 4, s[1], s[2], C / 4, r, off);
  else
    subsample_back_k<float><<<cu::blocks_for(total), kThreads, 0, cu::stream(c)>>>(dy, dx, total, s[1], s[2], C, r,
                                                                                   off);
  cu::check_launch(c);
}

void cuda_resize_bilinear(KernelCtx& c) {
  const Shape& s = c.in[0].shape;
  const int64_t N = s[0], H = s[1], W = s[2], C = s[3], oh = c.ai(0), ow = c.ai(1);
  if (c.out[0].n == 0) return;
  Axis v, h;
  build_tables(c, H, W, oh, ow, c.ai(2) == 1, false, v, h);
  launch_resize<false>(c, c.in[0].f(), c.out[0].f(), N, H, W, oh, ow, C, v, h);
  cu::check_launch(c);
}

void cuda_resize_bilinear_backward(KernelCtx& c) {
  const Shape& s = c.in[1].shape;
  const int64_t N = s[0], H = s[1], W = s[2], C = s[3], oh = c.ai(0), ow = c.ai(1);
  if (c.out[0].n == 0) return;
  Axis v, h;
  build_tables(c, H, W, oh, ow, c.ai(2) == 1, true, v, h);
  launch_resize<true>(c, c.in[0].f(), c.out[0].f(), N, oh, ow, H, W, C, v, h);
  cu::check_launch(c);
}

}  // namespace irc
