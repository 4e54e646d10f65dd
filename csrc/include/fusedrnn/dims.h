// Problem sizes of one layer and direction, and the training workspace layout.
//
// The workspace is what a training forward saves for the backward pass.  It is one
// flat buffer of named regions; `Workspace` is the only code that knows the offsets.
//
//   gates [T][B][G*H]   activated gates per step (LSTM i,f,g,o; GRU r,z,n); absent for RNN
//   aux   [T+1][B][H]   LSTM: cell states c_0..c_T (c_0 = initial state)
//         [T][B][H]     GRU reset_after=True : W_hn h_{t-1} + b_hn  (the candidate's recurrent part)
//                       GRU reset_after=False: r_t * h_{t-1}        (what enters W_hn)
//                       RNN: absent
//   h     [T+1][B][H]   hidden states h_0..h_T (h_0 = initial state)
//
// For LSTM that is (G + 2) * T * B * H + 2 * B * H elements.
#pragma once

#include <cstddef>
#include <cstdint>

#include "fusedrnn/cell.h"

namespace fusedrnn {

struct Dims {
  int64_t T = 0;  // steps
  int64_t B = 0;  // batch
  int64_t I = 0;  // input features
  int64_t H = 0;  // hidden units
};

// Defined out of line in seq/layout.cc, compiled without ISA flags: an inline member
// used by the per-ISA kernels could otherwise be emitted with, say, AVX-512 code and
// chosen by the linker for every caller.
struct Workspace {
  Cell cell;
  Dims d;

  int64_t G() const;
  int64_t gates_size() const;
  int64_t aux_size() const;
  int64_t h_size() const;

  int64_t gates_offset() const;
  int64_t aux_offset() const;
  int64_t h_offset() const;
  int64_t size() const;
};

}  // namespace fusedrnn
