// CPU stand-in for cuDNN 9's legacy convolution API (built as libcudnn.so.9): the entry points
// native/src/cuda/gpu_libs.cpp looks up. 4-D float tensors (NCHW or NHWC), filters (KCRS or KRSC), padding, stride,
// dilation, groups, both modes; forward, backward data and backward filter computed on the host in stream order.
// Used only by the CUDA emulator build (native/emu) and its tests; never shipped.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

#include "../../src/cuda/gpu_libs.h"
#include "stand_in.h"

namespace irc_stand_in {
namespace {

namespace g = irc::gpu;

enum : int {  // cudnnStatus_t (cuDNN 9 numbering)
  kOk = 0,
  kNotInitialized = 1001,
  kBadParam = 2000,
  kNotSupported = 3000,
  kInternalError = 4000,
  kAllocFailed = 4001,
  kExecutionFailed = 5000
};
enum : int { kNonDeterministic = 0, kDeterministic = 1 };  // cudnnDeterminism_t

struct Handle {
  void* stream = nullptr;
};

struct TensorDesc {
  bool set = false;
  int format = 0, n = 0, c = 0, h = 0, w = 0;
};

struct FilterDesc {
  bool set = false;
  int format = 0, k = 0, c = 0, h = 0, w = 0;
};

struct ConvDesc {
  bool set = false;
  int ph = 0, pw = 0, u = 1, v = 1, dh = 1, dw = 1, mode = g::CUDNN_CROSS_CORRELATION;
  int groups = 1, math = g::CUDNN_DEFAULT_MATH;
};

// Element strides (n, c, h, w) of a tensor, (k, c, r, s) of a filter: NHWC / KRSC keep the channel innermost.
void tensor_strides(int format, int c, int h, int w, int64_t (&st)[4]) {
  if (format == g::CUDNN_TENSOR_NHWC) {
    st[0] = int64_t(h) * w * c, st[1] = 1, st[2] = int64_t(w) * c, st[3] = c;
  } else {
    st[0] = int64_t(c) * h * w, st[1] = int64_t(h) * w, st[2] = w, st[3] = 1;
  }
}

// One convolution's geometry, validated, with every descriptor's contents copied.
struct Geo {
  int N, C, H, W, K, R, S, G, Cg, Kg, Ho, Wo, ph, pw, u, v, dh, dw;
  bool flip;  // CUDNN_CONVOLUTION: tap (r, s) uses w[R-1-r][S-1-s]
  int64_t xs[4], ys[4], ws[4];
  int J() const { return Cg * R * S; }  // taps of one output (patch length)
  int KB() const { return (Kg + 7) / 8; }  // blocks of 8 output channels per group
};

int geometry(const void* xd, const void* wd, const void* cd, const void* yd, Geo& o) {
  const auto* x = static_cast<const TensorDesc*>(xd);
  const auto* y = static_cast<const TensorDesc*>(yd);
  const auto* w = static_cast<const FilterDesc*>(wd);
  const auto* c = static_cast<const ConvDesc*>(cd);
  if (!x || !y || !w || !c || !x->set || !y->set || !w->set || !c->set) return kBadParam;
  const int G = c->groups;
  if (x->c != w->c * G || w->k % G != 0 || y->n != x->n || y->c != w->k) return kBadParam;
  const int64_t span_h = int64_t(x->h) + 2 * c->ph - (int64_t(w->h - 1) * c->dh + 1);
  const int64_t span_w = int64_t(x->w) + 2 * c->pw - (int64_t(w->w - 1) * c->dw + 1);
  if (span_h < 0 || span_w < 0) return kBadParam;
  if (y->h != span_h / c->u + 1 || y->w != span_w / c->v + 1) return kBadParam;
  o.N = x->n, o.C = x->c, o.H = x->h, o.W = x->w, o.K = w->k, o.R = w->h, o.S = w->w, o.G = G;
  o.Cg = w->c, o.Kg = w->k / G, o.Ho = y->h, o.Wo = y->w;
  o.ph = c->ph, o.pw = c->pw, o.u = c->u, o.v = c->v, o.dh = c->dh, o.dw = c->dw;
  o.flip = c->mode == g::CUDNN_CONVOLUTION;
  tensor_strides(x->format, x->c, x->h, x->w, o.xs);
  tensor_strides(y->format, y->c, y->h, y->w, o.ys);
  tensor_strides(w->format, w->c, w->h, w->w, o.ws);  // (k, c, r, s) like (n, c, h, w)
  return kOk;
}

// The algorithms offered, in cuDNN's enum numbering: the GEMM-type ones (no FFT / Winograd transforms), all computed
// the same way here. Backward algorithm 0 is reported non-deterministic as in cuDNN (it sums with atomics there).
struct Algo {
  int algo, determinism;
};
const Algo kFwd[] = {{0, kDeterministic}, {1, kDeterministic}};
const Algo kBwdData[] = {{0, kNonDeterministic}, {1, kDeterministic}};
const Algo kBwdFilter[] = {{0, kNonDeterministic}, {1, kDeterministic}, {3, kDeterministic}};

template <size_t N>
bool offered(const Algo (&list)[N], int algo) {
  for (const Algo& a : list)
    if (a.algo == algo) return true;
  return false;
}

template <size_t N>
int report(const Algo (&list)[N], const void* cd, int requested, int* returned, g::CudnnAlgoPerf* perf, bool timed) {
  if (requested < 1 || !returned || !perf) return kBadParam;
  int n = 0;
  for (const Algo& a : list) {
    if (n == requested) break;
    g::CudnnAlgoPerf& p = perf[n];
    std::memset(&p, 0, sizeof(p));
    p.algo = a.algo;
    p.status = kOk;
    p.time = timed ? 0.01f * float(n + 1) : -1.f;  // find: ranked fastest first; heuristics: not timed
    p.memory = 0;
    p.determinism = a.determinism;
    p.mathType = static_cast<const ConvDesc*>(cd)->math;
    ++n;
  }
  *returned = n;
  return kOk;
}

// ---- the computation -------------------------------------------------------------------------------------------
// Taps j = (c*R + r)*S + s of group gr's patch; output channels in blocks of 8 (kb), 0 past Kg. Weights are packed
// in double, already flipped for CUDNN_CONVOLUTION, 8 channels of one tap contiguous: the inner loops run over
// those 8 as 4 pairs (GCC / Clang vector types: two doubles per SSE2 register, independent sums).
using V2 = double __attribute__((vector_size(16)));
enum Dir { kForward, kBackwardData, kBackwardFilter };

struct ConvTask {
  Geo g;
  Dir dir;
  double alpha = 1, beta = 0;
  const float* in0 = nullptr;  // x (forward, filter) or w (data)
  const float* in1 = nullptr;  // w (forward) or dy (data, filter)
  float* out = nullptr;
  std::vector<V2> wp;          // packed weights (forward, data) or the filter-gradient sums (filter), 4 per tap
  std::vector<double> col;     // one patch of x, or of dx sums
  std::vector<V2> dyv;         // dy of one pixel and group, KB*8 channels
  std::vector<double> dxacc;   // dx sums of one image [C][H][W] (data)

