// The sequence calls, forward and backward of one layer-direction over a whole sequence
// (padded (T, B, I) or packed by batch_sizes), and the size of their training workspace:
// dims_of checks every size the kernels index memory by, then each call checks its
// arrays and allocates its outputs (a Prepared call, bindings/pair.h) and runs the
// kernels with the GIL released.  The pair calls run the two directions of a
// bidirectional layer side by side.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "bindings/arrays.h"
#include "bindings/calls.h"
#include "bindings/packed.h"
#include "bindings/pair.h"
#include "bindings/rows.h"
#include "fusedrnn/cell.h"
#include "fusedrnn/dims.h"
#include "fusedrnn/kernels.h"

namespace fusedrnn::bindings {

namespace {

// The sizes of a sequence call (bindings/rows.h) for these weights.
Dims dims_of(const PackedWeights& w, const py::array& x, const py::object& batch_sizes,
             Rows& rows) {
  return dims_for(w.input_size(), w.hidden_size(), w.proj_size(), x, batch_sizes, rows);
}

template <class T>
Prepared forward_t(const PackedWeights& pw, const py::array& x_a, const py::array& h0_a,
                   const py::object& c0_o, bool train, const py::object& batch_sizes) {
  auto rows = std::make_shared<Rows>();  // d's row offsets: kept by the kernel call
  const Dims d = dims_of(pw, x_a, batch_sizes, *rows);
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
  return {py::make_tuple(y, h_n, c_n, ws), [&pw, rows, d, x, h0, c0, py_, ph, pc_n, pws] {
            pw.kernels<T>().forward(pw.get<T>(), d, x, h0, c0, py_, ph, pc_n, pws);
          }};
}

template <class T>
Prepared backward_t(const PackedWeights& pw, const py::array& x_a, const py::array& ws_a,
                     const py::array& dy_a, const py::object& dh_o, const py::object& dc_o,
                     const py::object& batch_sizes, bool need_dx) {
  auto rows = std::make_shared<Rows>();  // d's row offsets: kept by the kernel call
  const Dims d = dims_of(pw, x_a, batch_sizes, *rows);
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
  return {py::make_tuple(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr),
          [&pw, rows, d, x, ws, dy, dh_n, dc_n, pdx, pdh0, pdc0, pdwi, pdwh, pdwr, pdbi, pdbh] {
            pw.kernels<T>().backward(pw.get<T>(), d, x, ws, dy, dh_n, dc_n, pdx, pdh0, pdc0,
                                     pdwi, pdwh, pdwr, pdbi, pdbh);
          }};
}

const PackedWeights& weights_arg(const py::object& v) {
  return object_arg<PackedWeights>(v, "weights", "packed weights (fusedrnn.functional.pack)");
}

Prepared forward_prepared(const PackedWeights& w, const py::array& x, const py::array& h0,
                          const py::object& c0, bool train, const py::object& batch_sizes) {
  return w.is_f32() ? forward_t<float>(w, x, h0, c0, train, batch_sizes)
                    : forward_t<double>(w, x, h0, c0, train, batch_sizes);
}

Prepared backward_prepared(const PackedWeights& w, const py::array& x,
                           const py::array& workspace, const py::array& dy,
                           const py::object& dh_n, const py::object& dc_n,
                           const py::object& batch_sizes, bool need_dx) {
  return w.is_f32() ? backward_t<float>(w, x, workspace, dy, dh_n, dc_n, batch_sizes, need_dx)
                    : backward_t<double>(w, x, workspace, dy, dh_n, dc_n, batch_sizes, need_dx);
}

}  // namespace

py::tuple forward_call(const PackedWeights& w, const py::array& x, const py::array& h0,
                       const py::object& c0, bool train, const py::object& batch_sizes) {
  return run(forward_prepared(w, x, h0, c0, train, batch_sizes));
}

py::tuple backward_call(const PackedWeights& w, const py::array& x, const py::array& workspace,
                        const py::array& dy, const py::object& dh_n, const py::object& dc_n,
                        const py::object& batch_sizes, bool need_dx) {
  return run(backward_prepared(w, x, workspace, dy, dh_n, dc_n, batch_sizes, need_dx));
}

py::tuple forward_pair_call(const py::object& w, const py::object& x, const py::object& h0,
                            const py::object& c0, bool train, const py::object& batch_sizes) {
  return run_forward_pair(w, x, h0, c0, [&](const py::object& wi, const py::array& xi,
                                             const py::array& hi, const py::object& ci) {
    return forward_prepared(weights_arg(wi), xi, hi, ci, train, batch_sizes);
  });
}

py::tuple backward_pair_call(const py::object& w, const py::object& x,
                             const py::object& workspace, const py::object& dy,
                             const py::object& dh_n, const py::object& dc_n,
                             const py::object& batch_sizes, bool need_dx) {
  const py::sequence ws = pair_arg(w, "weights"), xs = pair_arg(x, "x");
  const py::sequence wss = pair_arg(workspace, "workspace"), dys = pair_arg(dy, "dy");
  const py::sequence dh = pair_arg(dh_n, "dh_n"), dc = pair_arg(dc_n, "dc_n");
  std::vector<py::object> held;  // what the kernels read, alive until they finish
  return run_pair([&](int i) {
    const py::object wi = ws[i], dhi = dh[i], dci = dc[i];
    const py::array xi = array_arg(xs[i], "x"), wsi = array_arg(wss[i], "workspace");
    const py::array dyi = array_arg(dys[i], "dy");
    held.insert(held.end(), {wi, dhi, dci, xi, wsi, dyi});
    return backward_prepared(weights_arg(wi), xi, wsi, dyi, dhi, dci,
                             batch_sizes, need_dx);
  });
}

int64_t workspace_size(const std::string& cell, int64_t T, int64_t B, int64_t H,
                       int64_t proj_size, int64_t N) {
  Dims d;
  d.T = T;
  d.B = B;
  d.H = H;
  d.P = proj_size;
  d.N = N < 0 ? T * B : N;
  return fusedrnn::Workspace{fusedrnn::cell_from_name(cell), d}.size();
}

}  // namespace fusedrnn::bindings
