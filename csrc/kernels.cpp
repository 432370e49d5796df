// xfr kernels, see kernels.hpp. Needs GCC or Clang (vector extensions).
//
// Every per-image routine is an always-inline template over the vector type V and is compiled
// twice (XFR_MULTIVERSION): with 16-byte vectors for the baseline ISA (SSE2 on x86-64, NEON on
// ARM) and with 32-byte vectors under target("avx2"); the AVX2 copy is picked at run time on
// CPUs that have it, so a plain (non -march=native) build is fast on current CPUs.
// Compiled with -ffp-contract=off: no multiply-add is fused behind our back, so Otsu's double
// arithmetic is OpenCV's, bit for bit, whatever the target; and with -fno-trapping-math, so that
// loops with float comparisons vectorise.
#include "kernels.hpp"

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define XFR_X86 1
#endif

#if !defined(__GNUC__) && !defined(__clang__)
#error "the xfr kernels need GCC or Clang (vector extensions)"
#endif

namespace xfr {
namespace {

#define XFR_INLINE inline __attribute__((always_inline))

// Setting the environment variable XFR_KERNELS_BASELINE=1 (before the first call) forces the
// baseline copies, so that tests can check both.
bool baseline_forced() {
  const char* e = std::getenv("XFR_KERNELS_BASELINE");
  return e != nullptr && *e != '\0' && std::strcmp(e, "0") != 0;
}

#if defined(XFR_X86)
#define XFR_AVX2 __attribute__((target("avx2")))
#define XFR_AVX2_FMA __attribute__((target("avx2,fma")))
bool cpu_has_avx2() {
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0 && !baseline_forced();
  }();
  return yes;
}
bool cpu_has_fma() {
  static const bool yes = cpu_has_avx2() && __builtin_cpu_supports("fma") != 0;
  return yes;
}
#else
#define XFR_AVX2
bool cpu_has_avx2() { return false && baseline_forced(); }
#endif

// ---------------------------------------------------------------------------------------------
// Vectors
typedef float v8f __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));
typedef std::int32_t v8i __attribute__((vector_size(32)));
typedef std::int32_t v4i __attribute__((vector_size(16)));
typedef std::uint8_t v8b __attribute__((vector_size(8)));
typedef std::uint8_t v4b __attribute__((vector_size(4)));

template <class V> struct VecTypes;
template <> struct VecTypes<v8f> { typedef v8i I; typedef v8b B; };
template <> struct VecTypes<v4f> { typedef v4i I; typedef v4b B; };
template <class V> using IntsOf = typename VecTypes<V>::I;
template <class V> using BytesOf = typename VecTypes<V>::B;
template <class V> constexpr std::size_t kLanesOf = sizeof(V) / sizeof(float);

constexpr std::size_t kAlign = 8;  // row widths are padded to a multiple of 8 floats
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

template <class V> XFR_INLINE V vload(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class V> XFR_INLINE void vstore(float* p, V v) { std::memcpy(p, &v, sizeof v); }
template <class V> XFR_INLINE V vsplat(float x) { return V{} + x; }
#if defined(__clang__)
template <class V> XFR_INLINE V vmax(V a, V b) { return __builtin_elementwise_max(a, b); }
template <class V> XFR_INLINE V vmin(V a, V b) { return __builtin_elementwise_min(a, b); }
#else
template <class V> XFR_INLINE V vmax(V a, V b) { return a > b ? a : b; }
template <class V> XFR_INLINE V vmin(V a, V b) { return a < b ? a : b; }
#endif

std::size_t round_up(std::size_t x, std::size_t m) { return (x + m - 1) / m * m; }

// Scratch rows start on cache lines: aligned vector loads never straddle two lines.
template <class T>
struct CacheAligned {
  typedef T value_type;
  static constexpr std::align_val_t kAlignment{64};
  CacheAligned() = default;
  template <class U>
  CacheAligned(const CacheAligned<U>&) {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlignment)); }
  void deallocate(T* p, std::size_t) { ::operator delete(p, kAlignment); }
  template <class U>
  bool operator==(const CacheAligned<U>&) const { return true; }
  template <class U>
  bool operator!=(const CacheAligned<U>&) const { return false; }
};
typedef std::vector<float, CacheAligned<float>> Floats;

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

// ---------------------------------------------------------------------------------------------
// Threads
std::atomic<int> g_threads{0};
constexpr double kWorkPerThread = 1 << 17;  // pixel operations that pay for starting a thread

