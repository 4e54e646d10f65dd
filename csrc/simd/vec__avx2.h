// AVX2 + FMA vectors: 8 floats or 4 doubles in a 256-bit register.
//
// Same interface as simd/vec__generic.h (see there).  Compiled only in the avx2
// translation unit, with -mavx2 -mfma on that file alone.
#pragma once

#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "simd/math-inl.h"
#include "simd/scalar.h"

namespace fusedrnn {
namespace avx2 {

// Architectural vector registers: the tile shapes (gemm/ukernel-inl.h) are sized by it.
constexpr int kVecRegisters = 16;

// The primitives simd/math-inl.h builds exp, sigmoid and tanh from, on 8 floats.
struct MathOps {
  using F = __m256;
  using I = __m256i;
  static constexpr bool kDivide = false;  // rcp and FMA steps instead
  static constexpr bool kScalef = false;  // exp scales by 2^n with integer ops
  static F set1(float x) { return _mm256_set1_ps(x); }
  static I iset1(int32_t x) { return _mm256_set1_epi32(x); }
  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F fnma(F a, F b, F c) { return _mm256_fnmadd_ps(a, b, c); }
  // minps/maxps return their second operand when either is NaN: x goes second.
  static F clamp(F x, F lo, F hi) { return _mm256_min_ps(hi, _mm256_max_ps(lo, x)); }
  static F abs(F x) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x); }
  static F neg_abs(F x) { return _mm256_or_ps(_mm256_set1_ps(-0.0f), x); }
  static F sign(F x) { return _mm256_and_ps(_mm256_set1_ps(-0.0f), x); }
  static F bor(F a, F b) { return _mm256_or_ps(a, b); }
  // blendv takes its second operand where the mask's sign bit is set.
  static F if_negative(F x, F a, F b) { return _mm256_blendv_ps(b, a, x); }
  static F if_less(F x, F y, F a, F b) {
    return _mm256_blendv_ps(b, a, _mm256_cmp_ps(x, y, _CMP_LT_OQ));
  }
  static F rcp(F d) { return _mm256_rcp_ps(d); }
  static I as_int(F x) { return _mm256_castps_si256(x); }
  static F as_float(I x) { return _mm256_castsi256_ps(x); }
  static I iadd(I a, I b) { return _mm256_add_epi32(a, b); }
  static I isub(I a, I b) { return _mm256_sub_epi32(a, b); }
  static I sra1(I a) { return _mm256_srai_epi32(a, 1); }
  static I shl23(I a) { return _mm256_slli_epi32(a, 23); }
};

template <class T>
struct Vec;

template <>
struct Vec<float> {
  using scalar = float;
  static constexpr int width = 8;
  __m256 v;

  static Vec load(const float* p) { return {_mm256_loadu_ps(p)}; }
  static Vec set1(float x) { return {_mm256_set1_ps(x)}; }
  static Vec zero() { return {_mm256_setzero_ps()}; }
  void store(float* p) const { _mm256_storeu_ps(p, v); }

  friend Vec operator+(Vec a, Vec b) { return {_mm256_add_ps(a.v, b.v)}; }
  friend Vec operator-(Vec a, Vec b) { return {_mm256_sub_ps(a.v, b.v)}; }
  friend Vec operator*(Vec a, Vec b) { return {_mm256_mul_ps(a.v, b.v)}; }
  friend Vec fma(Vec a, Vec b, Vec c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
  // maxps returns its second operand when either is NaN: put `a` second.
  friend Vec max(Vec a, Vec b) { return {_mm256_max_ps(b.v, a.v)}; }
  friend Vec positive_mask(Vec h, Vec x) {
    return {_mm256_and_ps(_mm256_cmp_ps(h.v, _mm256_setzero_ps(), _CMP_GT_OQ), x.v)};
  }
  // Accurate to a few ULP over the whole line, NaN in -> NaN out (simd/math-inl.h).
  friend Vec sigmoid(Vec a) { return {math::sigmoid<MathOps>(a.v)}; }
  friend Vec tanh(Vec a) { return {math::tanh<MathOps>(a.v)}; }
  friend Vec exp(Vec a) { return {math::exp<MathOps>(a.v)}; }
};

template <>
struct Vec<double> {
  using scalar = double;
  static constexpr int width = 4;
  __m256d v;

  static Vec load(const double* p) { return {_mm256_loadu_pd(p)}; }
  static Vec set1(double x) { return {_mm256_set1_pd(x)}; }
  static Vec zero() { return {_mm256_setzero_pd()}; }
  void store(double* p) const { _mm256_storeu_pd(p, v); }

  friend Vec operator+(Vec a, Vec b) { return {_mm256_add_pd(a.v, b.v)}; }
  friend Vec operator-(Vec a, Vec b) { return {_mm256_sub_pd(a.v, b.v)}; }
  friend Vec operator*(Vec a, Vec b) { return {_mm256_mul_pd(a.v, b.v)}; }
  friend Vec fma(Vec a, Vec b, Vec c) { return {_mm256_fmadd_pd(a.v, b.v, c.v)}; }
  friend Vec max(Vec a, Vec b) { return {_mm256_max_pd(b.v, a.v)}; }
  friend Vec positive_mask(Vec h, Vec x) {
    return {_mm256_and_pd(_mm256_cmp_pd(h.v, _mm256_setzero_pd(), _CMP_GT_OQ), x.v)};
  }
  // float64 activations: lane-wise libm (exact to the tolerance float64 promises).
  friend Vec sigmoid(Vec a) { return lanewise<Vec>(a, &scalar_sigmoid<double>); }
  friend Vec tanh(Vec a) { return lanewise<Vec>(a, &scalar_tanh<double>); }
  friend Vec exp(Vec a) { return lanewise<Vec>(a, &scalar_exp<double>); }

};

// The scalar (tail) float activations are lane 0 of the vector ones, so that a value
// gets the same bits whether it lands in a full vector or in a tail.  (Explicit
// specializations of simd/scalar.h's templates, declared before any use.)
template <>
inline float scalar_exp<float>(float x) {
  return _mm256_cvtss_f32(exp(Vec<float>::set1(x)).v);
}
template <>
inline float scalar_sigmoid<float>(float x) {
  return _mm256_cvtss_f32(sigmoid(Vec<float>::set1(x)).v);
}
template <>
inline float scalar_tanh<float>(float x) {
  return _mm256_cvtss_f32(tanh(Vec<float>::set1(x)).v);
}

template <class T>
using Scalar = ScalarVec<T>;

}  // namespace avx2
}  // namespace fusedrnn
