// The body of every quant/forward__<isa>.cc: the quantized kernels of one ISA instantiated
// for each cell kind, the test probes (the row quantizer, the int8 product through the
// packed tiles) and the ISA's QuantTable (fusedrnn/quant.h).
//
// Assumes: included once, by a quant/forward__<isa>.cc, after FUSEDRNN_ISA,
// FUSEDRNN_VEC_HEADER and FUSEDRNN_QUANT_ISA are defined.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "fusedrnn/quant.h"
#include "quant/forward-inl.h"
#include "quant/pack-inl.h"
#include "quant/quantize-inl.h"
#include "quant/tile-inl.h"

namespace fusedrnn {
namespace FUSEDRNN_ISA {

inline QuantStatus quant_forward_any(const QuantWeights& w, const Dims& d, const float* x,
                                     const float* h0, const float* c0, float* y, float* h_n,
                                     float* c_n) {
  switch (w.cell) {
    case Cell::lstm: return quant_forward<Cell::lstm>(w, d, x, h0, c0, y, h_n, c_n);
    case Cell::gru: return quant_forward<Cell::gru>(w, d, x, h0, c0, y, h_n, c_n);
    case Cell::gru_reset_before:
      return quant_forward<Cell::gru_reset_before>(w, d, x, h0, c0, y, h_n, c_n);
    case Cell::rnn_tanh: return quant_forward<Cell::rnn_tanh>(w, d, x, h0, c0, y, h_n, c_n);
    case Cell::rnn_relu: return quant_forward<Cell::rnn_relu>(w, d, x, h0, c0, y, h_n, c_n);
  }
  return QuantStatus::ok;
}

inline QuantStatus quant_quantize_rows(int64_t M, int64_t K, const float* a, int8_t* q,
                                       float* scale) {
  return quantize_rows_to(M, K, a, K, AForm::i8, q, K, scale) ? QuantStatus::ok
                                                               : QuantStatus::non_finite;
}

inline void quant_matmul(int64_t M, int64_t N, int64_t K, const int8_t* a, const int8_t* wq,
                         int32_t* out) {
  QPanels w;
  Buffer<float> ones(std::max<int64_t>(N, 1));
  std::fill(ones.data(), ones.data() + N, 1.0f);
  qpack(w, 1, N, qunits_wide(), K, wq, ones.data(), nullptr);
  const AForm form = quant_a_form();
  const int ab = aform_bytes(form);
  Buffer<int8_t> a4(std::max<int64_t>(1, M * w.K4));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < w.K4; ++k) a4.data()[m * w.K4 + k] = k < K ? a[m * K + k] : 0;
  Buffer<int8_t> ap(std::max<int64_t>(1, M * w.K4 * ab));
  convert_rows(M, w.K4, a4.data(), form, ap.data());
  alignas(64) int32_t tile[kQRows * kQMaxNr];
  const char* abase = reinterpret_cast<const char*>(ap.data());
  for (int64_t p = 0; p < w.panels; ++p)
    for (int64_t m0 = 0; m0 < M; m0 += kQRows) {
      const int m = static_cast<int>(std::min<int64_t>(kQRows, M - m0));
      qtile_i8(m, w, p, form, abase + m0 * w.K4 * ab, w.K4, tile);
      for (int r = 0; r < m; ++r)
        for (int j = 0; j < w.nr; ++j) {
          const int64_t n = p * w.U + j;
          if (n < N) out[(m0 + r) * N + n] = tile[r * w.nr + j];
        }
    }
}

inline bool quant_vnni(int mode) { return quant_use_vnni(mode); }

constexpr QuantTable make_quant_table() {
  return QuantTable{kIsaName, &quant_pack, &quant_forward_any, &quant_quantize_rows,
                    &quant_matmul, &quant_vnni};
}

extern const QuantTable quant_table;
constexpr QuantTable quant_table = make_quant_table();

}  // namespace FUSEDRNN_ISA
}  // namespace fusedrnn