// Runs make_worker() once per thread (per-thread scratch) and calls worker(i) for every image
// i < n. The calling thread is one of the workers. The first exception (lowest image index
// among those seen) is rethrown after all threads joined.
// max_threads > 0 caps the threads at that instead of num_threads().
template <class MakeWorker>
void for_each_image(std::size_t n, double work_per_image, MakeWorker make_worker,
                    int max_threads = 0) {
  const double by_work = std::max(1.0, static_cast<double>(n) * work_per_image / kWorkPerThread);
  const int allowed = max_threads > 0 ? max_threads : num_threads();
  const std::size_t threads = static_cast<std::size_t>(
      std::min({static_cast<double>(allowed), static_cast<double>(n), by_work}));
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

// Compiles the always-inline body `name##_impl<V>` for 16-byte vectors (baseline) and 32-byte
// vectors (AVX2); `name` dispatches on the CPU.
#define XFR_MULTIVERSION(name, params, args)             \
  void name##_base params { name##_impl<v4f> args; }      \
  XFR_AVX2 void name##_avx2 params { name##_impl<v8f> args; } \
  void name params {                                      \
    if (cpu_has_avx2())                                   \
      name##_avx2 args;                                   \
    else                                                  \
      name##_base args;                                   \
  }

// ---------------------------------------------------------------------------------------------
// Scans: finiteness (v - v is 0 for finite v, NaN for NaN and inf) and min / max.
template <class V>
XFR_INLINE bool finite_impl(const float* x, std::size_t n) {
  constexpr std::size_t L = kLanesOf<V>;
  V acc = {};
  std::size_t p = 0;
  for (; p + L <= n; p += L) {
    const V v = vload<V>(x + p);
    acc += v - v;
  }
  float s = 0.f;
  for (std::size_t l = 0; l < L; ++l) s += acc[l];
  for (; p < n; ++p) s += x[p] - x[p];
  return s == 0.f;
}

template <class V>
XFR_INLINE void min_max_impl(const float* x, std::size_t n, float& lo, float& hi) {
  constexpr std::size_t L = kLanesOf<V>;
  std::size_t p = 0;
  lo = hi = x[0];
  if (n >= L) {
    V vlo = vload<V>(x), vhi = vlo;
    for (p = L; p + L <= n; p += L) {
      const V v = vload<V>(x + p);
      vlo = vmin(vlo, v);
      vhi = vmax(vhi, v);
    }
    for (std::size_t l = 0; l < L; ++l) {
      lo = std::min(lo, vlo[l]);
      hi = std::max(hi, vhi[l]);
    }
  }
  for (; p < n; ++p) {
    lo = std::min(lo, x[p]);
    hi = std::max(hi, x[p]);
  }
}

template <class V>
XFR_INLINE void check_finite_impl(const float* x, std::size_t n, bool* ok) {
  *ok = finite_impl<V>(x, n);
}
XFR_MULTIVERSION(check_finite, (const float* x, std::size_t n, bool* ok), (x, n, ok))

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

// Levels uint8(float(255 * v)) by truncation; false when a value is outside [0, 1] or NaN.
template <class V>
XFR_INLINE void otsu_levels_impl(const float* __restrict src, std::size_t count,
                                 std::uint8_t* __restrict levels, bool* ok) {
  std::uint32_t bad = 0;
  for (std::size_t q = 0; q < count; ++q) {  // selects on values only: vectorises
    const float v = src[q];
    const bool in = (v >= 0.f) & (v <= 1.f);  // false for NaN
    bad |= static_cast<std::uint32_t>(!in);
    const float c = in ? v : 0.f;
    levels[q] = static_cast<std::uint8_t>(static_cast<std::int32_t>(c * 255.f));
  }
  *ok = bad == 0;
}
XFR_MULTIVERSION(otsu_levels,
                 (const float* src, std::size_t count, std::uint8_t* levels, bool* ok),
                 (src, count, levels, ok))

void otsu_image(const float* src, std::size_t count, std::size_t image,
                std::uint8_t* __restrict levels, float* threshold,
                std::uint8_t* __restrict mask) {
  bool ok;
  otsu_levels(src, count, levels, &ok);
  if (!ok) {
    check_finite(src, count, &ok);
    if (!ok) throw_not_finite("maps", image);
    std::size_t p = 0;
    while (p < count && src[p] >= 0.f && src[p] <= 1.f) ++p;
    throw std::invalid_argument(image_label("maps", image) + " has a value outside [0, 1] (" +
                                std::to_string(src[p]) +
                                "): Otsu needs maps normalised to [0, 1]");
  }
  std::uint32_t hist[4][256];  // four sub-histograms: no store-to-load stalls
  std::memset(hist, 0, sizeof hist);
  std::size_t p = 0;
  for (; p + 4 <= count; p += 4) {
    ++hist[0][levels[p]];
    ++hist[1][levels[p + 1]];
    ++hist[2][levels[p + 2]];
    ++hist[3][levels[p + 3]];
  }
  for (; p < count; ++p) ++hist[0][levels[p]];
  std::uint32_t h[256];
  for (int i = 0; i < 256; ++i) h[i] = hist[0][i] + hist[1][i] + hist[2][i] + hist[3][i];
  const double t = otsu_level(h, count);
  *threshold = static_cast<float>(t);
  const auto level_t = static_cast<std::uint8_t>(t);
  for (p = 0; p < count; ++p) mask[p] = static_cast<std::uint8_t>(levels[p] > level_t);
}

// ---------------------------------------------------------------------------------------------
// Set operations on masks, and maps combined inside them
template <class V>
XFR_INLINE void combine_image_impl(const std::uint8_t* __restrict x,
                                   const std::uint8_t* __restrict y, std::size_t n, SetOp op,
                                   std::uint8_t* __restrict o) {
  switch (op) {
    case SetOp::Intersection:
      for (std::size_t p = 0; p < n; ++p) o[p] = static_cast<std::uint8_t>((x[p] != 0) & (y[p] != 0));
      break;
    case SetOp::Union:
      for (std::size_t p = 0; p < n; ++p) o[p] = static_cast<std::uint8_t>((x[p] != 0) | (y[p] != 0));
      break;
    case SetOp::SymmetricDifference:
      for (std::size_t p = 0; p < n; ++p) o[p] = static_cast<std::uint8_t>((x[p] != 0) ^ (y[p] != 0));
      break;
  }
}
XFR_MULTIVERSION(combine_image,
                 (const std::uint8_t* x, const std::uint8_t* y, std::size_t n, SetOp op,
                  std::uint8_t* o),
                 (x, y, n, op, o))

template <class V, bool InBoth, bool InOne>
XFR_INLINE void maps_loop(const float* __restrict a1, const float* __restrict a2,
                          const std::uint8_t* __restrict b1, const std::uint8_t* __restrict b2,
                          std::size_t n, float* __restrict o) {
  // Branch-free with 0/1 factors (maps are finite, so 0 * a is a zero): B1 A1 + B2 A2 = s, then
  // s / 2 where both masks are set and s where exactly one is. Exact: each sum adds a zero.
  for (std::size_t p = 0; p < n; ++p) {
    const float x = static_cast<float>(b1[p] != 0), y = static_cast<float>(b2[p] != 0);
    const float s = x * a1[p] + y * a2[p];
    const float both = x * y, one = x + y - 2.f * both;
    o[p] = (InBoth ? both * (s * 0.5f) : 0.f) + (InOne ? one * s : 0.f);
  }
}

// status: 0 done, 1 map_p not finite, 2 map_g not finite
template <class V>
XFR_INLINE void maps_image_impl(const float* a1, const float* a2, const std::uint8_t* b1,
                                const std::uint8_t* b2, std::size_t n, SetOp op, float* o,
                                int* status) {
  *status = !finite_impl<V>(a1, n) ? 1 : (!finite_impl<V>(a2, n) ? 2 : 0);
  if (*status) return;
  switch (op) {
    case SetOp::Intersection: maps_loop<V, true, false>(a1, a2, b1, b2, n, o); break;
    case SetOp::Union: maps_loop<V, true, true>(a1, a2, b1, b2, n, o); break;
    case SetOp::SymmetricDifference: maps_loop<V, false, true>(a1, a2, b1, b2, n, o); break;
  }
}
XFR_MULTIVERSION(maps_image,
                 (const float* a1, const float* a2, const std::uint8_t* b1,
                  const std::uint8_t* b2, std::size_t n, SetOp op, float* o, int* status),
                 (a1, a2, b1, b2, n, op, o, status))

// ---------------------------------------------------------------------------------------------
// Dilation: per structuring-element row a 1-D max over a span. Each image row gets a pyramid
// M_l[t] = max(R[t .. t + 2^l - 1]) of its -inf padded copy R; the max over a span of width w
// is max(M_l[t], M_l[t + w - 2^l]) with 2^l <= w < 2^(l+1) (a sparse table). An output row is
// then the max, over the element's rows, of one or two pyramid rows each. Only the kh rows an
// output row reads are kept, in a ring.
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
    wp = round_up(W, kAlign);
    stride = round_up(wp + static_cast<std::size_t>(kw) - 1 + kAlign, kAlign);
  }
  std::size_t ring() const { return static_cast<std::size_t>(kh); }
  std::size_t scratch_floats() const { return static_cast<std::size_t>(levels) * ring() * stride; }
};

