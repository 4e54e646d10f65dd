// AVX2 + FMA vectors: 8 floats or 4 doubles in a 256-bit register.
//
// Same interface as simd/vec__generic.h (see there).  Compiled only in the avx2
// translation unit, with -mavx2 -mfma on that file alone.
#pragma once

#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "simd/scalar.h"

namespace fusedrnn {
namespace avx2 {

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
  friend Vec sigmoid(Vec a) { return lanewise(a, &scalar_sigmoid<float>); }
  friend Vec tanh(Vec a) { return lanewise(a, &scalar_tanh<float>); }
  friend Vec exp(Vec a) { return lanewise(a, &scalar_exp<float>); }

 private:
  static Vec lanewise(Vec a, float (*f)(float)) {
    alignas(32) float t[width];
    a.store(t);
    for (float& x : t) x = f(x);
    return load(t);
  }
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
  friend Vec sigmoid(Vec a) { return lanewise(a, &scalar_sigmoid<double>); }
  friend Vec tanh(Vec a) { return lanewise(a, &scalar_tanh<double>); }
  friend Vec exp(Vec a) { return lanewise(a, &scalar_exp<double>); }

 private:
  static Vec lanewise(Vec a, double (*f)(double)) {
    alignas(32) double t[width];
    a.store(t);
    for (double& x : t) x = f(x);
    return load(t);
  }
};

template <class T>
using Scalar = ScalarVec<T>;

}  // namespace avx2
}  // namespace fusedrnn
