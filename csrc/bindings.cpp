// pybind11 module xfr._kernels: thin wrappers over kernels.hpp. They check what the C++ side
// relies on (dtype, 3-D C-contiguous aligned arrays, equal shapes) and raise ValueError
// otherwise, so that no call from Python can crash the interpreter; xfr.kernels is the public,
// friendlier facade. Every kernel runs with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "kernels.hpp"

namespace py = pybind11;

namespace {

xfr::Dims dims_of(const py::array& a, const char* name, const char* dtype_name, bool want_float) {
  const py::dtype dt = a.dtype();
  const bool ok = want_float ? dt.is(py::dtype::of<float>())
                             : (dt.itemsize() == 1 && (dt.kind() == 'b' || dt.kind() == 'u'));
  if (!ok) throw py::value_error(std::string(name) + " must be " + dtype_name);
  if (a.ndim() != 3) throw py::value_error(std::string(name) + " must be 3-D [N, H, W]");
  const int need = py::array::c_style | py::detail::npy_api::NPY_ARRAY_ALIGNED_;
  if ((a.flags() & need) != need)
    throw py::value_error(std::string(name) + " must be C-contiguous and aligned");
  return xfr::Dims{static_cast<std::size_t>(a.shape(0)), static_cast<std::size_t>(a.shape(1)),
                   static_cast<std::size_t>(a.shape(2))};
}

xfr::Dims maps_dims(const py::array& a, const char* name) {
  return dims_of(a, name, "float32", true);
}
xfr::Dims mask_dims(const py::array& a, const char* name) {
  return dims_of(a, name, "bool (or uint8 0/1)", false);
}

void same(xfr::Dims a, xfr::Dims b, const char* na, const char* nb) {
  if (a.n != b.n || a.h != b.h || a.w != b.w)
    throw py::value_error(std::string(na) + " and " + nb + " must have the same shape");
}

const float* fptr(const py::array& a) { return static_cast<const float*>(a.data()); }
const std::uint8_t* bptr(const py::array& a) { return static_cast<const std::uint8_t*>(a.data()); }

py::array_t<float> new_maps(xfr::Dims d) {
  return py::array_t<float>({d.n, d.h, d.w});
}
py::array_t<bool> new_masks(xfr::Dims d) {
  return py::array_t<bool>({d.n, d.h, d.w});
}

xfr::Element element_of(const std::string& shape) {
  if (shape == "ellipse") return xfr::Element::Ellipse;
  if (shape == "rect") return xfr::Element::Rect;
  throw py::value_error("shape must be 'ellipse' or 'rect', got '" + shape + "'");
}

// "and", "or", "xor": intersection, union, symmetric difference of two masks.
xfr::SetOp set_op_of(const std::string& op) {
  if (op == "and") return xfr::SetOp::Intersection;
  if (op == "or") return xfr::SetOp::Union;
  if (op == "xor") return xfr::SetOp::SymmetricDifference;
  throw py::value_error("op must be 'and', 'or' or 'xor', got '" + op + "'");
}

xfr::KernelCentre centre_of(const std::string& centre) {
  if (centre == "opencv") return xfr::KernelCentre::Middle;
  if (centre == "authors") return xfr::KernelCentre::Authors;
  throw py::value_error("centre must be 'opencv' or 'authors', got '" + centre + "'");
}

// Whether `a`, a C-contiguous aligned float32 or float64 array of any shape, is float64.
bool is_float64(const py::array& a, const char* name) {
  const py::dtype dt = a.dtype();
  const bool is_double = dt.is(py::dtype::of<double>());
  if (!is_double && !dt.is(py::dtype::of<float>()))
    throw py::value_error(std::string(name) + " must be float32 or float64");
  const int need = py::array::c_style | py::detail::npy_api::NPY_ARRAY_ALIGNED_;
  if ((a.flags() & need) != need)
    throw py::value_error(std::string(name) + " must be C-contiguous and aligned");
  return is_double;
}

// Arrays of one dtype and shape (the first one's); returns whether it is float64.
bool same_values(const std::vector<std::pair<const py::array*, const char*>>& arrays) {
  const py::array& ref = *arrays[0].first;
  const bool first_double = is_float64(ref, arrays[0].second);
  for (std::size_t i = 1; i < arrays.size(); ++i) {
    const py::array& a = *arrays[i].first;
    const bool is_double = is_float64(a, arrays[i].second);
    bool same_shape = a.ndim() == ref.ndim();
    for (py::ssize_t k = 0; same_shape && k < a.ndim(); ++k) same_shape = a.shape(k) == ref.shape(k);
    if (is_double != first_double || !same_shape)
      throw py::value_error(std::string(arrays[0].second) + " and " + arrays[i].second +
                            " must have the same dtype and shape");
  }
  return first_double;
}

template <class T>
py::array_t<T> like(const py::array& a) {
  return py::array_t<T>(std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim()));
}

