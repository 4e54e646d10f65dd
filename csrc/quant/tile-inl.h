// The quantized register tiles: m <= kQRows rows of A against one panel of packed weights
// (fusedrnn/quant.h, QPanels), all nr columns, written to a small row-major tile out[m][nr]
// that the caller's epilogue reads while it is in L1.
//
// int8 (exact int32 sums; every ISA gives the same integers):
//   generic  scalar loops over int8 A;
//   avx2     int16 A (4 k's broadcast as one 64-bit lane), weights sign-extended to int16,
//            vpmaddwd pair sums, the pairs added at the end (16 columns x 2 rows a pass);
//   avx512   with VNNI: uint8 A = q + 128 (4 k's broadcast as one 32-bit lane), vpdpbusd
//            on the int8 weights, minus the column compensation 128 * sum_k q (64 columns x
//            4 rows a pass); without VNNI, or emulated: as avx2 on 512-bit vectors (32 x 4).
//   vpmaddubsw is never used (it saturates).  |sums| < 2^31 as the binding bounds K.
// (The 16-bit weight tiles: quant/tile16-inl.h.)
//
// Assumes: FUSEDRNN_QUANT_ISA is 0 (generic), 1 (avx2) or 2 (avx512); nr a multiple of
// Vec<float>::width; panels as QPanels ([K4/4][nr][4]); A rows of K4 elements at stride
// lda; no alignment.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>

#include "fusedrnn/quant.h"
#include "gemm/ukernel-inl.h"
#include "quant/quantize-inl.h"
#include "simd/macros.h"
#include "simd/vec.h"

