// pybind11 module fusedrnn._core: argument checks, output allocation, GIL release —
// nothing else.  The friendly, fully worded checks live in the Python layer; these
// are the last line of defence so that no call can reach a kernel with a buffer of
// the wrong size, type or layout.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "cpu/dispatch.h"
#include "cpu/threads.h"
#include "fusedrnn/cell.h"
#include "fusedrnn/dims.h"
#include "fusedrnn/kernels.h"

namespace py = pybind11;
using fusedrnn::Cell;
using fusedrnn::Dims;

namespace {

std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    if (i) s += ", ";
    s += std::to_string(a.shape(i));
  }
  if (a.ndim() == 1) s += ",";
  return s + ")";
}

std::string shape_str(std::initializer_list<int64_t> dims) {
  std::string s = "(";
  size_t i = 0;
  for (int64_t d : dims) {
    if (i++) s += ", ";
    s += std::to_string(d);
  }
  if (dims.size() == 1) s += ",";
  return s + ")";
}

// The array must have dtype T, be C-contiguous and have exactly this shape.
template <class T>
const T* checked(const py::array& a, const char* name, std::initializer_list<int64_t> shape) {
  // Equivalence, not identity: an unpickled float32 array has an equal dtype object
  // that is not NumPy's canonical one.  Byte-swapped arrays are not equivalent.
  if (!py::isinstance<py::array_t<T>>(a))
    throw py::type_error(std::string(name) + ": expected dtype " +
                         std::string(py::str(py::dtype::of<T>())) + ", got " +
                         std::string(py::str(a.dtype())));
  bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
  size_t i = 0;
  for (int64_t d : shape) ok = ok && a.shape(i++) == d;
  if (!ok)
    throw std::invalid_argument(std::string(name) + ": expected shape " + shape_str(shape) +
                                ", got " + shape_str(a));
  if (!(a.flags() & py::array::c_style))
    throw std::invalid_argument(std::string(name) + ": expected a C-contiguous array");
  return static_cast<const T*>(a.data());
}

template <class T>
const T* optional(const py::object& o, const char* name, std::initializer_list<int64_t> shape) {
  if (o.is_none()) return nullptr;
  return checked<T>(py::cast<py::array>(o), name, shape);
}

template <class T>
py::array_t<T> empty(std::initializer_list<int64_t> shape) {
  return py::array_t<T>(std::vector<py::ssize_t>(shape.begin(), shape.end()));
}

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