struct DilateScratch {
  Floats pyramid;
  std::vector<const float*> ptrs;
  explicit DilateScratch(const DilatePlan& p)
      : pyramid(p.scratch_floats(), 0.f), ptrs(2 * static_cast<std::size_t>(p.kh)) {}
};

// Writes wp floats per row (the first W valid) to dst rows of dst_stride floats.
template <class V>
XFR_INLINE void dilate_image_impl(const float* src, const DilatePlan& plan, DilateScratch& s,
                                  float* dst, std::size_t dst_stride) {
  constexpr std::size_t L = kLanesOf<V>;
  const std::size_t H = plan.h, W = plan.w, S = plan.stride, K = plan.ring();
  const std::size_t len = W + static_cast<std::size_t>(plan.kw) - 1;
  float* pyramid = s.pyramid.data();
  const float** ptrs = s.ptrs.data();
  auto slot = [&](int l, std::size_t yy) {
    return pyramid + (static_cast<std::size_t>(l) * K + yy % K) * S;
  };
  std::size_t built = 0;  // pyramid rows [0, built) are (or were) in the ring
  for (std::size_t y = 0; y < H; ++y) {
    // Output row y reads image rows y - ay .. y + kh - 1 - ay; a new row's slot held row
    // (new - kh) < y - ay, which no longer matters.
    const std::size_t need = std::min(H, y + static_cast<std::size_t>(plan.kh - plan.ay));
    for (; built < need; ++built) {
      float* r = slot(0, built);
      std::fill(r, r + plan.ax, kNegInf);
      std::memcpy(r + plan.ax, src + built * W, W * sizeof(float));
      std::fill(r + plan.ax + W, r + len, kNegInf);
      for (int l = 1; l < plan.levels; ++l) {
        const std::size_t half = std::size_t{1} << (l - 1);
        const float* a = slot(l - 1, built);
        float* m = slot(l, built);
        const std::size_t valid = len + 1 - 2 * half;  // t in [0, valid)
        for (std::size_t t = 0; t < valid; t += L)
          vstore<V>(m + t, vmax(vload<V>(a + t), vload<V>(a + t + half)));
      }
    }
    int count = 0;
    for (int i = 0; i < plan.kh; ++i) {
      const std::ptrdiff_t yy = static_cast<std::ptrdiff_t>(y) + i - plan.ay;
      const int l = plan.level[static_cast<std::size_t>(i)];
      if (yy < 0 || yy >= static_cast<std::ptrdiff_t>(H) || l < 0) continue;
      const Span sp = plan.rows[static_cast<std::size_t>(i)];
      const float* base = slot(l, static_cast<std::size_t>(yy));
      ptrs[count++] = base + sp.begin;
      if (sp.end - sp.begin != (1 << l)) ptrs[count++] = base + sp.end - (1 << l);
    }
    float* out = dst + y * dst_stride;
    std::size_t x = 0;
    for (; x + 4 * L <= plan.wp; x += 4 * L) {  // four independent max chains
      V a0 = vload<V>(ptrs[0] + x), a1 = vload<V>(ptrs[0] + x + L),
        a2 = vload<V>(ptrs[0] + x + 2 * L), a3 = vload<V>(ptrs[0] + x + 3 * L);
      for (int k = 1; k < count; ++k) {
        const float* q = ptrs[k] + x;
        a0 = vmax(a0, vload<V>(q));
        a1 = vmax(a1, vload<V>(q + L));
        a2 = vmax(a2, vload<V>(q + 2 * L));
        a3 = vmax(a3, vload<V>(q + 3 * L));
      }
      vstore<V>(out + x, a0);
      vstore<V>(out + x + L, a1);
      vstore<V>(out + x + 2 * L, a2);
      vstore<V>(out + x + 3 * L, a3);
    }
    for (; x < plan.wp; x += L) {
      V acc = vload<V>(ptrs[0] + x);
      for (int k = 1; k < count; ++k) acc = vmax(acc, vload<V>(ptrs[k] + x));
      vstore<V>(out + x, acc);
    }
  }
}