namespace fusedrnn {
namespace FUSEDRNN_ISA {

constexpr int kQRows = FUSEDRNN_QUANT_ISA == 2 ? 4 : 2;

inline int64_t load_i64(const void* p) {
  int64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline int32_t load_i32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// ---- AVX-512 VNNI availability ------------------------------------------------------
#if FUSEDRNN_QUANT_ISA == 2 && !defined(FUSEDRNN_EMULATE_AVX512)
#define FUSEDRNN_QUANT_VNNI 1
inline std::atomic<int>& vnni_flag() {
  static std::atomic<int> on{__builtin_cpu_supports("avx512vnni") ? 1 : 0};
  return on;
}
inline bool vnni_available() { return __builtin_cpu_supports("avx512vnni"); }
#else
inline bool vnni_available() { return false; }
#endif

// mode: -1 query, 0 off, 1 on where the CPU has it.  Returns whether the tiles use VNNI.
inline bool quant_use_vnni(int mode) {
#if defined(FUSEDRNN_QUANT_VNNI)
  if (mode >= 0) vnni_flag().store(mode == 1 && vnni_available() ? 1 : 0);
  return vnni_flag().load() != 0;
#else
  (void)mode;
  return false;
#endif
}

// The A form this ISA's int8 tiles read now.
inline AForm quant_a_form() {
#if FUSEDRNN_QUANT_ISA == 0
  return AForm::i8;
#else
  return quant_use_vnni(-1) ? AForm::u8 : AForm::i16;
#endif
}

// Passes over the panel's columns, PV vectors at a time (fewer for the last).
template <int PV, class Pass>
FUSEDRNN_INLINE void column_passes(int nr, int W, Pass&& pass) {
  for (int c0 = 0; c0 < nr; c0 += PV * W) {
    const int nv = (nr - c0) / W < PV ? (nr - c0) / W : PV;
    with_rows<PV>(nv, [&](auto NV) { pass(NV, c0); });
  }
}

// ---- int8 tiles -----------------------------------------------------------------------
#if FUSEDRNN_QUANT_ISA == 0
inline void qtile_i8(int m, const QPanels& w, int64_t p, AForm, const void* a_, int64_t lda,
                     int32_t* out) {
  const int nr = w.nr;
  const int64_t K4 = w.K4;
  const int8_t* pb = w.q.data() + p * K4 * nr;
  const int8_t* a = static_cast<const int8_t*>(a_);
  for (int r = 0; r < m; ++r) {
    int32_t* o = out + r * nr;
    for (int j = 0; j < nr; ++j) o[j] = 0;
    for (int64_t k = 0; k < K4; k += 4) {
      const int8_t* ar = a + r * lda + k;
      const int8_t* bk = pb + k * nr;
      for (int j = 0; j < nr; ++j)
        o[j] += ar[0] * bk[4 * j] + ar[1] * bk[4 * j + 1] + ar[2] * bk[4 * j + 2] +
                ar[3] * bk[4 * j + 3];
    }
  }
}
#else

#if FUSEDRNN_QUANT_ISA == 1
using QI = __m256i;
constexpr int kQW = 8;  // int32 lanes (columns) per vector
// Weights of 4 columns x 4 k's (16 bytes) sign-extended to int16.
FUSEDRNN_INLINE QI q_widen(const int8_t* p) {
  return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
FUSEDRNN_INLINE QI q_bcast4(const int16_t* a) { return _mm256_set1_epi64x(load_i64(a)); }
FUSEDRNN_INLINE QI q_madd_add(QI acc, QI a, QI b) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
}
// Two pair-sum vectors (columns 0-3 and 4-7) into the 8 columns' sums.
FUSEDRNN_INLINE QI q_pairs(QI lo, QI hi) {
  return _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo, hi), 0xD8);
}
FUSEDRNN_INLINE QI q_zero() { return _mm256_setzero_si256(); }
FUSEDRNN_INLINE void q_store(int32_t* p, QI v) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v);
}
#else
using QI = __m512i;
constexpr int kQW = 16;
// Weights of 8 columns x 4 k's (32 bytes) sign-extended to int16.
FUSEDRNN_INLINE QI q_widen(const int8_t* p) {
  return _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
FUSEDRNN_INLINE QI q_bcast4(const int16_t* a) { return _mm512_set1_epi64(load_i64(a)); }
FUSEDRNN_INLINE QI q_madd_add(QI acc, QI a, QI b) {
  return _mm512_add_epi32(acc, _mm512_madd_epi16(a, b));
}
FUSEDRNN_INLINE QI q_pairs(QI lo, QI hi) {
  const QI idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  lo = _mm512_add_epi32(lo, _mm512_maskz_srli_epi64(0xFF, lo, 32));
  hi = _mm512_add_epi32(hi, _mm512_maskz_srli_epi64(0xFF, hi, 32));
  return _mm512_permutex2var_epi32(lo, idx, hi);
}
FUSEDRNN_INLINE QI q_zero() { return _mm512_setzero_si512(); }
FUSEDRNN_INLINE void q_store(int32_t* p, QI v) { _mm512_storeu_si512(p, v); }
#endif

// vpmaddwd pass: M rows x NV vectors of kQW columns from column c0.  A: int16 rows.
template <int M, int NV>
FUSEDRNN_INLINE void madd_pass(int64_t K4, const int16_t* a, int64_t lda, const int8_t* pb,
                               int nr, int c0, int32_t* out) {
  constexpr int HB = kQW * 2;  // bytes of one half vector of columns (kQW / 2 columns x 4)
  QI acc[M][2 * NV];
  for (int r = 0; r < M; ++r)
    for (int q = 0; q < 2 * NV; ++q) acc[r][q] = q_zero();
  const int8_t* bp = pb + c0 * 4;
  for (int64_t k = 0; k < K4; k += 4) {
    const int8_t* bk = bp + k * nr;
    QI b[2 * NV];
    for (int q = 0; q < 2 * NV; ++q) b[q] = q_widen(bk + q * HB);
    for (int r = 0; r < M; ++r) {
      const QI av = q_bcast4(a + r * lda + k);
      for (int q = 0; q < 2 * NV; ++q) acc[r][q] = q_madd_add(acc[r][q], av, b[q]);
    }
  }
  for (int r = 0; r < M; ++r)
    for (int v = 0; v < NV; ++v)
      q_store(out + r * nr + c0 + v * kQW, q_pairs(acc[r][2 * v], acc[r][2 * v + 1]));
}

#if defined(FUSEDRNN_QUANT_VNNI)
// vpdpbusd pass: M rows x NV vectors of 16 columns from c0.  A: uint8 rows (q + 128).
template <int M, int NV>
__attribute__((target("avx512vnni"), noinline)) void vnni_pass(
    int64_t K4, const uint8_t* a, int64_t lda, const int8_t* pb, int nr, int c0,
    const int32_t* comp, int32_t* out) {
  __m512i acc[M][NV];
  for (int r = 0; r < M; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_si512();
  const int8_t* bp = pb + c0 * 4;
  for (int64_t k = 0; k < K4; k += 4) {
    const int8_t* bk = bp + k * nr;
    __m512i b[NV];
    for (int v = 0; v < NV; ++v) b[v] = _mm512_loadu_si512(bk + v * 64);
    for (int r = 0; r < M; ++r) {
      const __m512i av = _mm512_set1_epi32(load_i32(a + r * lda + k));
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], av, b[v]);
    }
  }
  for (int r = 0; r < M; ++r)
    for (int v = 0; v < NV; ++v)
      _mm512_storeu_si512(out + r * nr + c0 + v * 16,
                          _mm512_sub_epi32(acc[r][v], _mm512_loadu_si512(comp + c0 + v * 16)));
}
#endif

inline void qtile_i8(int m, const QPanels& w, int64_t p, AForm form, const void* a, int64_t lda,
                     int32_t* out) {
  FUSEDRNN_DEBUG_ASSERT(m >= 1 && m <= kQRows && w.nr % kQW == 0);
  const int nr = w.nr;
  const int64_t K4 = w.K4;
  const int8_t* pb = w.q.data() + p * K4 * nr;
#if defined(FUSEDRNN_QUANT_VNNI)
  if (form == AForm::u8) {
    const int32_t* comp = w.comp.data() + p * nr;
    with_rows<kQRows>(m, [&](auto M) {
      column_passes<4>(nr, 16, [&](auto NV, int c0) {
        vnni_pass<decltype(M)::value, decltype(NV)::value>(
            K4, static_cast<const uint8_t*>(a), lda, pb, nr, c0, comp, out);
      });
    });
    return;
  }
#endif
  (void)form;
  with_rows<kQRows>(m, [&](auto M) {
    column_passes<2>(nr, kQW, [&](auto NV, int c0) {
      madd_pass<decltype(M)::value, decltype(NV)::value>(K4, static_cast<const int16_t*>(a), lda,
                                                         pb, nr, c0, out);
    });
  });
}
#endif  // FUSEDRNN_QUANT_ISA != 0

}  // namespace FUSEDRNN_ISA
}  // namespace fusedrnn
