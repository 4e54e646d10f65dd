// The drop-in cells' compiled repeat call on torch tensors (tensor_step.cc): adds
// tensor_cell and tensor_setup to the module, as raw METH_FASTCALL / METH_VARARGS
// functions (no pybind11 dispatch on the per-step path).
#pragma once

#include <pybind11/pybind11.h>

namespace fusedrnn::bindings {

void add_tensor_calls(pybind11::module_& m);

}  // namespace fusedrnn::bindings