template <class V>
XFR_INLINE void dilate_checked_impl(const float* src, const DilatePlan& plan, DilateScratch& s,
                                    float* dst, std::size_t dst_stride, bool* ok) {
  *ok = finite_impl<V>(src, plan.h * plan.w);
  if (*ok) dilate_image_impl<V>(src, plan, s, dst, dst_stride);
}
XFR_MULTIVERSION(dilate_checked,
                 (const float* src, const DilatePlan& plan, DilateScratch& s, float* dst,
                  std::size_t dst_stride, bool* ok),
                 (src, plan, s, dst, dst_stride, ok))

// ---------------------------------------------------------------------------------------------
// Gaussian: out[x] = sum_j g[j] * base[j][x] over x in [0, width), width a multiple of 8. The
// row is cut into blocks of at most 8 vectors of accumulators, as even as possible, so that
// enough additions are in flight.
template <class V, int NV>
XFR_INLINE void correlate_block(const float* const* base, const float* g, int k, std::size_t x,
                                float* out) {
  constexpr std::size_t L = kLanesOf<V>;
  V acc[NV];
  for (int v = 0; v < NV; ++v) acc[v] = V{};
  for (int j = 0; j < k; ++j) {
    const V gj = vsplat<V>(g[j]);
    const float* b = base[j] + x;
    for (int v = 0; v < NV; ++v) acc[v] += gj * vload<V>(b + L * static_cast<std::size_t>(v));
  }
  for (int v = 0; v < NV; ++v) vstore<V>(out + x + L * static_cast<std::size_t>(v), acc[v]);
}

template <class V>
XFR_INLINE void correlate(const float* const* base, const float* g, int k, std::size_t width,
                          float* out) {
  constexpr std::size_t L = kLanesOf<V>;
  constexpr std::size_t kMax = 8;
  const std::size_t vecs = width / L;
  const std::size_t blocks = (vecs + kMax - 1) / kMax;
  std::size_t x = 0;
  for (std::size_t b = 0; b < blocks; ++b) {
    const std::size_t nv = vecs / blocks + (b < vecs % blocks ? 1 : 0);
    switch (nv) {
      case 1: correlate_block<V, 1>(base, g, k, x, out); break;
      case 2: correlate_block<V, 2>(base, g, k, x, out); break;
      case 3: correlate_block<V, 3>(base, g, k, x, out); break;
      case 4: correlate_block<V, 4>(base, g, k, x, out); break;
      case 5: correlate_block<V, 5>(base, g, k, x, out); break;
      case 6: correlate_block<V, 6>(base, g, k, x, out); break;
      case 7: correlate_block<V, 7>(base, g, k, x, out); break;
      default: correlate_block<V, 8>(base, g, k, x, out); break;
    }
    x += nv * L;
  }
}

struct GaussPlan {
  int k = 0, a = 0;
  std::vector<float> g;
  std::size_t h = 0, w = 0, wp = 0;
  std::vector<std::size_t> col;  // reflect-101 source column of padded position t

  bool symmetric = true;  // g[j] == g[k - 1 - j]: the AVX2 + FMA pass may pair the taps

  GaussPlan(int size, double sigma, std::size_t H, std::size_t W, KernelCentre centre)
      : k(size), a(size / 2), g(gaussian_kernel(size, sigma, centre)), h(H), w(W),
        symmetric(centre == KernelCentre::Middle || size % 2 == 1) {
    wp = round_up(W, kAlign);
    for (std::size_t t = 0; t < W + static_cast<std::size_t>(k) - 1; ++t)
      col.push_back(reflect101(static_cast<std::ptrdiff_t>(t) - a, static_cast<std::ptrdiff_t>(W)));
  }
  std::size_t padded_row() const { return wp + static_cast<std::size_t>(k) - 1 + kAlign; }
};

struct GaussScratch {
  Floats row, tmp, out, xt, tt;  // xt, tt: transposed image and pass (AVX2 + FMA path)
  std::vector<const float*> ptrs;
  explicit GaussScratch(const GaussPlan& p)
      : row(p.padded_row(), 0.f), tmp((p.h + static_cast<std::size_t>(p.k) - 1) * p.wp, 0.f),
        out(p.h * p.wp, 0.f), ptrs(static_cast<std::size_t>(p.k)) {
#if defined(XFR_X86)
    if (cpu_has_fma()) {
      const std::size_t hp = round_up(p.h, kAlign);
      xt.assign((p.w + static_cast<std::size_t>(p.k) - 1) * hp, 0.f);
      tt.assign(p.w * hp, 0.f);
    }
#endif
  }
};

