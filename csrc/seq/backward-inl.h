// The fused backward time loop of one layer and direction (LSTM without projection, GRU
// reset_after=True, RNN tanh/relu), for padded and packed rows alike.
//
// The same structure as the forward in reverse: per step the tiles of dgates_{t+1} W_hh
// (the recurrent part of dh_t) with the element-wise backward of step t fused onto them
// (cells/fused-inl.h); one barrier per step.  dx, dW_ih, dW_hh and the bias gradients
// are large products and sums after the loop (seq/grads-inl.h).
//
// Assumes (checked in debug builds):
//   - rows packed as in fusedrnn/dims.h; x (N, I), dy (N, H); dh_n, dc_n (B, H) or null;
//     ws the Workspace this forward filled (training); row-major, contiguous, no
//     alignment.
//   - w packed by this ISA's pack_weights for cell C, P == 0: W_hh (K = G*H, N = H) in
//     GEMM panels (NR = GemmShape<T>::NR columns).
//   - Tiles: M <= MR = GemmShape<T>::MR rows, NV = GemmShape<T>::NV vectors of units.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "cells/fused-inl.h"
#include "cpu/profile.h"
#include "cpu/threads.h"
#include "fusedrnn/cell.h"
#include "fusedrnn/dims.h"
#include "fusedrnn/kernels.h"
#include "gemm/gemm-inl.h"
#include "seq/grads-inl.h"
#include "seq/rows-inl.h"
#include "seq/shape-inl.h"
#include "simd/macros.h"
#include "simd/tail-inl.h"
#include "simd/vec.h"

