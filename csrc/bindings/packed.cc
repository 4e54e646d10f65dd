// PackedWeights' constructor: the checks of the weights' shapes, dtypes and projection,
// and their packing by the kernel table of the ISA selected now (the GIL released).
#include "bindings/packed.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "bindings/arrays.h"
#include "cpu/dispatch.h"
#include "fusedrnn/cell.h"
#include "fusedrnn/kernels.h"

namespace fusedrnn::bindings {

namespace {

template <class T>
const fusedrnn::KernelTable<T>& table();
template <>
const fusedrnn::KernelTable<float>& table<float>() {
  return fusedrnn::kernels_f32();
}
template <>
const fusedrnn::KernelTable<double>& table<double>() {
  return fusedrnn::kernels_f64();
}

}  // namespace

template <class T>
std::unique_ptr<fusedrnn::Weights<T>> PackedWeights::pack(const py::array& w_ih,
                                                          const py::array& w_hh,
                                                          const py::object& b_ih,
                                                          const py::object& b_hh,
                                                          const py::object& w_hr) {
  const int64_t GH = fusedrnn::num_gates(cell_) * H_;
  const T* pih = checked<T>(w_ih, "weight_ih", {GH, I_});
  const T* phh = checked<T>(w_hh, "weight_hh", {GH, state_size()});
  const T* pbi = optional<T>(b_ih, "bias_ih", {GH});
  const T* pbh = optional<T>(b_hh, "bias_hh", {GH});
  const T* phr = P_ ? optional<T>(w_hr, "weight_hr", {P_, H_}) : nullptr;
  auto w = std::make_unique<fusedrnn::Weights<T>>();
  set_kernels(&table<T>());
  // Safe without the GIL: reads arrays kept alive by the caller's references and
  // writes only the new object, which no other thread can see yet.
  py::gil_scoped_release release;
  table<T>().pack_weights(*w, cell_, I_, H_, P_, pih, phh, pbi, pbh, phr, one_step_);
  return w;
}

PackedWeights::PackedWeights(const std::string& cell_name, const py::array& w_ih,
                             const py::array& w_hh, const py::object& b_ih,
                             const py::object& b_hh, bool one_step, const py::object& w_hr)
    : cell_(fusedrnn::cell_from_name(cell_name)), one_step_(one_step) {
  if (w_ih.ndim() != 2)
    throw std::invalid_argument("weight_ih: expected 2 dimensions, got " + shape_str(w_ih));
  const int64_t G = fusedrnn::num_gates(cell_);
  if (w_ih.shape(0) % G != 0 || w_ih.shape(0) == 0)
    throw std::invalid_argument("weight_ih: expected a positive multiple of " +
                                std::to_string(G) + " rows, got " + shape_str(w_ih));
  H_ = w_ih.shape(0) / G;
  I_ = w_ih.shape(1);
  if (I_ <= 0) throw std::invalid_argument("weight_ih: expected at least one column");
  if (b_ih.is_none() != b_hh.is_none())
    throw std::invalid_argument("bias_ih, bias_hh: give both or neither");
  if (!w_hr.is_none()) {
    if (cell_ != Cell::lstm)
      throw std::invalid_argument("weight_hr: only an LSTM has a projection");
    if (one_step)
      throw std::invalid_argument("weight_hr: a projection is not packed for one step");
    const py::array a = py::cast<py::array>(w_hr);
    if (a.ndim() != 2 || a.shape(1) != H_ || a.shape(0) < 1 || a.shape(0) >= H_)
      throw std::invalid_argument("weight_hr: expected shape (P, " + std::to_string(H_) +
                                  ") with 1 <= P < " + std::to_string(H_) + ", got " +
                                  shape_str(a));
    P_ = a.shape(0);
  }
  if (py::isinstance<py::array_t<float>>(w_ih))
    f32_ = pack<float>(w_ih, w_hh, b_ih, b_hh, w_hr);
  else if (py::isinstance<py::array_t<double>>(w_ih))
    f64_ = pack<double>(w_ih, w_hh, b_ih, b_hh, w_hr);
  else
    throw py::type_error("weight_ih: expected dtype float32 or float64, got " +
                         std::string(py::str(w_ih.dtype())));
}

}  // namespace fusedrnn::bindings