  void reserve() {
    const size_t J = size_t(g.J()), KB = size_t(g.KB());
    wp.resize(size_t(g.G) * KB * J * 4);
    col.resize(J);
    dyv.resize(KB * 4);
    if (dir == kBackwardData) dxacc.resize(size_t(g.C) * g.H * g.W);
  }
  // The 4 pairs of (group gr, block kb, tap j): kb-major for forward and filter (a block's taps contiguous),
  // tap-major for backward data (a tap's blocks contiguous).
  size_t at(int gr, int kb, int j) const {
    const size_t J = size_t(g.J()), KB = size_t(g.KB());
    return 4 * (dir == kBackwardData ? (size_t(gr) * J + j) * KB + kb : (size_t(gr) * KB + kb) * J + j);
  }
  int64_t w_index(int k, int c, int r, int s) const {  // filter element of tap (r, s) (flipped in that mode)
    if (g.flip) r = g.R - 1 - r, s = g.S - 1 - s;
    return k * g.ws[0] + c * g.ws[1] + r * g.ws[2] + s * g.ws[3];
  }
  void pack_weights(const float* w) {
    for (int gr = 0; gr < g.G; ++gr)
      for (int kb = 0; kb < g.KB(); ++kb)
        for (int c = 0; c < g.Cg; ++c)
          for (int r = 0; r < g.R; ++r)
            for (int s = 0; s < g.S; ++s) {
              V2* dst = &wp[at(gr, kb, (c * g.R + r) * g.S + s)];
              for (int t = 0; t < 8; ++t) {
                const int k = kb * 8 + t;
                dst[t / 2][t % 2] = k < g.Kg ? w[w_index(gr * g.Kg + k, c, r, s)] : 0.0;
              }
            }
  }
  // col = x's patch of output pixel (n, oh, ow) for group gr (0 outside the image).
  void gather_x(const float* x, int n, int gr, int oh, int ow) {
    for (int c = 0; c < g.Cg; ++c) {
      const float* xc = x + n * g.xs[0] + int64_t(gr * g.Cg + c) * g.xs[1];
      for (int r = 0; r < g.R; ++r) {
        double* dst = &col[size_t((c * g.R + r) * g.S)];
        const int ih = oh * g.u - g.ph + r * g.dh;
        if (ih < 0 || ih >= g.H) {
          for (int s = 0; s < g.S; ++s) dst[s] = 0.0;
          continue;
        }
        for (int s = 0; s < g.S; ++s) {
          const int iw = ow * g.v - g.pw + s * g.dw;
          dst[s] = iw >= 0 && iw < g.W ? xc[ih * g.xs[2] + iw * g.xs[3]] : 0.0;
        }
      }
    }
  }
  // dyv = dy(n, gr*Kg + k, oh, ow) for k < Kg, 0 up to KB*8.
  void gather_dy(const float* dy, int n, int gr, int oh, int ow) {
    const float* p = dy + n * g.ys[0] + oh * g.ys[2] + ow * g.ys[3];
    for (int k = 0; k < g.KB() * 8; ++k)
      dyv[size_t(k / 2)][k % 2] = k < g.Kg ? p[int64_t(gr * g.Kg + k) * g.ys[1]] : 0.0;
  }
  float blend(double sum, float old) const {  // alpha sum + beta old; beta 0 leaves old unread
    const double v = alpha * sum;
    return static_cast<float>(beta == 0.0 ? v : v + beta * static_cast<double>(old));
  }

