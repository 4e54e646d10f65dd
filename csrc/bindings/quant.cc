// The quantized-inference calls: QuantWeights (checks and packs one layer-direction's
// int8 or 16-bit weights by the kernels of the ISA selected then), quant_forward and its
// pair (bindings/pair.h), and the test probes _quantize_rows, _quant_matmul and
// _quant_use_vnni (the selected ISA's code).
#include "bindings/quant.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "bindings/arrays.h"
#include "bindings/pair.h"
#include "bindings/rows.h"
#include "cpu/dispatch.h"
#include "fusedrnn/cell.h"
#include "fusedrnn/dims.h"
#include "fusedrnn/quant.h"

namespace fusedrnn::bindings {

namespace {

// The largest K whose exact int32 sums cannot overflow: 127 * 127 * K < 2^31.
constexpr int64_t kMaxK = 133000;

const char* mode_name(QuantMode m) {
  return m == QuantMode::int8 ? "int8" : m == QuantMode::float16 ? "float16" : "bfloat16";
}

QuantMode mode_from_name(const std::string& s) {
  if (s == "int8") return QuantMode::int8;
  if (s == "float16") return QuantMode::float16;
  if (s == "bfloat16") return QuantMode::bfloat16;
  throw std::invalid_argument("mode: expected one of 'int8', 'float16', 'bfloat16', got '" + s +
                              "'");
}

// A weight matrix of the mode's element type, 2-D and C-contiguous; int8 values in
// [-127, 127].
const void* weight_of(const py::array& a, const char* name, QuantMode mode) {
  bool ok;
  const char* want;
  if (mode == QuantMode::int8) {
    ok = py::isinstance<py::array_t<int8_t>>(a);
    want = "int8";
  } else if (mode == QuantMode::float16) {
    ok = a.dtype().num() == 23 /* NPY_HALF */ &&
         (a.dtype().byteorder() == '=' || a.dtype().byteorder() == '<');
    want = "float16";
  } else {
    ok = py::isinstance<py::array_t<uint16_t>>(a);
    want = "uint16 (bfloat16 bits)";
  }
  if (!ok)
    throw py::type_error(std::string(name) + ": expected dtype " + want + " for mode '" +
                         mode_name(mode) + "', got " + std::string(py::str(a.dtype())));
  if (a.ndim() != 2)
    throw std::invalid_argument(std::string(name) + ": expected a 2-D array, got shape " +
                                shape_str(a));
  if (!(a.flags() & py::array::c_style))
    throw std::invalid_argument(std::string(name) + ": expected a C-contiguous array");
  if (a.shape(1) < 1 || a.shape(0) < 1)
    throw std::invalid_argument(std::string(name) +
                                ": expected at least one row and column, got " + shape_str(a));
  if (a.shape(1) > kMaxK)
    throw std::invalid_argument(std::string(name) + ": at most " + std::to_string(kMaxK) +
                                " columns (the int32 sums must not overflow), got " +
                                shape_str(a));
  if (mode == QuantMode::int8) {
    const int8_t* p = static_cast<const int8_t*>(a.data());
    for (py::ssize_t i = 0; i < a.size(); ++i)
      if (p[i] == -128)
        throw std::invalid_argument(std::string(name) +
                                    ": int8 weights must lie in [-127, 127] (found -128)");
  }
  return a.data();
}

// Per-row scales: float32 (n,), finite and positive.
const float* scale_of(const py::object& o, const char* name, int64_t n) {
  if (o.is_none())
    throw std::invalid_argument(std::string(name) + ": required in int8 mode");
  const float* s = checked<float>(py::cast<py::array>(o), name, {n});
  for (int64_t i = 0; i < n; ++i)
    if (!(std::isfinite(s[i]) && s[i] > 0.0f))
      throw std::invalid_argument(std::string(name) +
                                  ": expected finite, positive scales (row " +
                                  std::to_string(i) + " is " + std::to_string(s[i]) + ")");
  return s;
}

void must_be_none(const py::object& o, const char* name, const char* why) {
  if (!o.is_none()) throw std::invalid_argument(std::string(name) + ": " + why);
}

bool all_finite(const float* p, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(p[i])) return false;
  return true;
}

}  // namespace

