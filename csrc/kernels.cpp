// xfr kernels, see kernels.hpp. Needs GCC or Clang (vector extensions). On x86 the hot loops
// are compiled twice, for the baseline ISA and for AVX2, and picked at run time, so a plain
// (non -march=native) build is fast on current CPUs. Compiled with -ffp-contract=off: no
// multiply-add is fused behind our back, so Otsu's double arithmetic is OpenCV's, bit for bit.
#include "kernels.hpp"

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif

#if !defined(__GNUC__) && !defined(__clang__)
#error "the xfr kernels need GCC or Clang (vector extensions)"
#endif

namespace xfr {
namespace {

#define XFR_INLINE inline __attribute__((always_inline))

#if defined(__x86_64__) || defined(__i386__)
#define XFR_AVX2 __attribute__((target("avx2")))
bool cpu_has_avx2() {
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
  }();
  return yes;
}
#else
#define XFR_AVX2
bool cpu_has_avx2() { return false; }
#endif

// ---------------------------------------------------------------------------------------------
// 8 floats; on baseline x86-64 the compiler lowers each operation to two SSE instructions.
typedef float v8f __attribute__((vector_size(32)));
constexpr std::size_t kLanes = 8;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

XFR_INLINE v8f load8(const float* p) {
  v8f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
XFR_INLINE void store8(float* p, v8f v) { std::memcpy(p, &v, sizeof v); }
XFR_INLINE v8f splat8(float x) { return v8f{x, x, x, x, x, x, x, x}; }
#if defined(__clang__)
XFR_INLINE v8f max8(v8f a, v8f b) { return __builtin_elementwise_max(a, b); }
XFR_INLINE v8f min8(v8f a, v8f b) { return __builtin_elementwise_min(a, b); }
#else
XFR_INLINE v8f max8(v8f a, v8f b) { return a > b ? a : b; }
XFR_INLINE v8f min8(v8f a, v8f b) { return a < b ? a : b; }
#endif

std::size_t round_up(std::size_t x, std::size_t m) { return (x + m - 1) / m * m; }

// True when every value is finite (exponent bits not all ones).
typedef std::uint32_t v8u __attribute__((vector_size(32)));
XFR_INLINE bool all_finite(const float* x, std::size_t n) {
  const std::uint32_t e = 0x7f800000u;
  const v8u ev = {e, e, e, e, e, e, e, e};
  v8u bad = {};
  std::size_t p = 0;
  for (; p + kLanes <= n; p += kLanes) {
    v8u u;
    std::memcpy(&u, x + p, sizeof u);
    bad |= (v8u)((u & ev) == ev);
  }
  std::uint32_t any = 0;
  for (std::size_t l = 0; l < kLanes; ++l) any |= bad[l];
  for (; p < n; ++p) {
    std::uint32_t u;
    std::memcpy(&u, x + p, sizeof u);
    any |= static_cast<std::uint32_t>((u & e) == e);
  }
  return any == 0;
}

XFR_INLINE void min_max(const float* x, std::size_t n, float& lo, float& hi) {
  std::size_t p = 0;
  lo = hi = x[0];
  if (n >= kLanes) {
    v8f vlo = load8(x), vhi = vlo;
    for (p = kLanes; p + kLanes <= n; p += kLanes) {
      const v8f v = load8(x + p);
      vlo = min8(vlo, v);
      vhi = max8(vhi, v);
    }
    for (std::size_t l = 0; l < kLanes; ++l) {
      lo = std::min(lo, vlo[l]);
      hi = std::max(hi, vhi[l]);
    }
  }
  for (; p < n; ++p) {
    lo = std::min(lo, x[p]);
    hi = std::max(hi, x[p]);
  }
}

// Reflect-101 (OpenCV's BORDER_REFLECT_101, NumPy's "reflect"): -1 -> 1, n -> n - 2.
// Valid for -n < p < 2n - 1, which the size checks guarantee.
XFR_INLINE std::size_t reflect101(std::ptrdiff_t p, std::ptrdiff_t n) {
  if (n == 1) return 0;
  if (p < 0) p = -p;
  if (p >= n) p = 2 * n - 2 - p;
  return static_cast<std::size_t>(p);
}

std::string image_label(const char* name, std::size_t image) {
  return std::string(name) + " (image " + std::to_string(image) + ")";
}

[[noreturn]] void throw_not_finite(const char* name, std::size_t image) {
  throw std::invalid_argument(image_label(name, image) + " contains NaN or inf");
}

void check_dims(Dims d) {
  if (d.n == 0) throw std::invalid_argument("empty batch: no images (N = 0)");
  if (d.h == 0 || d.w == 0) throw std::invalid_argument("empty images: H and W must be >= 1");
}

// ---------------------------------------------------------------------------------------------
// Threads
std::atomic<int> g_threads{0};
constexpr double kWorkPerThread = 1 << 17;  // pixel operations that pay for starting a thread

// Runs make_worker() once per thread (per-thread scratch) and calls worker(i) for every image
// i < n. The calling thread is one of the workers. The first exception (lowest image index
// among those seen) is rethrown after all threads joined.
template <class MakeWorker>
void for_each_image(std::size_t n, double work_per_image, MakeWorker make_worker) {
  const double by_work = std::max(1.0, static_cast<double>(n) * work_per_image / kWorkPerThread);
  const std::size_t threads = static_cast<std::size_t>(
      std::min({static_cast<double>(num_threads()), static_cast<double>(n), by_work}));
  std::atomic<std::size_t> next{0};
  std::atomic<bool> stop{false};
  std::mutex mutex;
  std::exception_ptr error;
  std::size_t error_index = static_cast<std::size_t>(-1);
  auto record = [&](std::size_t index) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!error || index < error_index) {
      error = std::current_exception();
      error_index = index;
    }
    stop.store(true, std::memory_order_relaxed);
  };
  auto run = [&]() {
    try {
      auto worker = make_worker();
      while (!stop.load(std::memory_order_relaxed)) {
        const std::size_t i = next.fetch_add(1, std::memory_order_relaxed);
        if (i >= n) break;
        try {
          worker(i);
        } catch (...) {
          record(i);
        }
      }
    } catch (...) {  // scratch allocation failed
      record(static_cast<std::size_t>(-1));
    }
  };
  std::vector<std::thread> pool;
  if (threads > 1) {
    pool.reserve(threads - 1);
    for (std::size_t t = 1; t < threads; ++t) {
      try {
        pool.emplace_back(run);
      } catch (...) {  // no more threads: the started ones and this one do the work
        break;
      }
    }
  }
  run();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

// Compiles the always-inline body `name##_impl<wide>` twice: baseline (4 accumulators of 8
// lanes, which fit the 16 SSE registers) and AVX2 (8 accumulators); `name` dispatches.
#define XFR_MULTIVERSION(name, params, args)                          \
  void name##_base params { name##_impl<4> args; }                     \
  XFR_AVX2 void name##_avx2 params { name##_impl<8> args; }            \
  void name params {                                                   \
    if (cpu_has_avx2())                                                \
      name##_avx2 args;                                                \
    else                                                               \
      name##_base args;                                                \
  }

// ---------------------------------------------------------------------------------------------
// Otsu (OpenCV's getThreshVal_Otsu_8u, same operations in the same order)
double otsu_level(const std::uint32_t* h, std::size_t count) {
  const int N = 256;
  double mu = 0, scale = 1. / static_cast<double>(count);
  for (int i = 0; i < N; i++) mu += i * static_cast<double>(h[i]);
  mu *= scale;
  double mu1 = 0, q1 = 0;
  double max_sigma = 0, max_val = 0;
  for (int i = 0; i < N; i++) {
    double p_i, q2, mu2, sigma;
    p_i = h[i] * scale;
    mu1 *= q1;
    q1 += p_i;
    q2 = 1. - q1;
    if (std::min(q1, q2) < FLT_EPSILON || std::max(q1, q2) > 1. - FLT_EPSILON) continue;
    mu1 = (mu1 + i * p_i) / q1;
    mu2 = (mu - q1 * mu1) / q2;
    sigma = q1 * q2 * (mu1 - mu2) * (mu1 - mu2);
    if (sigma > max_sigma) {
      max_sigma = sigma;
      max_val = i;
    }
  }
  return max_val;
}

typedef std::int32_t v8i __attribute__((vector_size(32)));
typedef std::uint8_t v8b __attribute__((vector_size(8)));

template <int>
XFR_INLINE void otsu_image_impl(const float* src, std::size_t count, std::size_t image,
                                std::uint8_t* levels, float* threshold, std::uint8_t* mask) {
  // levels first (vectorised), then the histogram from bytes with four sub-histograms.
  std::uint32_t bad = 0;
  std::size_t q = 0;
  {
    const v8f zero = splat8(0.f), one = splat8(1.f), k255 = splat8(255.f);
    v8i badv = {};
    for (; q + kLanes <= count; q += kLanes) {
      const v8f v = load8(src + q);
      const v8i in = (v >= zero) & (v <= one);  // false for NaN
      badv |= ~in;
      const v8f c = (v8f)((v8i)v & in);
      const v8b l = __builtin_convertvector(__builtin_convertvector(c * k255, v8i), v8b);
      std::memcpy(levels + q, &l, sizeof l);
    }
    for (std::size_t l = 0; l < kLanes; ++l) bad |= static_cast<std::uint32_t>(badv[l]);
  }
  for (; q < count; ++q) {
    const float v = src[q];
    const bool in = (v >= 0.f) & (v <= 1.f);
    bad |= static_cast<std::uint32_t>(!in);
    levels[q] = static_cast<std::uint8_t>(static_cast<int>((in ? v : 0.f) * 255.f));
  }
  const bool ok = bad == 0;
  std::uint32_t hist[4][256];
  std::memset(hist, 0, sizeof hist);
  std::size_t p = 0;
  for (; p + 4 <= count; p += 4) {
    ++hist[0][levels[p]];
    ++hist[1][levels[p + 1]];
    ++hist[2][levels[p + 2]];
    ++hist[3][levels[p + 3]];
  }
  for (; p < count; ++p) ++hist[0][levels[p]];
  if (!ok) {
    if (!all_finite(src, count)) throw_not_finite("maps", image);
    for (p = 0; p < count && src[p] >= 0.f && src[p] <= 1.f; ++p) {
    }
    throw std::invalid_argument(image_label("maps", image) + " has a value outside [0, 1] (" +
                                std::to_string(src[p]) +
                                "): Otsu needs maps normalised to [0, 1]");
  }
  std::uint32_t h[256];
  for (int i = 0; i < 256; ++i) h[i] = hist[0][i] + hist[1][i] + hist[2][i] + hist[3][i];
  const double t = otsu_level(h, count);
  *threshold = static_cast<float>(t);
  const auto level_t = static_cast<std::uint8_t>(t);
  for (p = 0; p < count; ++p) mask[p] = static_cast<std::uint8_t>(levels[p] > level_t);
}
XFR_MULTIVERSION(otsu_image,
                 (const float* src, std::size_t count, std::size_t image, std::uint8_t* levels,
                  float* threshold, std::uint8_t* mask),
                 (src, count, image, levels, threshold, mask))

// ---------------------------------------------------------------------------------------------
// Dilation: per structuring-element row a 1-D max over a span. Each image row gets a pyramid
// M_l[t] = max(R[t .. t + 2^l - 1]) of its -inf padded copy R; the max over a span of width w
// is max(M_l[t], M_l[t + w - 2^l]) with 2^l <= w < 2^(l+1) (a sparse table). An output row is
// then the max, over the element's rows, of two pyramid rows each.
struct DilatePlan {
  int kw = 0, kh = 0, ax = 0, ay = 0;
  std::vector<Span> rows;
  std::vector<int> level;  // per element row: floor(log2(width)), -1 when the row is empty
  int levels = 1;          // pyramid levels to build
  std::size_t h = 0, w = 0, wp = 0, stride = 0;  // image, padded width, pyramid row stride