  void forward() {
    const float *x = in0, *w = in1;
    float* y = out;
    pack_weights(w);
    for (int n = 0; n < g.N; ++n)
      for (int gr = 0; gr < g.G; ++gr)
        for (int oh = 0; oh < g.Ho; ++oh)
          for (int ow = 0; ow < g.Wo; ++ow) {
            gather_x(x, n, gr, oh, ow);
            float* yp = y + n * g.ys[0] + oh * g.ys[2] + ow * g.ys[3];
            for (int kb = 0; kb < g.KB(); ++kb) {
              const V2* wb = &wp[at(gr, kb, 0)];
              V2 acc0 = {0, 0}, acc1 = acc0, acc2 = acc0, acc3 = acc0;
              for (int j = 0; j < g.J(); ++j, wb += 4) {
                const V2 a = {col[size_t(j)], col[size_t(j)]};
                acc0 += a * wb[0], acc1 += a * wb[1], acc2 += a * wb[2], acc3 += a * wb[3];
              }
              const double sums[8] = {acc0[0], acc0[1], acc1[0], acc1[1], acc2[0], acc2[1], acc3[0], acc3[1]};
              for (int t = 0; t < 8 && kb * 8 + t < g.Kg; ++t) {
                float& dst = yp[int64_t(gr * g.Kg + kb * 8 + t) * g.ys[1]];
                dst = blend(sums[t], dst);
              }
            }
          }
  }

