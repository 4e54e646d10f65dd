// Row and state helpers of the sequence kernels: where step t's rows and states live in
// the packed layout (fusedrnn/dims.h), each row's final state, and tiles over a step's
// rows when some of them have already ended.
//
// Assumes: d.bs non-increasing with d.bs[0] = B and d.bs[T] = 0, d.off[t + 1] = d.off[t]
// + d.bs[t] (checked by the binding; the debug asserts below re-check what each helper
// reads); state regions laid out as [initial state (B rows)][state after each step
// (N rows)]; no alignment.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "cpu/threads.h"
#include "fusedrnn/dims.h"
#include "fusedrnn/kernels.h"
#include "gemm/ukernel-inl.h"
#include "simd/macros.h"
#include "simd/vec.h"

namespace fusedrnn {
namespace FUSEDRNN_ISA {

// Rows of the state regions ([initial state (B rows)][state after each step (N rows)],
// see fusedrnn/dims.h) that hold step t's input state and its output state.
inline int64_t prev_row(const Dims& d, int64_t t) { return t == 0 ? 0 : d.B + d.off[t - 1]; }
inline int64_t out_row(const Dims& d, int64_t t) { return d.B + d.off[t]; }

// Each row's final state, from the per-step states s (row of step t, batch row b at
// s + (row(t) + b) * width): row b ends at the step t with bs[t + 1] <= b < bs[t].
template <class T, class Row>
void final_states(const Dims& d, int64_t width, const T* s, Row row, T* out) {
  FUSEDRNN_DEBUG_ASSERT(d.T >= 1 && d.bs[0] == d.B && d.bs[d.T] == 0);
  for (int64_t t = d.T - 1; t >= 0; --t)
    for (int64_t b = d.bs[t + 1]; b < d.bs[t]; ++b)
      std::memcpy(out + b * width, s + (row(t) + b) * width, sizeof(T) * width);
}

// h_{t-1} for every packed row (N x width), aligned with the gradient rows, from a state
// region: that region itself when every step has all B rows, else a copy in `buf`
// (allocates: call before a parallel region).
template <class T>
const T* prev_states(const Dims& d, const T* states, int64_t width, Buffer<T>& buf) {
  FUSEDRNN_DEBUG_ASSERT(d.T >= 1 && d.off[d.T] == d.N);
  if (d.bs[d.T - 1] == d.B) return states;  // bs is non-increasing: no row ends early
  buf.reset(d.N * width);
  for (int64_t t = 0; t < d.T; ++t)
    std::memcpy(buf.data() + d.off[t] * width, states + prev_row(d, t) * width,
                sizeof(T) * d.bs[t] * width);
  return buf.data();
}

// dst (n elements) = src, or zeros where src is null (an optional state gradient).
template <class T>
void copy_or_zero(T* dst, const T* src, int64_t n) {
  if (src)
    std::memcpy(dst, src, sizeof(T) * n);
  else
    std::fill(dst, dst + n, T(0));
}

// A step's rows [0, M) in blocks of at most MR rows, one register tile each: as few
// blocks as MR allows, of nearly equal heights (the first M % n one row taller), so that
// no tile is much shorter than the others (a 2-row tile re-reads the whole weight panel
// for a third of a 6-row tile's work: 8 rows run as 4 + 4, not 6 + 2).  The heights are
// a function of M alone, so a row's sums do not depend on the thread count.
struct RowBlocks {
  int64_t n = 0;  // blocks
  RowBlocks(int64_t M, int MR) : n((M + MR - 1) / MR), M_(M) {}
  // Block i: rows [begin, end).
  void rows(int64_t i, int64_t& begin, int64_t& end) const {
    split(M_, static_cast<int>(i), static_cast<int>(n), begin, end);
  }

 private:
  int64_t M_;
};

// Copies the rows x cols matrix a (row-major) into MR-row strips, one per block of
// RowBlocks(rows, MR): strip s holds block s's rows as [col][MR], rows past its height
// zero.  The strips are `width` columns wide (default cols) and a goes to columns
// [col0, col0 + cols) of them: two calls lay [x_t | h_{t-1}] side by side.
template <class T, int MR>
void pack_strips(int64_t rows, int64_t cols, const T* a, T* out, int64_t width = -1,
                 int64_t col0 = 0) {
  const RowBlocks blocks(rows, MR);
  if (width < 0) width = cols;
  for (int64_t s = 0; s < blocks.n; ++s) {
    int64_t b0, b1;
    blocks.rows(s, b0, b1);
    T* o = out + (s * width + col0) * MR;
    for (int r = 0; r < MR; ++r) {
      const int64_t row = b0 + r;
      if (row < b1) {
        const T* src = a + row * cols;
        for (int64_t k = 0; k < cols; ++k) o[k * MR + r] = src[k];
      } else {
        for (int64_t k = 0; k < cols; ++k) o[k * MR + r] = T(0);
      }
    }
  }
}

// Tiles of rows [0, mt) against one packed panel: rows below `na` take the product of
// A's rows, in the blocks of RowBlocks(na, MR) (a_of(s, m0): the A of block s, whose
// first row is m0), the rest a zero product (their A row does not exist: a sequence that
// ends at this step).  epi(b, acc).
template <class T, int MR, int NV, class AOf, class Epi>
FUSEDRNN_INLINE void rows_tiles(int64_t mt, int64_t na, int64_t K, AOf a_of, int64_t a_rs,
                                int64_t a_cs, const T* Bp, Epi&& epi) {
  FUSEDRNN_DEBUG_ASSERT(na <= mt);
  using V = Vec<T>;
  const RowBlocks blocks(na, MR);
  for (int64_t s = 0; s < blocks.n; ++s) {
    int64_t m0, m1;
    blocks.rows(s, m0, m1);
    tile_rows_loop<T, MR, NV>(static_cast<int>(m1 - m0), K, a_of(s, m0), a_rs, a_cs, Bp,
                              [&](int r, const V* acc) { epi(m0 + r, acc); });
  }
  if (na < mt) {
    V zero[NV];
    for (int v = 0; v < NV; ++v) zero[v] = V::zero();
    for (int64_t b = na; b < mt; ++b) epi(b, zero);
  }
}

}  // namespace FUSEDRNN_ISA
}  // namespace fusedrnn