  DilatePlan(Element shape, int width, int height, std::size_t H, std::size_t W)
      : kw(width), kh(height), ax(width / 2), ay(height / 2),
        rows(structuring_element(shape, width, height)), h(H), w(W) {
    for (const Span& s : rows) {
      int l = -1;
      for (int span = s.end - s.begin; span > 0; span >>= 1) ++l;
      level.push_back(l);
      levels = std::max(levels, l + 1);
    }
    wp = round_up(W, kLanes);
    stride = round_up(wp + static_cast<std::size_t>(kw) - 1 + kLanes, kLanes);
  }
  std::size_t scratch_floats() const { return static_cast<std::size_t>(levels) * h * stride; }
};

template <int NV>
XFR_INLINE void dilate_image_impl(const float* src, const DilatePlan& plan, float* pyramid,
                                  const float** ptrs, float* dst, std::size_t dst_stride) {
  const std::size_t H = plan.h, W = plan.w, S = plan.stride;
  const std::size_t L = W + static_cast<std::size_t>(plan.kw) - 1;
  for (std::size_t y = 0; y < H; ++y) {
    float* r = pyramid + y * S;
    std::fill(r, r + plan.ax, kNegInf);
    std::memcpy(r + plan.ax, src + y * W, W * sizeof(float));
    std::fill(r + plan.ax + W, r + L, kNegInf);
    for (int l = 1; l < plan.levels; ++l) {
      const std::size_t half = std::size_t{1} << (l - 1);
      const float* a = pyramid + (static_cast<std::size_t>(l - 1) * H + y) * S;
      float* m = pyramid + (static_cast<std::size_t>(l) * H + y) * S;
      const std::size_t valid = L + 1 - 2 * half;  // t in [0, valid)
      for (std::size_t t = 0; t < valid; t += kLanes) store8(m + t, max8(load8(a + t), load8(a + t + half)));
    }
  }
  for (std::size_t y = 0; y < H; ++y) {
    int count = 0;
    for (int i = 0; i < plan.kh; ++i) {
      const std::ptrdiff_t yy = static_cast<std::ptrdiff_t>(y) + i - plan.ay;
      const int l = plan.level[static_cast<std::size_t>(i)];
      if (yy < 0 || yy >= static_cast<std::ptrdiff_t>(H) || l < 0) continue;
      const Span s = plan.rows[static_cast<std::size_t>(i)];
      const float* base = pyramid + (static_cast<std::size_t>(l) * H + static_cast<std::size_t>(yy)) * S;
      ptrs[count++] = base + s.begin;
      if (s.end - s.begin != (1 << l)) ptrs[count++] = base + s.end - (1 << l);
    }
    float* out = dst + y * dst_stride;
    std::size_t x = 0;
    for (; x + 4 * kLanes <= plan.wp; x += 4 * kLanes) {  // four independent max chains
      v8f a0 = load8(ptrs[0] + x), a1 = load8(ptrs[0] + x + 8), a2 = load8(ptrs[0] + x + 16),
          a3 = load8(ptrs[0] + x + 24);
      for (int k = 1; k < count; ++k) {
        const float* q = ptrs[k] + x;
        a0 = max8(a0, load8(q));
        a1 = max8(a1, load8(q + 8));
        a2 = max8(a2, load8(q + 16));
        a3 = max8(a3, load8(q + 24));
      }
      store8(out + x, a0);
      store8(out + x + 8, a1);
      store8(out + x + 16, a2);
      store8(out + x + 24, a3);
    }
    for (; x < plan.wp; x += kLanes) {
      v8f acc = load8(ptrs[0] + x);
      for (int k = 1; k < count; ++k) acc = max8(acc, load8(ptrs[k] + x));
      store8(out + x, acc);
    }
  }
}
XFR_MULTIVERSION(dilate_image,
                 (const float* src, const DilatePlan& plan, float* pyramid, const float** ptrs,
                  float* dst, std::size_t dst_stride),
                 (src, plan, pyramid, ptrs, dst, dst_stride))

// ---------------------------------------------------------------------------------------------
// Gaussian: out[x] = sum_j g[j] * base[j][x] over x in [0, width), width a multiple of 8. The
// taps come pre-broadcast (g8: 8 copies of each); the row is cut into blocks of at most NV
// vectors of accumulators, as even as possible, so that enough additions are in flight.
template <int NV>
XFR_INLINE void correlate_block(const float* const* base, const float* g8, int k, std::size_t x,
                                float* out) {
  v8f acc[NV];
  for (int v = 0; v < NV; ++v) acc[v] = splat8(0.f);
  for (int j = 0; j < k; ++j) {
    const v8f gj = load8(g8 + kLanes * static_cast<std::size_t>(j));
    const float* b = base[j] + x;
    for (int v = 0; v < NV; ++v) acc[v] += gj * load8(b + kLanes * static_cast<std::size_t>(v));
  }
  for (int v = 0; v < NV; ++v) store8(out + x + kLanes * static_cast<std::size_t>(v), acc[v]);
}

template <int NV>
XFR_INLINE void correlate(const float* const* base, const float* g8, int k, std::size_t width,
                          float* out) {
  const std::size_t vecs = width / kLanes;
  const std::size_t blocks = (vecs + NV - 1) / NV;
  std::size_t x = 0;
  for (std::size_t b = 0; b < blocks; ++b) {
    const std::size_t nv = vecs / blocks + (b < vecs % blocks ? 1 : 0);
    switch (nv) {
#define XFR_CASE(N) \
  case N:           \
    if constexpr (N <= NV) correlate_block<N>(base, g8, k, x, out); \
    break;
      XFR_CASE(1) XFR_CASE(2) XFR_CASE(3) XFR_CASE(4)
      XFR_CASE(5) XFR_CASE(6) XFR_CASE(7) XFR_CASE(8)
#undef XFR_CASE
      default: break;
    }
    x += nv * kLanes;
  }
}

struct GaussPlan {
  int k = 0, a = 0;
  std::vector<float> g, g8;  // taps, and each tap 8 times
  std::size_t h = 0, w = 0, wp = 0;
  std::vector<std::size_t> col;  // reflect-101 source column of padded position t

