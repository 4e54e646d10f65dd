// Problem sizes of one layer and direction, and the training workspace layout.
//
// The workspace is what a training forward saves for the backward pass.  It is one
// flat buffer of named regions; `Workspace` is the only code that knows the offsets.
//
// Rows: step t has bs[t] active batch rows (bs non-increasing, bs[0] = B: the batch
// sorted by length, longest first, as torch's PackedSequence), stored at packed rows
// [off[t], off[t] + bs[t]) of x, y and every per-step region; N = off[T] rows in all.
// Without lengths bs[t] = B, off[t] = t * B, N = T * B: the plain [T][B] layout.
//
//   gates [N][G*H]      activated gates per step (LSTM i,f,g,o; GRU r,z,n); absent for RNN
//   aux   [B + N][H]    LSTM: cell states, c_0 (B rows) then c_t of every step
//         [N][H]        GRU reset_after=True : W_hn h_{t-1} + b_hn  (the candidate's recurrent part)
//                       GRU reset_after=False: r_t * h_{t-1}        (what enters W_hn)
//                       RNN: absent
//   h     [B + N][Hr]   hidden states: h_0 (B rows), then h_t of every step (Hr = P or H)
//   m     [N][H]        LSTM with projection only: o * tanh(c), before W_hr
//
// For LSTM without projection that is (G + 2) * N * H + 2 * B * H elements.
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
  int64_t P = 0;  // LSTM projection size (0: none); the recurrent state then has P units
  int64_t N = 0;  // packed rows, sum of bs
  // bs[0..T] (bs[T] = 0) and off[0..T] (off[T] = N): rows per step and their first
  // packed row; owned by the caller (the binding), checked there.
  const int64_t* bs = nullptr;
  const int64_t* off = nullptr;
  // (No member functions: see the note on Workspace below.  The width of h is P or H.)
};

// Defined out of line in types/workspace.cc, compiled without ISA flags: an inline member
// used by the per-ISA kernels could otherwise be emitted with, say, AVX-512 code and
// chosen by the linker for every caller.
struct Workspace {
  Cell cell;
  Dims d;

  int64_t G() const;
  int64_t gates_size() const;
  int64_t aux_size() const;
  int64_t h_size() const;
  int64_t m_size() const;

  int64_t gates_offset() const;
  int64_t aux_offset() const;
  int64_t h_offset() const;
  int64_t m_offset() const;
  int64_t size() const;
};

}  // namespace fusedrnn