namespace fusedrnn {
namespace FUSEDRNN_ISA {

// What every thread of backward_fused reads, set up before the parallel region.
template <class T>
struct FusedBackward {
  const Weights<T>& w;
  const Dims& d;
  const T* dy = nullptr;
  T* dh0 = nullptr;
  const T* ws_gates = nullptr;
  const T* ws_aux = nullptr;
  const T* ws_h = nullptr;
  // dgi: gradient of the pre-activations, all steps (the input side); dgh: of the
  // recurrent side where it differs (GRU: the candidate's r * (...)), else dgi.
  T* dgi = nullptr;
  T* dgh = nullptr;
  // direct: the part of dL/dh_t that does not come through W_hh: dh_n until a row's
  // last step (rows start in reverse at their own last step), then GRU's dh * z.
  // dc: LSTM's dL/dc_t (dc_n until a row's last step).
  T* direct = nullptr;
  T* dc = nullptr;
  int64_t panels = 0;
  bool pack_a = false;  // copy A (dgh_{t+1}) into MR-row strips
  int64_t strips = 0;
  T* a_strips = nullptr;
};

// Step t's cell backward on row b of a tile of units [u0, u0 + NR): acc holds that row's
// dgh_{t+1} W_hh.  na: rows that have a step t + 1 (the others take dh_n via direct).
// t = -1: only dh0.
template <class T, Cell C>
FUSEDRNN_INLINE void fused_backward_cell(const FusedBackward<T>& f, int64_t t, int64_t na,
                                         int64_t r_prev, int64_t r_out, int64_t u0, int64_t b,
                                         const Vec<T>* acc) {
  using V = Vec<T>;
  constexpr int W = V::width, NV = GemmShape<T>::NV;
  const int64_t H = f.d.H, GH = num_gates(C) * H;
  const bool add_direct = C == Cell::gru || b >= na;
  for (int v = 0; v < NV; ++v) {
    const int64_t u = u0 + v * W;
    const int n = static_cast<int>(std::min<int64_t>(W, H - u));
    if (n <= 0) break;
    V dh = acc[v];
    if (add_direct) dh = dh + load_n<V>(f.direct + b * H + u, n);
    if (t < 0) {
      store_n(dh, f.dh0 + b * H + u, n);
      continue;
    }
    const int64_t row = f.d.off[t] + b;
    dh = dh + load_n<V>(f.dy + row * H + u, n);
    T* dgb = f.dgi + row * GH;
    const T* gates = f.ws_gates + row * GH;
    if constexpr (C == Cell::lstm) {
      lstm_bwd_tile<V>(dh, H, u, n, gates, f.ws_aux + (r_out + b) * H,
                       f.ws_aux + (r_prev + b) * H, f.dc + b * H, dgb);
    } else if constexpr (C == Cell::gru) {
      gru_bwd_tile<V>(dh, H, u, n, gates, f.ws_aux + row * H, f.ws_h + (r_prev + b) * H, dgb,
                      f.dgh + row * GH, f.direct + b * H);
    } else {
      rnn_bwd_tile<C == Cell::rnn_relu, V>(dh, u, n, f.ws_h + (r_out + b) * H, dgb);
    }
  }
}

// Asks for step t's rows of the workspace's gates and of dy, units [u0, u1), to be in L2
// when step t's cell backward reads them (far out of cache: written long ago); called
// while step t + 1 computes.  (Asking for its state and aux rows too made it slower.)
template <class T, Cell C>
FUSEDRNN_INLINE void prefetch_step(const FusedBackward<T>& f, int64_t t, int64_t u0,
                                   int64_t u1) {
  constexpr int64_t L = 64 / sizeof(T);
  const int64_t H = f.d.H, GH = num_gates(C) * H;
  auto lines = [&](const T* p) {
    for (int64_t u = u0; u < u1; u += L) FUSEDRNN_PREFETCH_L2(p + u);
  };
  for (int64_t b = 0; b < f.d.bs[t]; ++b) {
    const int64_t row = f.d.off[t] + b;
    for (int g = 0; g < num_gates(C); ++g) lines(f.ws_gates + row * GH + g * H);
    lines(f.dy + row * H);
  }
}

// One thread's part of the reverse loop: its panels of every step, a barrier after each
// (a step barrier: the panels are split again after it, see cpu/threads.h).
template <class T, Cell C>
void fused_backward_thread(ThreadCtx& ctx, const FusedBackward<T>& f) {
  using V = Vec<T>;
  constexpr int NV = GemmShape<T>::NV, MR = GemmShape<T>::MR, NR = GemmShape<T>::NR;
  const Dims& d = f.d;
  const int64_t B = d.B, GH = num_gates(C) * d.H;
  const int64_t* bs = d.bs;
  const int64_t* off = d.off;
  int64_t q0, q1;
  T* as = f.pack_a ? f.a_strips + ctx.rank() * f.strips * MR * GH : nullptr;
  // Step t's tiles: dh_t = dy_t + direct + dgh_{t+1} W_hh, then the cell backward.
  // Rows b >= na = bs[t + 1] end at step t: no product, dh_n comes in through direct.
  // t = -1 is the last product alone: dh0.
  for (int64_t t = d.T - 1; t >= -1; --t) {
    split(f.panels, ctx.rank(), ctx.size(), q0, q1);
    const int64_t mt = t >= 0 ? bs[t] : B, na = bs[t + 1];
    // Rows of the state regions holding step t's input and output states.
    const int64_t r_prev = t >= 0 ? prev_row(d, t) : 0, r_out = t >= 0 ? out_row(d, t) : 0;
    const T* A = f.dgh + off[t + 1] * GH;
    if (na > 0 && f.pack_a && q0 < q1) {
      profile::Scope part(ctx.rank(), profile::kStrips);
      pack_strips<T, MR>(na, GH, A, as);
    }
    auto a_of = [&](int64_t s, int64_t m0) { return f.pack_a ? as + s * GH * MR : A + m0 * GH; };
    const int64_t a_rs = f.pack_a ? 1 : GH, a_cs = f.pack_a ? MR : 1;
    if (t >= 1) prefetch_step<T, C>(f, t - 1, q0 * NR, std::min<int64_t>(d.H, q1 * NR));
    {
    profile::Scope part(ctx.rank(), profile::kSteps);
    // Every other step walks its panels backwards, as the forward does (the panels read
    // last are still in cache); no sum depends on the order.
    for (int64_t j = 0; j < q1 - q0; ++j) {
      const int64_t q = t % 2 ? q1 - 1 - j : q0 + j;
      const T* Bp = f.w.whh.data.data() + q * GH * NR;
      const int64_t u0 = q * NR;
      auto epi = [&](int64_t b, const V* acc) {
        fused_backward_cell<T, C>(f, t, na, r_prev, r_out, u0, b, acc);
      };
      // One copy of the tile code for both layouts of A (strips or rows): the strides
      // are run-time values, as in the forward.
      rows_tiles<T, MR, NV>(mt, na, GH, a_of, a_rs, a_cs, Bp, epi);
    }
    }
    profile::Scope part(ctx.rank(), profile::kBarrier);
    if (!ctx.step_barrier()) return;
  }
}

template <class T, Cell C>
void backward_fused(const Weights<T>& w, const Dims& d, const T* x, const T* ws, const T* dy,
                    const T* dh_n, const T* dc_n, T* dx, T* dh0, T* dc0, T* dw_ih, T* dw_hh,
                    T* db_ih, T* db_hh) {
  constexpr int MR = GemmShape<T>::MR, NR = GemmShape<T>::NR;
  FUSEDRNN_DEBUG_ASSERT(w.cell == C && w.P == 0 && d.P == 0 && w.H == d.H && w.I == d.I);
  FUSEDRNN_DEBUG_ASSERT(w.whh.nr == NR && w.whh.K == num_gates(C) * d.H);
  FUSEDRNN_DEBUG_ASSERT(d.T >= 1 && d.bs[0] == d.B && d.off[d.T] == d.N);
  const int64_t B = d.B, H = d.H, GH = num_gates(C) * H, BH = B * H, N = d.N;
  const Workspace layout{C, d};
  FusedBackward<T> f{w, d, dy, dh0};
  f.ws_gates = ws + layout.gates_offset();
  f.ws_aux = ws + layout.aux_offset();
  f.ws_h = ws + layout.h_offset();
  Buffer<T> dgi(N * GH), dgh_buf(C == Cell::gru ? N * GH : 0), h_prev_buf;
  f.dgi = dgi.data();
  f.dgh = C == Cell::gru ? dgh_buf.data() : dgi.data();
  const T* h_prev_all = prev_states(d, f.ws_h, H, h_prev_buf);
  Buffer<T> direct(BH), dc(C == Cell::lstm ? BH : 0);
  f.direct = direct.data();
  f.dc = dc.data();
  copy_or_zero(f.direct, dh_n, BH);
  if (C == Cell::lstm) copy_or_zero(f.dc, dc_n, BH);

  f.panels = (H + NR - 1) / NR;
  const int nthreads = threads_for(2.0 * B * GH * H, f.panels);
  // As in forward_fused, A (dgh_{t+1}, rows G*H apart) is copied into MR-row strips
  // when its rows would alias in the cache (rows_alias), else read in place (LSTM S4's
  // 2 KB rows: the copies had cost 1.1 of its 43 ms backward, one thread).
  f.strips = (B + MR - 1) / MR;
  f.pack_a = B > 1 && rows_alias<T>(GH);
  Buffer<T> a_strips(f.pack_a ? nthreads * f.strips * MR * GH : 0);
  f.a_strips = a_strips.data();
  parallel(nthreads, [&](ThreadCtx& ctx) { fused_backward_thread<T, C>(ctx, f); });

  if (C == Cell::lstm) std::memcpy(dc0, f.dc, sizeof(T) * BH);
  weight_gradients<T>(w, d, x, h_prev_all, nullptr, f.dgi, f.dgh, nullptr, nullptr, dx, dw_ih,
                      dw_hh, nullptr, db_ih, db_hh);
}

}  // namespace FUSEDRNN_ISA
}  // namespace fusedrnn
