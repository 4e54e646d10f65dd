// QuantPacked, the Python type fusedrnn._core.QuantWeights: one layer-direction's int8 or
// 16-bit weights, checked and packed once by the quantized kernels of the ISA selected
// then, which every later quant_forward on them uses; and the quantized calls module.cc
// binds (defined in quant.cc).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <string>

#include "fusedrnn/cell.h"
#include "fusedrnn/quant.h"

namespace fusedrnn::bindings {

namespace py = pybind11;

class QuantPacked {
 public:
  QuantPacked(const std::string& cell, const std::string& mode, const py::array& w_ih,
              const py::array& w_hh, const py::object& b_ih, const py::object& b_hh,
              const py::object& s_ih, const py::object& s_hh, const py::object& w_hr,
              const py::object& s_hr);
  const QuantWeights& get() const { return *w_; }
  const QuantTable& table() const { return *table_; }
  std::string cell() const { return cell_name(w_->cell); }
  std::string mode() const;
  int64_t input_size() const { return w_->I; }
  int64_t hidden_size() const { return w_->H; }
  int64_t proj_size() const { return w_->P; }
  std::string isa() const { return w_->isa; }
  bool has_bias() const { return w_->has_bias; }

 private:
  const QuantTable* table_ = nullptr;
  std::unique_ptr<QuantWeights> w_;
};

// (y, h_n, c_n) of one layer-direction, c_n None unless LSTM.
py::tuple quant_forward_call(const QuantPacked& w, const py::array& x, const py::array& h0,
                             const py::object& c0, const py::object& batch_sizes);
// Both directions of a bidirectional layer side by side (bindings/pair.h): weights, x,
// h0, c0 pairs (c0: or None); a pair of quant_forward's results.
py::tuple quant_forward_pair_call(const py::object& w, const py::object& x,
                                  const py::object& h0, const py::object& c0,
                                  const py::object& batch_sizes);
// Tests: the selected ISA's row quantizer, (q, scale).
py::tuple quantize_rows_probe(const py::array& a);
// Tests: the selected ISA's int8 product a_q (M, K) w_q (N, K)^T -> int32 (M, N).
py::array quant_matmul_probe(const py::array& a_q, const py::array& w_q);
// Tests: query (-1) or switch off (0) / on (1) the AVX-512 VNNI tiles.
bool quant_use_vnni_probe(int mode);

}  // namespace fusedrnn::bindings
