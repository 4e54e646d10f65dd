// Probes of the selected ISA for the tests and the benchmark: the vector activations
// (exp, sigmoid, tanh) on an array, the large product alone, one thread's float32 FMA
// peak, cpu_info and the thread team's contention policy as dicts, the parts' profile
// (cpu/profile.h), and what parallel_pair gives each of its two jobs.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>  // cpu_info's lists of ISA names

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <thread>
#include <string>
#include <utility>

#include "bindings/arrays.h"
#include "bindings/calls.h"
#include "cpu/dispatch.h"
#include "cpu/profile.h"
#include "cpu/threads.h"
#include "fusedrnn/kernels.h"

namespace fusedrnn::bindings {

py::array activation(const std::string& which, const py::array& x) {
  int w = which == "exp" ? 0 : which == "sigmoid" ? 1 : which == "tanh" ? 2 : -1;
  if (w < 0)
    throw std::invalid_argument("which: expected 'exp', 'sigmoid' or 'tanh', got '" + which +
                                "'");
  if (x.ndim() != 1) throw std::invalid_argument("x: expected one dimension");
  const int64_t n = x.shape(0);
  if (py::isinstance<py::array_t<float>>(x)) {
    const float* px = checked<float>(x, "x", {n});
    auto y = empty<float>({n});
    float* py_ = y.mutable_data();
    // Safe without the GIL: x is held by the caller and y is new.
    py::gil_scoped_release release;
    fusedrnn::kernels_f32().activation(w, px, py_, n);
    return std::move(y);
  }
  const double* px = checked<double>(x, "x", {n});
  auto y = empty<double>({n});
  double* py_ = y.mutable_data();
  // Safe without the GIL: as above.
  py::gil_scoped_release release;
  fusedrnn::kernels_f64().activation(w, px, py_, n);
  return std::move(y);
}

py::list pair_probe(int n, int fail) {
  struct Seen {
    std::thread::id id;
    int threads = 0, nested = 0, arrivals = 0;
  } seen[2];
  {
    py::gil_scoped_release release;
    parallel_pair(n, [&](int i) {
      Seen& s = seen[i];
      s.id = std::this_thread::get_id();
      s.threads = get_num_threads();
      // A nested region asking for more threads than the job has, with a barrier and a
      // step barrier: every thread it ran must pass both, and a region started inside it
      // must run alone.
      std::atomic<int> passed{0};
      parallel(4096, [&](ThreadCtx& ctx) {
        ctx.barrier();
        if (!ctx.step_barrier()) return;
        int inner = 0;
        parallel(4, [&](ThreadCtx& c) { inner = c.size(); });
        if (inner == 1) passed.fetch_add(1, std::memory_order_relaxed);
      });
      s.nested = last_region_threads();
      s.arrivals = passed.load();
      if (fail == i) throw std::runtime_error("pair_probe: job " + std::to_string(i) + " failed");
    });
  }
  py::list out;
  for (const Seen& s : seen)
    out.append(py::make_tuple(s.threads, s.nested, s.arrivals, s.id != seen[1 - (&s - seen)].id));
  return out;
}

namespace {
template <class T>
py::tuple matmul_as(const KernelTable<T>& k, const py::array& a, const py::array& w,
                    int64_t reps) {
  if (a.ndim() != 2 || w.ndim() != 2 || a.shape(1) != w.shape(1))
    throw std::invalid_argument("a, w: expected shapes (M, K) and (N, K), got a " +
                                shape_str(a) + ", w " + shape_str(w));
  const int64_t M = a.shape(0), K = a.shape(1), N = w.shape(0);
  const T* pa = checked<T>(a, "a", {M, K});
  const T* pw = checked<T>(w, "w", {N, K});
  auto c = empty<T>({M, N});
  T* pc = c.mutable_data();
  double seconds;
  {
    // Safe without the GIL: a and w are held by the caller and c is new.
    py::gil_scoped_release release;
    seconds = k.matmul(M, N, K, pa, pw, pc, reps);
  }
  return py::make_tuple(std::move(c), seconds / static_cast<double>(reps));
}
}  // namespace

py::tuple matmul(const py::array& a, const py::array& w, int64_t reps) {
  if (reps < 1) throw std::invalid_argument("reps: expected >= 1, got " + std::to_string(reps));
  if (py::isinstance<py::array_t<double>>(a))
    return matmul_as(fusedrnn::kernels_f64(), a, w, reps);
  return matmul_as(fusedrnn::kernels_f32(), a, w, reps);
}

double fma_peak(double seconds) {
  // Safe without the GIL: a register-only loop that touches no Python object.
  py::gil_scoped_release release;
  return fusedrnn::kernels_f32().fma_peak(seconds);
}

py::dict adaptive_threads_dict() {
  const auto s = fusedrnn::adaptive_state();
  py::dict d;
  d["adaptive"] = s.adaptive;
  d["cap"] = s.cap;
  d["probe_interval_ms"] = s.probe_interval_ms;
  d["stalls"] = s.stalls;
  d["shrinks"] = s.shrinks;
  d["probes"] = s.probes;
  d["probes_failed"] = s.probes_failed;
  d["last_region_final"] = s.last_region_final;
  return d;
}

py::dict cpu_info_dict() {
  const auto info = fusedrnn::cpu_info();
  py::dict d;
  d["isa"] = info.isa;
  d["available"] = info.available;
  d["compiled"] = info.compiled;
  d["emulated"] = info.emulated;
  return d;
}

py::object profile(py::object on) {
  namespace pr = fusedrnn::profile;
  if (!on.is_none()) {
    pr::set_enabled(on.cast<bool>());
    pr::reset();
    return py::none();
  }
  static const char* names[pr::kParts] = {"input_projection", "steps", "strips", "barrier",
                                          "dx", "dw", "bias"};
  static int64_t ns[pr::kMaxRanks][pr::kParts];
  pr::read(ns, pr::kMaxRanks);
  py::list ranks;
  for (int r = 0; r < pr::kMaxRanks; ++r) {
    py::dict row;
    bool any = false;
    for (int p = 0; p < pr::kParts; ++p) {
      row[names[p]] = ns[r][p] * 1e-9;
      any = any || ns[r][p] != 0;
    }
    if (!any) break;
    ranks.append(row);
  }
  return std::move(ranks);
}

}  // namespace fusedrnn::bindings
