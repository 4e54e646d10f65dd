// The 16-bit weight tiles (float16 / bfloat16 weights, float32 activations and math): m
// rows of A against one panel (fusedrnn/quant.h, QPanels [K][nr]), written to a small
// row-major tile out[m][nr], with the float GEMM tile's sum order (gemm/ukernel-inl.h,
// tile_product with kW16Chains accumulator sets), so that a row's sums are the same bits
// as the float tiles' on the weights converted to float32 (the input projection's path).
//
// Conversion in registers: float16 by F16C vcvtph2ps; bfloat16 by a 16-bit shift, and on
// the AVX ISAs from panels whose column vectors are stored in interleaved pairs (see
// bf16_pair); generic: scalar, through Vec<float>.  (A float16 decode by integer shifts
// on paired panels, exact against activations scaled by 2^112, measured 3% faster than
// vcvtph2ps on Zen 4 at B = 1: not worth its fallback path.)
//
// Assumes: FUSEDRNN_QUANT_ISA as in tile-inl.h; nr a multiple of Vec<float>::width; a
// pass starts at a multiple of 4 vectors (so its pairs are the panel's); no alignment.
#pragma once

#include <cstdint>
#include <cstring>

#include "fusedrnn/quant.h"
#include "gemm/ukernel-inl.h"
#include "quant/tile-inl.h"
#include "simd/macros.h"
#include "simd/vec.h"