QuantPacked::QuantPacked(const std::string& cell_name, const std::string& mode_s,
                         const py::array& w_ih, const py::array& w_hh, const py::object& b_ih,
                         const py::object& b_hh, const py::object& s_ih,
                         const py::object& s_hh, const py::object& w_hr_o,
                         const py::object& s_hr) {
  const Cell cell = cell_from_name(cell_name);
  const QuantMode mode = mode_from_name(mode_s);
  const bool i8 = mode == QuantMode::int8;
  const int64_t G = num_gates(cell);
  const void* pih = weight_of(w_ih, "weight_ih", mode);
  const void* phh = weight_of(w_hh, "weight_hh", mode);
  if (w_ih.shape(0) < G || w_ih.shape(0) % G != 0)
    throw std::invalid_argument("weight_ih: expected (" + std::to_string(G) +
                                " * hidden_size, input_size) rows for '" + cell_name +
                                "', got " + shape_str(w_ih));
  const int64_t H = w_ih.shape(0) / G, I = w_ih.shape(1);
  int64_t P = 0;
  const void* phr = nullptr;
  if (!w_hr_o.is_none()) {
    if (cell != Cell::lstm)
      throw std::invalid_argument("weight_hr: only an LSTM has a projection");
    const py::array w_hr = py::cast<py::array>(w_hr_o);
    phr = weight_of(w_hr, "weight_hr", mode);
    P = w_hr.shape(0);
    if (P < 1 || w_hr.shape(1) != H)
      throw std::invalid_argument("weight_hr: expected shape (proj_size, " + std::to_string(H) +
                                  "), got " + shape_str(w_hr));
  } else {
    must_be_none(s_hr, "scale_hr", "given without weight_hr");
  }
  const int64_t Hr = P ? P : H;
  if (w_hh.shape(0) != G * H || w_hh.shape(1) != Hr)
    throw std::invalid_argument("weight_hh: expected shape " + shape_str({G * H, Hr}) +
                                ", got " + shape_str(w_hh));
  if (b_ih.is_none() != b_hh.is_none())
    throw std::invalid_argument("bias_ih, bias_hh: give both or neither");
  const float* pbi = optional<float>(b_ih, "bias_ih", {G * H});
  const float* pbh = optional<float>(b_hh, "bias_hh", {G * H});
  const float *psi = nullptr, *psh = nullptr, *psr = nullptr;
  if (i8) {
    psi = scale_of(s_ih, "scale_ih", G * H);
    psh = scale_of(s_hh, "scale_hh", G * H);
    if (P) psr = scale_of(s_hr, "scale_hr", P);
  } else {
    must_be_none(s_ih, "scale_ih", "only int8 weights have scales");
    must_be_none(s_hh, "scale_hh", "only int8 weights have scales");
    must_be_none(s_hr, "scale_hr", "only int8 weights have scales");
  }
  table_ = &quant_kernels();
  w_ = std::make_unique<QuantWeights>();
  table_->pack(*w_, cell, mode, I, H, P, pih, phh, pbi, pbh, psi, psh, phr, psr);
}

std::string QuantPacked::mode() const { return mode_name(w_->mode); }

