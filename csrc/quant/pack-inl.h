// Packing of quantized weights (fusedrnn/quant.h): torch-layout int8 / 16-bit weights into
// the column panels this ISA's quantized tiles read, once per weight version.
//
// Assumes: raw weights row-major and contiguous in torch's shapes (w_ih (G*H, I), w_hh
// (G*H, Hr), w_hr (P, H)), int8 in [-127, 127] (checked by the binding) or 16-bit bits;
// scales finite and positive (checked by the binding); biases both present or both null.
// Panel widths: U a multiple of Vec<float>::width (a tile's vector of columns never
// straddles two gates).
#pragma once

#include <cstdint>
#include <cstring>

#include "fusedrnn/cell.h"
#include "fusedrnn/quant.h"
#include "quant/tile16-inl.h"
#include "seq/shape-inl.h"
#include "seq/bias-inl.h"
#include "simd/macros.h"
#include "simd/vec.h"

namespace fusedrnn {
namespace FUSEDRNN_ISA {

extern const char kIsaName[];

// W (G*Hg rows of K) into panels of U units per gate (see QPanels).  int8: w8 and its
// row scales; 16-bit: w16.
// pair16: vectors of columns stored in interleaved pairs (bfloat16 on the AVX ISAs, see
// bf16_pair in quant/tile16-inl.h): in each k row, column i of vectors 2q and 2q + 1 at
// 2i and 2i + 1 of the pair's 2W elements; a last odd vector as it is.
inline void qpack(QPanels& o, int G, int64_t Hg, int U, int64_t K, const int8_t* w8,
                  const float* scale, const uint16_t* w16, bool pair16 = false) {
  FUSEDRNN_DEBUG_ASSERT(U % Vec<float>::width == 0 && G >= 1 && Hg >= 1);
  o.K = K;
  o.K4 = (K + 3) / 4 * 4;
  o.Hg = Hg;
  o.G = G;
  o.U = U;
  o.nr = G * U;
  o.panels = (Hg + U - 1) / U;
  const int64_t nr = o.nr, cols = o.panels * nr;
  auto row_of = [&](int64_t p, int64_t j) -> int64_t {  // -1: padding
    const int64_t g = j / U, u = p * U + j % U;
    return u < Hg ? g * Hg + u : -1;
  };
  if (w8) {
    o.q.reset(cols * o.K4);
    o.scale.reset(cols);
    o.comp.reset(cols);
    int8_t* q = o.q.data();
    std::memset(q, 0, static_cast<size_t>(cols * o.K4));
    for (int64_t p = 0; p < o.panels; ++p)
      for (int64_t j = 0; j < nr; ++j) {
        const int64_t n = row_of(p, j);
        int32_t sum = 0;
        if (n >= 0)
          for (int64_t k = 0; k < K; ++k) {
            const int8_t v = w8[n * K + k];
            q[p * o.K4 * nr + (k / 4) * nr * 4 + j * 4 + k % 4] = v;
            sum += v;
          }
        o.scale.data()[p * nr + j] = n >= 0 ? scale[n] : 0.0f;
        // 128 * sum may pass 2^31 for the largest K: kept modulo 2^32, as the VNNI sums
        // it is subtracted from (the difference, the true product, fits an int32).
        o.comp.data()[p * nr + j] = static_cast<int32_t>(128u * static_cast<uint32_t>(sum));
      }
  } else {
    o.h.reset(cols * K);
    uint16_t* h = o.h.data();
    constexpr int W = Vec<float>::width;
    const int64_t nvt = nr / W;
    auto pos = [&](int64_t j) -> int64_t {  // where column j sits in its k row
      const int64_t v = j / W, i = j % W;
      if (!pair16 || (v % 2 == 0 && v + 1 >= nvt)) return j;
      return (v - v % 2) * W + 2 * i + v % 2;
    };
    for (int64_t p = 0; p < o.panels; ++p)
      for (int64_t j = 0; j < nr; ++j) {
        const int64_t n = row_of(p, j), at = pos(j);
        for (int64_t k = 0; k < K; ++k) h[p * K * nr + k * nr + at] = n >= 0 ? w16[n * K + k] : 0;
      }
  }
}

// Units per gate in one panel of the recurrent / input products of cell c, and of the
// one-gate products (W_hn, W_hr, the test probe).
constexpr int qunits(Cell c) { return unit_vectors(c) * Vec<float>::width; }
constexpr int qunits_wide() { return 4 * Vec<float>::width; }

inline void quant_pack(QuantWeights& w, Cell cell, QuantMode mode, int64_t I, int64_t H, int64_t P,
                       const void* w_ih, const void* w_hh, const float* b_ih, const float* b_hh,
                       const float* s_ih, const float* s_hh, const void* w_hr,
                       const float* s_hr) {
  FUSEDRNN_DEBUG_ASSERT((b_ih == nullptr) == (b_hh == nullptr));
  FUSEDRNN_DEBUG_ASSERT(P == 0 || (cell == Cell::lstm && w_hr != nullptr));
  const bool i8 = mode == QuantMode::int8;
  const int G = num_gates(cell);
  const int64_t GH = G * H, Hr = P ? P : H;
  w.isa = kIsaName;
  w.cell = cell;
  w.mode = mode;
  w.I = I;
  w.H = H;
  w.P = P;
  w.has_bias = b_ih != nullptr;
  auto w8 = [&](const void* p, int64_t off) {
    return i8 ? static_cast<const int8_t*>(p) + off : nullptr;
  };
  auto w16 = [&](const void* p, int64_t off) {
    return i8 ? nullptr : static_cast<const uint16_t*>(p) + off;
  };
  const int U = qunits(cell);
  const bool pair = mode == QuantMode::bfloat16 && kPairBf16;
  qpack(w.wih, G, H, U, I, w8(w_ih, 0), s_ih, w16(w_ih, 0), pair);
  if (cell == Cell::gru_reset_before) {
    qpack(w.whh, 2, H, U, H, w8(w_hh, 0), s_hh, w16(w_hh, 0), pair);
    qpack(w.whn, 1, H, qunits_wide(), H, w8(w_hh, 2 * H * H), s_hh ? s_hh + 2 * H : nullptr,
          w16(w_hh, 2 * H * H), pair);
  } else {
    qpack(w.whh, G, H, U, Hr, w8(w_hh, 0), s_hh, w16(w_hh, 0), pair);
  }
  if (P) qpack(w.whr, 1, P, qunits_wide(), H, w8(w_hr, 0), s_hr, w16(w_hr, 0), pair);
  fold_biases(cell, GH, H, b_ih, b_hh, w.bias_x, w.bias_hn);
}

}  // namespace FUSEDRNN_ISA
}  // namespace fusedrnn
