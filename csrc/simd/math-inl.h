// float32 exp, sigmoid and tanh on whole vectors, written once over a small set of
// primitive operations that each ISA supplies (an "Ops" class, below).  Accuracy: within
// 4 ULP of the exact value over the whole float line, subnormal inputs and outputs
// included (tests/test_simd_math.py measures at most 1.7), exact saturation, NaN in ->
// NaN out.  With a fused multiply-add (the SIMD ISAs), no full-precision division: a
// reciprocal estimate, a Newton step and an FMA residual correction.
//
// Ops (all static; F: the float vector, and where !kScalef I: the int32 vector of the
// same width):
//   kDivide                     true: quotients by div (portable code, where the FMA
//                               may not be fused); false: by rcp and FMA steps
//   F set1(float)
//   F add(F, F), sub(F, F), mul(F, F), and div(F, F) where kDivide
//   F fma(a, b, c)  = a * b + c  rounded once where !kDivide (a true fused multiply-add:
//   F fnma(a, b, c) = c - a * b  the residuals below rely on it); where kDivide these may
//                                round twice (every use is accurate either way)
//   F clamp(x, lo, hi)          min(max(x, lo), hi); a NaN in x comes out as NaN
//   F abs(x), neg_abs(x) = -|x|, sign(x) = x & -0.0f, bor(a, b) = a | b (bits)
//   F if_negative(x, a, b)      per lane: sign bit of x set ? a : b
//   F if_less(x, y, a, b)       per lane: x < y ? a : b (false, so b, if either is NaN)
//   F rcp(d)                    where !kDivide: a reciprocal estimate, |rel. error| <=
//                               1.5 * 2^-12
//   kScalef                     true: F scalef(p, n) = p * 2^n for an integral float n,
//                               rounded once (gradual underflow, overflow to inf), one
//                               instruction (AVX-512's vscalefps); false: exp scales
//                               by 2^n with these integer operations:
//   I iset1(int32_t), as_int(F), F as_float(I)  (bit casts)
//   I iadd(I, I), isub(I, I), sra1(i) = i >> 1 (arithmetic), shl23(i) = i << 23
//
// Included at file scope by the per-ISA vector headers; everything here lives in
// fusedrnn::FUSEDRNN_ISA::math, private to that ISA's translation unit.
#pragma once

#include <cstdint>

#ifndef FUSEDRNN_ISA
#error "define FUSEDRNN_ISA before including simd headers"
#endif

