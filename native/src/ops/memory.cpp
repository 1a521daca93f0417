// Creation and memory ops: fill, clone, copy_, add_, permute.
//   fill     attrs [value, dtype(0 f32|1 i32), ...shape] -> y filled with value
//   clone    x -> bitwise copy of x (any dtype)
//   copy_    (dst, src) same numel and dtype; dst <- src in place (reshaping copy)
//   add_     (dst, src) same shape, f32; dst += src in place
//   add_n_   (dst1, src1, dst2, src2, ...): add_ for every pair (the dst distinct)
//   permute  x, attrs [perm...] -> y, y.shape[i] = x.shape[perm[i]] (any dtype; both dtypes are 4 bytes)
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include "op_api.h"
#include "permute_plan.h"
#include "switches.h"

namespace irc {
namespace {

constexpr int64_t kCopyGrain = 1 << 16;  // elements per parallel chunk for plain copies

void par_copy(void* dst, const void* src, int64_t n) {
  auto* d = static_cast<char*>(dst);
  auto* s = static_cast<const char*>(src);
  parallel_for(n, kCopyGrain, [&](int64_t b, int64_t e) { std::memcpy(d + b * 4, s + b * 4, (e - b) * 4); });
}

std::string dims_str(const std::vector<int64_t>& v) { return shape_str(v); }

// ---- 2-D transpose (the permute fast path) --------------------------------------------------------------
// in: `rows` rows of `cols` 4-byte elements, row pitch `ld_in`; out: `cols` rows of `rows` elements, row pitch
// `ld_out`. Only a sub-rectangle [r0, r1) x [c0, c1) is done per call (one cache tile).
void transpose_scalar(const int32_t* in, int64_t ld_in, int32_t* out, int64_t ld_out, int64_t r0, int64_t r1,
                      int64_t c0, int64_t c1) {
  for (int64_t c = c0; c < c1; ++c) {
    int32_t* o = out + c * ld_out;
    for (int64_t r = r0; r < r1; ++r) o[r] = in[r * ld_in + c];
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
// 8x8 blocks through AVX registers (unpack / shuffle / 128-bit lane permute), scalar edges.
__attribute__((target("avx2"))) void transpose_avx2(const int32_t* in, int64_t ld_in, int32_t* out, int64_t ld_out,
                                                    int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  const int64_t r8 = r0 + (r1 - r0) / 8 * 8, c8 = c0 + (c1 - c0) / 8 * 8;
  for (int64_t r = r0; r < r8; r += 8)
    for (int64_t c = c0; c < c8; c += 8) {
      const float* s = reinterpret_cast<const float*>(in + r * ld_in + c);
      __m256 a0 = _mm256_loadu_ps(s), a1 = _mm256_loadu_ps(s + ld_in), a2 = _mm256_loadu_ps(s + 2 * ld_in),
             a3 = _mm256_loadu_ps(s + 3 * ld_in), a4 = _mm256_loadu_ps(s + 4 * ld_in),
             a5 = _mm256_loadu_ps(s + 5 * ld_in), a6 = _mm256_loadu_ps(s + 6 * ld_in),
             a7 = _mm256_loadu_ps(s + 7 * ld_in);
      __m256 t0 = _mm256_unpacklo_ps(a0, a1), t1 = _mm256_unpackhi_ps(a0, a1), t2 = _mm256_unpacklo_ps(a2, a3),
             t3 = _mm256_unpackhi_ps(a2, a3), t4 = _mm256_unpacklo_ps(a4, a5), t5 = _mm256_unpackhi_ps(a4, a5),
             t6 = _mm256_unpacklo_ps(a6, a7), t7 = _mm256_unpackhi_ps(a6, a7);
      __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
             u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE),
             u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
             u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
      float* d = reinterpret_cast<float*>(out + c * ld_out + r);
      _mm256_storeu_ps(d, _mm256_permute2f128_ps(u0, u4, 0x20));
      _mm256_storeu_ps(d + ld_out, _mm256_permute2f128_ps(u1, u5, 0x20));
      _mm256_storeu_ps(d + 2 * ld_out, _mm256_permute2f128_ps(u2, u6, 0x20));
      _mm256_storeu_ps(d + 3 * ld_out, _mm256_permute2f128_ps(u3, u7, 0x20));
      _mm256_storeu_ps(d + 4 * ld_out, _mm256_permute2f128_ps(u0, u4, 0x31));
      _mm256_storeu_ps(d + 5 * ld_out, _mm256_permute2f128_ps(u1, u5, 0x31));
      _mm256_storeu_ps(d + 6 * ld_out, _mm256_permute2f128_ps(u2, u6, 0x31));
      _mm256_storeu_ps(d + 7 * ld_out, _mm256_permute2f128_ps(u3, u7, 0x31));
    }
  if (c8 < c1) transpose_scalar(in, ld_in, out, ld_out, r0, r8, c8, c1);
  if (r8 < r1) transpose_scalar(in, ld_in, out, ld_out, r8, r1, c0, c1);
}
#endif

using TransposeFn = void (*)(const int32_t*, int64_t, int32_t*, int64_t, int64_t, int64_t, int64_t, int64_t);

TransposeFn transpose_fn() {
  static const TransposeFn f = [] {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    const char* env = std::getenv("IRCONSTYLE_GEMM_ISA");  // testing: "scalar" forces the plain loop
    if (!(env && std::string(env) == "scalar") && __builtin_cpu_supports("avx2")) return &transpose_avx2;
#endif
    return &transpose_scalar;
  }();
  return f;
}

// Batched transpose: for each of `outer` blocks (input offset xoff(o), output offset o * rows * cols), the
// input block is a [rows, cols] matrix with row pitch ld_in, the output block the contiguous [cols, rows]
// matrix. Tasks are tiles of kTile x kTile elements (in L1/L2), many per thread.
template <class Off>
void batched_transpose(const int32_t* src, int32_t* dst, int64_t outer, int64_t rows, int64_t cols, int64_t ld_in,
                       Off xoff) {
  constexpr int64_t kTile = 64;
  const int64_t tr = (rows + kTile - 1) / kTile, tc = (cols + kTile - 1) / kTile;
  const int64_t tasks = outer * tr * tc;
  const TransposeFn tf = transpose_fn();
  const int64_t tile_elems = std::min(rows, kTile) * std::min(cols, kTile);
  parallel_for(tasks, std::max<int64_t>(1, kCopyGrain / tile_elems), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t o = t / (tr * tc), rem = t % (tr * tc);
      // Walk the tiles of one block column-major over the input rows so that consecutive tasks continue the
      // same output rows.
      const int64_t ci = rem / tr, ri = rem % tr;
      const int64_t r0 = ri * kTile, c0 = ci * kTile;
      tf(src + xoff(o), ld_in, dst + o * rows * cols, rows, r0, std::min(rows, r0 + kTile), c0,
         std::min(cols, c0 + kTile));
    }
  });
}

}  // namespace

