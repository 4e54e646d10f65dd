// Array checks of the bindings: shape strings for error messages, and the checks that an
// array has the dtype, shape and layout a kernel indexes it by (checked, optional,
// checked_rows, cell_state), plus new output arrays (empty, rows_shape).  Each error
// names the argument.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

#include "fusedrnn/dims.h"

namespace fusedrnn::bindings {

namespace py = pybind11;

inline std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    if (i) s += ", ";
    s += std::to_string(a.shape(i));
  }
  if (a.ndim() == 1) s += ",";
  return s + ")";
}

inline std::string shape_str(std::initializer_list<int64_t> dims) {
  std::string s = "(";
  size_t i = 0;
  for (int64_t d : dims) {
    if (i++) s += ", ";
    s += std::to_string(d);
  }
  if (dims.size() == 1) s += ",";
  return s + ")";
}

// The array must have dtype T, be C-contiguous and have exactly this shape.
template <class T>
const T* checked(const py::array& a, const char* name, std::initializer_list<int64_t> shape) {
  // Equivalence, not identity: an unpickled float32 array has an equal dtype object
  // that is not NumPy's canonical one.  Byte-swapped arrays are not equivalent.
  if (!py::isinstance<py::array_t<T>>(a))
    throw py::type_error(std::string(name) + ": expected dtype " +
                         std::string(py::str(py::dtype::of<T>())) + ", got " +
                         std::string(py::str(a.dtype())));
  bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
  size_t i = 0;
  for (int64_t d : shape) ok = ok && a.shape(i++) == d;
  if (!ok)
    throw std::invalid_argument(std::string(name) + ": expected shape " + shape_str(shape) +
                                ", got " + shape_str(a));
  if (!(a.flags() & py::array::c_style))
    throw std::invalid_argument(std::string(name) + ": expected a C-contiguous array");
  return static_cast<const T*>(a.data());
}

template <class T>
const T* optional(const py::object& o, const char* name, std::initializer_list<int64_t> shape) {
  if (o.is_none()) return nullptr;
  return checked<T>(py::cast<py::array>(o), name, shape);
}

template <class T>
py::array_t<T> empty(std::initializer_list<int64_t> shape) {
  return py::array_t<T>(std::vector<py::ssize_t>(shape.begin(), shape.end()));
}

// The shape of a per-row array (x, y, dy, dx) with `cols` columns: (T, B, cols), or
// (N, cols) packed.
inline std::vector<py::ssize_t> rows_shape(const Dims& d, bool packed, int64_t cols) {
  if (packed) return {static_cast<py::ssize_t>(d.N), static_cast<py::ssize_t>(cols)};
  return {static_cast<py::ssize_t>(d.T), static_cast<py::ssize_t>(d.B),
          static_cast<py::ssize_t>(cols)};
}

// checked<T> with a run-time shape.
template <class T>
const T* checked_rows(const py::array& a, const char* name, const Dims& d, bool packed,
                      int64_t cols) {
  return packed ? checked<T>(a, name, {d.N, cols}) : checked<T>(a, name, {d.T, d.B, cols});
}

// c0 checked as (B, H) for an LSTM (required), or absent for the other cells.
template <class T>
const T* cell_state(const py::object& c0_o, bool lstm, int64_t B, int64_t H) {
  if (lstm) {
    if (c0_o.is_none()) throw std::invalid_argument("c0: required for an LSTM");
    return checked<T>(py::cast<py::array>(c0_o), "c0", {B, H});
  }
  if (!c0_o.is_none()) throw std::invalid_argument("c0: only an LSTM has a cell state");
  return nullptr;
}

}  // namespace fusedrnn::bindings
