// The drop-in cells' repeat call on torch tensors, in one compiled call: tensor_cell
// tests a call against the cell's plan (python/fusedrnn/torch/_plan.py: what its last
// checked call established) and, when it matches and autograd is not needed, runs the
// step kernel on the tensors' own memory and returns the new state as tensors.
//
// torch is never linked: tensors are read through the Python C API alone (their type,
// `dtype`, `shape`, `is_cpu`, `layout`, `is_contiguous()`, `is_neg()`, `requires_grad`,
// `data_ptr()`), with torch's objects handed over once by tensor_setup.  Anything the
// plan does not cover returns None, and the caller takes the checked path, which raises
// the worded errors; a match that needs autograd returns False.  Raw METH_FASTCALL
// functions rather than pybind11 defs: a call that returns at once costs 47 ns here
// against 92 ns through pybind11's dispatch (a small part of the call; most of its cost
// is torch's own, about 70 ns per attribute read: docs/pytorch.md, "The cost of one call").
#include <Python.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <vector>

#include "bindings/packed.h"
#include "bindings/tensor_step.h"
#include "fusedrnn/cell.h"
#include "fusedrnn/kernels.h"

namespace fusedrnn::bindings {

namespace {

// torch's objects (tensor_setup) and the attribute names, interned once.
struct Torch {
  PyObject* tensor_type = nullptr;  // torch.Tensor (exact type only: no subclasses)
  PyObject* strided = nullptr;      // torch.strided
  PyObject* from_numpy = nullptr;   // torch.from_numpy
  PyObject* grad_enabled = nullptr; // torch.is_grad_enabled
  // tensor_call (the cells' __call__): torch.nn.Module.__call__'s global hook dicts, the
  // tracing probe and the drop-in cells' own forward (tensor_call_setup).
  PyObject* global_hooks = nullptr;   // a tuple of the four global hook dicts
  PyObject* tracing_state = nullptr;  // torch._C._get_tracing_state
  PyObject* forward = nullptr;        // _CellMixin.forward
  PyObject *s_dtype, *s_shape, *s_is_cpu, *s_layout, *s_is_contiguous, *s_is_neg,
      *s_requires_grad, *s_data_ptr, *s_version, *s_dict, *s_plan, *s_fast, *s_parameters,
      *s_nonlinearity, *s_forward, *s_compiled, *s_hook_names[4];
};
Torch g;

// The fields of a plan's `fast` tuple (made by _plan.Plan.fast_key; keep in step).
enum Field {
  kPacked,    // the packed weights (fusedrnn._core.Weights)
  kCache,     // _plan._CACHE: [enabled, epoch]
  kEpoch,     // the epoch the plan was made in
  kOwn,       // the module's _parameters values when planned (identity)
  kParams,    // the weights in the kernels' order
  kVersions,  // their autograd versions
  kPtrs,      // their data pointers
  kExtra,     // the cell's nonlinearity (RNNCell) or None
  kDtype,     // torch.float32 or torch.float64
  kXShape,    // the input's shape
  kHx,        // 0: hx None, 1: a tensor, 2: a pair (h, c)
  kHShape,    // the state tensors' shape (also the outputs')
  kZeros,     // zero states (arrays (B, H)) for hx None
  kRows,      // B
  kFields
};

// A new reference to obj.name, or null with the error cleared.
PyObject* attr(PyObject* obj, PyObject* name) {
  PyObject* r = PyObject_GetAttr(obj, name);
  if (!r) PyErr_Clear();
  return r;
}

// obj.name is `want` (identity); false on any error.
bool attr_is(PyObject* obj, PyObject* name, PyObject* want) {
  PyObject* r = attr(obj, name);
  if (!r) return false;
  const bool ok = r == want;
  Py_DECREF(r);
  return ok;
}

// obj.name() is `want` (identity); false on any error.
bool call_is(PyObject* obj, PyObject* name, PyObject* want) {
  PyObject* r = PyObject_CallMethodNoArgs(obj, name);
  if (!r) {
    PyErr_Clear();
    return false;
  }
  const bool ok = r == want;
  Py_DECREF(r);
  return ok;
}

// t.data_ptr() as a pointer, or null on any error.
void* data_ptr(PyObject* t) {
  PyObject* r = PyObject_CallMethodNoArgs(t, g.s_data_ptr);
  if (!r) {
    PyErr_Clear();
    return nullptr;
  }
  void* p = PyLong_AsVoidPtr(r);
  Py_DECREF(r);
  if (PyErr_Occurred()) {
    PyErr_Clear();
    return nullptr;
  }
  return p;
}

// t is a plain (not a subclass) dense contiguous CPU tensor of this dtype and shape,
// with no lazy negation: its memory as the kernels read it, else null.  *grad: whether
// it requires a gradient (read only if grad is not null).
void* plain(PyObject* t, PyObject* dtype, PyObject* shape, bool* grad) {
  if (reinterpret_cast<PyObject*>(Py_TYPE(t)) != g.tensor_type) return nullptr;
  if (!attr_is(t, g.s_dtype, dtype) || !attr_is(t, g.s_is_cpu, Py_True) ||
      !attr_is(t, g.s_layout, g.strided))
    return nullptr;
  PyObject* s = attr(t, g.s_shape);
  if (!s) return nullptr;
  const int eq = PyObject_RichCompareBool(s, shape, Py_EQ);
  Py_DECREF(s);
  if (eq != 1) {
    if (eq < 0) PyErr_Clear();
    return nullptr;
  }
  if (!call_is(t, g.s_is_contiguous, Py_True) || !call_is(t, g.s_is_neg, Py_False))
    return nullptr;
  if (grad && attr_is(t, g.s_requires_grad, Py_True)) *grad = true;
  return data_ptr(t);
}

// The module's parameters are those the plan was made with, unchanged since (same
// objects, addresses and autograd versions); *grad: one of them requires a gradient.
bool params_unchanged(PyObject* module_dict, PyObject* f, bool* grad) {
  PyObject* own = PyDict_GetItemWithError(module_dict, g.s_parameters);  // borrowed
  if (!own || !PyDict_Check(own)) {
    PyErr_Clear();
    return false;
  }
  PyObject* want = PyTuple_GET_ITEM(f, kOwn);
  if (PyDict_GET_SIZE(own) != PyTuple_GET_SIZE(want)) return false;
  Py_ssize_t pos = 0, i = 0;
  PyObject *k, *v;
  while (PyDict_Next(own, &pos, &k, &v))
    if (v != PyTuple_GET_ITEM(want, i++)) return false;
  PyObject* params = PyTuple_GET_ITEM(f, kParams);
  PyObject* versions = PyTuple_GET_ITEM(f, kVersions);
  PyObject* ptrs = PyTuple_GET_ITEM(f, kPtrs);
  for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(params); ++j) {
    PyObject* p = PyTuple_GET_ITEM(params, j);
    PyObject* ver = attr(p, g.s_version);
    if (!ver) return false;
    const int same = PyObject_RichCompareBool(ver, PyTuple_GET_ITEM(versions, j), Py_EQ);
    Py_DECREF(ver);
    if (same != 1) {
      if (same < 0) PyErr_Clear();
      return false;
    }
    void* ptr = data_ptr(p);
    if (!ptr || ptr != PyLong_AsVoidPtr(PyTuple_GET_ITEM(ptrs, j))) return false;
    if (grad && attr_is(p, g.s_requires_grad, Py_True)) *grad = true;
  }
  return true;
}

// torch.from_numpy(a), a new reference (null with a Python error set on failure).
PyObject* as_tensor(const py::array& a) { return PyObject_CallOneArg(g.from_numpy, a.ptr()); }

// The step on checked pointers: the new state as tensors of `shape`, as the cell returns
// it ((h', c') for an LSTM, else h').
template <class T>
PyObject* run(const PackedWeights& pw, PyObject* shape, int64_t B, const void* x,
              const void* h0, const void* c0) {
  std::vector<py::ssize_t> dims;
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(shape); ++i)
    dims.push_back(PyLong_AsSsize_t(PyTuple_GET_ITEM(shape, i)));
  const bool lstm = pw.cell() == Cell::lstm;
  py::array_t<T> h1(dims);
  py::object c1;
  T* pc = nullptr;
  if (lstm) {
    py::array_t<T> c(dims);
    pc = c.mutable_data();
    c1 = c;
  }
  T* ph = h1.mutable_data();
  {
    // Safe without the GIL: the inputs are the caller's tensors, kept alive by its
    // references; the outputs are new arrays no other thread has seen; `pw` is immutable.
    py::gil_scoped_release release;
    pw.kernels<T>().step(pw.get<T>(), B, static_cast<const T*>(x), static_cast<const T*>(h0),
                         static_cast<const T*>(c0), ph, pc);
  }
  PyObject* h = as_tensor(h1);
  if (!h || !lstm) return h;
  PyObject* c = as_tensor(py::reinterpret_borrow<py::array>(c1));
  if (!c) {
    Py_DECREF(h);
    return nullptr;
  }
  PyObject* out = PyTuple_Pack(2, h, c);
  Py_DECREF(h);
  Py_DECREF(c);
  return out;
}

