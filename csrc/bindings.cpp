#include <pybind11/pybind11.h>
PYBIND11_MODULE(_kernels, m) { m.doc() = "xfr kernels (placeholder)"; }
