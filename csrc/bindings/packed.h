// PackedWeights, the Python type fusedrnn._core.Weights: one layer-direction's weights,
// checked and packed once (float32 or float64) by the kernels of the ISA chosen when
// they were packed, which every later call on them uses.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <string>

#include "fusedrnn/cell.h"
#include "fusedrnn/kernels.h"

namespace fusedrnn::bindings {

namespace py = pybind11;

// One layer-direction's packed weights, in float32 or float64.
class PackedWeights {
 public:
  PackedWeights(const std::string& cell_name, const py::array& w_ih, const py::array& w_hh,
                const py::object& b_ih, const py::object& b_hh, bool one_step,
                const py::object& w_hr);

  Cell cell() const { return cell_; }
  int64_t input_size() const { return I_; }
  int64_t hidden_size() const { return H_; }
  int64_t proj_size() const { return P_; }
  int64_t state_size() const { return P_ ? P_ : H_; }  // width of h
  bool is_f32() const { return static_cast<bool>(f32_); }
  py::dtype dtype() const { return f32_ ? py::dtype::of<float>() : py::dtype::of<double>(); }
  std::string isa() const { return f32_ ? f32_->isa : f64_->isa; }
  // The kernels of the ISA that packed these weights (the packing is theirs).
  template <class T>
  const fusedrnn::KernelTable<T>& kernels() const;
  bool has_bias() const { return f32_ ? f32_->has_bias : f64_->has_bias; }
  bool one_step() const { return f32_ ? f32_->one_step : f64_->one_step; }
  template <class T>
  const fusedrnn::Weights<T>& get() const;

 private:
  template <class T>
  std::unique_ptr<fusedrnn::Weights<T>> pack(const py::array& w_ih, const py::array& w_hh,
                                             const py::object& b_ih, const py::object& b_hh,
                                             const py::object& w_hr);

  void set_kernels(const fusedrnn::KernelTable<float>* t) { k32_ = t; }
  void set_kernels(const fusedrnn::KernelTable<double>* t) { k64_ = t; }

  Cell cell_;
  bool one_step_ = false;
  int64_t I_ = 0, H_ = 0, P_ = 0;
  const fusedrnn::KernelTable<float>* k32_ = nullptr;
  const fusedrnn::KernelTable<double>* k64_ = nullptr;
  std::unique_ptr<fusedrnn::Weights<float>> f32_;
  std::unique_ptr<fusedrnn::Weights<double>> f64_;
};

template <>
inline const fusedrnn::Weights<float>& PackedWeights::get<float>() const {
  return *f32_;
}
template <>
inline const fusedrnn::Weights<double>& PackedWeights::get<double>() const {
  return *f64_;
}
template <>
inline const fusedrnn::KernelTable<float>& PackedWeights::kernels<float>() const {
  return *k32_;
}
template <>
inline const fusedrnn::KernelTable<double>& PackedWeights::kernels<double>() const {
  return *k64_;
}

}  // namespace fusedrnn::bindings
