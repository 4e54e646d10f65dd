// The rows of a sequence call: dims_for checks x (padded (T, B, I), or packed (N, I) by
// batch_sizes) against the layer's sizes and builds the packed-row layout of
// fusedrnn/dims.h, which every sequence binding (sequence.cc, quant.cc) passes on.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "bindings/arrays.h"
#include "fusedrnn/dims.h"

namespace fusedrnn::bindings {

namespace py = pybind11;

// Rows per step (see fusedrnn/dims.h): bs[0..T] and off[0..T], owned here.
struct Rows {
  std::vector<int64_t> bs, off;
};

// The sizes of a sequence call.  Without batch_sizes x is (T, B, I) and every step has
// B rows; with them (int64 (T,), non-increasing, each >= 1: the rows of each step of a
// batch sorted by length, longest first) x is (N, I) with N = their sum, packed by step.
// The kernels index memory by these numbers, so every one is checked here.
inline Dims dims_for(int64_t I, int64_t H, int64_t P, const py::array& x,
                     const py::object& batch_sizes, Rows& rows) {
  Dims d;
  d.H = H;
  d.P = P;
  if (batch_sizes.is_none()) {
    if (x.ndim() != 3)
      throw std::invalid_argument("x: expected 3 dimensions (T, B, I), got " + shape_str(x));
    d.T = x.shape(0);
    d.B = x.shape(1);
    d.I = x.shape(2);
    if (d.T < 1 || d.B < 1)
      throw std::invalid_argument("x: expected at least one step and one batch row, got " +
                                  shape_str(x));
    rows.bs.assign(d.T + 1, d.B);
  } else {
    const py::array bs_a = py::cast<py::array>(batch_sizes);
    if (!py::isinstance<py::array_t<int64_t>>(bs_a) || bs_a.ndim() != 1 || bs_a.shape(0) < 1 ||
        !(bs_a.flags() & py::array::c_style))
      throw std::invalid_argument(
          "batch_sizes: expected a C-contiguous int64 array of shape (T,), T >= 1");
    if (x.ndim() != 2)
      throw std::invalid_argument("x: expected 2 dimensions (N, I) with batch_sizes, got " +
                                  shape_str(x));
    d.T = bs_a.shape(0);
    d.I = x.shape(1);
    const int64_t* p = static_cast<const int64_t*>(bs_a.data());
    rows.bs.assign(p, p + d.T);
    rows.bs.push_back(0);
    d.B = rows.bs[0];
    int64_t sum = 0;
    for (int64_t t = 0; t < d.T; ++t) {
      if (rows.bs[t] < 1 || (t > 0 && rows.bs[t] > rows.bs[t - 1]))
        throw std::invalid_argument(
            "batch_sizes: expected non-increasing values >= 1 (rows of each step, longest "
            "sequence first)");
      sum += rows.bs[t];
    }
    if (sum != x.shape(0))
      throw std::invalid_argument("x: expected " + std::to_string(sum) +
                                  " rows (the sum of batch_sizes), got " + shape_str(x));
  }
  rows.bs[d.T] = 0;
  rows.off.assign(d.T + 1, 0);
  for (int64_t t = 0; t < d.T; ++t) rows.off[t + 1] = rows.off[t] + rows.bs[t];
  d.N = rows.off[d.T];
  d.bs = rows.bs.data();
  d.off = rows.off.data();
  if (d.I != I)
    throw std::invalid_argument("x: expected " + std::to_string(I) +
                                " input features, got " + shape_str(x));
  return d;
}

}  // namespace fusedrnn::bindings