// ---- fill -------------------------------------------------------------------------------------------------
void infer_fill(InferCtx& c) {
  c.need_attrs(2);
  double v = c.af(0);
  int64_t dt = c.ai(1);
  if (dt != 0 && dt != 1) op_fail("E_ATTR", "fill: dtype attribute must be 0 (float32) or 1 (int32), got " + std::to_string(dt));
  if (dt == 1 && (!std::isfinite(v) || std::floor(v) != v || v < -2147483648.0 || v > 2147483647.0))
    op_fail("E_ATTR", "fill: value for an int32 tensor must be an integer in int32 range, got " + std::to_string(v));
  Shape s;
  for (size_t k = 2; k < c.attrs.size(); ++k) {
    int64_t d = c.ai(k);
    if (d < 0) op_fail("E_ATTR", "fill: shape dims must be >= 0, got " + std::to_string(d) + " at position " + std::to_string(k - 2));
    s.push_back(d);
  }
  c.add_out(s, dt == 0 ? DType::f32 : DType::i32);
}

void cpu_fill(KernelCtx& c) {
  const TArg& y = c.out[0];
  if (y.dtype == DType::f32) {
    float v = static_cast<float>(c.af(0));
    float* p = y.f();
    parallel_for(y.n, kCopyGrain, [&](int64_t b, int64_t e) { for (int64_t i = b; i < e; ++i) p[i] = v; });
  } else {
    int32_t v = static_cast<int32_t>(c.af(0));
    int32_t* p = y.i();
    parallel_for(y.n, kCopyGrain, [&](int64_t b, int64_t e) { for (int64_t i = b; i < e; ++i) p[i] = v; });
  }
}