  // dx(n, c, ih, iw) = sum over the outputs that tap it of dy * w: per output pixel, the patch of sums
  // col[j] = sum_k dy[k] w[k][j] is scattered back onto the image (sums kept in double per image).
  void backward_data() {
    const float *w = in0, *dy = in1;
    float* dx = out;
    pack_weights(w);
    for (int n = 0; n < g.N; ++n) {
      std::fill(dxacc.begin(), dxacc.end(), 0.0);
      for (int gr = 0; gr < g.G; ++gr)
        for (int oh = 0; oh < g.Ho; ++oh)
          for (int ow = 0; ow < g.Wo; ++ow) {
            gather_dy(dy, n, gr, oh, ow);
            for (int j = 0; j < g.J(); ++j) {
              const V2* wb = &wp[at(gr, 0, j)];
              const V2* d = dyv.data();
              V2 acc0 = {0, 0}, acc1 = acc0, acc2 = acc0, acc3 = acc0;
              for (int kb = 0; kb < g.KB(); ++kb, wb += 4, d += 4)
                acc0 += d[0] * wb[0], acc1 += d[1] * wb[1], acc2 += d[2] * wb[2], acc3 += d[3] * wb[3];
              const V2 s = (acc0 + acc1) + (acc2 + acc3);
              col[size_t(j)] = s[0] + s[1];
            }
            for (int c = 0; c < g.Cg; ++c)
              for (int r = 0; r < g.R; ++r) {
                const int ih = oh * g.u - g.ph + r * g.dh;
                if (ih < 0 || ih >= g.H) continue;
                double* row = &dxacc[(size_t(gr * g.Cg + c) * g.H + ih) * g.W];
                for (int s = 0; s < g.S; ++s) {
                  const int iw = ow * g.v - g.pw + s * g.dw;
                  if (iw >= 0 && iw < g.W) row[iw] += col[size_t((c * g.R + r) * g.S + s)];
                }
              }
          }
      for (int c = 0; c < g.C; ++c)
        for (int ih = 0; ih < g.H; ++ih)
          for (int iw = 0; iw < g.W; ++iw) {
            float& dst = dx[n * g.xs[0] + c * g.xs[1] + ih * g.xs[2] + iw * g.xs[3]];
            dst = blend(dxacc[(size_t(c) * g.H + ih) * g.W + iw], dst);
          }
    }
  }

  // dw[k][j] = sum over the output pixels of dy[k] * (x's patch)[j], summed in wp's layout, unflipped at the end.
  void backward_filter() {
    const float *x = in0, *dy = in1;
    float* dw = out;
    std::fill(wp.begin(), wp.end(), V2{0, 0});
    for (int n = 0; n < g.N; ++n)
      for (int gr = 0; gr < g.G; ++gr)
        for (int oh = 0; oh < g.Ho; ++oh)
          for (int ow = 0; ow < g.Wo; ++ow) {
            gather_x(x, n, gr, oh, ow);
            gather_dy(dy, n, gr, oh, ow);
            for (int kb = 0; kb < g.KB(); ++kb) {
              V2* wb = &wp[at(gr, kb, 0)];
              const V2 d0 = dyv[size_t(kb) * 4], d1 = dyv[size_t(kb) * 4 + 1];
              const V2 d2 = dyv[size_t(kb) * 4 + 2], d3 = dyv[size_t(kb) * 4 + 3];
              for (int j = 0; j < g.J(); ++j, wb += 4) {
                const V2 a = {col[size_t(j)], col[size_t(j)]};
                wb[0] += a * d0, wb[1] += a * d1, wb[2] += a * d2, wb[3] += a * d3;
              }
            }
          }
    for (int gr = 0; gr < g.G; ++gr)
      for (int kb = 0; kb < g.KB(); ++kb)
        for (int t = 0; t < 8 && kb * 8 + t < g.Kg; ++t)
          for (int c = 0; c < g.Cg; ++c)
            for (int r = 0; r < g.R; ++r)
              for (int s = 0; s < g.S; ++s) {
                const V2* sums = &wp[at(gr, kb, (c * g.R + r) * g.S + s)];
                float& dst = dw[w_index(gr * g.Kg + kb * 8 + t, c, r, s)];
                dst = blend(sums[t / 2][t % 2], dst);
              }
  }

  void run() {
    if (dir == kForward) forward();
    else if (dir == kBackwardData) backward_data();
    else backward_filter();
  }
};

int convolve(void* handle, Dir dir, const Geo& geo, const void* alpha, const void* beta, const void* in0,
             const void* in1, void* out) {
  if (!alpha || !beta || !in0 || !in1 || !out) return kBadParam;
  try {
    auto t = std::make_unique<ConvTask>();
    t->g = geo;
    t->dir = dir;
    t->alpha = *static_cast<const float*>(alpha);
    t->beta = *static_cast<const float*>(beta);
    t->in0 = static_cast<const float*>(in0);
    t->in1 = static_cast<const float*>(in1);
    t->out = static_cast<float*>(out);
    t->reserve();
    return submit(static_cast<Handle*>(handle)->stream, std::move(t)) ? kOk : kExecutionFailed;
  } catch (const std::bad_alloc&) {
    return kAllocFailed;
  }
}

}  // namespace
}  // namespace irc_stand_in

