// Calls prepared before they run, so that two of them (the directions of a bidirectional
// layer) can run side by side: a Prepared call is checked and has its outputs allocated
// with the GIL held; run() or run_pair() then runs the kernels with the GIL released
// (run_pair: cpu/threads.h, parallel_pair).  Shared by the float calls (sequence.cc) and
// the quantized ones (quant.cc), with the pair calls' argument helpers.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <functional>
#include <string>

namespace fusedrnn::bindings {

namespace py = pybind11;

// A checked call: its results (arrays allocated, not yet written) and the kernel call
// that writes them, safe to run without the GIL: the inputs are kept alive by the
// caller's references, the outputs are new arrays that no other thread has seen, and
// the packed weights are immutable.  `run` may throw std::invalid_argument (a result the
// kernels refused, e.g. non-finite values in int8 mode).
struct Prepared {
  py::tuple results;
  std::function<void()> run;
};

// Runs the call with the GIL released; its results.
py::tuple run(const Prepared& p);

// Both directions' calls side by side: (results of direction 0, results of direction 1).
// `prepare(i)` checks and prepares direction i's call (with the GIL).  Errors, in
// preparing or running, name the direction ("direction 1: x: ...").
py::tuple run_pair(const std::function<Prepared(int)>& prepare);

// A forward pair call: run_pair with prepare(weights, x, h0, c0) of each direction, taken
// from the pairs w, x, h0 and c0 (None for (None, None)) and held alive until the
// kernels finish.
using PrepareForward = std::function<Prepared(const py::object& w, const py::array& x,
                                              const py::array& h0, const py::object& c0)>;
py::tuple run_forward_pair(const py::object& w, const py::object& x, const py::object& h0,
                           const py::object& c0, const PrepareForward& prepare);

// A pair call's argument: a sequence of two; None stands for (None, None).
py::sequence pair_arg(const py::object& v, const char* name);

// An array element of a pair argument (an array as it is; a list becomes one, as the
// one-direction calls' arguments do).
py::array array_arg(const py::handle& v, const char* name);

// A bound C++ object element of a pair argument, W (the packed weights), or a TypeError
// "<name>: expected <what>, got <type>".
template <class W>
const W& object_arg(const py::object& v, const char* name, const char* what) {
  if (!py::isinstance<W>(v))
    throw py::type_error(std::string(name) + ": expected " + what + ", got " +
                         std::string(py::str(py::type::of(v).attr("__name__"))));
  return v.cast<const W&>();
}

}  // namespace fusedrnn::bindings