namespace fusedrnn {
namespace FUSEDRNN_ISA {

// Accumulator sets over k and rows of the 16-bit tiles.  (Two sets, for 8 FMA chains in
// flight in a one-row tile, measured no faster on Zen 4 and cost rows.)
constexpr int kW16Chains = 1;
// AVX-512: 6 rows x 4 vectors of accumulators and 4 weight vectors fit its 32 registers.
constexpr int kW16Rows = FUSEDRNN_QUANT_ISA == 2 ? 6 : kQRows;

inline float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  uint32_t bits;
  if (e == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13);
  } else if (e == 0) {
    const float f = static_cast<float>(man) * 0x1p-24f;  // exact
    std::memcpy(&bits, &f, 4);
    bits |= sign;
  } else {
    bits = sign | ((e + 112u) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline float bf16_to_float(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// One vector of 16-bit weights (Vec<float>::width of them) as float32.
template <bool kBf16>
FUSEDRNN_INLINE Vec<float> w16_vec(const uint16_t* p) {
  using V = Vec<float>;
#if FUSEDRNN_QUANT_ISA == 1
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if constexpr (kBf16)
    return V{_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))};
  else
    return V{_mm256_cvtph_ps(h)};
#elif FUSEDRNN_QUANT_ISA == 2
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  if constexpr (kBf16)
    return V{_mm512_castsi512_ps(
        _mm512_maskz_slli_epi32(kAllLanes16, _mm512_maskz_cvtepu16_epi32(kAllLanes16, h), 16))};
  else
    return V{_mm512_maskz_cvtph_ps(kAllLanes16, h)};  // (maskz forms: see kAllLanes16)
#else
  float f[V::width];
  for (int i = 0; i < V::width; ++i) f[i] = kBf16 ? bf16_to_float(p[i]) : half_to_float(p[i]);
  return V::load(f);
#endif
}

// bfloat16 panels of the AVX ISAs hold their vectors in pairs (quant/pack-inl.h): 32-bit
// word i of a pair holds column i of its first vector in the low half and of its second
// in the high half, so one full-width load, a shift and a mask give both (no widening
// shuffle, which measured a third of a B = 1 step on Zen 4).
constexpr bool kPairBf16 = FUSEDRNN_QUANT_ISA != 0;

FUSEDRNN_INLINE void bf16_pair(const uint16_t* p, Vec<float>& lo, Vec<float>& hi) {
  using V = Vec<float>;
#if FUSEDRNN_QUANT_ISA == 1
  const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  lo = V{_mm256_castsi256_ps(_mm256_slli_epi32(x, 16))};
  hi = V{_mm256_castsi256_ps(_mm256_and_si256(x, _mm256_set1_epi32(-65536)))};
#elif FUSEDRNN_QUANT_ISA == 2
  const __m512i x = _mm512_loadu_si512(p);
  lo = V{_mm512_castsi512_ps(_mm512_maskz_slli_epi32(kAllLanes16, x, 16))};
  hi = V{_mm512_castsi512_ps(_mm512_maskz_and_epi32(kAllLanes16, x, _mm512_set1_epi32(-65536)))};
#else
  lo = w16_vec<true>(p);  // (not used: the generic panels are not paired)
  hi = w16_vec<true>(p + V::width);
#endif
}

// The NV weight vectors of one k row of a pass (p: the row at the pass's first column,
// which is a multiple of 4 vectors, so the pass's pairs are the panel's).
template <bool kBf16, int NV>
FUSEDRNN_INLINE void w16_row(const uint16_t* p, Vec<float>* b) {
  constexpr int W = Vec<float>::width;
  if constexpr (kBf16 && kPairBf16) {
    for (int v = 0; v + 1 < NV; v += 2) bf16_pair(p + v * W, b[v], b[v + 1]);
    if constexpr (NV % 2 == 1) b[NV - 1] = w16_vec<true>(p + (NV - 1) * W);
  } else {
    for (int v = 0; v < NV; ++v) b[v] = w16_vec<kBf16>(p + v * W);
  }
}

// M rows x NV vectors from column c0: the float GEMM tile's arithmetic (gemm/ukernel-inl.h,
// tile_product with kW16Chains accumulator sets: set p sums k = p, p + P, ... by fma, the
// k's past the last whole group go to set 0, then the sets are added in order), so a
// row's sums are the same bits as the float tiles' on the converted weights.
template <bool kBf16, int M, int NV>
FUSEDRNN_INLINE void w16_pass(int64_t K, const float* a, int64_t lda, const uint16_t* pb, int nr,
                              int c0, float* out) {
  using V = Vec<float>;
  constexpr int W = V::width, P = kW16Chains;
  V s[P][M][NV];
  for (int p = 0; p < P; ++p)
    for (int r = 0; r < M; ++r)
      for (int v = 0; v < NV; ++v) s[p][r][v] = V::zero();
  const uint16_t* bp = pb + c0;
  auto step = [&](int p, int64_t k) {
    V b[NV];
    w16_row<kBf16, NV>(bp + k * nr, b);
    for (int r = 0; r < M; ++r) {
      const V av = V::set1(a[r * lda + k]);
      for (int v = 0; v < NV; ++v) s[p][r][v] = fma(av, b[v], s[p][r][v]);
    }
  };
  int64_t k = 0;
  for (; k + P <= K; k += P)
    for (int p = 0; p < P; ++p) step(p, k + p);
  for (; k < K; ++k) step(0, k);
  for (int r = 0; r < M; ++r)
    for (int v = 0; v < NV; ++v) {
      V t = s[0][r][v];
      for (int p = 1; p < P; ++p) t = t + s[p][r][v];
      t.store(out + r * nr + c0 + v * W);
    }
}

template <bool kBf16>
inline void qtile_w16(int m, const QPanels& w, int64_t p, const float* a, int64_t lda,
                      float* out) {
  constexpr int W = Vec<float>::width;
  FUSEDRNN_DEBUG_ASSERT(m >= 1 && m <= kW16Rows && w.nr % W == 0);
  const int nr = w.nr;
  const int64_t K = w.K;
  const uint16_t* pb = w.h.data() + p * K * nr;
  with_rows<kW16Rows>(m, [&](auto M) {
    column_passes<4>(nr, W, [&](auto NV, int c0) {
      w16_pass<kBf16, decltype(M)::value, decltype(NV)::value>(K, a, lda, pb, nr, c0, out);
    });
  });
}

}  // namespace FUSEDRNN_ISA
}  // namespace fusedrnn