using namespace irc_stand_in;
using irc_stand_in::g::CudnnAlgoPerf;

IRC_STAND_IN_EXPORT void ircEmuAttach(Enqueue enqueue) { g_enqueue.store(enqueue, std::memory_order_release); }

IRC_STAND_IN_EXPORT size_t cudnnGetVersion() { return 90100; }  // 9.1.0

IRC_STAND_IN_EXPORT const char* cudnnGetErrorString(int status) {
  switch (status) {
    case kOk: return "CUDNN_STATUS_SUCCESS";
    case kNotInitialized: return "CUDNN_STATUS_NOT_INITIALIZED";
    case kBadParam: return "CUDNN_STATUS_BAD_PARAM";
    case kNotSupported: return "CUDNN_STATUS_NOT_SUPPORTED (CPU stand-in)";
    case kInternalError: return "CUDNN_STATUS_INTERNAL_ERROR";
    case kAllocFailed: return "CUDNN_STATUS_ALLOC_FAILED";
    case kExecutionFailed: return "CUDNN_STATUS_EXECUTION_FAILED";
    default: return "CUDNN_STATUS_UNKNOWN";
  }
}

// IRCONSTYLE_EMU_NO_CUDNN=1: cudnnCreate fails, as where cuDNN is installed but cannot start, so that the addon runs
// its convolutions without cuDNN (the fallback pass of scripts/check-emu.mjs).
IRC_STAND_IN_EXPORT int cudnnCreate(void** handle) {
  if (!handle) return kBadParam;
  const char* off = std::getenv("IRCONSTYLE_EMU_NO_CUDNN");
  if (off && off[0] == '1') return kNotInitialized;
  *handle = new (std::nothrow) Handle();
  return *handle ? kOk : kAllocFailed;
}

IRC_STAND_IN_EXPORT int cudnnDestroy(void* handle) {
  if (!handle) return kBadParam;
  delete static_cast<Handle*>(handle);
  return kOk;
}

IRC_STAND_IN_EXPORT int cudnnSetStream(void* handle, void* stream) {
  if (!handle) return kBadParam;
  static_cast<Handle*>(handle)->stream = stream;
  return kOk;
}

IRC_STAND_IN_EXPORT int cudnnCreateTensorDescriptor(void** desc) {
  if (!desc) return kBadParam;
  *desc = new (std::nothrow) TensorDesc();
  return *desc ? kOk : kAllocFailed;
}

IRC_STAND_IN_EXPORT int cudnnDestroyTensorDescriptor(void* desc) {
  delete static_cast<TensorDesc*>(desc);
  return kOk;
}

IRC_STAND_IN_EXPORT int cudnnSetTensor4dDescriptor(void* desc, int format, int dataType, int n, int c, int h, int w) {
  if (!desc || n < 1 || c < 1 || h < 1 || w < 1) return kBadParam;
  if (dataType != g::CUDNN_DATA_FLOAT || (format != g::CUDNN_TENSOR_NCHW && format != g::CUDNN_TENSOR_NHWC))
    return kNotSupported;
  *static_cast<TensorDesc*>(desc) = TensorDesc{true, format, n, c, h, w};
  return kOk;
}

IRC_STAND_IN_EXPORT int cudnnCreateFilterDescriptor(void** desc) {
  if (!desc) return kBadParam;
  *desc = new (std::nothrow) FilterDesc();
  return *desc ? kOk : kAllocFailed;
}

IRC_STAND_IN_EXPORT int cudnnDestroyFilterDescriptor(void* desc) {
  delete static_cast<FilterDesc*>(desc);
  return kOk;
}

IRC_STAND_IN_EXPORT int cudnnSetFilter4dDescriptor(void* desc, int dataType, int format, int k, int c, int h, int w) {
  if (!desc || k < 1 || c < 1 || h < 1 || w < 1) return kBadParam;
  if (dataType != g::CUDNN_DATA_FLOAT || (format != g::CUDNN_TENSOR_NCHW && format != g::CUDNN_TENSOR_NHWC))
    return kNotSupported;
  *static_cast<FilterDesc*>(desc) = FilterDesc{true, format, k, c, h, w};
  return kOk;
}

IRC_STAND_IN_EXPORT int cudnnCreateConvolutionDescriptor(void** desc) {
  if (!desc) return kBadParam;
  *desc = new (std::nothrow) ConvDesc();
  return *desc ? kOk : kAllocFailed;
}