// tensor_cell(module, x, hx): see the top of this file.
PyObject* tensor_cell(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 3) {
    PyErr_SetString(PyExc_TypeError, "tensor_cell: expected (module, x, hx)");
    return nullptr;
  }
  if (!g.tensor_type) Py_RETURN_NONE;  // tensor_setup not called: the checked path
  PyObject* module_dict = attr(args[0], g.s_dict);
  if (!module_dict) Py_RETURN_NONE;
  py::object holder = py::reinterpret_steal<py::object>(module_dict);
  if (!PyDict_Check(module_dict)) Py_RETURN_NONE;
  PyObject* plan = PyDict_GetItemWithError(module_dict, g.s_plan);  // borrowed
  if (!plan || plan == Py_None) {
    PyErr_Clear();
    Py_RETURN_NONE;
  }
  py::object f_obj = py::reinterpret_steal<py::object>(attr(plan, g.s_fast));
  PyObject* f = f_obj.ptr();
  if (!f || !PyTuple_Check(f) || PyTuple_GET_SIZE(f) != kFields) Py_RETURN_NONE;

  // The cache is on and no weight_cache(False) block ended since the plan was made.
  PyObject* cache = PyTuple_GET_ITEM(f, kCache);
  if (PyList_GET_ITEM(cache, 0) != Py_True ||
      PyObject_RichCompareBool(PyList_GET_ITEM(cache, 1), PyTuple_GET_ITEM(f, kEpoch), Py_EQ) != 1)
    Py_RETURN_NONE;
  // The nonlinearity (an RNNCell's may be reassigned).
  PyObject* extra = PyTuple_GET_ITEM(f, kExtra);
  PyObject* now = PyDict_GetItemWithError(module_dict, g.s_nonlinearity);  // borrowed
  if (!now) {
    PyErr_Clear();
    now = Py_None;
  }
  if (now != extra && PyObject_RichCompareBool(now, extra, Py_EQ) != 1) {
    PyErr_Clear();
    Py_RETURN_NONE;
  }

  PyObject* r = PyObject_CallNoArgs(g.grad_enabled);
  if (!r) return nullptr;
  const bool grad_on = r == Py_True;
  Py_DECREF(r);
  bool grad = false;
  bool* want_grad = grad_on ? &grad : nullptr;

  PyObject* dtype = PyTuple_GET_ITEM(f, kDtype);
  const void* x = plain(args[1], dtype, PyTuple_GET_ITEM(f, kXShape), want_grad);
  if (!x) Py_RETURN_NONE;
  const long hx_kind = PyLong_AsLong(PyTuple_GET_ITEM(f, kHx));
  PyObject* hshape = PyTuple_GET_ITEM(f, kHShape);
  PyObject* hx = args[2];
  const void *h0 = nullptr, *c0 = nullptr;
  if (hx_kind == 0) {
    if (hx != Py_None) Py_RETURN_NONE;
    PyObject* zeros = PyTuple_GET_ITEM(f, kZeros);
    h0 = py::reinterpret_borrow<py::array>(PyTuple_GET_ITEM(zeros, 0)).data();
    if (PyTuple_GET_SIZE(zeros) == 2)
      c0 = py::reinterpret_borrow<py::array>(PyTuple_GET_ITEM(zeros, 1)).data();
  } else if (hx_kind == 1) {
    h0 = plain(hx, dtype, hshape, want_grad);
    if (!h0) Py_RETURN_NONE;
  } else {
    if (!PyTuple_CheckExact(hx) || PyTuple_GET_SIZE(hx) != 2) Py_RETURN_NONE;
    h0 = plain(PyTuple_GET_ITEM(hx, 0), dtype, hshape, want_grad);
    if (!h0) Py_RETURN_NONE;
    c0 = plain(PyTuple_GET_ITEM(hx, 1), dtype, hshape, want_grad);
    if (!c0) Py_RETURN_NONE;
  }
  if (!params_unchanged(module_dict, f, want_grad)) Py_RETURN_NONE;
  if (grad) Py_RETURN_FALSE;  // matches, but autograd must record the step

  const PackedWeights* pw = nullptr;
  try {
    pw = py::cast<const PackedWeights*>(py::handle(PyTuple_GET_ITEM(f, kPacked)));
  } catch (const py::cast_error&) {
    Py_RETURN_NONE;
  }
  const int64_t B = PyLong_AsLongLong(PyTuple_GET_ITEM(f, kRows));
  try {
    return pw->is_f32() ? run<float>(*pw, hshape, B, x, h0, c0)
                        : run<double>(*pw, hshape, B, x, h0, c0);
  } catch (py::error_already_set& e) {
    e.restore();
    return nullptr;
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
    return nullptr;
  }
}