  GaussPlan(int size, double sigma, std::size_t H, std::size_t W)
      : k(size), a(size / 2), g(gaussian_kernel(size, sigma)), h(H), w(W) {
    wp = round_up(W, kLanes);
    for (float x : g) g8.insert(g8.end(), kLanes, x);
    for (std::size_t t = 0; t < W + static_cast<std::size_t>(k) - 1; ++t)
      col.push_back(reflect101(static_cast<std::ptrdiff_t>(t) - a, static_cast<std::ptrdiff_t>(W)));
  }
  std::size_t padded_row() const { return wp + static_cast<std::size_t>(k) - 1 + kLanes; }
};

struct GaussScratch {
  std::vector<float> row, tmp, out;
  std::vector<const float*> ptrs;
  explicit GaussScratch(const GaussPlan& p)
      : row(p.padded_row(), 0.f), tmp(p.h * p.wp, 0.f), out(p.wp, 0.f),
        ptrs(static_cast<std::size_t>(p.k)) {}
};

// Horizontal then vertical pass over one image whose rows have src_stride floats. Each output
// row (wp floats, the first W valid) goes to emit(y, row).
template <int NV, class Emit>
XFR_INLINE void gaussian_passes(const float* src, std::size_t src_stride, const GaussPlan& plan,
                                GaussScratch& s, Emit emit) {
  const std::size_t H = plan.h, W = plan.w, wp = plan.wp;
  const std::size_t n_in = W + static_cast<std::size_t>(plan.k) - 1;
  float* row = s.row.data();
  const float** ptrs = s.ptrs.data();
  for (int j = 0; j < plan.k; ++j) ptrs[j] = row + j;
  const std::size_t a = static_cast<std::size_t>(plan.a);
  for (std::size_t y = 0; y < H; ++y) {
    const float* in = src + y * src_stride;
    for (std::size_t t = 0; t < a; ++t) row[t] = in[plan.col[t]];
    std::memcpy(row + a, in, W * sizeof(float));
    for (std::size_t t = a + W; t < n_in; ++t) row[t] = in[plan.col[t]];
    correlate<NV>(ptrs, plan.g8.data(), plan.k, wp, s.tmp.data() + y * wp);
  }
  for (std::size_t y = 0; y < H; ++y) {
    for (int i = 0; i < plan.k; ++i)
      ptrs[i] = s.tmp.data() +
                reflect101(static_cast<std::ptrdiff_t>(y) + i - plan.a, static_cast<std::ptrdiff_t>(H)) * wp;
    correlate<NV>(ptrs, plan.g8.data(), plan.k, wp, s.out.data());
    emit(y, s.out.data());
  }
}

template <int NV>
XFR_INLINE void gaussian_image_impl(const float* src, const GaussPlan& plan, GaussScratch& s,
                                    float* dst) {
  const std::size_t W = plan.w;
  gaussian_passes<NV>(src, W, plan, s, [&](std::size_t y, const float* r) {
    std::memcpy(dst + y * W, r, W * sizeof(float));
  });
}
XFR_MULTIVERSION(gaussian_image,
                 (const float* src, const GaussPlan& plan, GaussScratch& s, float* dst),
                 (src, plan, s, dst))

template <int NV>
XFR_INLINE void smooth_image_impl(const float* src, const DilatePlan& dplan, float* pyramid,
                                  const float** dptrs, float* dilated, const GaussPlan& gplan,
                                  GaussScratch& s, float lo, float hi, float* dst) {
  const std::size_t W = gplan.w, H = gplan.h, plane = H * W;
  dilate_image_impl<NV>(src, dplan, pyramid, dptrs, dilated, dplan.wp);
  // min-max normalise after the dilation: x -> (x - lo) / (hi - lo) is non-decreasing, so it
  // commutes with the max exactly, and the rows are now in cache.
  // (x - lo) / (hi - lo); when hi - lo overflows float (maps spanning more than FLT_MAX), all
  // three terms are halved first (exact), so the result stays finite.
  const float half = std::isfinite(hi - lo) ? 1.f : 0.5f;
  const v8f vh = splat8(half), vlo = splat8(lo * half), vrange = splat8(hi * half - lo * half);
  for (std::size_t p = 0; p < H * dplan.wp; p += kLanes)
    store8(dilated + p, (load8(dilated + p) * vh - vlo) / vrange);
  float lo2 = std::numeric_limits<float>::infinity(), hi2 = -lo2;
  gaussian_passes<NV>(dilated, dplan.wp, gplan, s,
                      [&](std::size_t y, const float* r) {
                        float a, b;
                        min_max(r, W, a, b);
                        lo2 = std::min(lo2, a);
                        hi2 = std::max(hi2, b);
                        std::memcpy(dst + y * W, r, W * sizeof(float));
                      });
  if (!(hi2 > lo2)) {
    std::fill(dst, dst + plane, 0.f);
    return;
  }
  const float range = hi2 - lo2;
  const v8f vlo2 = splat8(lo2), vrange2 = splat8(range);
  std::size_t p = 0;
  for (; p + kLanes <= plane; p += kLanes) store8(dst + p, (load8(dst + p) - vlo2) / vrange2);
  for (; p < plane; ++p) dst[p] = (dst[p] - lo2) / range;
}
XFR_MULTIVERSION(smooth_image,
                 (const float* src, const DilatePlan& dplan, float* pyramid, const float** dptrs,
                  float* dilated, const GaussPlan& gplan, GaussScratch& s, float lo, float hi,
                  float* dst),
                 (src, dplan, pyramid, dptrs, dilated, gplan, s, lo, hi, dst))

void check_element_size(int width, int height, Dims d, const char* what) {
  if (width < 1 || height < 1)
    throw std::invalid_argument(std::string(what) + " must be >= 1, got (" +
                                std::to_string(width) + ", " + std::to_string(height) + ")");
  if (static_cast<std::size_t>(width) > d.w || static_cast<std::size_t>(height) > d.h)
    throw std::invalid_argument(std::string(what) + " (" + std::to_string(width) + ", " +
                                std::to_string(height) + ") (width, height) is larger than the " +
                                std::to_string(d.h) + "x" + std::to_string(d.w) + " images");
}

void check_gaussian(int size, double sigma, Dims d, const char* what) {
  check_element_size(size, size, d, what);
  if (!(sigma > 0) || !std::isfinite(sigma))
    throw std::invalid_argument("sigma must be a finite number > 0, got " + std::to_string(sigma));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
int default_num_threads() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    const int c = CPU_COUNT(&set);
    if (c > 0) return c;
  }
#endif
  const unsigned h = std::thread::hardware_concurrency();
  return h > 0 ? static_cast<int>(h) : 1;
}

