// The portable vector type: one element wide, plain C++ arithmetic (simd/scalar.h).
//
// Every ISA provides the same interface in its own namespace (fusedrnn::<isa>):
//   Vec<T>      the widest vector of T (width = elements per vector)
//   Scalar<T>   a one-element vector with the same operations, for tails
//   load, store, set1, zero, +, -, *, fma(a, b, c) = a * b + c, max (NaN in a
//   propagates), positive_mask(h, v) = h > 0 ? v : 0, exp, sigmoid, tanh
// The cell templates (cells/*-inl.h) are written against that interface only.
#pragma once

#include "simd/scalar.h"

namespace fusedrnn {
namespace generic {

template <class T>
using Vec = ScalarVec<T>;
template <class T>
using Scalar = ScalarVec<T>;

}  // namespace generic
}  // namespace fusedrnn