#if defined(XFR_X86)
// The vertical pass on AVX2 + FMA CPUs: out[y][x] = sum_i g[i] in[y + i][x] for y < rows,
// x < width (a multiple of 8), with `in` already padded to rows + k - 1 rows and g symmetric.
// Two output rows at a time share their input rows, each pair of taps g[j] = g[k - 1 - j] costs
// one addition and one fused multiply-add, and four partial sums per row hide the FMA latency:
// about half the loads and arithmetic of the generic pass.
XFR_AVX2_FMA void vertical_symmetric_fma(const float* in, std::size_t stride, std::size_t rows,
                                         const float* g, int k, std::size_t width, float* out) {
  const int pairs = k / 2;
  const bool odd = (k & 1) != 0;
  const std::ptrdiff_t S = static_cast<std::ptrdiff_t>(stride);
  std::size_t y = 0;
  for (; y + 2 <= rows; y += 2) {
    for (std::size_t x = 0; x < width; x += 8) {
      const float* pa = in + y * stride + x;                                   // row y + j
      const float* pb = in + (y + static_cast<std::size_t>(k) - 1) * stride + x;  // y + k-1-j
      __m256 ra = _mm256_loadu_ps(pa), rb1 = _mm256_loadu_ps(pb + S);
      __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      __m256 b0 = a0, b1 = a0, b2 = a0, b3 = a0;
#define XFR_STEP(J, A, B)                                                  \
  {                                                                        \
    __m256 ra1 = _mm256_loadu_ps(pa + ((J) + 1) * S);                      \
    __m256 rb = _mm256_loadu_ps(pb - (J) * S);                             \
    __asm__("" : "+x"(ra1), "+x"(rb)); /* keep them: carried, not reloaded */ \
    const __m256 gj = _mm256_broadcast_ss(g + (J));                        \
    A = _mm256_fmadd_ps(gj, _mm256_add_ps(ra, rb), A);                     \
    B = _mm256_fmadd_ps(gj, _mm256_add_ps(ra1, rb1), B);                   \
    ra = ra1;                                                              \
    rb1 = rb;                                                              \
  }
      int j = 0;
      for (; j + 4 <= pairs; j += 4) {
        XFR_STEP(j, a0, b0)
        XFR_STEP(j + 1, a1, b1)
        XFR_STEP(j + 2, a2, b2)
        XFR_STEP(j + 3, a3, b3)
      }
      for (; j < pairs; ++j) XFR_STEP(j, a0, b0)
#undef XFR_STEP
      if (odd) {  // middle tap: ra is row y + pairs, rb1 row y + 1 + pairs
        const __m256 gm = _mm256_broadcast_ss(g + pairs);
        a1 = _mm256_fmadd_ps(gm, ra, a1);
        b1 = _mm256_fmadd_ps(gm, rb1, b1);
      }
      _mm256_storeu_ps(out + y * width + x,
                       _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
      _mm256_storeu_ps(out + (y + 1) * width + x,
                       _mm256_add_ps(_mm256_add_ps(b0, b1), _mm256_add_ps(b2, b3)));
    }
  }
  for (; y < rows; ++y) {  // the last row of an odd count
    for (std::size_t x = 0; x < width; x += 8) {
      const float* p = in + y * stride + x;
      __m256 a0 = _mm256_setzero_ps(), a1 = a0;
      for (int j = 0; j < pairs; ++j) {
        const __m256 s2 = _mm256_add_ps(_mm256_loadu_ps(p + j * S),
                                        _mm256_loadu_ps(p + (k - 1 - j) * S));
        if (j & 1)
          a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(g + j), s2, a1);
        else
          a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(g + j), s2, a0);
      }
      if (odd) a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(g + pairs), _mm256_loadu_ps(p + pairs * S), a0);
      _mm256_storeu_ps(out + y * width + x, _mm256_add_ps(a0, a1));
    }
  }
}

// dst[c][r] = src[r][c] for r < rows, c < cols: 8x8 blocks in registers, scalar edges.
XFR_AVX2 void transpose(const float* src, std::size_t rows, std::size_t cols,
                        std::size_t src_stride, float* dst, std::size_t dst_stride) {
  std::size_t r = 0;
  for (; r + 8 <= rows; r += 8) {
    std::size_t c = 0;
    for (; c + 8 <= cols; c += 8) {
      const float* p = src + r * src_stride + c;
      const __m256 r0 = _mm256_loadu_ps(p), r1 = _mm256_loadu_ps(p + src_stride),
                   r2 = _mm256_loadu_ps(p + 2 * src_stride), r3 = _mm256_loadu_ps(p + 3 * src_stride),
                   r4 = _mm256_loadu_ps(p + 4 * src_stride), r5 = _mm256_loadu_ps(p + 5 * src_stride),
                   r6 = _mm256_loadu_ps(p + 6 * src_stride), r7 = _mm256_loadu_ps(p + 7 * src_stride);
      const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1),
                   t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3),
                   t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
                   t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
      const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
                   u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE),
                   u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
                   u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
      float* q = dst + c * dst_stride + r;
      _mm256_storeu_ps(q, _mm256_permute2f128_ps(u0, u4, 0x20));
      _mm256_storeu_ps(q + dst_stride, _mm256_permute2f128_ps(u1, u5, 0x20));
      _mm256_storeu_ps(q + 2 * dst_stride, _mm256_permute2f128_ps(u2, u6, 0x20));
      _mm256_storeu_ps(q + 3 * dst_stride, _mm256_permute2f128_ps(u3, u7, 0x20));
      _mm256_storeu_ps(q + 4 * dst_stride, _mm256_permute2f128_ps(u0, u4, 0x31));
      _mm256_storeu_ps(q + 5 * dst_stride, _mm256_permute2f128_ps(u1, u5, 0x31));
      _mm256_storeu_ps(q + 6 * dst_stride, _mm256_permute2f128_ps(u2, u6, 0x31));
      _mm256_storeu_ps(q + 7 * dst_stride, _mm256_permute2f128_ps(u3, u7, 0x31));
    }
    for (; c < cols; ++c)
      for (std::size_t i = 0; i < 8; ++i) dst[c * dst_stride + r + i] = src[(r + i) * src_stride + c];
  }
  for (; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c) dst[c * dst_stride + r] = src[r * src_stride + c];
}
#endif

