// pybind11 module fusedrnn._core: argument checks, output allocation, GIL release —
// nothing else.  The friendly, fully worded checks live in the Python layer; these
// are the last line of defence so that no call can reach a kernel with a buffer of
// the wrong size, type or layout.
//
// This file holds only the module's definitions (names, arguments, docstrings); the work
// is in the other files of csrc/bindings/: arrays.h (the array checks), packed.{h,cc}
// (the Weights type), sequence.cc (forward, backward), step.cc (step, cell_call) and
// probes.cc (the ISA probes).  Each releases the GIL around its kernel call, with the
// reason it is safe next to it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "bindings/calls.h"
#include "bindings/packed.h"
#include "bindings/quant.h"
#include "bindings/tensor_step.h"
#include "cpu/dispatch.h"
#include "cpu/threads.h"
#include "fusedrnn/cell.h"

namespace py = pybind11;
using fusedrnn::bindings::PackedWeights;
using fusedrnn::bindings::QuantPacked;
namespace b = fusedrnn::bindings;

// One m.def / class_ per binding, each a few lines with its argument names and
// docstring, so this list is longer than 80 lines by nature.
PYBIND11_MODULE(_core, m) {
  m.doc() = "fusedrnn's compiled kernels (private: use the fusedrnn package).";
  // Choose the ISA now, so that a bad FUSEDRNN_ISA fails the import with its message.
  fusedrnn::cpu_info();

  py::class_<PackedWeights>(m, "Weights")
      .def(py::init<const std::string&, const py::array&, const py::array&, const py::object&,
                    const py::object&, bool, const py::object&>(),
           py::arg("cell"), py::arg("weight_ih"), py::arg("weight_hh"),
           py::arg("bias_ih") = py::none(), py::arg("bias_hh") = py::none(),
           py::arg("one_step") = false, py::arg("weight_hr") = py::none())
      .def_property_readonly("one_step", &PackedWeights::one_step)
      .def_property_readonly("cell",
                             [](const PackedWeights& w) { return fusedrnn::cell_name(w.cell()); })
      .def_property_readonly("input_size", &PackedWeights::input_size)
      .def_property_readonly("hidden_size", &PackedWeights::hidden_size)
      .def_property_readonly("proj_size", &PackedWeights::proj_size)
      .def_property_readonly("dtype", &PackedWeights::dtype)
      .def_property_readonly("isa", &PackedWeights::isa)
      .def_property_readonly("has_bias", &PackedWeights::has_bias);

  m.def("forward", &b::forward_call, py::arg("weights"), py::arg("x"), py::arg("h0"),
        py::arg("c0") = py::none(), py::arg("train") = false,
        py::arg("batch_sizes") = py::none());

  m.def("backward", &b::backward_call, py::arg("weights"), py::arg("x"), py::arg("workspace"),
        py::arg("dy"), py::arg("dh_n") = py::none(), py::arg("dc_n") = py::none(),
        py::arg("batch_sizes") = py::none(), py::arg("need_dx") = true);

  m.def("forward_pair", &b::forward_pair_call, py::arg("weights"), py::arg("x"), py::arg("h0"),
        py::arg("c0") = py::none(), py::arg("train") = false,
        py::arg("batch_sizes") = py::none(),
        "forward for both directions of a bidirectional layer, side by side: each of "
        "weights, x, h0, c0 a pair; returns a pair of forward's results.");

  m.def("backward_pair", &b::backward_pair_call, py::arg("weights"), py::arg("x"),
        py::arg("workspace"), py::arg("dy"), py::arg("dh_n") = py::none(),
        py::arg("dc_n") = py::none(), py::arg("batch_sizes") = py::none(),
        py::arg("need_dx") = true,
        "backward for both directions, side by side: weights, x, workspace, dy, dh_n, "
        "dc_n pairs; returns a pair of backward's results.");

  m.def("step", &b::step_call, py::arg("weights"), py::arg("x"), py::arg("h0"),
        py::arg("c0") = py::none());

  m.def("cell_call", &b::cell_call, py::arg("weights"), py::arg("x"), py::arg("hx"),
        "A cell's inference step when x and hx need no conversion, else None.");

  m.def("workspace_size", &b::workspace_size, py::arg("cell"), py::arg("T"), py::arg("B"),
        py::arg("H"), py::arg("proj_size") = 0, py::arg("N") = -1,
        "Elements of the training workspace of one layer and direction (N: packed rows, "
        "T * B by default).");

  py::class_<QuantPacked>(m, "QuantWeights",
                          "One layer-direction's int8 or 16-bit weights, packed for quant_forward.")
      .def(py::init<const std::string&, const std::string&, const py::array&, const py::array&,
                    const py::object&, const py::object&, const py::object&, const py::object&,
                    const py::object&, const py::object&>(),
           py::arg("cell"), py::arg("mode"), py::arg("weight_ih"), py::arg("weight_hh"),
           py::arg("bias_ih") = py::none(), py::arg("bias_hh") = py::none(),
           py::arg("scale_ih") = py::none(), py::arg("scale_hh") = py::none(),
           py::arg("weight_hr") = py::none(), py::arg("scale_hr") = py::none())
      .def_property_readonly("cell", &QuantPacked::cell)
      .def_property_readonly("mode", &QuantPacked::mode)
      .def_property_readonly("input_size", &QuantPacked::input_size)
      .def_property_readonly("hidden_size", &QuantPacked::hidden_size)
      .def_property_readonly("proj_size", &QuantPacked::proj_size)
      .def_property_readonly("isa", &QuantPacked::isa)
      .def_property_readonly("has_bias", &QuantPacked::has_bias);

  m.def("quant_forward", &b::quant_forward_call, py::arg("weights"), py::arg("x"), py::arg("h0"),
        py::arg("c0") = py::none(), py::arg("batch_sizes") = py::none(),
        "Inference of one layer-direction with quantized weights: (y, h_n, c_n).");
  m.def("quant_forward_pair", &b::quant_forward_pair_call, py::arg("weights"), py::arg("x"),
        py::arg("h0"), py::arg("c0") = py::none(), py::arg("batch_sizes") = py::none(),
        "quant_forward for both directions of a bidirectional layer, side by side: weights, "
        "x, h0, c0 pairs; a pair of quant_forward's results.");
  m.def("_quantize_rows", &b::quantize_rows_probe, py::arg("a"),
        "Tests only: the selected ISA's per-row int8 quantizer, (q, scale).");
  m.def("_quant_matmul", &b::quant_matmul_probe, py::arg("a_q"), py::arg("w_q"),
        "Tests only: the selected ISA's exact int8 product a_q @ w_q.T as int32.");
  m.def("_quant_use_vnni", &b::quant_use_vnni_probe, py::arg("mode") = -1,
        "Tests only: -1 asks, 0 turns off, 1 turns on the AVX-512 VNNI int8 tiles.");

  m.def("set_num_threads", &fusedrnn::set_num_threads, py::arg("n"),
        "Threads the kernels use (default: the CPUs this process may run on).");
  m.def("get_num_threads", &fusedrnn::get_num_threads);
  m.def("_last_region_threads", &fusedrnn::last_region_threads,
        "Tests only: threads that ran the last parallel region this thread started.");
  m.def("_pair_probe", &b::pair_probe, py::arg("n"), py::arg("fail") = -1,
        "Tests only: what parallel_pair(n) gives each of its two jobs: per job (threads "
        "it sees, threads of a nested region, threads past its barriers, whether the jobs "
        "ran on different threads); job `fail` throws at its end.");
  m.def("_largest_region_under_flips", &fusedrnn::largest_region_under_flips, py::arg("n"),
        py::arg("regions"),
        "Tests only: the largest of `regions` parallel regions asked for n threads while "
        "another thread keeps changing the thread count (1 .. n + 1).");
  m.def("_host_openmp", &fusedrnn::set_host_openmp, py::arg("on"),
        "This thread's host OpenMP scope on or off (threads.h, \"Host OpenMP\"): while on, "
        "parallel regions run on an OpenMP runtime already loaded (torch's), if any. "
        "Returns the previous scope.");
  m.def("_host_openmp_available", &fusedrnn::host_openmp_available,
        "Whether a GNU OpenMP runtime is loaded that the host scope can use.");
  m.def("_host_openmp_regions", &fusedrnn::host_openmp_regions,
        "Tests only: regions run on the host OpenMP runtime so far.");
  m.def("_host_openmp_probe", &fusedrnn::host_openmp_probe, py::arg("n"),
        "Tests only: omp_get_thread_num() on each rank of a parallel(n) region run with "
        "this thread's scope as it is (-1 without a runtime).");
  m.def("_adaptive_threads", &b::adaptive_threads_dict,
        "The contention policy's state: adaptive, cap, probe_interval_ms, stalls, shrinks, "
        "probes, probes_failed, last_region_final.");
  m.def("_reset_adaptive", &fusedrnn::reset_adaptive, py::arg("probe_ms") = 10.0,
        py::arg("probe_max_ms") = 2000.0, py::arg("threads") = 0,
        py::arg("stall_min_ms") = 1.0,
        "Tests only: the default (adaptive) thread count again (threads: 0 for the CPUs), "
        "the policy reset, its probe interval and shortest stall set.");
  m.def("_slow_worker", &fusedrnn::slow_worker, py::arg("rank"), py::arg("step"),
        py::arg("ms"),
        "Tests only: rank sleeps ms before its step-th step barrier of the next region "
        "that has one.");
  m.def("_use_isa", &fusedrnn::use_isa, py::arg("isa"),
        "Tests only: switch the kernels that newly packed weights use.");
  m.def("_activation", &b::activation, py::arg("which"), py::arg("x"),
        "Tests only: exp, sigmoid or tanh with the selected ISA's vector code.");
  m.def("_profile", &b::profile, py::arg("on") = py::none(),
        "Diagnostics: _profile(True) turns the per-part timers on (zeroed), _profile(False) "
        "off; _profile() returns one dict per thread rank of seconds per part.");
  m.def("_matmul", &b::matmul, py::arg("a"), py::arg("w"), py::arg("reps") = 1,
        "Tests and benchmarks: (a @ w.T, seconds per product) with the selected ISA's "
        "large-product kernel; w packed once, the product run reps times.");
  m.def("fma_peak", &b::fma_peak, py::arg("seconds") = 0.2,
        "float32 FMA GFLOP/s of one thread with the selected ISA (a register-only loop).");

  m.def("cpu_info", &b::cpu_info_dict);

  b::add_tensor_calls(m);  // tensor_cell, tensor_setup (fusedrnn.torch's cells)
}
