// AVX-512 (F, BW, VL, DQ) vectors: 16 floats or 8 doubles in a 512-bit register.
//
// Same interface as simd/vec__generic.h (see there).  Compiled only in the avx512
// translation unit, with the AVX-512 (F, BW, VL, DQ), FMA and AVX2 flags on that file
// alone; or, in a test build with FUSEDRNN_EMULATE_AVX512, with -mavx2 -mfma against
// simd/avx512_emulated.h (SIMDe), which provides the same intrinsics on an AVX2 CPU.
#pragma once

#if defined(FUSEDRNN_EMULATE_AVX512)
#include "simd/avx512_emulated.h"
#else
#include <immintrin.h>
#endif

#include <cmath>
#include <cstdint>

#include "simd/math-inl.h"
#include "simd/scalar.h"

namespace fusedrnn {
namespace avx512 {

// Architectural vector registers: the tile shapes (gemm/ukernel-inl.h) are sized by it.
constexpr int kVecRegisters = 32;

// GCC 12's plain forms of some AVX-512 intrinsics (max, min, shifts, rcp14) start from
// _mm512_undefined_*(), which -Wuninitialized flags once inlined (GCC bug 105593); the
// zero-masking forms with every lane selected compile to the same instructions, warning-free.
constexpr __mmask16 kAllLanes16 = 0xFFFF;
constexpr __mmask8 kAllLanes8 = 0xFF;

// The primitives simd/math-inl.h builds exp, sigmoid and tanh from, on 16 floats: the
// same operations as avx2::MathOps, lane for lane, except the finer reciprocal estimate
// and exp's scaling by 2^n in one instruction (the same result, bit for bit).
struct MathOps {
  using F = __m512;
  static constexpr bool kDivide = false;  // rcp and FMA steps instead
  static constexpr bool kScalef = true;   // exp's 2^n by vscalefps (AVX512F)
  static F set1(float x) { return _mm512_set1_ps(x); }
  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F fnma(F a, F b, F c) { return _mm512_fnmadd_ps(a, b, c); }
  // vminps/vmaxps return their second operand when either is NaN: x goes second.
  static F clamp(F x, F lo, F hi) {
    return _mm512_maskz_min_ps(kAllLanes16, hi, _mm512_maskz_max_ps(kAllLanes16, lo, x));
  }
  static F abs(F x) { return _mm512_andnot_ps(_mm512_set1_ps(-0.0f), x); }
  static F neg_abs(F x) { return _mm512_or_ps(_mm512_set1_ps(-0.0f), x); }
  static F sign(F x) { return _mm512_and_ps(_mm512_set1_ps(-0.0f), x); }
  static F bor(F a, F b) { return _mm512_or_ps(a, b); }
  // mask_blend(k, b, a) takes a where k is set; movepi32_mask gathers the sign bits.
  static F if_negative(F x, F a, F b) {
    return _mm512_mask_blend_ps(_mm512_movepi32_mask(_mm512_castps_si512(x)), b, a);
  }
  static F if_less(F x, F y, F a, F b) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, y, _CMP_LT_OQ), b, a);
  }
  static F rcp(F d) { return _mm512_maskz_rcp14_ps(kAllLanes16, d); }  // rel. error <= 2^-14
  static F scalef(F p, F n) { return _mm512_maskz_scalef_ps(kAllLanes16, p, n); }
};

template <class T>
struct Vec;

template <>
struct Vec<float> {
  using scalar = float;
  static constexpr int width = 16;
  __m512 v;

  static Vec load(const float* p) { return {_mm512_loadu_ps(p)}; }
  static Vec set1(float x) { return {_mm512_set1_ps(x)}; }
  static Vec zero() { return {_mm512_setzero_ps()}; }
  void store(float* p) const { _mm512_storeu_ps(p, v); }

  friend Vec operator+(Vec a, Vec b) { return {_mm512_add_ps(a.v, b.v)}; }
  friend Vec operator-(Vec a, Vec b) { return {_mm512_sub_ps(a.v, b.v)}; }
  friend Vec operator*(Vec a, Vec b) { return {_mm512_mul_ps(a.v, b.v)}; }
  friend Vec fma(Vec a, Vec b, Vec c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
  // maxps returns its second operand when either is NaN: put `a` second.
  friend Vec max(Vec a, Vec b) { return {_mm512_maskz_max_ps(kAllLanes16, b.v, a.v)}; }
  friend Vec positive_mask(Vec h, Vec x) {
    return {_mm512_maskz_mov_ps(_mm512_cmp_ps_mask(h.v, _mm512_setzero_ps(), _CMP_GT_OQ), x.v)};
  }
  // Accurate to a few ULP over the whole line, NaN in -> NaN out (simd/math-inl.h).
  friend Vec sigmoid(Vec a) { return {math::sigmoid<MathOps>(a.v)}; }
  friend Vec tanh(Vec a) { return {math::tanh<MathOps>(a.v)}; }
  friend Vec exp(Vec a) { return {math::exp<MathOps>(a.v)}; }
};

template <>
struct Vec<double> {
  using scalar = double;
  static constexpr int width = 8;
  __m512d v;

  static Vec load(const double* p) { return {_mm512_loadu_pd(p)}; }
  static Vec set1(double x) { return {_mm512_set1_pd(x)}; }
  static Vec zero() { return {_mm512_setzero_pd()}; }
  void store(double* p) const { _mm512_storeu_pd(p, v); }

  friend Vec operator+(Vec a, Vec b) { return {_mm512_add_pd(a.v, b.v)}; }
  friend Vec operator-(Vec a, Vec b) { return {_mm512_sub_pd(a.v, b.v)}; }
  friend Vec operator*(Vec a, Vec b) { return {_mm512_mul_pd(a.v, b.v)}; }
  friend Vec fma(Vec a, Vec b, Vec c) { return {_mm512_fmadd_pd(a.v, b.v, c.v)}; }
  friend Vec max(Vec a, Vec b) { return {_mm512_maskz_max_pd(kAllLanes8, b.v, a.v)}; }
  friend Vec positive_mask(Vec h, Vec x) {
    return {_mm512_maskz_mov_pd(_mm512_cmp_pd_mask(h.v, _mm512_setzero_pd(), _CMP_GT_OQ), x.v)};
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
  return _mm512_cvtss_f32(exp(Vec<float>::set1(x)).v);
}
template <>
inline float scalar_sigmoid<float>(float x) {
  return _mm512_cvtss_f32(sigmoid(Vec<float>::set1(x)).v);
}
template <>
inline float scalar_tanh<float>(float x) {
  return _mm512_cvtss_f32(tanh(Vec<float>::set1(x)).v);
}

template <class T>
using Scalar = ScalarVec<T>;

}  // namespace avx512
}  // namespace fusedrnn