// ---- clone / copy_ / add_ ---------------------------------------------------------------------------------
void infer_clone(InferCtx& c) { c.add_out(c.in[0].shape, c.in[0].dtype); }
void cpu_clone(KernelCtx& c) { par_copy(c.out[0].ptr, c.in[0].ptr, c.in[0].n); }

void infer_copy_(InferCtx& c) {
  const Meta &d = c.in[0], &s = c.in[1];
  if (d.dtype != s.dtype)
    op_fail("E_DTYPE", std::string("copy_: dst and src must have the same dtype, got ") + dtype_name(d.dtype) + " and " +
                           dtype_name(s.dtype));
  if (numel(d.shape) != numel(s.shape))
    op_fail("E_SHAPE", "copy_: dst " + shape_str(d.shape) + " and src " + shape_str(s.shape) +
                           " must have the same number of elements (" + std::to_string(numel(d.shape)) + " vs " +
                           std::to_string(numel(s.shape)) + ")");
}
void cpu_copy_(KernelCtx& c) {
  if (c.in[0].ptr != c.in[1].ptr) par_copy(c.in[0].ptr, c.in[1].ptr, c.in[0].n);
}

void infer_add_(InferCtx& c) {
  c.need_f32(0);
  c.need_f32(1);
  if (c.in[0].shape != c.in[1].shape)
    op_fail("E_SHAPE", "add_: src must have the shape of dst " + shape_str(c.in[0].shape) + ", got " + shape_str(c.in[1].shape));
}
void cpu_add_(KernelCtx& c) {
  float* d = c.in[0].f();
  const float* s = c.in[1].f();
  parallel_for(c.in[0].n, kCopyGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) d[i] += s[i];
  });
}

void infer_add_n_(InferCtx& c) {
  if (c.in.size() % 2)
    op_fail("E_ARITY", "add_n_: expected (dst, src) pairs, got an odd count of " + std::to_string(c.in.size()) + " inputs");
  for (size_t i = 0; i < c.in.size(); i += 2) {
    c.need_f32(i);
    c.need_f32(i + 1);
    if (c.in[i].shape != c.in[i + 1].shape)
      op_fail("E_SHAPE", "add_n_: src " + std::to_string(i / 2) + " must have the shape of its dst " +
                             shape_str(c.in[i].shape) + ", got " + shape_str(c.in[i + 1].shape));
  }
}
void cpu_add_n_(KernelCtx& c) {
  for (size_t i = 0; i < c.in.size(); i += 2) {
    float* d = c.in[i].f();
    const float* s = c.in[i + 1].f();
    parallel_for(c.in[i].n, kCopyGrain, [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k) d[k] += s[k];
    });
  }
}

// ---- permute ----------------------------------------------------------------------------------------------
void infer_permute(InferCtx& c) {
  const Shape& xs = c.in[0].shape;
  size_t r = xs.size();
  if (c.attrs.size() != r)
    op_fail("E_ATTR", "permute: perm must have one entry per dim of x " + shape_str(xs) + " (" + std::to_string(r) +
                          "), got " + std::to_string(c.attrs.size()));
  std::vector<int64_t> perm(r);
  std::vector<bool> seen(r, false);
  for (size_t i = 0; i < r; ++i) {
    perm[i] = c.ai(i);
    if (perm[i] < 0 || perm[i] >= static_cast<int64_t>(r) || seen[perm[i]]) {
      std::vector<int64_t> all;
      for (double a : c.attrs) all.push_back(static_cast<int64_t>(a));
      op_fail("E_ATTR", "permute: perm must be a permutation of 0.." + std::to_string(r ? r - 1 : 0) + ", got " + dims_str(all));
    }
    seen[perm[i]] = true;
  }
  Shape ys(r);
  for (size_t i = 0; i < r; ++i) ys[i] = xs[perm[i]];
  c.add_out(ys, c.in[0].dtype);
}