void set_num_threads(int n) {
  if (n < 0) throw std::invalid_argument("the number of threads must be >= 1 (0: default)");
  g_threads.store(n);
}

int num_threads() {
  const int n = g_threads.load();
  if (n > 0) return n;
  static const int fallback = default_num_threads();
  return fallback;
}

std::vector<Span> structuring_element(Element shape, int width, int height) {
  if (width < 1 || height < 1) throw std::invalid_argument("structuring element size must be >= 1");
  if (width == 1 && height == 1) shape = Element::Rect;
  int r = 0, c = 0;
  double inv_r2 = 0;
  if (shape == Element::Ellipse) {
    r = height / 2;
    c = width / 2;
    inv_r2 = r ? 1. / (static_cast<double>(r) * r) : 0;
  }
  std::vector<Span> rows(static_cast<std::size_t>(height));
  for (int i = 0; i < height; i++) {
    int j1 = 0, j2 = 0;
    if (shape == Element::Rect) {
      j2 = width;
    } else {
      const int dy = i - r;
      if (std::abs(dy) <= r) {
        // saturate_cast<int>(double) is cvRound: round half to even.
        const int dx = static_cast<int>(std::lrint(c * std::sqrt((r * r - dy * dy) * inv_r2)));
        j1 = std::max(c - dx, 0);
        j2 = std::min(c + dx + 1, width);
      }
    }
    rows[static_cast<std::size_t>(i)] = Span{j1, j2};
  }
  return rows;
}

