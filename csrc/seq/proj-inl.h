// The projection path: LSTM with proj_size (torch's LSTM with projections), forward and
// backward.  h_t = (o * tanh(c_t)) W_hr^T has P < H units and is the recurrent input.
//
// Assumes (checked in debug builds):
//   - cell LSTM, 0 < P < H; rows packed as in fusedrnn/dims.h: x (N, I), y and dy
//     (N, P); h0, h_n (B, P); c0, c_n (B, H); row-major, contiguous, no alignment.
//   - w packed by this ISA's pack_weights with w_hr: W_hh^T in panels of one vector of
//     units x 4 gates (K = P), W_hr^T, W_hh and W_hr in GEMM panels.
//   - Tiles: forward M <= fused_tile_rows(4) rows x 4 vectors; backward M <=
//     GemmShape<T>::MR rows x GemmShape<T>::NV vectors.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "cells/fused-inl.h"
#include "cpu/threads.h"
#include "fusedrnn/cell.h"
#include "fusedrnn/dims.h"
#include "fusedrnn/kernels.h"
#include "gemm/gemm-inl.h"
#include "gemm/ukernel-inl.h"
#include "seq/grads-inl.h"
#include "seq/input-inl.h"
#include "seq/rows-inl.h"
#include "seq/shape-inl.h"
#include "simd/macros.h"
#include "simd/tail-inl.h"
#include "simd/vec.h"