template <class T>
py::array safe_divide_as(const py::array& a, const py::array& b, int threads) {
  py::array_t<T> out = like<T>(a);
  const T* pa = static_cast<const T*>(a.data());
  const T* pb = static_cast<const T*>(b.data());
  T* po = out.mutable_data();
  const std::size_t n = static_cast<std::size_t>(a.size());
  {
    py::gil_scoped_release nogil;
    xfr::safe_divide<T>(pa, pb, n, po, threads);
  }
  return std::move(out);
}

template <class T>
py::tuple alpha_beta_as(const py::array& r, const py::array& zs, const py::array& za,
                        double alpha, int threads) {
  py::array_t<T> sgn = like<T>(r), ab = like<T>(r);
  const T* pr = static_cast<const T*>(r.data());
  const T* ps = static_cast<const T*>(zs.data());
  const T* pa = static_cast<const T*>(za.data());
  T* o1 = sgn.mutable_data();
  T* o2 = ab.mutable_data();
  const std::size_t n = static_cast<std::size_t>(r.size());
  {
    py::gil_scoped_release nogil;
    xfr::alpha_beta_shares<T>(pr, ps, pa, n, alpha, o1, o2, threads);
  }
  return py::make_tuple(sgn, ab);
}
}  // namespace

PYBIND11_MODULE(_kernels, m) {
  m.doc() = "xfr compiled kernels (private: use xfr.kernels)";

  m.def("set_num_threads", &xfr::set_num_threads, py::arg("n"));
  m.def("get_num_threads", &xfr::num_threads);
  m.def("default_num_threads", &xfr::default_num_threads);

  m.def(
      "structuring_element",
      [](const std::string& shape, int width, int height) {
        const auto rows = xfr::structuring_element(element_of(shape), width, height);
        py::array_t<std::uint8_t> out({height, width});
        auto v = out.mutable_unchecked<2>();
        for (int i = 0; i < height; ++i)
          for (int j = 0; j < width; ++j)
            v(i, j) = static_cast<std::uint8_t>(j >= rows[i].begin && j < rows[i].end);
        return out;
      },
      py::arg("shape"), py::arg("width"), py::arg("height"));

  m.def(
      "gaussian_kernel",
      [](int size, double sigma, const std::string& centre) {
        const auto g = xfr::gaussian_kernel(size, sigma, centre_of(centre));
        py::array_t<float> out(static_cast<py::ssize_t>(g.size()));
        std::copy(g.begin(), g.end(), out.mutable_data());
        return out;
      },
      py::arg("size"), py::arg("sigma"), py::arg("centre") = "opencv");

  m.def(
      "otsu",
      [](const py::array& maps) {
        const xfr::Dims d = maps_dims(maps, "maps");
        py::array_t<float> thresholds(static_cast<py::ssize_t>(d.n));
        py::array_t<bool> masks = new_masks(d);
        float* t = thresholds.mutable_data();
        auto* o = reinterpret_cast<std::uint8_t*>(masks.mutable_data());
        {
          py::gil_scoped_release nogil;
          xfr::otsu(fptr(maps), d, t, o);
        }
        return std::make_tuple(thresholds, masks);
      },
      py::arg("maps"));

  m.def(
      "combine",
      [](const py::array& a, const py::array& b, const std::string& op) {
        const xfr::SetOp set_op = set_op_of(op);
        const xfr::Dims d = mask_dims(a, "a");
        same(d, mask_dims(b, "b"), "a", "b");
        py::array_t<bool> out = new_masks(d);
        auto* o = reinterpret_cast<std::uint8_t*>(out.mutable_data());
        {
          py::gil_scoped_release nogil;
          xfr::combine(bptr(a), bptr(b), d, set_op, o);
        }
        return out;
      },
      py::arg("a"), py::arg("b"), py::arg("op"));

  m.def(
      "combine_maps",
      [](const py::array& map_p, const py::array& map_g, const py::array& mask_p,
         const py::array& mask_g, const std::string& op) {
        const xfr::SetOp set_op = set_op_of(op);
        const xfr::Dims d = maps_dims(map_p, "map_p");
        same(d, maps_dims(map_g, "map_g"), "map_p", "map_g");
        same(d, mask_dims(mask_p, "mask_p"), "map_p", "mask_p");
        same(d, mask_dims(mask_g, "mask_g"), "map_p", "mask_g");
        py::array_t<float> out = new_maps(d);
        float* o = out.mutable_data();
        {
          py::gil_scoped_release nogil;
          xfr::combine_maps(fptr(map_p), fptr(map_g), bptr(mask_p), bptr(mask_g), d, set_op, o);
        }
        return out;
      },
      py::arg("map_p"), py::arg("map_g"), py::arg("mask_p"), py::arg("mask_g"), py::arg("op"));

  m.def(
      "dilate",
      [](const py::array& maps, int width, int height, const std::string& shape) {
        const xfr::Element e = element_of(shape);
        const xfr::Dims d = maps_dims(maps, "maps");
        py::array_t<float> out = new_maps(d);
        float* o = out.mutable_data();
        {
          py::gil_scoped_release nogil;
          xfr::dilate(fptr(maps), d, e, width, height, o);
        }
        return out;
      },
      py::arg("maps"), py::arg("width"), py::arg("height"), py::arg("shape"));

  m.def(
      "gaussian",
      [](const py::array& maps, int size, double sigma, const std::string& centre) {
        const xfr::Dims d = maps_dims(maps, "maps");
        const xfr::KernelCentre c = centre_of(centre);
        py::array_t<float> out = new_maps(d);
        float* o = out.mutable_data();
        {
          py::gil_scoped_release nogil;
          xfr::gaussian(fptr(maps), d, size, sigma, o, c);
        }
        return out;
      },
      py::arg("maps"), py::arg("size"), py::arg("sigma"), py::arg("centre") = "opencv");

  m.def(
      "smooth_heatmap",
      [](const py::array& maps, int dilate_w, int dilate_h, int gaussian_size, double sigma,
         const std::string& centre) {
        const xfr::Dims d = maps_dims(maps, "maps");
        const xfr::KernelCentre c = centre_of(centre);
        py::array_t<float> out = new_maps(d);
        float* o = out.mutable_data();
        {
          py::gil_scoped_release nogil;
          xfr::smooth_heatmap(fptr(maps), d, dilate_w, dilate_h, gaussian_size, sigma, o, c);
        }
        return out;
      },
      py::arg("maps"), py::arg("dilate_w"), py::arg("dilate_h"), py::arg("gaussian_size"),
      py::arg("sigma"), py::arg("centre") = "opencv");
  m.def(
      "safe_divide",
      [](const py::array& a, const py::array& b, int threads) {
        const bool is_double = same_values({{&a, "a"}, {&b, "b"}});
        return is_double ? safe_divide_as<double>(a, b, threads)
                         : safe_divide_as<float>(a, b, threads);
      },
      py::arg("a"), py::arg("b"), py::arg("threads") = 1);

  m.def(
      "alpha_beta_shares",
      [](const py::array& relevance, const py::array& z_signed, const py::array& z_abs,
         double alpha, int threads) {
        const bool is_double = same_values(
            {{&relevance, "relevance"}, {&z_signed, "z_signed"}, {&z_abs, "z_abs"}});
        return is_double ? alpha_beta_as<double>(relevance, z_signed, z_abs, alpha, threads)
                         : alpha_beta_as<float>(relevance, z_signed, z_abs, alpha, threads);
      },
      py::arg("relevance"), py::arg("z_signed"), py::arg("z_abs"), py::arg("alpha"),
      py::arg("threads") = 1);
}