IRC_STAND_IN_EXPORT int cudnnDestroyConvolutionDescriptor(void* desc) {
  delete static_cast<ConvDesc*>(desc);
  return kOk;
}

IRC_STAND_IN_EXPORT int cudnnSetConvolution2dDescriptor(void* desc, int pad_h, int pad_w, int u, int v,
                                                        int dilation_h, int dilation_w, int mode, int computeType) {
  if (!desc || pad_h < 0 || pad_w < 0 || u < 1 || v < 1 || dilation_h < 1 || dilation_w < 1 ||
      (mode != g::CUDNN_CONVOLUTION && mode != g::CUDNN_CROSS_CORRELATION))
    return kBadParam;
  if (computeType != g::CUDNN_DATA_FLOAT) return kNotSupported;
  ConvDesc& c = *static_cast<ConvDesc*>(desc);
  c.set = true;
  c.ph = pad_h, c.pw = pad_w, c.u = u, c.v = v, c.dh = dilation_h, c.dw = dilation_w, c.mode = mode;
  return kOk;
}

IRC_STAND_IN_EXPORT int cudnnSetConvolutionGroupCount(void* desc, int groupCount) {
  if (!desc || groupCount < 1) return kBadParam;
  static_cast<ConvDesc*>(desc)->groups = groupCount;
  return kOk;
}

// Every math type computes in FP32 with double sums: the type is only recorded (and reported by the queries).
IRC_STAND_IN_EXPORT int cudnnSetConvolutionMathType(void* desc, int mathType) {
  if (!desc || mathType < g::CUDNN_DEFAULT_MATH || mathType > g::CUDNN_FMA_MATH) return kBadParam;
  static_cast<ConvDesc*>(desc)->math = mathType;
  return kOk;
}

// ---- algorithm queries (workspace: none) ----------------------------------------------------------------------------
IRC_STAND_IN_EXPORT int cudnnGetConvolutionForwardAlgorithm_v7(void* handle, void* xd, void* wd, void* cd, void* yd,
                                                               int requested, int* returned, CudnnAlgoPerf* perf) {
  Geo geo;
  if (!handle) return kBadParam;
  if (const int st = geometry(xd, wd, cd, yd, geo)) return st;
  return report(kFwd, cd, requested, returned, perf, false);
}

IRC_STAND_IN_EXPORT int cudnnGetConvolutionBackwardDataAlgorithm_v7(void* handle, void* wd, void* dyd, void* cd,
                                                                    void* dxd, int requested, int* returned,
                                                                    CudnnAlgoPerf* perf) {
  Geo geo;
  if (!handle) return kBadParam;
  if (const int st = geometry(dxd, wd, cd, dyd, geo)) return st;
  return report(kBwdData, cd, requested, returned, perf, false);
}

IRC_STAND_IN_EXPORT int cudnnGetConvolutionBackwardFilterAlgorithm_v7(void* handle, void* xd, void* dyd, void* cd,
                                                                      void* dwd, int requested, int* returned,
                                                                      CudnnAlgoPerf* perf) {
  Geo geo;
  if (!handle) return kBadParam;
  if (const int st = geometry(xd, dwd, cd, dyd, geo)) return st;
  return report(kBwdFilter, cd, requested, returned, perf, false);
}

IRC_STAND_IN_EXPORT int cudnnGetConvolutionForwardWorkspaceSize(void* handle, void* xd, void* wd, void* cd, void* yd,
                                                                int algo, size_t* bytes) {
  Geo geo;
  if (!handle || !bytes) return kBadParam;
  if (const int st = geometry(xd, wd, cd, yd, geo)) return st;
  if (!offered(kFwd, algo)) return kNotSupported;
  *bytes = 0;
  return kOk;
}

IRC_STAND_IN_EXPORT int cudnnGetConvolutionBackwardDataWorkspaceSize(void* handle, void* wd, void* dyd, void* cd,
                                                                     void* dxd, int algo, size_t* bytes) {
  Geo geo;
  if (!handle || !bytes) return kBadParam;
  if (const int st = geometry(dxd, wd, cd, dyd, geo)) return st;
  if (!offered(kBwdData, algo)) return kNotSupported;
  *bytes = 0;
  return kOk;
}

