// The biases as the kernels add them, folded once when weights are packed (float32,
// float64 and quantized weights alike).
//
// Assumes: b_ih and b_hh are both null (no bias) or both hold G*H values in torch's
// gate order; bias_x receives G*H values, bias_hn H.
#pragma once

#include <cstdint>

#include "fusedrnn/cell.h"
#include "fusedrnn/kernels.h"

namespace fusedrnn {
namespace FUSEDRNN_ISA {

// bias_x = b_ih + b_hh, added to the input projection; bias_hn zero.  GRU
// reset_after=True is the exception: the candidate's recurrent bias sits inside
// r * (W_hn h + b_hn), so bias_x keeps b_in alone there and bias_hn holds b_hn.
template <class T>
void fold_biases(Cell cell, int64_t GH, int64_t H, const T* b_ih, const T* b_hh,
                 Buffer<T>& bias_x, Buffer<T>& bias_hn) {
  bias_x.reset(GH);
  bias_hn.reset(H);
  for (int64_t j = 0; j < GH; ++j) bias_x.data()[j] = b_ih ? b_ih[j] + b_hh[j] : T(0);
  for (int64_t j = 0; j < H; ++j) bias_hn.data()[j] = T(0);
  if (cell == Cell::gru && b_ih) {
    for (int64_t j = 0; j < H; ++j) {
      bias_x.data()[2 * H + j] = b_ih[2 * H + j];
      bias_hn.data()[j] = b_hh[2 * H + j];
    }
  }
}

}  // namespace FUSEDRNN_ISA
}  // namespace fusedrnn