std::vector<float> gaussian_kernel(int size, double sigma) {
  if (size < 1) throw std::invalid_argument("Gaussian size must be >= 1");
  if (!(sigma > 0) || !std::isfinite(sigma))
    throw std::invalid_argument("sigma must be a finite number > 0, got " + std::to_string(sigma));
  // cv::getGaussianKernel's formula, shifted by the smallest exponent so that no size/sigma
  // underflows to an all-zero kernel (the shift cancels in the normalisation).
  const double scale2x = -0.5 / (sigma * sigma);
  const double x0 = (size % 2) ? 0.0 : 0.5;
  std::vector<double> t(static_cast<std::size_t>(size));
  double sum = 0;
  for (int i = 0; i < size; i++) {
    const double x = i - (size - 1) * 0.5;
    t[static_cast<std::size_t>(i)] = std::exp(scale2x * (x * x - x0 * x0));
    sum += t[static_cast<std::size_t>(i)];
  }
  sum = 1. / sum;
  std::vector<float> g(static_cast<std::size_t>(size));
  for (std::size_t i = 0; i < g.size(); i++) g[i] = static_cast<float>(t[i] * sum);
  return g;
}

void otsu(const float* maps, Dims d, float* thresholds, std::uint8_t* masks) {
  check_dims(d);
  const std::size_t plane = d.plane();
  for_each_image(d.n, 4.0 * static_cast<double>(plane), [&] {
    return [&, levels = std::vector<std::uint8_t>(plane)](std::size_t i) mutable {
      otsu_image(maps + i * plane, plane, i, levels.data(), thresholds + i, masks + i * plane);
    };
  });
}

