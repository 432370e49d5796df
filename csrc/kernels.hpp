// xfr kernels: the heatmap chain of the paper (Sec. 3.3; docs/method.md, "Mask strategies"),
// batched over [N, H, W] images, C++17, free of Python. The pybind11 module (bindings.cpp)
// wraps these functions as xfr._kernels; xfr.kernels is the typed, validating facade.
//
// Conventions shared by every function:
// - Images are C-contiguous, row-major; a batch is N images of H rows of W floats.
// - Masks are bytes: zero is false, anything else true; masks written here are 0 or 1.
// - Work is spread over the images with std::thread (set_num_threads); the calling thread
//   takes part, so a batch of one image never starts a thread.
// - Bad values (NaN, inf, out of range) and bad sizes throw std::invalid_argument naming the
//   problem; nothing is written that the caller may rely on when an exception is thrown.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace xfr {

struct Dims {
  std::size_t n;  // images
  std::size_t h;  // rows
  std::size_t w;  // columns
  std::size_t plane() const { return h * w; }
  std::size_t size() const { return n * h * w; }
};

// The set operations of two masks: intersection (a AND b), union (a OR b) and symmetric
// difference (a XOR b). The kernels know no mask strategy: a strategy picks its operation.
enum class SetOp { Intersection, Union, SymmetricDifference };
enum class Element { Rect, Ellipse };

// One row of a structuring element: the columns [begin, end) are set.
struct Span {
  int begin;
  int end;
};

// Threads used by the batched kernels: n >= 1 sets it, n == 0 restores the default (the CPUs
// this process may run on).
void set_num_threads(int n);
int num_threads();
int default_num_threads();

// The rows of cv::getStructuringElement(shape, Size(width, height)) (anchor at the centre,
// (width / 2, height / 2)), reproduced exactly, rounding included.
std::vector<Span> structuring_element(Element shape, int width, int height);

// Where the peak of an even-sized Gaussian kernel lies (odd sizes: the middle tap either way).
//   Middle:  g[i] ~ exp(-(i - (size - 1) / 2)^2 / (2 sigma^2)), cv::getGaussianKernel's taps,
//            symmetric, peak between taps size/2 - 1 and size/2;
//   Authors: g[i] ~ exp(-(i - c)^2 / (2 sigma^2)) with c = (size + 1) / 2 - 1 (integer
//            division): the taps of np.mgrid[-size//2 + 1 : size//2 + 1], as the paper's
//            authors build their kernel; for size 56 the peak is tap 27 and the taps are
//            asymmetric (x = -27 .. 28). docs/method.md, "Smoothing".
enum class KernelCentre { Middle, Authors };

// The 1-D Gaussian of gaussian() normalised to sum 1 (computed in double like
// cv::getGaussianKernel, returned as float). The 2-D kernel of gaussian() is the outer
// product g g^T, which also sums to 1.
std::vector<float> gaussian_kernel(int size, double sigma,
                                   KernelCentre centre = KernelCentre::Middle);

// Otsu threshold per image (256 bins) on level = uint8(float(255 * map)) (truncation, as
// NumPy's astype(uint8)); maps must lie in [0, 1]. thresholds[i] is OpenCV's Otsu level t in
// 0..255 and masks = level > t, as cv::threshold(level, THRESH_BINARY | THRESH_OTSU), whose
// arithmetic is reproduced exactly. A constant map gives t = 0 (mask = level > 0).
void otsu(const float* maps, Dims d, float* thresholds, std::uint8_t* masks);

// out = a op b, elementwise.
void combine(const std::uint8_t* a, const std::uint8_t* b, Dims d, SetOp op, std::uint8_t* out);

// The two maps combined inside the mask B1 op B2, with B1 = mask_p, B2 = mask_g, A1 = map_p,
// A2 = map_g: (B1 A1 + B2 A2) / 2 where both masks are set (their mean), B1 A1 + B2 A2 where
// exactly one is (that map's value), zero elsewhere. Intersection keeps the first part only,
// SymmetricDifference the second only, Union both. Maps must be finite.
void combine_maps(const float* map_p, const float* map_g, const std::uint8_t* mask_p,
                  const std::uint8_t* mask_g, Dims d, SetOp op, float* out);

// Grayscale dilation equal to cv::dilate(src, getStructuringElement(shape, (width, height)))
// with the default anchor and border (pixels outside the image never win). 1 <= width <= W,
// 1 <= height <= H. Maps must be finite.
void dilate(const float* maps, Dims d, Element shape, int width, int height, float* out);

// Separable Gaussian correlation with gaussian_kernel(size, sigma) on rows and columns, anchor
// size / 2, reflect-101 borders: cv::filter2D(src, -1, g g^T, BORDER_REFLECT_101).
// 1 <= size <= min(H, W), sigma > 0. Maps must be finite.
void gaussian(const float* maps, Dims d, int size, double sigma, float* out,
              KernelCentre centre = KernelCentre::Middle);

// Fused per image: min-max normalise -> dilate (ellipse, dilate_w x dilate_h) -> gaussian
// (gaussian_size, sigma) -> min-max normalise. A map that is constant at either min-max step
// gives zeros.
void smooth_heatmap(const float* maps, Dims d, int dilate_w, int dilate_h, int gaussian_size,
                    double sigma, float* out, KernelCentre centre = KernelCentre::Middle);

// Relevance propagation (docs/method.md, "LRP rules"), element by element over n values of
// float or double, each in one pass over memory: the same IEEE operations in the same order as
// the torch code they replace (xfr.kernels.relevance), so the results are equal bit for bit.
// They use at most `threads` threads (>= 1; the caller's torch threads), not set_num_threads,
// and start one only for every million values.
//
// safe_divide: out = a / den with den = b + 1e-9 (den = 1e-9 where that sum is 0), and 0 where
// b == 0: the guard of Chefer et al.'s code, which the paper's authors ran.
template <class T>
void safe_divide(const T* a, const T* b, std::size_t n, T* out, int threads);

// The alpha-beta rule's coefficients of one linear layer (beta = alpha - 1): with the
// activators' and inhibitors' pre-activations z_act = (z_signed + z_abs) * 0.5 and
// z_inh = (z_signed - z_abs) * 0.5, u = alpha * safe_divide(R, z_act) and
// t = (1 - alpha) * safe_divide(R, z_inh); signed = u + t, absolute = u - t. For alpha == 1
// (no inhibitors) both are safe_divide(R, z_act).
template <class T>
void alpha_beta_shares(const T* relevance, const T* z_signed, const T* z_abs, std::size_t n,
                       double alpha, T* signed_share, T* absolute_share, int threads);

}  // namespace xfr
