// The portable vector types, in plain C++ (no ISA flags).
//
// Every ISA provides the same interface in its own namespace (fusedrnn::<isa>):
//   Vec<T>      the widest vector of T (width = elements per vector)
//   Scalar<T>   a one-element vector with the same operations, for tails
//   load, store, set1, zero, +, -, *, fma(a, b, c) = a * b + c, max (NaN in a
//   propagates), positive_mask(h, v) = h > 0 ? v : 0, exp, sigmoid, tanh
// The cell templates (cells/*-inl.h) are written against that interface only.
//
// Here, with GCC or Clang: Vec<float> holds 4 floats in a GCC vector-extension type
// (SSE2 on any x86-64, NEON on aarch64) with the accurate math of simd/math-inl.h,
// and Scalar<float>'s activations are its lane 0 (so tails and vector lanes agree to
// the bit).  Vec<double>, and every type with other compilers: one element wide
// (simd/scalar.h, libm activations).
#pragma once

#include <cstdint>
#include <cstring>

#include "simd/scalar.h"

#if defined(__GNUC__)
#include "simd/math-inl.h"
#endif

namespace fusedrnn {
namespace generic {

// Architectural vector registers: the tile shapes (gemm/ukernel-inl.h) are sized by it.
constexpr int kVecRegisters = 16;

#if defined(__GNUC__)

// The primitives simd/math-inl.h builds exp, sigmoid and tanh from, on 4 floats.
// Written as plain arithmetic, which the compiler may or may not fuse into FMAs (so
// kDivide: quotients by a true division; the math is accurate either way).
struct MathOps {
  typedef float F __attribute__((vector_size(16)));
  typedef int32_t I __attribute__((vector_size(16)));
  typedef uint32_t U __attribute__((vector_size(16)));
  static constexpr bool kDivide = true;
  static constexpr bool kScalef = false;  // exp scales by 2^n with integer ops
  static F set1(float x) { return F{x, x, x, x}; }
  static I iset1(int32_t x) { return I{x, x, x, x}; }
  static F add(F a, F b) { return a + b; }
  static F sub(F a, F b) { return a - b; }
  static F mul(F a, F b) { return a * b; }
  static F div(F a, F b) { return a / b; }
  static F fma(F a, F b, F c) { return a * b + c; }
  static F fnma(F a, F b, F c) { return c - a * b; }
  // Lane-wise m ? a : b, for a mask m of all-ones / all-zeros lanes (as compares give).
  static F select(I m, F a, F b) { return as_float((m & as_int(a)) | (~m & as_int(b))); }
  // Compares with NaN are false, so a NaN x is kept by both selects.
  static F clamp(F x, F lo, F hi) {
    x = select(x < lo, lo, x);
    return select(x > hi, hi, x);
  }
  static F abs(F x) { return as_float(as_int(x) & iset1(0x7FFFFFFF)); }
  static F neg_abs(F x) { return as_float(as_int(x) | iset1(INT32_MIN)); }
  static F sign(F x) { return as_float(as_int(x) & iset1(INT32_MIN)); }
  static F bor(F a, F b) { return as_float(as_int(a) | as_int(b)); }
  static F if_negative(F x, F a, F b) { return select(as_int(x) >> 31, a, b); }
  static F if_less(F x, F y, F a, F b) { return select(x < y, a, b); }
  static I as_int(F x) { return (I)x; }  // vector casts reinterpret the bits
  static F as_float(I x) { return (F)x; }
  // Integer sums and shifts in unsigned lanes (wrapping, never undefined).
  static I iadd(I a, I b) { return (I)((U)a + (U)b); }
  static I isub(I a, I b) { return (I)((U)a - (U)b); }
  static I sra1(I a) { return a >> 1; }  // arithmetic on signed lanes
  static I shl23(I a) { return (I)((U)a << 23); }
};

struct Vec4f {
  using scalar = float;
  static constexpr int width = 4;
  using F = MathOps::F;
  F v;

  static Vec4f load(const float* p) {
    F x;
    std::memcpy(&x, p, sizeof x);
    return {x};
  }
  static Vec4f set1(float x) { return {MathOps::set1(x)}; }
  static Vec4f zero() { return {F{}}; }
  void store(float* p) const { std::memcpy(p, &v, sizeof v); }

  friend Vec4f operator+(Vec4f a, Vec4f b) { return {a.v + b.v}; }
  friend Vec4f operator-(Vec4f a, Vec4f b) { return {a.v - b.v}; }
  friend Vec4f operator*(Vec4f a, Vec4f b) { return {a.v * b.v}; }
  // As ScalarVec: a * b + c, fused or not as the compiler chooses.
  friend Vec4f fma(Vec4f a, Vec4f b, Vec4f c) { return {a.v * b.v + c.v}; }
  // max(a, b): a NaN in `a` propagates (a < b is false then).
  friend Vec4f max(Vec4f a, Vec4f b) { return {MathOps::select(a.v < b.v, b.v, a.v)}; }
  friend Vec4f positive_mask(Vec4f h, Vec4f x) {
    return {MathOps::select(h.v > F{}, x.v, F{})};
  }
  // Accurate to a few ULP over the whole line, NaN in -> NaN out (simd/math-inl.h).
  friend Vec4f sigmoid(Vec4f a) { return {math::sigmoid<MathOps>(a.v)}; }
  friend Vec4f tanh(Vec4f a) { return {math::tanh<MathOps>(a.v)}; }
  friend Vec4f exp(Vec4f a) { return {math::exp<MathOps>(a.v)}; }
};

// The scalar (tail) float activations are lane 0 of the vector ones.  (Explicit
// specializations of simd/scalar.h's templates, declared before any use.)
template <>
inline float scalar_exp<float>(float x) {
  return exp(Vec4f::set1(x)).v[0];
}
template <>
inline float scalar_sigmoid<float>(float x) {
  return sigmoid(Vec4f::set1(x)).v[0];
}
template <>
inline float scalar_tanh<float>(float x) {
  return tanh(Vec4f::set1(x)).v[0];
}

template <class T>
struct VecOf {
  using type = ScalarVec<T>;
};
template <>
struct VecOf<float> {
  using type = Vec4f;
};
template <class T>
using Vec = typename VecOf<T>::type;

#else  // other compilers: one element wide throughout

template <class T>
using Vec = ScalarVec<T>;

#endif

template <class T>
using Scalar = ScalarVec<T>;

}  // namespace generic
}  // namespace fusedrnn