IRC_STAND_IN_EXPORT int cudnnGetConvolutionBackwardFilterWorkspaceSize(void* handle, void* xd, void* dyd, void* cd,
                                                                       void* dwd, int algo, size_t* bytes) {
  Geo geo;
  if (!handle || !bytes) return kBadParam;
  if (const int st = geometry(xd, dwd, cd, dyd, geo)) return st;
  if (!offered(kBwdFilter, algo)) return kNotSupported;
  *bytes = 0;
  return kOk;
}

// Find: the heuristics' list with made-up times, fastest first. Nothing is run, so the buffers are left untouched
// (cuDNN may leave anything in the output; nothing needs to be enqueued).
IRC_STAND_IN_EXPORT int cudnnFindConvolutionForwardAlgorithmEx(void* handle, void* xd, const void* x, void* wd,
                                                               const void* w, void* cd, void* yd, void* y,
                                                               int requested, int* returned, CudnnAlgoPerf* perf,
                                                               void*, size_t) {
  Geo geo;
  if (!handle || !x || !w || !y) return kBadParam;
  if (const int st = geometry(xd, wd, cd, yd, geo)) return st;
  return report(kFwd, cd, requested, returned, perf, true);
}

IRC_STAND_IN_EXPORT int cudnnFindConvolutionBackwardDataAlgorithmEx(void* handle, void* wd, const void* w, void* dyd,
                                                                    const void* dy, void* cd, void* dxd, void* dx,
                                                                    int requested, int* returned,
                                                                    CudnnAlgoPerf* perf, void*, size_t) {
  Geo geo;
  if (!handle || !w || !dy || !dx) return kBadParam;
  if (const int st = geometry(dxd, wd, cd, dyd, geo)) return st;
  return report(kBwdData, cd, requested, returned, perf, true);
}

IRC_STAND_IN_EXPORT int cudnnFindConvolutionBackwardFilterAlgorithmEx(void* handle, void* xd, const void* x,
                                                                      void* dyd, const void* dy, void* cd, void* dwd,
                                                                      void* dw, int requested, int* returned,
                                                                      CudnnAlgoPerf* perf, void*, size_t) {
  Geo geo;
  if (!handle || !x || !dy || !dw) return kBadParam;
  if (const int st = geometry(xd, dwd, cd, dyd, geo)) return st;
  return report(kBwdFilter, cd, requested, returned, perf, true);
}

// ---- the convolutions (workspace ignored) ---------------------------------------------------------------------------
// y = alpha conv(x, w) + beta y
IRC_STAND_IN_EXPORT int cudnnConvolutionForward(void* handle, const void* alpha, void* xd, const void* x, void* wd,
                                                const void* w, void* cd, int algo, void*, size_t, const void* beta,
                                                void* yd, void* y) {
  Geo geo;
  if (!handle) return kBadParam;
  if (const int st = geometry(xd, wd, cd, yd, geo)) return st;
  if (!offered(kFwd, algo)) return kNotSupported;
  return convolve(handle, kForward, geo, alpha, beta, x, w, y);
}

// dx = alpha conv^T(dy, w) + beta dx
IRC_STAND_IN_EXPORT int cudnnConvolutionBackwardData(void* handle, const void* alpha, void* wd, const void* w,
                                                     void* dyd, const void* dy, void* cd, int algo, void*, size_t,
                                                     const void* beta, void* dxd, void* dx) {
  Geo geo;
  if (!handle) return kBadParam;
  if (const int st = geometry(dxd, wd, cd, dyd, geo)) return st;
  if (!offered(kBwdData, algo)) return kNotSupported;
  return convolve(handle, kBackwardData, geo, alpha, beta, w, dy, dx);
}

// dw = alpha (gradient of <conv(x, w), dy> in w) + beta dw
IRC_STAND_IN_EXPORT int cudnnConvolutionBackwardFilter(void* handle, const void* alpha, void* xd, const void* x,
                                                       void* dyd, const void* dy, void* cd, int algo, void*, size_t,
                                                       const void* beta, void* dwd, void* dw) {
  Geo geo;
  if (!handle) return kBadParam;
  if (const int st = geometry(xd, dwd, cd, dyd, geo)) return st;
  if (!offered(kBwdFilter, algo)) return kNotSupported;
  return convolve(handle, kBackwardFilter, geo, alpha, beta, x, dy, dw);
}
