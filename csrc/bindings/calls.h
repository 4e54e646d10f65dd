// The entry points module.cc binds: each checks its arguments, allocates its outputs and
// calls the kernels with the GIL released, in the weights' dtype.  sequence.cc: forward,
// backward, their pairs (bindings/pair.h), workspace_size; step.cc: step, cell_call;
// probes.cc: the ISA probes.
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

// The two directions of a bidirectional layer side by side (cpu/threads.h,
// parallel_pair): each argument but train, batch_sizes and need_dx a pair (c0, dh_n,
// dc_n: or None for both); returns (direction 0's results, direction 1's), each as the
// one-direction call's.  Errors name the direction.
py::tuple forward_pair_call(const py::object& w, const py::object& x, const py::object& h0,
                            const py::object& c0, bool train, const py::object& batch_sizes);
py::tuple backward_pair_call(const py::object& w, const py::object& x,
                             const py::object& workspace, const py::object& dy,
                             const py::object& dh_n, const py::object& dc_n,
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
// Tests only: parallel_pair(n, ...) with two jobs that each record what they got, one
// (`fail`: 0 or 1) throwing at its end; per job (get_num_threads() inside it, threads of a
// nested region that asked for more, its threads that passed its barriers and whose own
// nested region ran alone, whether the two jobs ran on different threads).
py::list pair_probe(int n, int fail);
// _profile(True/False): turn the parts' timers on or off (and zero them); _profile():
// a list, one dict per thread rank, of seconds per part since then.
py::object profile(py::object on);

// The selected ISA and the ones available, compiled and emulated.
py::dict cpu_info_dict();

}  // namespace fusedrnn::bindings
