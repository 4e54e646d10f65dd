#include "bindings/pair.h"

#include <stdexcept>
#include <string>
#include <vector>

#include "cpu/threads.h"

namespace fusedrnn::bindings {

py::tuple run(const Prepared& p) {
  {
    py::gil_scoped_release release;
    p.run();
  }
  return p.results;
}

namespace {
std::string direction(int i) { return "direction " + std::to_string(i) + ": "; }
}  // namespace

py::tuple run_pair(const std::function<Prepared(int)>& prepare) {
  Prepared p[2];
  for (int i = 0; i < 2; ++i) {
    try {
      p[i] = prepare(i);
    } catch (const py::type_error& e) {
      throw py::type_error(direction(i) + e.what());
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(direction(i) + e.what());
    }
  }
  {
    py::gil_scoped_release release;
    parallel_pair(get_num_threads(), [&p](int i) {
      try {
        p[i].run();
      } catch (const std::invalid_argument& e) {
        throw std::invalid_argument(direction(i) + e.what());
      }
    });
  }
  return py::make_tuple(p[0].results, p[1].results);
}

py::tuple run_forward_pair(const py::object& w, const py::object& x, const py::object& h0,
                           const py::object& c0, const PrepareForward& prepare) {
  const py::sequence ws = pair_arg(w, "weights"), xs = pair_arg(x, "x");
  const py::sequence hs = pair_arg(h0, "h0"), cs = pair_arg(c0, "c0");
  std::vector<py::object> held;  // what the kernels read, alive until they finish
  return run_pair([&](int i) {
    const py::object wi = ws[i], ci = cs[i];
    const py::array xi = array_arg(xs[i], "x"), hi = array_arg(hs[i], "h0");
    held.insert(held.end(), {wi, ci, xi, hi});
    return prepare(wi, xi, hi, ci);
  });
}

py::sequence pair_arg(const py::object& v, const char* name) {
  if (v.is_none()) return py::make_tuple(py::none(), py::none());
  if (!py::isinstance<py::sequence>(v) || py::len(v) != 2)
    throw py::type_error(std::string(name) + ": expected a pair (one per direction)");
  return v.cast<py::sequence>();
}

py::array array_arg(const py::handle& v, const char* name) {
  py::array a = py::array::ensure(v);
  if (!a) throw py::type_error(std::string(name) + ": expected an array");
  return a;
}

}  // namespace fusedrnn::bindings
