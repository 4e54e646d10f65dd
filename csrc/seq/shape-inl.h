// Tile shapes and thread counts of the sequence kernels (seq/*-inl.h): how wide the
// fused recurrent tiles are, how many rows they take, and how many threads a piece of
// work is worth.
#pragma once

#include <algorithm>
#include <cstdint>

#include "cpu/threads.h"
#include "fusedrnn/cell.h"
#include "gemm/ukernel-inl.h"
#include "simd/vec.h"

namespace fusedrnn {
namespace FUSEDRNN_ISA {

// The fused recurrent tiles hold unit_vectors(c) vectors of hidden units of each of
// the cell's G gates (an RNN has one gate, so two vectors of units keep the tile wide).
constexpr int unit_vectors(Cell c) { return is_rnn(c) ? 2 : 1; }

// Rows of the fused forward tile.  With 16 registers an LSTM tile (4 gate vectors per
// row) takes 3 rows, its B vectors then read from L1 by the FMAs themselves: measured
// 15% faster than 2 rows on Zen 3 (S2, S4).  Other shapes: as the GEMM's rule.
constexpr int fused_tile_rows(int nv) {
  return nv == 4 && kVecRegisters == 16 ? 3 : tile_rows(nv);
}

// One thread's share of a layer's recurrent weights that stays in its L2 cache from one
// step to the next (half of a Zen 4 core's 1 MB, all of a Zen 3 core's 512 KB).  Up to
// this, a step streams its weight panels from L2, fast enough for the tiles, so K is
// not sliced for L1 (the partial sums between slices cost more than they save).
constexpr int64_t kL2ShareBytes = int64_t(512) << 10;
// Inference of an LSTM or RNN layer fuses the input projection into its steps (one
// product of [x_t | h_{t-1}] by the stacked weights, K = I + H, finished by the cell in
// registers) when one thread's share of the stacked weights fits kL2ShareBytes: the
// longer K spreads the cell's element-wise work over more FMAs, and gx never goes
// through memory.  Larger layers keep the separate projection, which reads W_ih once
// per block of steps instead of once per step.  Weights are packed for it when the
// whole stack fits kFuseInputPackBytes (a share for up to 4 threads).
constexpr int64_t kFuseInputPackBytes = 4 * kL2ShareBytes;
// ... and when the batch has at least this many rows: with fewer, a step is nearly a
// matrix-vector product, bound by the bytes of weights it reads, and the stacked weights
// are twice those of W_hh (at B = 2 the fused steps are 10-15% slower; at 4 they break
// even, from 6 on they gain 2-12%).
constexpr int64_t kFuseInputMinRows = 4;
constexpr bool fuses_input(Cell c) { return c == Cell::lstm || is_rnn(c); }

// Training of an LSTM or GRU layer projects its input in blocks of steps inside the loop,
// as inference does (seq/forward-inl.h), into a scratch that stays in cache, each step
// writing its activated gates to the workspace, when W_ih and W_hh together fit this
// share of the L3 cache (W_ih is read once per block of steps, W_hh once per step).
// Measured on Zen 4 (32 MB L3), one thread, the training forward: LSTM and GRU S2 (8
// and 6 MB of weights) 4% and 7% faster than with one projection of all steps into the
// workspace; S3 (32 and 24 MB), where the two evict each other from L3, 4-5% slower, so
// S3 keeps the one projection.
constexpr int64_t kBlockedTrainBytes = int64_t(16) << 20;

// Threads worth using for `flops` of work split into `parts` independent pieces, at
// least `per_thread` FLOPs each (below about 32K a barrier costs more than it saves).
inline int threads_for(double flops, int64_t parts, double per_thread = 32768) {
  int64_t n = static_cast<int64_t>(flops / per_thread);
  n = std::min<int64_t>(n, parts);
  n = std::min<int64_t>(n, get_num_threads());
  return static_cast<int>(std::max<int64_t>(n, 1));
}

}  // namespace FUSEDRNN_ISA
}  // namespace fusedrnn
