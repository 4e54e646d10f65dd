// One-element "vector" with the full Vec interface, in plain C++.
// Every ISA uses it for tails (Scalar<T>); the generic ISA also as its Vec<double> (and
// as every Vec with compilers other than GCC and Clang).  Activations: libm, except
// that each vector header specializes scalar_exp / scalar_sigmoid / scalar_tanh for
// float to lane 0 of its Vec<float> math, so a tail gets the bits a vector lane would.
//
// Included by the per-ISA vector headers; FUSEDRNN_ISA (the ISA's namespace name) must
// be defined first, so that every inline function here is private to its translation
// unit's ISA and the linker never swaps in a copy compiled with other ISA flags.
#pragma once

#include <cmath>

#ifndef FUSEDRNN_ISA
#error "define FUSEDRNN_ISA before including simd headers"
#endif

namespace fusedrnn {
namespace FUSEDRNN_ISA {

template <class T>
inline T scalar_exp(T x) {
  return std::exp(x);
}

// 1 / (1 + e^-x) for x >= 0, e^x / (1 + e^x) for x < 0: never overflows, and exact
// (to rounding) down to the subnormals.  NaN in, NaN out.
template <class T>
inline T scalar_sigmoid(T x) {
  if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
  const T e = std::exp(x);
  return e / (T(1) + e);
}

template <class T>
inline T scalar_tanh(T x) {
  return std::tanh(x);
}

// f applied to each lane of the vector a, through a stack array (the float64 vectors'
// activations: libm, exact to the tolerance float64 promises).
template <class V, class T>
inline V lanewise(V a, T (*f)(T)) {
  alignas(64) T t[V::width];
  a.store(t);
  for (T& x : t) x = f(x);
  return V::load(t);
}

template <class T>
struct ScalarVec {
  using scalar = T;
  static constexpr int width = 1;
  T v;

  static ScalarVec load(const T* p) { return {*p}; }
  static ScalarVec set1(T x) { return {x}; }
  static ScalarVec zero() { return {T(0)}; }
  void store(T* p) const { *p = v; }

  friend ScalarVec operator+(ScalarVec a, ScalarVec b) { return {a.v + b.v}; }
  friend ScalarVec operator-(ScalarVec a, ScalarVec b) { return {a.v - b.v}; }
  friend ScalarVec operator*(ScalarVec a, ScalarVec b) { return {a.v * b.v}; }
  friend ScalarVec fma(ScalarVec a, ScalarVec b, ScalarVec c) { return {a.v * b.v + c.v}; }
  // max(a, b): a NaN in `a` propagates (relu(NaN) = NaN, as in NumPy and torch).
  friend ScalarVec max(ScalarVec a, ScalarVec b) { return {a.v < b.v ? b.v : a.v}; }
  friend ScalarVec positive_mask(ScalarVec h, ScalarVec x) { return {h.v > T(0) ? x.v : T(0)}; }
  friend ScalarVec sigmoid(ScalarVec a) { return {scalar_sigmoid(a.v)}; }
  friend ScalarVec tanh(ScalarVec a) { return {scalar_tanh(a.v)}; }
  friend ScalarVec exp(ScalarVec a) { return {scalar_exp(a.v)}; }
};

}  // namespace FUSEDRNN_ISA
}  // namespace fusedrnn