// One layer-direction's packed weights, in float32 or float64.
class PackedWeights {
 public:
  PackedWeights(const std::string& cell_name, const py::array& w_ih, const py::array& w_hh,
                const py::object& b_ih, const py::object& b_hh, bool one_step,
                const py::object& w_hr)
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
const fusedrnn::Weights<float>& PackedWeights::get<float>() const {
  return *f32_;
}
template <>
const fusedrnn::Weights<double>& PackedWeights::get<double>() const {
  return *f64_;
}
template <>
const fusedrnn::KernelTable<float>& PackedWeights::kernels<float>() const {
  return *k32_;
}
template <>
const fusedrnn::KernelTable<double>& PackedWeights::kernels<double>() const {
  return *k64_;
}

// Rows per step (see fusedrnn/dims.h): bs[0..T] and off[0..T], owned here.
struct Rows {
  std::vector<int64_t> bs, off;
};

// The sizes of a sequence call.  Without batch_sizes x is (T, B, I) and every step has
// B rows; with them (int64 (T,), non-increasing, each >= 1: the rows of each step of a
// batch sorted by length, longest first) x is (N, I) with N = their sum, packed by step.
// The kernels index memory by these numbers, so every one is checked here.
Dims dims_of(const PackedWeights& w, const py::array& x, const py::object& batch_sizes,
             Rows& rows) {
  Dims d;
  d.H = w.hidden_size();
  d.P = w.proj_size();
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
  if (d.I != w.input_size())
    throw std::invalid_argument("x: expected " + std::to_string(w.input_size()) +
                                " input features, got " + shape_str(x));
  return d;
}

// The shape of a per-row array (x, y, dy, dx) with `cols` columns: (T, B, cols), or
// (N, cols) packed.
std::vector<py::ssize_t> rows_shape(const Dims& d, bool packed, int64_t cols) {
  if (packed) return {static_cast<py::ssize_t>(d.N), static_cast<py::ssize_t>(cols)};
  return {static_cast<py::ssize_t>(d.T), static_cast<py::ssize_t>(d.B),
          static_cast<py::ssize_t>(cols)};
}

// checked<T> with a run-time shape.
template <class T>
const T* checked_rows(const py::array& a, const char* name, const Dims& d, bool packed,
                      int64_t cols) {
  return packed ? checked<T>(a, name, {d.N, cols}) : checked<T>(a, name, {d.T, d.B, cols});
}

// c0 checked as (B, H) for an LSTM (required), or absent for the other cells.
template <class T>
const T* cell_state(const py::object& c0_o, bool lstm, int64_t B, int64_t H) {
  if (lstm) {
    if (c0_o.is_none()) throw std::invalid_argument("c0: required for an LSTM");
    return checked<T>(py::cast<py::array>(c0_o), "c0", {B, H});
  }
  if (!c0_o.is_none()) throw std::invalid_argument("c0: only an LSTM has a cell state");
  return nullptr;
}

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
    // Safe without the GIL: as in forward_t.
    py::gil_scoped_release release;
    pw.kernels<T>().step(pw.get<T>(), B, x, h0, c0, ph, pc);
  }
  return py::make_tuple(h1, c1);
}

template <class T>
py::tuple forward_t(const PackedWeights& pw, const py::array& x_a, const py::array& h0_a,
                    const py::object& c0_o, bool train, const py::object& batch_sizes) {
  Rows rows;
  const Dims d = dims_of(pw, x_a, batch_sizes, rows);
  const bool packed = !batch_sizes.is_none(), lstm = pw.cell() == Cell::lstm;
  const int64_t Hr = pw.state_size();
  const T* x = checked_rows<T>(x_a, "x", d, packed, d.I);
  const T* h0 = checked<T>(h0_a, "h0", {d.B, Hr});
  const T* c0 = cell_state<T>(c0_o, lstm, d.B, d.H);
  py::array_t<T> y(rows_shape(d, packed, Hr));
  auto h_n = empty<T>({d.B, Hr});
  py::object c_n = py::none();
  T* pc_n = nullptr;
  if (lstm) {
    auto c = empty<T>({d.B, d.H});
    pc_n = c.mutable_data();
    c_n = c;
  }
  py::object ws = py::none();
  T* pws = nullptr;
  if (train) {
    auto w = empty<T>({fusedrnn::Workspace{pw.cell(), d}.size()});
    pws = w.mutable_data();
    ws = w;
  }
  T* py_ = y.mutable_data();
  T* ph = h_n.mutable_data();
  {
    // Safe without the GIL: the inputs are kept alive by the caller's references, the
    // outputs are new arrays that no other thread has seen, and `pw` is immutable.
    py::gil_scoped_release release;
    pw.kernels<T>().forward(pw.get<T>(), d, x, h0, c0, py_, ph, pc_n, pws);
  }
  return py::make_tuple(y, h_n, c_n, ws);
}