// Whether torch.nn.Module.__call__ on this module would call forward(*args) and nothing
// else: no hooks (the module's or global), not compiled, not traced, and its forward is
// the drop-in cells' own (not a subclass's or an instance attribute).
bool plain_call(PyObject* module) {
  if (!g.global_hooks) return false;
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(g.global_hooks); ++i)
    if (PyDict_GET_SIZE(PyTuple_GET_ITEM(g.global_hooks, i))) return false;
  PyObject* d = attr(module, g.s_dict);
  if (!d) return false;
  py::object holder = py::reinterpret_steal<py::object>(d);
  if (!PyDict_Check(d)) return false;
  for (PyObject* name : g.s_hook_names) {
    PyObject* h = PyDict_GetItemWithError(d, name);  // borrowed
    if (!h || !PyDict_Check(h) || PyDict_GET_SIZE(h)) {
      PyErr_Clear();
      return false;
    }
  }
  PyObject* compiled = PyDict_GetItemWithError(d, g.s_compiled);
  if (PyErr_Occurred()) PyErr_Clear();
  if (compiled && compiled != Py_None) return false;
  if (PyDict_GetItemWithError(d, g.s_forward) || PyErr_Occurred()) {
    PyErr_Clear();
    return false;
  }
  PyObject* fwd = attr(reinterpret_cast<PyObject*>(Py_TYPE(module)), g.s_forward);
  if (!fwd) return false;
  const bool own = fwd == g.forward;
  Py_DECREF(fwd);
  if (!own) return false;
  PyObject* tracing = PyObject_CallNoArgs(g.tracing_state);
  if (!tracing) {
    PyErr_Clear();
    return false;
  }
  const bool traced = tracing != Py_None;
  Py_DECREF(tracing);
  return !traced;
}