// Generic strided gather over 4-byte elements. Dims are first merged where the permutation keeps them adjacent;
// when the output's innermost dim is not the input's innermost dim, the two dims involved are walked in tiles.
void cpu_permute(KernelCtx& c) {
  const TArg& x = c.in[0];
  const TArg& y = c.out[0];
  if (y.n == 0) return;
  const int r = static_cast<int>(x.shape.size());
  std::vector<int64_t> perm(r);
  for (int i = 0; i < r; ++i) perm[i] = c.ai(i);
  // Output dims in order, with input and output strides; size-1 dims dropped, mergeable neighbours merged (as on CUDA).
  const permute_plan::Dims dims = permute_plan::merge(x.shape, perm);
  if (emulation_requested("permute")) {  // the CUDA tile transpose's own walk (the tests of its index arithmetic)
    permute_plan::Geo g;
    if (!permute_plan::plan(dims, g, !env_is("IRCONSTYLE_PERMUTE_TILE", "1")))
      op_fail("E_ARG", "permute: the CUDA tile transpose does not take x " + shape_str(x.shape) + " with perm " +
                               dims_str(perm) + " (the gather kernel does)");
    permute_plan::emulate(g, static_cast<const uint32_t*>(x.ptr), static_cast<uint32_t*>(y.ptr));
    return;
  }
  const std::vector<int64_t>&sz = dims.sz, &st = dims.st, &ostr = dims.ostr;
  if (sz.empty() || (sz.size() == 1 && st[0] == 1)) {
    par_copy(y.ptr, x.ptr, y.n);
    return;
  }
  const int m = static_cast<int>(sz.size());
  const int32_t* src = static_cast<const int32_t*>(x.ptr);
  int32_t* dst = static_cast<int32_t*>(y.ptr);
  if (st[m - 1] == 1) {
    // Innermost output dim is contiguous in the input: copy rows.
    int64_t rows = y.n / sz[m - 1], len = sz[m - 1];
    parallel_for(rows, std::max<int64_t>(1, kCopyGrain / len), [&](int64_t b, int64_t e) {
      for (int64_t row = b; row < e; ++row) {
        int64_t rem = row, off = 0;
        for (int d = m - 2; d >= 0; --d) {
          off += (rem % sz[d]) * st[d];
          rem /= sz[d];
        }
        std::memcpy(dst + row * len, src + off, len * 4);
      }
    });
    return;
  }
  if (st[m - 2] == 1) {
    // The last two output dims are a 2-D transpose of a (strided-row) input matrix: rows = output dim m-1
    // (pitch st[m-1]), cols = output dim m-2 (contiguous). Outer output dims just offset whole blocks.
    const int64_t rows = sz[m - 1], cols = sz[m - 2], ld = st[m - 1];
    const int64_t outer = y.n / (rows * cols);
    batched_transpose(src, dst, outer, rows, cols, ld, [&](int64_t o) {
      int64_t off = 0;
      for (int d = m - 3; d >= 0; --d) {
        off += (o % sz[d]) * st[d];
        o /= sz[d];
      }
      return off;
    });
    return;
  }
  // Tile over output dims a = m-1 (input stride st[a]) and b = the output dim with input stride 1.
  int bdim = -1;
  for (int d = 0; d < m; ++d)
    if (st[d] == 1) bdim = d;
  if (bdim < 0) bdim = m - 2;  // cannot happen for a permutation of a contiguous tensor; keep a sane default
  const int adim = m - 1;
  const int64_t A = sz[adim], B = sz[bdim];
  const int64_t outer = y.n / (A * B);
  constexpr int64_t T = 32;
  const int64_t tilesA = (A + T - 1) / T, tilesB = (B + T - 1) / T;
  const int64_t tasks = outer * tilesB;
  parallel_for(tasks, std::max<int64_t>(1, kCopyGrain / (B < T ? B * A : T * A)), [&](int64_t tb, int64_t te) {
    for (int64_t t = tb; t < te; ++t) {
      int64_t o = t / tilesB, tbi = t % tilesB;
      // decode `o` over the remaining dims (all except adim and bdim), output order
      int64_t rem = o, xoff = 0, yoff = 0;
      for (int d = m - 1; d >= 0; --d) {
        if (d == adim || d == bdim) continue;
        int64_t i = rem % sz[d];
        rem /= sz[d];
        xoff += i * st[d];
        yoff += i * ostr[d];
      }
      int64_t b0 = tbi * T, b1 = std::min(B, b0 + T);
      for (int64_t ta = 0; ta < tilesA; ++ta) {
        int64_t a0 = ta * T, a1 = std::min(A, a0 + T);
        for (int64_t bi = b0; bi < b1; ++bi) {
          int32_t* yr = dst + yoff + bi * ostr[bdim];
          const int32_t* xr = src + xoff + bi;
          for (int64_t ai = a0; ai < a1; ++ai) yr[ai] = xr[ai * st[adim]];
        }
      }
    }
  });
}

}  // namespace irc
