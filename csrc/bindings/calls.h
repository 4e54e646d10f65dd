// The entry points module.cc binds: each checks its arguments, allocates its outputs and
// calls the kernels with the GIL released, in the weights' dtype.  sequence.cc: forward,
// backward, workspace_size; step.cc: step, cell_call; probes.cc: the ISA probes.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "bindings/packed.h"

namespace fusedrnn::bindings {

namespace py = pybind11;

// A layer-direction over a sequence: (y, h_n, c_n, workspace); c_n None unless LSTM,
// workspace None unless train.
py::tuple forward_call(const PackedWeights& w, const py::array& x, const py::array& h0,
                       const py::object& c0, bool train, const py::object& batch_sizes);

// Its gradients: (dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr), None where absent.
py::tuple backward_call(const PackedWeights& w, const py::array& x, const py::array& workspace,
                        const py::array& dy, const py::object& dh_n, const py::object& dc_n,
                        const py::object& batch_sizes, bool need_dx);

// Elements of the training workspace of one layer and direction.
int64_t workspace_size(const std::string& cell, int64_t T, int64_t B, int64_t H,
                       int64_t proj_size, int64_t N);

// One inference step: (h1, c1), c1 None unless LSTM.
py::tuple step_call(const PackedWeights& w, const py::array& x, const py::array& h0,
                    const py::object& c0);

// A cell's inference step when x and hx need no conversion, else None.
py::object cell_call(const PackedWeights& w, const py::handle& x, const py::handle& hx);

// Tests only: exp, sigmoid or tanh with the selected ISA's vector code.
py::array activation(const std::string& which, const py::array& x);

// float32 FMA GFLOP/s of one thread with the selected ISA.
double fma_peak(double seconds);
// Tests and the GEMM benchmark: (a @ w.T, seconds per product, packing not counted) with
// the selected ISA's large-product kernel, the product repeated `reps` times.
py::tuple matmul(const py::array& a, const py::array& w, int64_t reps);
py::dict adaptive_threads_dict();
// _profile(True/False): turn the parts' timers on or off (and zero them); _profile():
// a list, one dict per thread rank, of seconds per part since then.
py::object profile(py::object on);

// The selected ISA and the ones available, compiled and emulated.
py::dict cpu_info_dict();

}  // namespace fusedrnn::bindings