// tensor_call(module, x, hx): tensor_cell when torch.nn.Module.__call__ would only call
// forward (plain_call); else None.  The cells' __call__, which skips Module.__call__'s
// own Python when it would do nothing.
PyObject* tensor_call(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 3) {
    PyErr_SetString(PyExc_TypeError, "tensor_call: expected (module, x, hx)");
    return nullptr;
  }
  if (!plain_call(args[0])) Py_RETURN_NONE;
  return tensor_cell(self, args, nargs);
}

// tensor_call_setup((the four global hook dicts), torch._C._get_tracing_state,
// _CellMixin.forward).
PyObject* tensor_call_setup(PyObject*, PyObject* args) {
  PyObject *hooks, *tracing, *forward;
  if (!PyArg_ParseTuple(args, "O!OO", &PyTuple_Type, &hooks, &tracing, &forward)) return nullptr;
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(hooks); ++i)
    if (!PyDict_Check(PyTuple_GET_ITEM(hooks, i))) {
      PyErr_SetString(PyExc_TypeError, "tensor_call_setup: expected a tuple of dicts");
      return nullptr;
    }
  if (!PyCallable_Check(tracing)) {
    PyErr_SetString(PyExc_TypeError, "tensor_call_setup: expected a callable tracing probe");
    return nullptr;
  }
  if (!g.s_forward) {
    const char* names[] = {"_backward_hooks", "_backward_pre_hooks", "_forward_hooks",
                           "_forward_pre_hooks"};
    for (int i = 0; i < 4; ++i)
      if (!(g.s_hook_names[i] = PyUnicode_InternFromString(names[i]))) return nullptr;
    if (!(g.s_compiled = PyUnicode_InternFromString("_compiled_call_impl"))) return nullptr;
    if (!(g.s_forward = PyUnicode_InternFromString("forward"))) return nullptr;
  }
  for (PyObject** dst : {&g.global_hooks, &g.tracing_state, &g.forward}) Py_XDECREF(*dst);
  Py_INCREF(hooks);
  Py_INCREF(tracing);
  Py_INCREF(forward);
  g.global_hooks = hooks;
  g.tracing_state = tracing;
  g.forward = forward;
  Py_RETURN_NONE;
}

