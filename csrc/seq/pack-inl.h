// Weight packing: one layer-direction's torch-layout weights into the panels this ISA's
// kernels read (fusedrnn/kernels.h, Weights), once per weight version.
//
// Assumes: raw weights row-major and contiguous in torch's shapes (w_ih (G*H, I), w_hh
// (G*H, Hr), w_hr (P, H)); biases both present or both null; P == 0 except for LSTM.
#pragma once

#include <algorithm>
#include <cstdint>

#include "fusedrnn/cell.h"
#include "fusedrnn/kernels.h"
#include "gemm/gemm-inl.h"
#include "seq/shape-inl.h"
#include "seq/bias-inl.h"
#include "simd/macros.h"
#include "simd/vec.h"

namespace fusedrnn {
namespace FUSEDRNN_ISA {

// This ISA's name, stored in the weights it packs (defined in seq/table__<isa>.cc).
extern const char kIsaName[];

template <class T>
void pack_weights(Weights<T>& w, Cell cell, int64_t I, int64_t H, int64_t P, const T* w_ih,
                  const T* w_hh, const T* b_ih, const T* b_hh, const T* w_hr, bool one_step) {
  FUSEDRNN_DEBUG_ASSERT((b_ih == nullptr) == (b_hh == nullptr));
  FUSEDRNN_DEBUG_ASSERT(P == 0 || (cell == Cell::lstm && w_hr != nullptr));
  const int64_t G = num_gates(cell), GH = G * H, Hr = P ? P : H;
  w.isa = kIsaName;
  w.cell = cell;
  w.I = I;
  w.H = H;
  w.P = P;
  w.has_bias = b_ih != nullptr;
  w.one_step = one_step && cell != Cell::gru_reset_before && P == 0;
  // W^T as a K x N matrix: element (k, n) = W[n, k] = W[n * K + k].
  pack_b(w.wih_t, I, GH, w_ih, 1, I);
  pack_b(w.wih, GH, I, w_ih, I, 1);
  if (cell == Cell::gru_reset_before) {
    pack_b(w.whh_t, H, 2 * H, w_hh, 1, H);
    pack_b(w.whn_t, H, H, w_hh + 2 * H * H, 1, H);
    pack_b(w.whh, 2 * H, H, w_hh, H, 1);
    pack_b(w.whn, H, H, w_hh + 2 * H * H, H, 1);
  } else {
    pack_units(w.whh_t, static_cast<int>(G), unit_vectors(cell), H, Hr, w_hh);
    if (w.one_step) pack_units(w.wih_u, static_cast<int>(G), unit_vectors(cell), H, I, w_ih);
    // The stack for fused-input sequence steps (seq/forward-inl.h, xfused); not for the
    // cells' one-step weights, whose steps read wih_u and whh_t.
    if (!one_step && fuses_input(cell) && P == 0 &&
        GH * (I + H) * static_cast<int64_t>(sizeof(T)) <= kFuseInputPackBytes) {
      Buffer<T> stack(GH * (I + H));  // [W_ih | W_hh], (G*H, I + H) row-major
      for (int64_t n = 0; n < GH; ++n) {
        std::copy(w_ih + n * I, w_ih + (n + 1) * I, stack.data() + n * (I + H));
        std::copy(w_hh + n * H, w_hh + (n + 1) * H, stack.data() + n * (I + H) + I);
      }
      pack_units(w.wxh_u, static_cast<int>(G), unit_vectors(cell), H, I + H, stack.data());
    }
    pack_b(w.whh, GH, Hr, w_hh, Hr, 1);
  }
  if (P) {
    pack_b(w.whr_t, H, P, w_hr, 1, H);
    pack_b(w.whr, P, H, w_hr, H, 1);
  }
  fold_biases(cell, GH, H, b_ih, b_hh, w.bias_x, w.bias_hn);
}

}  // namespace FUSEDRNN_ISA
}  // namespace fusedrnn
