// The AVX-512 intrinsics for a CPU without AVX-512: a test-only stand-in for
// <immintrin.h> in the avx512 kernels, used when CMake's FUSEDRNN_EMULATE_AVX512 is ON
// (never in a wheel).  The avx512 translation units are then compiled with -mavx2 -mfma
// instead of the AVX-512 flags and run on any AVX2 CPU, so CI checks the avx512 kernels'
// logic (widths, masks, tails, the activations' rcp14 path) on machines without AVX-512.
//
// The intrinsics come from SIMDe ("SIMD Everywhere", the pip package simde-py >= 0.8.2;
// CMake finds its include directory), whose _mm512_* aliases map to portable code built
// from AVX2 halves.  -mfma matters: without it SIMDe's fmadd is a multiply then an add,
// rounded twice, and the activations' residual steps (simd/math-inl.h) come out wrong.
//
// SIMDe 0.8.2 lacks some intrinsics the kernels use; they are defined here.  The
// reciprocal estimate is a model of the hardware's, not SIMDe's exact division (see
// fusedrnn_emu_rcp14 below), so the Newton steps after it are exercised as on a real CPU;
// SIMDe's vscalefps is replaced by a model too (fusedrnn_emu_scalef: SIMDe's differs at
// the range's ends).
#pragma once

#if defined(__AVX512F__)
#error "avx512_emulated.h is for builds without AVX-512 flags (FUSEDRNN_EMULATE_AVX512)"
#endif
#if !defined(__AVX2__) || !defined(__FMA__)
#error "the emulated avx512 kernels must be compiled with -mavx2 -mfma (fused multiply-adds)"
#endif

#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

// VRCP14PS's reciprocal estimate, modelled lane by lane.  The hardware promises a
// relative error below 2^-14 and nothing more (its exact bits come from a table we do
// not reproduce), so the model returns the reciprocal with its significand cut to 14
// fraction bits, towards zero: every inexact result is below the true one by up to (not
// quite) 2^-14 relative, the documented bound, instead of SIMDe's 1 / d, which would let
// a wrong refinement step after the estimate pass unnoticed.  Special cases follow the
// Intel SDM for VRCP14PS with MXCSR's DAZ and FTZ clear (as in our processes): 1/±0 =
// ±inf, 1/±inf = ±0, NaN in -> quiet NaN out, subnormal inputs taken as they are (their
// reciprocals overflow to ±inf below 2^-128), results below the normal range rounded
// to subnormals (gradual underflow), not flushed.
static inline float fusedrnn_emu_rcp14(float d) {
  double r = 1.0 / static_cast<double>(d);  // exact to 2^-53; +-inf for +-0
  if (std::isfinite(r)) {
    uint64_t bits;
    std::memcpy(&bits, &r, sizeof bits);
    bits &= ~((uint64_t{1} << (52 - 14)) - 1);  // keep 14 of the 52 fraction bits
    std::memcpy(&r, &bits, sizeof bits);
  }
  // The 15 significant bits fit a float exactly in the normal range; beyond it the
  // conversion overflows to +-inf or rounds to a subnormal, as the hardware's result does.
  return static_cast<float>(r);
}

static inline simde__m512 fusedrnn_emu_mm512_maskz_rcp14_ps(simde__mmask16 k, simde__m512 a) {
  simde__m512_private r = simde__m512_to_private(simde_mm512_setzero_ps());
  const simde__m512_private x = simde__m512_to_private(a);
  for (int i = 0; i < 16; ++i)
    if ((k >> i) & 1) r.f32[i] = fusedrnn_emu_rcp14(x.f32[i]);
  return simde__m512_from_private(r);
}

// VSCALEFPS, a * 2^floor(b), modelled lane by lane: SIMDe 0.8.2 multiplies by
// exp2(floor(b)), which is 0 below 2^-149 and inf at 2^128, so a result near either end
// of the float range would differ from the hardware's one rounding of the exact product.
// Here the product is exact in double (|floor(b)| clamped to 300: beyond, every nonzero
// float a saturates either way) and rounded once to float (gradual underflow, overflow to
// inf).  Special cases as in the Intel SDM with DAZ clear: NaN in -> quiet NaN out;
// b = +inf: 0 * 2^inf is NaN, else a * inf; b = -inf: inf * 2^-inf is NaN, else a * 0.
static inline float fusedrnn_emu_scalef(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return a + b;
  if (std::isinf(b)) {
    if (b > 0) return a == 0.0f ? std::numeric_limits<float>::quiet_NaN() : a * b;
    return std::isinf(a) ? std::numeric_limits<float>::quiet_NaN() : a * 0.0f;
  }
  const double n = std::fmin(std::fmax(std::floor(static_cast<double>(b)), -300.0), 300.0);
  return static_cast<float>(static_cast<double>(a) * std::ldexp(1.0, static_cast<int>(n)));
}

static inline simde__m512 fusedrnn_emu_mm512_maskz_scalef_ps(simde__mmask16 k, simde__m512 a,
                                                             simde__m512 b) {
  simde__m512_private r = simde__m512_to_private(simde_mm512_setzero_ps());
  const simde__m512_private x = simde__m512_to_private(a), y = simde__m512_to_private(b);
  for (int i = 0; i < 16; ++i)
    if ((k >> i) & 1) r.f32[i] = fusedrnn_emu_scalef(x.f32[i], y.f32[i]);
  return simde__m512_from_private(r);
}

static inline float fusedrnn_emu_mm512_cvtss_f32(simde__m512 a) {
  return simde_mm_cvtss_f32(simde_mm512_castps512_ps128(a));
}

#undef _mm512_maskz_rcp14_ps
#define _mm512_maskz_rcp14_ps(k, a) fusedrnn_emu_mm512_maskz_rcp14_ps((k), (a))
#undef _mm512_maskz_scalef_ps
#define _mm512_maskz_scalef_ps(k, a, b) fusedrnn_emu_mm512_maskz_scalef_ps((k), (a), (b))
#undef _mm512_cvtss_f32
#define _mm512_cvtss_f32(a) fusedrnn_emu_mm512_cvtss_f32((a))

// ... and the ones the quantized kernels (quant/tile-inl.h, quant/tile16-inl.h) use.  The
// shifts take an immediate, hence macros (as in SIMDe and GCC's own headers).
#undef _mm512_maskz_slli_epi32
#define _mm512_maskz_slli_epi32(k, a, imm) \
  simde_mm512_maskz_mov_epi32((k), simde_mm512_slli_epi32((a), (imm)))
#undef _mm512_maskz_srli_epi64
#define _mm512_maskz_srli_epi64(k, a, imm) \
  simde_mm512_maskz_mov_epi64((k), simde_mm512_srli_epi64((a), (imm)))
#undef _mm512_maskz_cvtph_ps
#define _mm512_maskz_cvtph_ps(k, a) simde_mm512_maskz_mov_ps((k), simde_mm512_cvtph_ps((a)))
#undef _mm512_maskz_cvtepu16_epi32
#define _mm512_maskz_cvtepu16_epi32(k, a) \
  simde_mm512_maskz_mov_epi32((k), simde_mm512_cvtepu16_epi32((a)))