// Copies the reflect-101 rows of a buffer whose rows a .. a + n - 1 hold the n real ones, so
// that row t of the (n + k - 1) rows is real row reflect101(t - a).
XFR_INLINE void reflect_rows(float* buf, std::size_t stride, std::size_t n, int k, int a) {
  const std::size_t ua = static_cast<std::size_t>(a);
  for (std::size_t t = 0; t < n + static_cast<std::size_t>(k) - 1; ++t) {
    if (t >= ua && t < ua + n) continue;
    const std::size_t from =
        ua + reflect101(static_cast<std::ptrdiff_t>(t) - a, static_cast<std::ptrdiff_t>(n));
    std::memcpy(buf + t * stride, buf + from * stride, stride * sizeof(float));
  }
}

// Horizontal pass into the rows a .. a + H - 1 of the padded buffer tmp, reflect-101 rows
// above and below, then the vertical pass. Each output row (wp floats, the first W valid)
// goes to emit(y, row).
template <class V, class Emit>
XFR_INLINE void gaussian_passes(const float* src, std::size_t src_stride, const GaussPlan& plan,
                                GaussScratch& s, Emit emit) {
  const std::size_t H = plan.h, W = plan.w, wp = plan.wp;
  const std::size_t k = static_cast<std::size_t>(plan.k);
  const std::size_t a = static_cast<std::size_t>(plan.a);
  float* tmp = s.tmp.data();
  float* out = s.out.data();
#if defined(XFR_X86)
  if constexpr (sizeof(V) == 32) {
    if (plan.symmetric && cpu_has_fma()) {
      // Both passes vertical: the rows pass runs on the transposed image.
      const std::size_t hp = round_up(H, kAlign);
      float* xt = s.xt.data();
      float* tt = s.tt.data();
      transpose(src, H, W, src_stride, xt + a * hp, hp);
      reflect_rows(xt, hp, W, plan.k, plan.a);
      vertical_symmetric_fma(xt, hp, W, plan.g.data(), plan.k, hp, tt);
      transpose(tt, W, H, hp, tmp + a * wp, wp);
      reflect_rows(tmp, wp, H, plan.k, plan.a);
      vertical_symmetric_fma(tmp, wp, H, plan.g.data(), plan.k, wp, out);
      for (std::size_t y = 0; y < H; ++y) emit(y, out + y * wp);
      return;
    }
  }
#endif
  const std::size_t n_in = W + k - 1;
  float* row = s.row.data();
  const float** ptrs = s.ptrs.data();
  for (std::size_t j = 0; j < k; ++j) ptrs[j] = row + j;
  for (std::size_t y = 0; y < H; ++y) {
    const float* in = src + y * src_stride;
    for (std::size_t t = 0; t < a; ++t) row[t] = in[plan.col[t]];
    std::memcpy(row + a, in, W * sizeof(float));
    for (std::size_t t = a + W; t < n_in; ++t) row[t] = in[plan.col[t]];
    correlate<V>(ptrs, plan.g.data(), plan.k, wp, tmp + (y + a) * wp);
  }
  reflect_rows(tmp, wp, H, plan.k, plan.a);
  for (std::size_t y = 0; y < H; ++y) {
    for (std::size_t i = 0; i < k; ++i) ptrs[i] = tmp + (y + i) * wp;
    correlate<V>(ptrs, plan.g.data(), plan.k, wp, out + y * wp);
  }
  for (std::size_t y = 0; y < H; ++y) emit(y, out + y * wp);
}

template <class V>
XFR_INLINE void gaussian_image_impl(const float* src, const GaussPlan& plan, GaussScratch& s,
                                    float* dst, bool* ok) {
  const std::size_t W = plan.w;
  *ok = finite_impl<V>(src, plan.h * W);
  if (!*ok) return;
  gaussian_passes<V>(src, W, plan, s, [&](std::size_t y, const float* r) {
    std::memcpy(dst + y * W, r, W * sizeof(float));
  });
}
XFR_MULTIVERSION(gaussian_image,
                 (const float* src, const GaussPlan& plan, GaussScratch& s, float* dst, bool* ok),
                 (src, plan, s, dst, ok))