namespace {
Prepared quant_forward_prepared(const QuantPacked& qw, const py::array& x_a,
                                const py::array& h0_a, const py::object& c0_o,
                                const py::object& batch_sizes) {
  const QuantWeights& w = qw.get();
  auto rows = std::make_shared<Rows>();  // d's row offsets: kept by the kernel call
  const Dims d = dims_for(w.I, w.H, w.P, x_a, batch_sizes, *rows);
  const bool packed = !batch_sizes.is_none(), lstm = w.cell == Cell::lstm;
  const int64_t Hr = w.P ? w.P : w.H;
  const float* x = checked_rows<float>(x_a, "x", d, packed, d.I);
  const float* h0 = checked<float>(h0_a, "h0", {d.B, Hr});
  const float* c0 = cell_state<float>(c0_o, lstm, d.B, d.H);
  // int8: a non-finite c0 would only show as a NaN h at the next step; refuse it here.
  if (w.mode == QuantMode::int8 && c0 && !all_finite(c0, d.B * d.H))
    throw std::invalid_argument("x, h0 or c0: non-finite values cannot be quantized (int8 mode)");
  py::array_t<float> y(rows_shape(d, packed, Hr));
  auto h_n = empty<float>({d.B, Hr});
  py::object c_n = py::none();
  float* pc_n = nullptr;
  if (lstm) {
    auto c = empty<float>({d.B, d.H});
    pc_n = c.mutable_data();
    c_n = c;
  }
  float* py_ = y.mutable_data();
  float* ph = h_n.mutable_data();
  return {py::make_tuple(y, h_n, c_n), [&qw, &w, rows, d, x, h0, c0, py_, ph, pc_n] {
            if (qw.table().forward(w, d, x, h0, c0, py_, ph, pc_n) == QuantStatus::non_finite)
              throw std::invalid_argument(
                  "x, h0 or c0: non-finite values cannot be quantized (int8 mode; or a state "
                  "overflowed to infinity)");
          }};
}
}  // namespace

py::tuple quant_forward_call(const QuantPacked& qw, const py::array& x, const py::array& h0,
                             const py::object& c0, const py::object& batch_sizes) {
  return run(quant_forward_prepared(qw, x, h0, c0, batch_sizes));
}

py::tuple quant_forward_pair_call(const py::object& w, const py::object& x,
                                  const py::object& h0, const py::object& c0,
                                  const py::object& batch_sizes) {
  return run_forward_pair(w, x, h0, c0, [&](const py::object& wi, const py::array& xi,
                                             const py::array& hi, const py::object& ci) {
    return quant_forward_prepared(
        object_arg<QuantPacked>(wi, "weights", "quantized weights (fusedrnn.functional.quant_pack)"),
        xi, hi, ci, batch_sizes);
  });
}

py::tuple quantize_rows_probe(const py::array& a) {
  if (!py::isinstance<py::array_t<float>>(a) || a.ndim() != 2 ||
      !(a.flags() & py::array::c_style))
    throw std::invalid_argument("a: expected a C-contiguous float32 array (M, K), got " +
                                std::string(py::str(a.dtype())) + " " + shape_str(a));
  const int64_t M = a.shape(0), K = a.shape(1);
  auto q = empty<int8_t>({M, K});
  auto s = empty<float>({M});
  const QuantStatus st = quant_kernels().quantize_rows(
      M, K, static_cast<const float*>(a.data()), q.mutable_data(), s.mutable_data());
  if (st != QuantStatus::ok)
    throw std::invalid_argument("a: non-finite values cannot be quantized");
  return py::make_tuple(q, s);
}

py::array quant_matmul_probe(const py::array& a_q, const py::array& w_q) {
  const void* pa = weight_of(a_q, "a_q", QuantMode::int8);
  const void* pw = weight_of(w_q, "w_q", QuantMode::int8);
  if (a_q.shape(1) != w_q.shape(1))
    throw std::invalid_argument("a_q, w_q: expected the same number of columns K, got " +
                                shape_str(a_q) + " and " + shape_str(w_q));
  const int64_t M = a_q.shape(0), N = w_q.shape(0), K = a_q.shape(1);
  auto out = empty<int32_t>({M, N});
  if (N < 1) return out;
  {
    // Safe without the GIL: the inputs are kept alive by the caller, out is new.
    py::gil_scoped_release release;
    quant_kernels().matmul(M, N, K, static_cast<const int8_t*>(pa),
                           static_cast<const int8_t*>(pw), out.mutable_data());
  }
  return out;
}

bool quant_use_vnni_probe(int mode) { return quant_kernels().use_vnni(mode); }

}  // namespace fusedrnn::bindings