void combine(const std::uint8_t* a, const std::uint8_t* b, Dims d, SetOp op, std::uint8_t* out) {
  check_dims(d);
  const std::size_t plane = d.plane();
  for_each_image(d.n, static_cast<double>(plane), [&] {
    return [&](std::size_t i) {
      const std::uint8_t* x = a + i * plane;
      const std::uint8_t* y = b + i * plane;
      std::uint8_t* o = out + i * plane;
      switch (op) {
        case SetOp::And:
          for (std::size_t p = 0; p < plane; ++p) o[p] = static_cast<std::uint8_t>((x[p] != 0) & (y[p] != 0));
          break;
        case SetOp::Or:
          for (std::size_t p = 0; p < plane; ++p) o[p] = static_cast<std::uint8_t>((x[p] != 0) | (y[p] != 0));
          break;
        case SetOp::Xor:
          for (std::size_t p = 0; p < plane; ++p) o[p] = static_cast<std::uint8_t>((x[p] != 0) ^ (y[p] != 0));
          break;
      }
    };
  });
}

void strategy_heatmap(const float* map_p, const float* map_g, const std::uint8_t* mask_p,
                      const std::uint8_t* mask_g, Dims d, Strategy strategy, float* out) {
  check_dims(d);
  const std::size_t plane = d.plane();
  const bool in_and = strategy != Strategy::Nium, in_xor = strategy != Strategy::Oim;
  for_each_image(d.n, 2.0 * static_cast<double>(plane), [&] {
    return [&](std::size_t i) {
      const float* a1 = map_p + i * plane;
      const float* a2 = map_g + i * plane;
      if (!all_finite(a1, plane)) throw_not_finite("map_p", i);
      if (!all_finite(a2, plane)) throw_not_finite("map_g", i);
      const std::uint8_t* b1 = mask_p + i * plane;
      const std::uint8_t* b2 = mask_g + i * plane;
      float* o = out + i * plane;
      for (std::size_t p = 0; p < plane; ++p) {
        const bool x = b1[p] != 0, y = b2[p] != 0;
        const float s = (x ? a1[p] : 0.f) + (y ? a2[p] : 0.f);  // B1 A1 + B2 A2
        const float both = in_and ? s / 2.f : 0.f;
        const float one = in_xor ? s : 0.f;
        o[p] = (x && y) ? both : ((x != y) ? one : 0.f);
      }
    };
  });
}