// ---------------------------------------------------------------------------------------------
// The fused chain, all in the per-thread scratch (cache) of one image.
template <class V>
XFR_INLINE void smooth_image_impl(const float* src, const DilatePlan& dplan, DilateScratch& ds,
                                  float* dilated, const GaussPlan& gplan, GaussScratch& gs,
                                  float* dst, bool* ok) {
  constexpr std::size_t L = kLanesOf<V>;
  const std::size_t W = gplan.w, H = gplan.h, plane = H * W;
  *ok = finite_impl<V>(src, plane);
  if (!*ok) return;
  float lo, hi;
  min_max_impl<V>(src, plane, lo, hi);
  if (!(hi > lo)) {  // constant map: min-max normalisation is undefined -> zeros
    std::fill(dst, dst + plane, 0.f);
    return;
  }
  dilate_image_impl<V>(src, dplan, ds, dilated, dplan.wp);
  // Min-max normalise after the dilation: x -> (x - lo) / (hi - lo) is non-decreasing, so it
  // commutes with the max exactly, and the rows are now in cache. When hi - lo overflows float
  // (maps spanning more than FLT_MAX) all three terms are halved first (exact).
  const float half = std::isfinite(hi - lo) ? 1.f : 0.5f;
  const V vh = vsplat<V>(half), vlo = vsplat<V>(lo * half), vr = vsplat<V>(hi * half - lo * half);
  for (std::size_t p = 0; p < H * dplan.wp; p += L)
    vstore<V>(dilated + p, (vload<V>(dilated + p) * vh - vlo) / vr);
  float lo2 = std::numeric_limits<float>::infinity(), hi2 = -lo2;
  gaussian_passes<V>(dilated, dplan.wp, gplan, gs, [&](std::size_t y, const float* r) {
    float a, b;
    min_max_impl<V>(r, W, a, b);
    lo2 = std::min(lo2, a);
    hi2 = std::max(hi2, b);
    std::memcpy(dst + y * W, r, W * sizeof(float));
  });
  if (!(hi2 > lo2)) {
    std::fill(dst, dst + plane, 0.f);
    return;
  }
  const float range = hi2 - lo2;
  const V vlo2 = vsplat<V>(lo2), vr2 = vsplat<V>(range);
  std::size_t p = 0;
  for (; p + L <= plane; p += L) vstore<V>(dst + p, (vload<V>(dst + p) - vlo2) / vr2);
  for (; p < plane; ++p) dst[p] = (dst[p] - lo2) / range;
}
XFR_MULTIVERSION(smooth_image,
                 (const float* src, const DilatePlan& dplan, DilateScratch& ds, float* dilated,
                  const GaussPlan& gplan, GaussScratch& gs, float* dst, bool* ok),
                 (src, dplan, ds, dilated, gplan, gs, dst, ok))

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

