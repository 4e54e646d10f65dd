// The per-step calls of a cell: step, checked and worded, and cell_call, the lean path
// that takes only arguments needing no conversion and returns None for anything else
// (the Python layer then takes the general path).  Both run one inference step with the
// GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "bindings/arrays.h"
#include "bindings/calls.h"
#include "bindings/packed.h"
#include "fusedrnn/cell.h"
#include "fusedrnn/kernels.h"

namespace fusedrnn::bindings {

namespace {

// One inference step on checked arguments: (h1, c1), c1 None unless LSTM (c0 given).
template <class T>
py::tuple run_step(const PackedWeights& pw, int64_t B, const T* x, const T* h0, const T* c0) {
  const int64_t H = pw.hidden_size();
  auto h1 = empty<T>({B, H});
  T* ph = h1.mutable_data();
  py::object c1 = py::none();
  T* pc = nullptr;
  if (c0) {
    auto c = empty<T>({B, H});
    pc = c.mutable_data();
    c1 = c;
  }
  {
    // Safe without the GIL: as in forward_t (sequence.cc).
    py::gil_scoped_release release;
    pw.kernels<T>().step(pw.get<T>(), B, x, h0, c0, ph, pc);
  }
  return py::make_tuple(h1, c1);
}

// One inference step of a cell.  The lean path for per-step calls from Python: the
// Python layer has already normalised the arguments; these checks keep it safe.
template <class T>
py::tuple step_t(const PackedWeights& pw, const py::array& x_a, const py::array& h0_a,
                 const py::object& c0_o) {
  if (!pw.one_step())
    throw std::invalid_argument("weights: not packed for one-step calls (one_step=True)");
  if (x_a.ndim() != 2)
    throw std::invalid_argument("x: expected 2 dimensions (B, I), got " + shape_str(x_a));
  const int64_t B = x_a.shape(0), I = pw.input_size(), H = pw.hidden_size();
  if (B < 1) throw std::invalid_argument("x: expected at least one row, got " + shape_str(x_a));
  const T* x = checked<T>(x_a, "x", {B, I});
  const T* h0 = checked<T>(h0_a, "h0", {B, H});
  const bool lstm = pw.cell() == Cell::lstm;
  const T* c0 = cell_state<T>(c0_o, lstm, B, H);
  return run_step<T>(pw, B, x, h0, c0);
}

// The array as T* if it is an ndarray of dtype T, C-contiguous, of exactly this shape;
// else null (no conversion, no exception: the caller takes the general path).
template <class T>
const T* exactly(const py::handle& h, int64_t rows, int64_t cols) {
  if (!py::isinstance<py::array_t<T>>(h)) return nullptr;
  auto a = py::reinterpret_borrow<py::array>(h);
  if (a.ndim() != 2 || a.shape(0) != rows || a.shape(1) != cols ||
      !(a.flags() & py::array::c_style))
    return nullptr;
  return static_cast<const T*>(a.data());
}

// A cell's inference call, when its arguments need nothing done to them: x (B, I) and
// the state (B, H) — for an LSTM a tuple (h, c) — C-contiguous, of the weights' dtype.
// Returns the new state as the cell returns it, or None for anything else: the Python
// layer then converts, checks and words the errors.
template <class T>
py::object cell_call_t(const PackedWeights& pw, const py::handle& x_o, const py::handle& hx_o) {
  if (!pw.one_step() || !py::isinstance<py::array_t<T>>(x_o)) return py::none();
  auto x_a = py::reinterpret_borrow<py::array>(x_o);
  if (x_a.ndim() != 2 || x_a.shape(0) < 1) return py::none();
  const int64_t B = x_a.shape(0), H = pw.hidden_size();
  const T* x = exactly<T>(x_o, B, pw.input_size());
  if (!x) return py::none();
  const bool lstm = pw.cell() == Cell::lstm;
  const T *h0 = nullptr, *c0 = nullptr;
  if (lstm) {
    if (!PyTuple_Check(hx_o.ptr()) || PyTuple_GET_SIZE(hx_o.ptr()) != 2) return py::none();
    h0 = exactly<T>(PyTuple_GET_ITEM(hx_o.ptr(), 0), B, H);
    c0 = exactly<T>(PyTuple_GET_ITEM(hx_o.ptr(), 1), B, H);
    if (!h0 || !c0) return py::none();
  } else {
    h0 = exactly<T>(hx_o, B, H);
    if (!h0) return py::none();
  }
  py::tuple state = run_step<T>(pw, B, x, h0, c0);
  return lstm ? py::object(state) : py::object(state[0]);
}

}  // namespace

py::tuple step_call(const PackedWeights& w, const py::array& x, const py::array& h0,
                    const py::object& c0) {
  return w.is_f32() ? step_t<float>(w, x, h0, c0) : step_t<double>(w, x, h0, c0);
}

py::object cell_call(const PackedWeights& w, const py::handle& x, const py::handle& hx) {
  return w.is_f32() ? cell_call_t<float>(w, x, hx) : cell_call_t<double>(w, x, hx);
}

}  // namespace fusedrnn::bindings