void dilate(const float* maps, Dims d, Element shape, int width, int height, float* out) {
  check_dims(d);
  check_element_size(width, height, d, "dilation size");
  const DilatePlan plan(shape, width, height, d.h, d.w);
  const std::size_t plane = d.plane();
  const double work = static_cast<double>(plane) * (plan.levels + 2.0 * height);
  for_each_image(d.n, work, [&] {
    return [&, pyramid = std::vector<float>(plan.scratch_floats(), 0.f),
            ptrs = std::vector<const float*>(2 * static_cast<std::size_t>(height)),
            rows = std::vector<float>(d.h * plan.wp)](std::size_t i) mutable {
      const float* src = maps + i * plane;
      if (!all_finite(src, plane)) throw_not_finite("maps", i);
      dilate_image(src, plan, pyramid.data(), ptrs.data(), rows.data(), plan.wp);
      for (std::size_t y = 0; y < d.h; ++y)
        std::memcpy(out + i * plane + y * d.w, rows.data() + y * plan.wp, d.w * sizeof(float));
    };
  });
}

void gaussian(const float* maps, Dims d, int size, double sigma, float* out) {
  check_dims(d);
  check_gaussian(size, sigma, d, "Gaussian size");
  const GaussPlan plan(size, sigma, d.h, d.w);
  const std::size_t plane = d.plane();
  for_each_image(d.n, 2.0 * size * static_cast<double>(plane), [&] {
    return [&, s = GaussScratch(plan)](std::size_t i) mutable {
      const float* src = maps + i * plane;
      if (!all_finite(src, plane)) throw_not_finite("maps", i);
      gaussian_image(src, plan, s, out + i * plane);
    };
  });
}

