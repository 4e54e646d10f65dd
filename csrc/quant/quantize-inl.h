// Dynamic quantization of activation rows (int8 mode): one scale per row, in float32,
// exactly as fusedrnn.quantized.reference.quantize_rows:
//   amax = max|a|; amax == 0: scale = 0, q = 0; else scale = amax / 127,
//   inv = min(127 / amax, FLT_MAX), q = clip(rint(a * inv), -127, 127)
// (float32 divisions and product, round half to even under the default rounding mode).
// The rows are written in the form this ISA's int8 tiles read (AForm): int8 q, uint8
// q + 128 (AVX-512 VNNI) or int16 q (the vpmaddwd tiles), K4 elements a row, zero past K.
//
// Assumes: a (M rows, stride lda floats), out (M rows of K4 >= K elements); no alignment.
// A non-finite value makes the call return false (out is then unspecified).
#pragma once

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "simd/macros.h"

namespace fusedrnn {
namespace FUSEDRNN_ISA {

enum class AForm : int { i8 = 0, u8 = 1, i16 = 2 };

inline int aform_bytes(AForm f) { return f == AForm::i16 ? 2 : 1; }

// max|a| of n floats, through their bits (an integer max: vectorizes, and any inf or NaN
// gives a value >= 0x7f800000).
inline uint32_t amax_bits(const float* a, int64_t n) {
  uint32_t m = 0;
  for (int64_t k = 0; k < n; ++k) {
    uint32_t u;
    std::memcpy(&u, a + k, 4);
    u &= 0x7fffffffu;
    m = u > m ? u : m;
  }
  return m;
}

template <class Q, int kOffset>
inline void quantize_row_as(int64_t K, int64_t K4, const float* a, float inv, Q* q) {
  for (int64_t k = 0; k < K; ++k) {
    float r = std::rint(a[k] * inv);
    r = r < -127.0f ? -127.0f : r;
    r = r > 127.0f ? 127.0f : r;
    q[k] = static_cast<Q>(static_cast<int32_t>(r) + kOffset);
  }
  for (int64_t k = K; k < K4; ++k) q[k] = static_cast<Q>(kOffset);
}

// Returns false if a row holds a non-finite value.
inline bool quantize_rows_to(int64_t M, int64_t K, const float* a, int64_t lda, AForm form,
                             void* out, int64_t K4, float* scale) {
  FUSEDRNN_DEBUG_ASSERT(K4 >= K && M >= 0);
  for (int64_t m = 0; m < M; ++m) {
    const float* row = a + m * lda;
    const uint32_t bits = amax_bits(row, K);
    if (bits >= 0x7f800000u) return false;
    float amax;
    std::memcpy(&amax, &bits, 4);
    float inv = 0.0f;
    if (amax > 0.0f) {
      scale[m] = amax / 127.0f;
      const float r = 127.0f / amax;
      inv = r > FLT_MAX ? FLT_MAX : r;
    } else {
      scale[m] = 0.0f;
    }
    switch (form) {
      case AForm::i8:
        quantize_row_as<int8_t, 0>(K, K4, row, inv, static_cast<int8_t*>(out) + m * K4);
        break;
      case AForm::u8:
        quantize_row_as<uint8_t, 128>(K, K4, row, inv, static_cast<uint8_t*>(out) + m * K4);
        break;
      case AForm::i16:
        quantize_row_as<int16_t, 0>(K, K4, row, inv, static_cast<int16_t*>(out) + m * K4);
        break;
    }
  }
  return true;
}

// Rows of int8 q (stride K4) into `form` (for the test probe, whose A comes quantized).
inline void convert_rows(int64_t M, int64_t K4, const int8_t* q, AForm form, void* out) {
  for (int64_t i = 0; i < M * K4; ++i) {
    if (form == AForm::i8) static_cast<int8_t*>(out)[i] = q[i];
    else if (form == AForm::u8) static_cast<uint8_t*>(out)[i] = static_cast<uint8_t>(q[i] + 128);
    else static_cast<int16_t*>(out)[i] = q[i];
  }
}

}  // namespace FUSEDRNN_ISA
}  // namespace fusedrnn
