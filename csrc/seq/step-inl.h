// The one-step kernel of the cells (LSTMCell, GRUCell, RNNCell inference): per tile,
// x W_ih^T and h0 W_hh^T into two register tiles, then the cell, with no input
// projection in memory.  (A sequence computes x W_ih^T for all steps at once instead:
// seq/forward-inl.h.)
//
// Assumes (checked in debug builds):
//   - w packed by this ISA's pack_weights with one_step (so not GRU reset_after=False,
//     no projection): W_ih^T and W_hh^T both in panels of U units x G gates.
//   - x (B, I), h0, c0, h1, c1 (B, H), row-major, contiguous, no alignment; c0, c1
//     only for LSTM.
//   - Tiles: M <= MR = tile_rows(2 * NV) rows (two tiles live at once).
#pragma once

#include <algorithm>
#include <cstdint>

#include "cells/fused-inl.h"
#include "cpu/threads.h"
#include "fusedrnn/cell.h"
#include "fusedrnn/kernels.h"
#include "gemm/ukernel-inl.h"
#include "seq/shape-inl.h"
#include "simd/macros.h"
#include "simd/tail-inl.h"
#include "simd/vec.h"

namespace fusedrnn {
namespace FUSEDRNN_ISA {

template <class T, Cell C>
void step_fused(const Weights<T>& w, int64_t B, const T* x, const T* h0, const T* c0, T* h1,
                T* c1) {
  using V = Vec<T>;
  constexpr int W = V::width;
  constexpr int G = num_gates(C);
  constexpr int UV = unit_vectors(C);
  constexpr int NV = G * UV, MR = tile_rows(2 * NV), U = UV * W, NR = NV * W;
  const int64_t I = w.I, H = w.H, GH = G * H;
  const T* bias = w.bias_x.data();
  FUSEDRNN_DEBUG_ASSERT(w.cell == C && w.one_step && w.P == 0);
  FUSEDRNN_DEBUG_ASSERT(w.wih_u.nr == NR && w.whh_t.nr == NR);
  const int64_t panels = (H + U - 1) / U;
  // A lone step is a few microseconds: a second thread pays off only for a big one (the
  // hand-over to a worker that another process has preempted can cost milliseconds).
  parallel(threads_for(2.0 * B * GH * (I + H), panels, 1 << 19), [&](ThreadCtx& ctx) {
    int64_t p0, p1;
    split(panels, ctx.rank(), ctx.size(), p0, p1);
    for (int64_t p = p0; p < p1; ++p) {
      const T* Bx = w.wih_u.data.data() + p * I * NR;
      const T* Bh = w.whh_t.data.data() + p * H * NR;
      const int64_t u0 = p * U;
      for (int64_t m0 = 0; m0 < B; m0 += MR) {
        with_rows<MR>(static_cast<int>(std::min<int64_t>(MR, B - m0)), [&](auto rows) {
          constexpr int M = decltype(rows)::value;
          V ax[M][NV], ah[M][NV];
          tile_product<T, M, NV>(I, x + m0 * I, I, 1, Bx, ax);
          tile_product<T, M, NV>(H, h0 + m0 * H, H, 1, Bh, ah);
          for (int r = 0; r < M; ++r) {
            const int64_t b = m0 + r;
            for (int uv = 0; uv < UV; ++uv) {
              const int64_t u = u0 + uv * W;
              const int n = static_cast<int>(std::min<int64_t>(W, H - u));
              if (n <= 0) break;
              if constexpr (C == Cell::lstm) {
                V acc[4];
                for (int g = 0; g < 4; ++g) acc[g] = ax[r][g] + ah[r][g];
                lstm_fwd_tile<V, T>(acc, H, u, n, bias, c0 + b * H, c1 + b * H, h1 + b * H,
                                    nullptr, nullptr);
              } else if constexpr (C == Cell::gru) {
                const V hn = ah[r][2] + load_n<V>(w.bias_hn.data() + u, n);
                const GruStep<V> s = gru_cell(ax[r][0] + ah[r][0] + load_n<V>(bias + u, n),
                                              ax[r][1] + ah[r][1] + load_n<V>(bias + H + u, n),
                                              hn, ax[r][2] + load_n<V>(bias + 2 * H + u, n),
                                              load_n<V>(h0 + b * H + u, n));
                store_n(s.h, h1 + b * H + u, n);
              } else {
                rnn_fwd_tile<C == Cell::rnn_relu, V, T>(ax[r][uv] + ah[r][uv], u, n, bias,
                                                        h1 + b * H, nullptr);
              }
            }
          }
        });
      }
    }
  });
}

}  // namespace FUSEDRNN_ISA
}  // namespace fusedrnn