template <class T>
py::tuple backward_t(const PackedWeights& pw, const py::array& x_a, const py::array& ws_a,
                     const py::array& dy_a, const py::object& dh_o, const py::object& dc_o,
                     const py::object& batch_sizes, bool need_dx) {
  Rows rows;
  const Dims d = dims_of(pw, x_a, batch_sizes, rows);
  const bool packed = !batch_sizes.is_none(), lstm = pw.cell() == Cell::lstm;
  const int64_t GH = fusedrnn::num_gates(pw.cell()) * d.H, Hr = pw.state_size();
  const T* x = checked_rows<T>(x_a, "x", d, packed, d.I);
  const T* ws = checked<T>(ws_a, "workspace", {fusedrnn::Workspace{pw.cell(), d}.size()});
  const T* dy = checked_rows<T>(dy_a, "dy", d, packed, Hr);
  const T* dh_n = optional<T>(dh_o, "dh_n", {d.B, Hr});
  const T* dc_n = optional<T>(dc_o, "dc_n", {d.B, d.H});
  if (dc_n && !lstm) throw std::invalid_argument("dc_n: only an LSTM has a cell state");

  // need_dx=False: the product dx = dgates W_ih is skipped and dx is None (a first
  // layer whose input needs no gradient; the other results are unchanged, bit for bit).
  py::object dx = py::none();
  T* pdx = nullptr;
  if (need_dx) {
    py::array_t<T> a(rows_shape(d, packed, d.I));
    pdx = a.mutable_data();
    dx = a;
  }
  auto dh0 = empty<T>({d.B, Hr});
  auto dw_ih = empty<T>({GH, d.I});
  auto dw_hh = empty<T>({GH, Hr});
  py::object dc0 = py::none(), db_ih = py::none(), db_hh = py::none(), dw_hr = py::none();
  T *pdc0 = nullptr, *pdbi = nullptr, *pdbh = nullptr, *pdwr = nullptr;
  if (lstm) {
    auto a = empty<T>({d.B, d.H});
    pdc0 = a.mutable_data();
    dc0 = a;
  }
  if (pw.has_bias()) {
    auto a = empty<T>({GH});
    auto b = empty<T>({GH});
    pdbi = a.mutable_data();
    pdbh = b.mutable_data();
    db_ih = a;
    db_hh = b;
  }
  if (d.P) {
    auto a = empty<T>({d.P, d.H});
    pdwr = a.mutable_data();
    dw_hr = a;
  }
  T* pdh0 = dh0.mutable_data();
  T* pdwi = dw_ih.mutable_data();
  T* pdwh = dw_hh.mutable_data();
  {
    // Safe without the GIL: as in forward — inputs held by the caller, outputs new.
    py::gil_scoped_release release;
    pw.kernels<T>().backward(pw.get<T>(), d, x, ws, dy, dh_n, dc_n, pdx, pdh0, pdc0, pdwi, pdwh,
                             pdwr, pdbi, pdbh);
  }
  return py::make_tuple(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr);
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

// The module's definitions: one m.def / class_ per binding, each a few lines with its
// argument names and docstring, so this list is longer than 80 lines by nature; the
// work is in the functions above.
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

  m.def(
      "forward",
      [](const PackedWeights& w, const py::array& x, const py::array& h0, const py::object& c0,
         bool train, const py::object& batch_sizes) {
        return w.is_f32() ? forward_t<float>(w, x, h0, c0, train, batch_sizes)
                          : forward_t<double>(w, x, h0, c0, train, batch_sizes);
      },
      py::arg("weights"), py::arg("x"), py::arg("h0"), py::arg("c0") = py::none(),
      py::arg("train") = false, py::arg("batch_sizes") = py::none());

  m.def(
      "backward",
      [](const PackedWeights& w, const py::array& x, const py::array& workspace,
         const py::array& dy, const py::object& dh_n, const py::object& dc_n,
         const py::object& batch_sizes, bool need_dx) {
        return w.is_f32()
                   ? backward_t<float>(w, x, workspace, dy, dh_n, dc_n, batch_sizes, need_dx)
                   : backward_t<double>(w, x, workspace, dy, dh_n, dc_n, batch_sizes, need_dx);
      },
      py::arg("weights"), py::arg("x"), py::arg("workspace"), py::arg("dy"),
      py::arg("dh_n") = py::none(), py::arg("dc_n") = py::none(),
      py::arg("batch_sizes") = py::none(), py::arg("need_dx") = true);

  m.def(
      "step",
      [](const PackedWeights& w, const py::array& x, const py::array& h0, const py::object& c0) {
        return w.is_f32() ? step_t<float>(w, x, h0, c0) : step_t<double>(w, x, h0, c0);
      },
      py::arg("weights"), py::arg("x"), py::arg("h0"), py::arg("c0") = py::none());

  m.def(
      "cell_call",
      [](const PackedWeights& w, const py::handle& x, const py::handle& hx) {
        return w.is_f32() ? cell_call_t<float>(w, x, hx) : cell_call_t<double>(w, x, hx);
      },
      py::arg("weights"), py::arg("x"), py::arg("hx"),
      "A cell's inference step when x and hx need no conversion, else None.");

  m.def(
      "workspace_size",
      [](const std::string& cell, int64_t T, int64_t B, int64_t H, int64_t proj_size,
         int64_t N) {
        Dims d;
        d.T = T;
        d.B = B;
        d.H = H;
        d.P = proj_size;
        d.N = N < 0 ? T * B : N;
        return fusedrnn::Workspace{fusedrnn::cell_from_name(cell), d}.size();
      },
      py::arg("cell"), py::arg("T"), py::arg("B"), py::arg("H"), py::arg("proj_size") = 0,
      py::arg("N") = -1,
      "Elements of the training workspace of one layer and direction (N: packed rows, "
      "T * B by default).");

  m.def("set_num_threads", &fusedrnn::set_num_threads, py::arg("n"),
        "Threads the kernels use (default: the CPUs this process may run on).");
  m.def("get_num_threads", &fusedrnn::get_num_threads);
  m.def("_last_region_threads", &fusedrnn::last_region_threads,
        "Tests only: threads that ran the last parallel region this thread started.");
  m.def("_use_isa", &fusedrnn::use_isa, py::arg("isa"),
        "Tests only: switch the kernels that newly packed weights use.");
  m.def(
      "_activation",
      [](const std::string& which, const py::array& x) -> py::array {
        int w = which == "exp" ? 0 : which == "sigmoid" ? 1 : which == "tanh" ? 2 : -1;
        if (w < 0)
          throw std::invalid_argument("which: expected 'exp', 'sigmoid' or 'tanh', got '" +
                                      which + "'");
        if (x.ndim() != 1) throw std::invalid_argument("x: expected one dimension");
        const int64_t n = x.shape(0);
        if (py::isinstance<py::array_t<float>>(x)) {
          const float* px = checked<float>(x, "x", {n});
          auto y = empty<float>({n});
          float* py_ = y.mutable_data();
          py::gil_scoped_release release;
          fusedrnn::kernels_f32().activation(w, px, py_, n);
          return std::move(y);
        }
        const double* px = checked<double>(x, "x", {n});
        auto y = empty<double>({n});
        double* py_ = y.mutable_data();
        py::gil_scoped_release release;
        fusedrnn::kernels_f64().activation(w, px, py_, n);
        return std::move(y);
      },
      py::arg("which"), py::arg("x"),
      "Tests only: exp, sigmoid or tanh with the selected ISA's vector code.");
  m.def(
      "fma_peak",
      [](double seconds) {
        py::gil_scoped_release release;
        return fusedrnn::kernels_f32().fma_peak(seconds);
      },
      py::arg("seconds") = 0.2,
      "float32 FMA GFLOP/s of one thread with the selected ISA (a register-only loop).");

  m.def("cpu_info", []() {
    const auto info = fusedrnn::cpu_info();
    py::dict d;
    d["isa"] = info.isa;
    d["available"] = info.available;
    d["compiled"] = info.compiled;
    d["emulated"] = info.emulated;
    return d;
  });
}
