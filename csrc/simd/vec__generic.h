// The portable "vector" type: one element wide, plain C++ arithmetic.
//
// Every ISA provides the same interface in its own namespace (fusedrnn::<isa>):
//   Vec<T>      the widest vector of T (width = elements per vector)
//   Scalar<T>   a one-element vector with the same operations, for tails
//   load, store, set1, +, -, *, fma(a, b, c) = a * b + c, max (NaN in a propagates),
//   sigmoid, tanh,
//   positive_mask(h, v) = h > 0 ? v : 0
// The cell templates (cells/*-inl.h) are written against that interface only.
#pragma once

#include <cmath>

namespace fusedrnn {
namespace generic {

template <class T>
struct Vec {
  using scalar = T;
  static constexpr int width = 1;
  T v;

  static Vec load(const T* p) { return {*p}; }
  static Vec set1(T x) { return {x}; }
  void store(T* p) const { *p = v; }

  friend Vec operator+(Vec a, Vec b) { return {a.v + b.v}; }
  friend Vec operator-(Vec a, Vec b) { return {a.v - b.v}; }
  friend Vec operator*(Vec a, Vec b) { return {a.v * b.v}; }
  friend Vec fma(Vec a, Vec b, Vec c) { return {a.v * b.v + c.v}; }
  // max(a, b): a NaN in `a` propagates (relu(NaN) = NaN, as in NumPy and torch).
  friend Vec max(Vec a, Vec b) { return {a.v < b.v ? b.v : a.v}; }
  friend Vec positive_mask(Vec h, Vec x) { return {h.v > T(0) ? x.v : T(0)}; }

  // Saturates exactly: exp(-x) overflows to +inf for large negative x, giving 0;
  // underflows to 0 for large positive x, giving 1.  NaN in, NaN out.
  friend Vec sigmoid(Vec a) { return {T(1) / (T(1) + std::exp(-a.v))}; }
  friend Vec tanh(Vec a) { return {std::tanh(a.v)}; }
};

template <class T>
using Scalar = Vec<T>;

}  // namespace generic
}  // namespace fusedrnn