namespace fusedrnn {
namespace FUSEDRNN_ISA {
namespace math {

// Polynomial coefficients, fitted in float64 with NumPy (least squares with relative
// weights on 4000 Chebyshev nodes of the interval, a close stand-in for minimax), then
// rounded to float32; the relative error of each polynomial, coefficients as rounded,
// is given (float32's half ULP is 2^-24).
//
// e^r = 1 + r + r^2 * Q(r) on |r| <= ln(2)/2 (widened by 0.05%), Q of degree 4:
//   Q = lstsq(vander(r, 5) * w, (expm1(r) - r) / r^2 * w), w = r^2 / e^r.
//   Max relative error of the degree-6 result: 3.8e-9 (2^-28.0).
constexpr float kExpQ0 = 0.49999988079071045f;
constexpr float kExpQ1 = 0.166665181517601f;
constexpr float kExpQ2 = 0.041669540107250214f;
constexpr float kExpQ3 = 0.008368952199816704f;
constexpr float kExpQ4 = 0.0013751279329881072f;
// tanh(a) = a + a^3 * P(a^2) on 0 <= a <= 0.625, P of degree 5:
//   P = lstsq(vander(a^2, 6) * w, (tanh(a) - a) / a^3 * w), w = a^3 / tanh(a).
//   Max relative error: 2.5e-9 (2^-28.6).
constexpr float kTanhP0 = -0.3333333134651184f;
constexpr float kTanhP1 = 0.13333211839199066f;
constexpr float kTanhP2 = -0.05394745245575905f;
constexpr float kTanhP3 = 0.021703999489545822f;
constexpr float kTanhP4 = -0.008184662088751793f;
constexpr float kTanhP5 = 0.0021489840000867844f;
// Below this |x| tanh uses the polynomial; above, (1 - e) / (1 + e) with e = e^(-2|x|)
// (there the error of e is damped, not amplified by the cancellation in 1 - e).
constexpr float kTanhSmall = 0.625f;

constexpr float kLog2e = 1.44269504088896341f;
// ln 2 = kLn2Hi + kLn2Lo: kLn2Hi has 10 significant bits, so n * kLn2Hi is exact for
// |n| < 2^14 and x - n * kLn2Hi is exact (with or without FMA); kLn2Lo =
// float(ln 2 - kLn2Hi) (Cody and Waite).  (Without FMA, x * log2e is rounded before
// the shift, so n can be off by one where x log2e is within an ULP of a half-integer:
// |r| then exceeds ln(2)/2 by < 2^-17, inside the polynomial's fitted interval.)
constexpr float kLn2Hi = 0.693359375f;
constexpr float kLn2Lo = -2.12194440e-4f;
// 1.5 * 2^23: adding it to |v| < 2^22 rounds v to the nearest integer, which then sits
// in the low mantissa bits.
constexpr float kRoundShift = 12582912.0f;
// exp's argument is clamped to [kExpMin, kExpMax]: e^-110 rounds to 0 and e^89 to
// infinity, as do all the values beyond, and n = round(x * log2 e) stays in [-159, 128],
// so that both halves of the two-step scaling by 2^n are normal floats.
constexpr float kExpMin = -110.0f;
constexpr float kExpMax = 89.0f;

// e^x.  x = n ln2 + r with n = round(x log2 e), |r| <= ln2 / 2; e^r by a polynomial;
// then e^x = (e^r * 2^(n >> 1)) * 2^(n - (n >> 1)): the first product is exact, and the
// second rounds once, into the subnormals or to infinity where the result goes there
// (with kScalef, one vscalefps gives that same rounding of e^r * 2^n).
template <class O>
inline typename O::F exp(typename O::F x) {
  using F = typename O::F;
  x = O::clamp(x, O::set1(kExpMin), O::set1(kExpMax));
  const F shift = O::set1(kRoundShift);
  // One rounding of the exact product x * log2e, to an integer; NaN stays NaN.
  const F t = O::fma(x, O::set1(kLog2e), shift);
  const F n = O::sub(t, shift);
  F r = O::fnma(n, O::set1(kLn2Hi), x);  // exact
  r = O::fnma(n, O::set1(kLn2Lo), r);
  F q = O::fma(O::set1(kExpQ4), r, O::set1(kExpQ3));
  q = O::fma(q, r, O::set1(kExpQ2));
  q = O::fma(q, r, O::set1(kExpQ1));
  q = O::fma(q, r, O::set1(kExpQ0));
  // r + r^2 Q(r) is small next to 1: adding the 1 last keeps its rounding error there.
  const F p = O::add(O::fma(q, O::mul(r, r), r), O::set1(1.0f));
  if constexpr (O::kScalef) {
    return O::scalef(p, n);  // p * 2^n rounded once, as below, in one instruction
  } else {
    using I = typename O::I;
    const I ni = O::isub(O::as_int(t), O::as_int(shift));  // n as an integer
    const I n1 = O::sra1(ni);
    const I n2 = O::isub(ni, n1);
    const I bias = O::iset1(127);
    const F s1 = O::as_float(O::shl23(O::iadd(n1, bias)));  // 2^n1, n1 in [-80, 64]
    const F s2 = O::as_float(O::shl23(O::iadd(n2, bias)));  // 2^n2, n2 in [-79, 64]
    return O::mul(O::mul(p, s1), s2);
  }
}

// a / (d + d_lo) for d in [1, 2], |d_lo| <= ulp(d) / 2 and a in [0, 1].
template <class O>
inline typename O::F div_1_2(typename O::F a, typename O::F d, typename O::F d_lo) {
  using F = typename O::F;
  const F one = O::set1(1.0f);
  if constexpr (O::kDivide) {
    // a / d rounded once, less q d_lo / d: that term is below 2^-24 q, so 1/d to a few
    // percent is plenty, (3 - d) / 2 on [1, 2] (within 12.5%: it adds < 2^-27 q).
    const F q = O::div(a, d);
    const F rough = O::mul(O::sub(O::set1(3.0f), d), O::set1(0.5f));
    return O::sub(q, O::mul(q, O::mul(d_lo, rough)));
  } else {
    // The reciprocal estimate, one Newton step (relative error ~2^-22 with rcp, ~2^-28
    // with rcp14), then one correction of the quotient from its exact residual a - q0 d
    // (FMA) and d_lo, which leaves it within little more than half an ULP (subnormal
    // quotients too).
    F r = O::rcp(d);
    r = O::fma(r, O::fnma(d, r, one), r);
    const F q0 = O::mul(a, r);
    F res = O::fnma(q0, d, a);
    res = O::fnma(q0, d_lo, res);
    return O::fma(res, r, q0);
  }
}

// 1 / (1 + e^-x) for x >= 0, e^x / (1 + e^x) for x < 0, with e = e^-|x| in (0, 1]:
// nothing overflows, and 1 + e is carried as d + d_lo (exact), so the result stays
// accurate where it approaches 1 (and rounds to exactly 1) and where it is e^x, down
// through the subnormals to 0.
template <class O>
inline typename O::F sigmoid(typename O::F x) {
  using F = typename O::F;
  const F one = O::set1(1.0f);
  const F e = exp<O>(O::neg_abs(x));
  const F d = O::add(one, e);
  const F d_lo = O::add(O::sub(one, d), e);  // 1 + e - d exactly (Fast2Sum, e <= 1)
  return div_1_2<O>(O::if_negative(x, e, one), d, d_lo);
}

// tanh(|x|) = |x| + |x|^3 P(x^2) below kTanhSmall, else 1 - 2 e / (1 + e) with
// e = e^(-2|x|) (1 - 2s rounded once, with s = e / (1 + e) accurate); then x's sign.
// Saturates to exactly 1 once 2s < 2^-25; tanh(-0) = -0; NaN -> NaN.
template <class O>
inline typename O::F tanh(typename O::F x) {
  using F = typename O::F;
  const F one = O::set1(1.0f);
  const F a = O::abs(x);
  const F e = exp<O>(O::mul(a, O::set1(-2.0f)));
  const F d = O::add(one, e);
  const F d_lo = O::add(O::sub(one, d), e);
  const F s = div_1_2<O>(e, d, d_lo);
  const F big = O::fnma(O::set1(2.0f), s, one);
  const F a2 = O::mul(a, a);
  F p = O::fma(O::set1(kTanhP5), a2, O::set1(kTanhP4));
  p = O::fma(p, a2, O::set1(kTanhP3));
  p = O::fma(p, a2, O::set1(kTanhP2));
  p = O::fma(p, a2, O::set1(kTanhP1));
  p = O::fma(p, a2, O::set1(kTanhP0));
  const F small = O::fma(O::mul(a, a2), p, a);
  return O::bor(O::if_less(a, O::set1(kTanhSmall), small, big), O::sign(x));
}

}  // namespace math
}  // namespace FUSEDRNN_ISA
}  // namespace fusedrnn