namespace fusedrnn {
namespace FUSEDRNN_ISA {

// LSTM with a projection (torch's proj_size): h_t = (o * tanh(c_t)) W_hr^T has P < H
// units and is the recurrent input.  Per step: the fused tiles of h_{t-1} W_hh^T
// (K = P) finish the cell into m_t = o * tanh(c_t); a barrier; the projection of m_t,
// split by column panels of W_hr^T; a barrier.
template <class T>
void forward_proj(const Weights<T>& w, const Dims& d, const T* x, const T* h0, const T* c0,
                  T* y, T* h_n, T* c_n, T* ws) {
  using V = Vec<T>;
  constexpr int W = V::width;
  constexpr int NV = 4, MR = fused_tile_rows(NV), U = W, NR = NV * W;
  const int64_t T_ = d.T, B = d.B, H = d.H, P = d.P, GH = 4 * H, BH = B * H;
  const int64_t* bs = d.bs;
  const int64_t* off = d.off;
  FUSEDRNN_DEBUG_ASSERT(w.cell == Cell::lstm && P > 0 && P < H && w.P == P && w.H == H);
  FUSEDRNN_DEBUG_ASSERT(w.whh_t.nr == NR && w.whh_t.K == P);
  const Workspace layout{Cell::lstm, d};
  const bool train = ws != nullptr;
  T* ws_h = train ? ws + layout.h_offset() : nullptr;
  T* ws_m = train ? ws + layout.m_offset() : nullptr;
  Buffer<T> gx_buf(train ? 0 : d.N * GH), c_state(train ? 0 : BH), m_scratch(train ? 0 : BH);
  T* gx = train ? ws + layout.gates_offset() : gx_buf.data();
  T* c_buf = train ? ws + layout.aux_offset() : c_state.data();
  input_projection(w, d, x, gx);
  if (train) std::memcpy(ws_h, h0, sizeof(T) * B * P);
  std::memcpy(c_buf, c0, sizeof(T) * BH);

  const int64_t panels = (H + U - 1) / U;
  const int nthreads = threads_for(2.0 * B * H * (4 * P + P), panels);
  parallel(nthreads, [&](ThreadCtx& ctx) {
    int64_t p0, p1;
    for (int64_t t = 0; t < T_; ++t) {
      split(panels, ctx.rank(), ctx.size(), p0, p1);  // again after each step barrier
      const int64_t M = bs[t];
      const T* h_prev =
          train ? ws_h + prev_row(d, t) * P : (t == 0 ? h0 : y + off[t - 1] * P);
      T* gxt = gx + off[t] * GH;
      T* mt = train ? ws_m + off[t] * H : m_scratch.data();
      T* c_prev = train ? c_buf + prev_row(d, t) * H : c_buf;
      T* c_out = train ? c_buf + out_row(d, t) * H : c_buf;
      for (int64_t p = p0; p < p1; ++p) {
        const T* Bp = w.whh_t.data.data() + p * P * NR;
        const int64_t u = p * U;
        const int n = static_cast<int>(std::min<int64_t>(W, H - u));
        const RowBlocks blocks(M, MR);
        for (int64_t i = 0; i < blocks.n; ++i) {
          int64_t m0, m1;
          blocks.rows(i, m0, m1);
          tile_rows_loop<T, MR, NV>(
              static_cast<int>(m1 - m0), P, h_prev + m0 * P, P, 1, Bp,
              [&](int r, const V* acc) {
                const int64_t b = m0 + r;
                T* gxb = gxt + b * GH;
                lstm_fwd_tile<V, T>(acc, H, u, n, gxb, c_prev + b * H, c_out + b * H, mt + b * H,
                                    nullptr, train ? gxb : nullptr);
              });
        }
      }
      ctx.barrier();
      gemm<T>(ctx, M, mt, H, 1, w.whr_t, train ? ws_h + out_row(d, t) * P : y + off[t] * P, P,
              false, nullptr);
      if (!ctx.step_barrier()) return;
    }
  });
  if (train) std::memcpy(y, ws_h + B * P, sizeof(T) * d.N * P);
  final_states(d, P, y, [&](int64_t t) { return off[t]; }, h_n);
  if (train)
    final_states(d, H, c_buf, [&](int64_t t) { return out_row(d, t); }, c_n);
  else
    std::memcpy(c_n, c_buf, sizeof(T) * BH);
}

// LSTM with a projection.  Per step (reverse): dh_t (P) = dy_t + direct + dgates_{t+1}
// W_hh, split by column panels of P; a barrier; dm_t = dh_t W_hr (H) with the cell
// backward fused onto its tiles, split by panels of H; a barrier.
template <class T>
void backward_proj(const Weights<T>& w, const Dims& d, const T* x, const T* ws, const T* dy,
                   const T* dh_n, const T* dc_n, T* dx, T* dh0, T* dc0, T* dw_ih, T* dw_hh,
                   T* dw_hr, T* db_ih, T* db_hh) {
  using V = Vec<T>;
  constexpr int W = V::width;
  constexpr int NV = GemmShape<T>::NV, MR = GemmShape<T>::MR, NR = NV * W;
  const int64_t T_ = d.T, B = d.B, H = d.H, P = d.P, GH = 4 * H, BH = B * H, N = d.N;
  const int64_t* bs = d.bs;
  const int64_t* off = d.off;
  FUSEDRNN_DEBUG_ASSERT(w.cell == Cell::lstm && P > 0 && P < H && w.P == P && w.H == H);
  FUSEDRNN_DEBUG_ASSERT(w.whh.nr == NR && w.whr.nr == NR);
  const Workspace layout{Cell::lstm, d};
  const T* ws_gates = ws + layout.gates_offset();
  const T* ws_c = ws + layout.aux_offset();
  const T* ws_h = ws + layout.h_offset();
  const T* ws_m = ws + layout.m_offset();
  Buffer<T> dgi(N * GH), dh_all(N * P), direct(B * P), dc(BH), h_prev_buf;
  const T* h_prev_all = prev_states(d, ws_h, P, h_prev_buf);
  copy_or_zero(direct.data(), dh_n, B * P);
  copy_or_zero(dc.data(), dc_n, BH);

  const int64_t panels_p = (P + NR - 1) / NR, panels_h = (H + NR - 1) / NR;
  const int nthreads = threads_for(2.0 * B * H * (4 * P + P), std::max(panels_p, panels_h));
  parallel(nthreads, [&](ThreadCtx& ctx) {
    int64_t q0, q1, r0, r1;
    for (int64_t t = T_ - 1; t >= -1; --t) {
      split(panels_p, ctx.rank(), ctx.size(), q0, q1);  // again after each step barrier
      split(panels_h, ctx.rank(), ctx.size(), r0, r1);
      const int64_t mt = t >= 0 ? bs[t] : B, na = bs[t + 1];
      const T* A = dgi.data() + off[t + 1] * GH;
      T* dh_t = t >= 0 ? dh_all.data() + off[t] * P : dh0;
      for (int64_t q = q0; q < q1; ++q) {
        const T* Bp = w.whh.data.data() + q * GH * NR;
        const int64_t u0 = q * NR;
        rows_tiles<T, MR, NV>(
            mt, na, GH, [&](int64_t, int64_t m0) { return A + m0 * GH; }, GH, 1, Bp,
            [&](int64_t b, const V* acc) {
              for (int v = 0; v < NV; ++v) {
                const int64_t u = u0 + v * W;
                const int n = static_cast<int>(std::min<int64_t>(W, P - u));
                if (n <= 0) break;
                V dh = acc[v];
                if (b >= na) dh = dh + load_n<V>(direct.data() + b * P + u, n);
                if (t >= 0) dh = dh + load_n<V>(dy + (off[t] + b) * P + u, n);
                store_n(dh, dh_t + b * P + u, n);
              }
            });
      }
      ctx.barrier();
      if (t < 0) break;
      const int64_t r_prev = prev_row(d, t), r_out = out_row(d, t);
      for (int64_t r = r0; r < r1; ++r) {
        const T* Bp = w.whr.data.data() + r * P * NR;
        const int64_t u0 = r * NR;
        rows_tiles<T, MR, NV>(
            mt, mt, P, [&](int64_t, int64_t m0) { return dh_t + m0 * P; }, P, 1, Bp,
            [&](int64_t b, const V* acc) {
              const int64_t row = off[t] + b;
              for (int v = 0; v < NV; ++v) {
                const int64_t u = u0 + v * W;
                const int n = static_cast<int>(std::min<int64_t>(W, H - u));
                if (n <= 0) break;
                lstm_bwd_tile<V>(acc[v], H, u, n, ws_gates + row * GH,
                                 ws_c + (r_out + b) * H, ws_c + (r_prev + b) * H,
                                 dc.data() + b * H, dgi.data() + row * GH);
              }
            });
      }
      if (!ctx.step_barrier()) return;
    }
  });
  std::memcpy(dc0, dc.data(), sizeof(T) * BH);
  weight_gradients<T>(w, d, x, h_prev_all, nullptr, dgi.data(), dgi.data(), dh_all.data(), ws_m,
                      dx, dw_ih, dw_hh, dw_hr, db_ih, db_hh);
}

}  // namespace FUSEDRNN_ISA
}  // namespace fusedrnn