void smooth_heatmap(const float* maps, Dims d, int dilate_w, int dilate_h, int gaussian_size,
                    double sigma, float* out) {
  check_dims(d);
  check_element_size(dilate_w, dilate_h, d, "dilate_size");
  check_gaussian(gaussian_size, sigma, d, "gaussian_size");
  const DilatePlan dplan(Element::Ellipse, dilate_w, dilate_h, d.h, d.w);
  const GaussPlan gplan(gaussian_size, sigma, d.h, d.w);
  const std::size_t plane = d.plane();
  const double work = static_cast<double>(plane) * (2.0 * gaussian_size + dplan.levels + 2.0 * dilate_h);
  for_each_image(d.n, work, [&] {
    return [&, pyramid = std::vector<float>(dplan.scratch_floats(), 0.f),
            ptrs = std::vector<const float*>(2 * static_cast<std::size_t>(dilate_h)),
            dilated = std::vector<float>(d.h * dplan.wp, 0.f),
            s = GaussScratch(gplan)](std::size_t i) mutable {
      const float* src = maps + i * plane;
      float* dst = out + i * plane;
      if (!all_finite(src, plane)) throw_not_finite("maps", i);
      float lo, hi;
      min_max(src, plane, lo, hi);
      if (!(hi > lo)) {  // constant map: min-max normalisation is undefined -> zeros
        std::fill(dst, dst + plane, 0.f);
        return;
      }
      smooth_image(src, dplan, pyramid.data(), ptrs.data(), dilated.data(), gplan, s, lo, hi, dst);
    };
  });
}

}  // namespace xfr