std::vector<float> gaussian_kernel(int size, double sigma, KernelCentre centre) {
  if (size < 1) throw std::invalid_argument("Gaussian size must be >= 1");
  if (!(sigma > 0) || !std::isfinite(sigma))
    throw std::invalid_argument("sigma must be a finite number > 0, got " + std::to_string(sigma));
  // The Gaussian at each tap's offset from the peak, shifted by the smallest exponent so that
  // no size/sigma underflows to an all-zero kernel (the shift cancels in the normalisation).
  const bool middle = centre == KernelCentre::Middle || size % 2 == 1;
  const double peak = middle ? (size - 1) * 0.5 : static_cast<double>((size + 1) / 2 - 1);
  const double scale2x = -0.5 / (sigma * sigma);
  const double x0 = middle && size % 2 == 0 ? 0.5 : 0.0;
  std::vector<double> t(static_cast<std::size_t>(size));
  double sum = 0;
  for (int i = 0; i < size; i++) {
    const double x = i - peak;
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
  // Memory-bound: a second thread only pays for very large batches.
  for_each_image(d.n, static_cast<double>(plane) / 64, [&] {
    return [a, b, out, plane, op](std::size_t i) {
      combine_image(a + i * plane, b + i * plane, plane, op, out + i * plane);
    };
  });
}

void combine_maps(const float* map_p, const float* map_g, const std::uint8_t* mask_p,
                  const std::uint8_t* mask_g, Dims d, SetOp op, float* out) {
  check_dims(d);
  const std::size_t plane = d.plane();
  for_each_image(d.n, 2.0 * static_cast<double>(plane), [&] {
    return [=](std::size_t i) {
      const std::size_t o = i * plane;
      int status = 0;
      maps_image(map_p + o, map_g + o, mask_p + o, mask_g + o, plane, op, out + o, &status);
      if (status) throw_not_finite(status == 1 ? "map_p" : "map_g", i);
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
    return [&, s = DilateScratch(plan), rows = Floats(d.h * plan.wp)](
               std::size_t i) mutable {
      bool ok;
      dilate_checked(maps + i * plane, plan, s, rows.data(), plan.wp, &ok);
      if (!ok) throw_not_finite("maps", i);
      for (std::size_t y = 0; y < d.h; ++y)
        std::memcpy(out + i * plane + y * d.w, rows.data() + y * plan.wp, d.w * sizeof(float));
    };
  });
}

void gaussian(const float* maps, Dims d, int size, double sigma, float* out,
              KernelCentre centre) {
  check_dims(d);
  check_gaussian(size, sigma, d, "Gaussian size");
  const GaussPlan plan(size, sigma, d.h, d.w, centre);
  const std::size_t plane = d.plane();
  for_each_image(d.n, 2.0 * size * static_cast<double>(plane), [&] {
    return [&, s = GaussScratch(plan)](std::size_t i) mutable {
      bool ok;
      gaussian_image(maps + i * plane, plan, s, out + i * plane, &ok);
      if (!ok) throw_not_finite("maps", i);
    };
  });
}

void smooth_heatmap(const float* maps, Dims d, int dilate_w, int dilate_h, int gaussian_size,
                    double sigma, float* out, KernelCentre centre) {
  check_dims(d);
  check_element_size(dilate_w, dilate_h, d, "dilate_size");
  check_gaussian(gaussian_size, sigma, d, "gaussian_size");
  const DilatePlan dplan(Element::Ellipse, dilate_w, dilate_h, d.h, d.w);
  const GaussPlan gplan(gaussian_size, sigma, d.h, d.w, centre);
  const std::size_t plane = d.plane();
  const double work =
      static_cast<double>(plane) * (2.0 * gaussian_size + dplan.levels + 2.0 * dilate_h);
  for_each_image(d.n, work, [&] {
    return [&, ds = DilateScratch(dplan), dilated = Floats(d.h * dplan.wp, 0.f),
            gs = GaussScratch(gplan)](std::size_t i) mutable {
      bool ok;
      smooth_image(maps + i * plane, dplan, ds, dilated.data(), gplan, gs, out + i * plane, &ok);
      if (!ok) throw_not_finite("maps", i);
    };
  });
}

// ---------------------------------------------------------------------------------------------
// Relevance propagation: element-wise, on the calling thread (and more for millions of values).

namespace {

// Values a thread must have to be worth starting one: a thread costs tens of microseconds to
// start and competes with torch's own (spinning) threads for the cores, while one pass over a
// million values takes about a millisecond; the steps of one LRP chunk (4 faces) stay on the
// calling thread.
constexpr std::size_t kValuesPerThread = std::size_t{1} << 20;

// Written as the torch code is: den = b + eps; den == 0 -> eps; a / den; b == 0 -> 0.
template <class T>
XFR_INLINE T guarded_quotient(T a, T b) {
  const T eps = static_cast<T>(1e-9);
  T den = b + eps;
  den = den == T(0) ? eps : den;
  const T q = a / den;
  return b == T(0) ? T(0) : q;
}

// body(begin, end) over [0, n) in at most `threads` equal parts of >= kValuesPerThread values.
template <class Body>
void for_each_block(std::size_t n, int threads, Body body) {
  if (threads < 1) throw std::invalid_argument("threads must be >= 1");
  const std::size_t parts =
      std::max<std::size_t>(1, std::min<std::size_t>(threads, n / kValuesPerThread));
  const std::size_t per = (n + parts - 1) / parts;
  for_each_image(
      parts, kWorkPerThread,
      [&] {
        return [&](std::size_t i) { body(i * per, std::min(n, (i + 1) * per)); };
      },
      static_cast<int>(parts));
}

template <class T>
XFR_INLINE void safe_divide_range(const T* a, const T* b, std::size_t begin, std::size_t end, T* out) {
  for (std::size_t i = begin; i < end; ++i) out[i] = guarded_quotient(a[i], b[i]);
}

template <class T>
XFR_INLINE void alpha_beta_range(const T* r, const T* zs, const T* za, std::size_t begin, std::size_t end,
                      T alpha, T one_minus_alpha, bool inhibitors, T* sgn, T* ab) {
  const T half = static_cast<T>(0.5);
  if (!inhibitors) {
    for (std::size_t i = begin; i < end; ++i) {
      const T u = guarded_quotient(r[i], (zs[i] + za[i]) * half);
      sgn[i] = u;
      ab[i] = u;
    }
    return;
  }
  for (std::size_t i = begin; i < end; ++i) {
    const T u = guarded_quotient(r[i], (zs[i] + za[i]) * half) * alpha;
    const T t = guarded_quotient(r[i], (zs[i] - za[i]) * half) * one_minus_alpha;
    sgn[i] = u + t;
    ab[i] = u - t;
  }
}

// The same loops compiled for AVX2 (the plain ones: the baseline), chosen at run time.
template <class T>
XFR_AVX2 void safe_divide_range_avx2(const T* a, const T* b, std::size_t begin, std::size_t end,
                                     T* out) {
  safe_divide_range(a, b, begin, end, out);
}
template <class T>
XFR_AVX2 void alpha_beta_range_avx2(const T* r, const T* zs, const T* za, std::size_t begin,
                                    std::size_t end, T alpha, T one_minus_alpha,
                                    bool inhibitors, T* sgn, T* ab) {
  alpha_beta_range(r, zs, za, begin, end, alpha, one_minus_alpha, inhibitors, sgn, ab);
}

}  // namespace

template <class T>
void safe_divide(const T* a, const T* b, std::size_t n, T* out, int threads) {
  for_each_block(n, threads, [&](std::size_t begin, std::size_t end) {
    if (cpu_has_avx2()) return safe_divide_range_avx2(a, b, begin, end, out);
    safe_divide_range(a, b, begin, end, out);
  });
}

template <class T>
void alpha_beta_shares(const T* relevance, const T* z_signed, const T* z_abs, std::size_t n,
                       double alpha, T* signed_share, T* absolute_share, int threads) {
  if (!(alpha > 0) || !std::isfinite(alpha))
    throw std::invalid_argument("alpha must be a finite number > 0, got " + std::to_string(alpha));
  // As torch multiplies a T tensor by a Python float: the factor rounded to T.
  const T a = static_cast<T>(alpha), b = static_cast<T>(1.0 - alpha);
  const bool inhibitors = alpha != 1.0;
  for_each_block(n, threads, [&](std::size_t begin, std::size_t end) {
    if (cpu_has_avx2())
      return alpha_beta_range_avx2(relevance, z_signed, z_abs, begin, end, a, b, inhibitors,
                                   signed_share, absolute_share);
    alpha_beta_range(relevance, z_signed, z_abs, begin, end, a, b, inhibitors, signed_share,
                     absolute_share);
  });
}

template void safe_divide<float>(const float*, const float*, std::size_t, float*, int);
template void safe_divide<double>(const double*, const double*, std::size_t, double*, int);
template void alpha_beta_shares<float>(const float*, const float*, const float*, std::size_t,
                                       double, float*, float*, int);
template void alpha_beta_shares<double>(const double*, const double*, const double*,
                                        std::size_t, double, double*, double*, int);

}  // namespace xfr