// tensor_setup(torch.Tensor, torch.strided, torch.from_numpy, torch.is_grad_enabled).
PyObject* tensor_setup(PyObject*, PyObject* args) {
  PyObject *type, *strided, *from_numpy, *grad_enabled;
  if (!PyArg_ParseTuple(args, "OOOO", &type, &strided, &from_numpy, &grad_enabled))
    return nullptr;
  if (!PyType_Check(type) || !PyCallable_Check(from_numpy) || !PyCallable_Check(grad_enabled)) {
    PyErr_SetString(PyExc_TypeError,
                    "tensor_setup: expected (torch.Tensor, torch.strided, torch.from_numpy, "
                    "torch.is_grad_enabled)");
    return nullptr;
  }
  if (!g.s_dtype) {
    const char* names[] = {"dtype",          "shape",     "is_cpu",        "layout",
                           "is_contiguous",  "is_neg",    "requires_grad", "data_ptr",
                           "_version",       "__dict__",  "_fr_plan",      "fast",
                           "_parameters",    "nonlinearity"};
    PyObject** slots[] = {&g.s_dtype,     &g.s_shape,     &g.s_is_cpu,     &g.s_layout,
                          &g.s_is_contiguous, &g.s_is_neg, &g.s_requires_grad,
                          &g.s_data_ptr,  &g.s_version,   &g.s_dict,       &g.s_plan,
                          &g.s_fast,      &g.s_parameters, &g.s_nonlinearity};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); ++i) {
      *slots[i] = PyUnicode_InternFromString(names[i]);
      if (!*slots[i]) return nullptr;
    }
  }
  // Kept for the life of the process (the module holds no other reference to torch).
  for (PyObject** dst : {&g.tensor_type, &g.strided, &g.from_numpy, &g.grad_enabled})
    Py_XDECREF(*dst);
  Py_INCREF(type);
  Py_INCREF(strided);
  Py_INCREF(from_numpy);
  Py_INCREF(grad_enabled);
  g.tensor_type = type;
  g.strided = strided;
  g.from_numpy = from_numpy;
  g.grad_enabled = grad_enabled;
  Py_RETURN_NONE;
}

PyMethodDef methods[] = {
    {"tensor_cell", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(tensor_cell)),
     METH_FASTCALL,
     "tensor_cell(module, x, hx): a drop-in cell's inference step when the call matches its "
     "plan (the new state as tensors); False when it matches but needs autograd; else None."},
    {"tensor_call", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(tensor_call)),
     METH_FASTCALL,
     "tensor_call(module, x, hx): tensor_cell when torch.nn.Module.__call__ would only call "
     "the cell's forward (no hooks, not compiled or traced); else None."},
    {"tensor_call_setup", tensor_call_setup, METH_VARARGS,
     "tensor_call_setup(global hook dicts, torch._C._get_tracing_state, the cells' forward)."},
    {"tensor_setup", tensor_setup, METH_VARARGS,
     "tensor_setup(torch.Tensor, torch.strided, torch.from_numpy, torch.is_grad_enabled): "
     "the torch objects tensor_cell compares with and calls (fusedrnn.torch calls it)."},
    {nullptr, nullptr, 0, nullptr}};

}  // namespace

void add_tensor_calls(py::module_& m) {
  if (PyModule_AddFunctions(m.ptr(), methods) < 0) throw py::error_already_set();
}

}  // namespace fusedrnn::bindings
