// GRU reset_after=False over a sequence, forward and backward.  The reset gate
// multiplies h before the candidate's recurrent product, so each step needs two
// recurrent products with a cell part between them; each part is split over the
// threads (rows or product panels), not fused, with a barrier after each
// (the element-wise rows: cells/gru_reset_before-inl.h).
//
// Assumes (checked in debug builds):
//   - cell gru_reset_before; rows packed as in fusedrnn/dims.h: x (N, I), y and dy
//     (N, H); h0, h_n, dh_n (B, H); row-major, contiguous, no alignment.
//   - w packed by this ISA's pack_weights: W_hh^T split into its r, z rows (whh_t,
//     N = 2H) and its candidate rows (whn_t), and the same for W_hh; GEMM panels.
#pragma once

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <utility>

#include "cells/gru_reset_before-inl.h"
#include "cpu/threads.h"
#include "fusedrnn/cell.h"
#include "fusedrnn/dims.h"
#include "fusedrnn/kernels.h"
#include "gemm/gemm-inl.h"
#include "seq/grads-inl.h"
#include "seq/input-inl.h"
#include "seq/rows-inl.h"
#include "seq/shape-inl.h"
#include "simd/macros.h"
#include "simd/vec.h"

namespace fusedrnn {
namespace FUSEDRNN_ISA {

template <class T>
void forward_reset_before(const Weights<T>& w, const Dims& d, const T* x, const T* h0, T* y,
                          T* h_n, T* ws) {
  FUSEDRNN_DEBUG_ASSERT(w.cell == Cell::gru_reset_before && w.H == d.H && d.P == 0);
  FUSEDRNN_DEBUG_ASSERT(w.whh_t.N == 2 * d.H && w.whn_t.N == d.H);
  const int64_t T_ = d.T, B = d.B, H = d.H, GH = 3 * H, BH = B * H;
  const int64_t* off = d.off;
  const Workspace layout{w.cell, d};
  const bool train = ws != nullptr;
  T* ws_aux = train ? ws + layout.aux_offset() : nullptr;
  T* ws_h = train ? ws + layout.h_offset() : nullptr;
  Buffer<T> gx_scratch(train ? 0 : d.N * GH), gh(B * 2 * H), rh_scratch(train ? 0 : BH);
  T* gx = train ? ws + layout.gates_offset() : gx_scratch.data();
  input_projection(w, d, x, gx);
  if (train) std::memcpy(ws_h, h0, sizeof(T) * BH);
  // Per step: the r, z product; r, z and r * h_prev by rows; the candidate's product;
  // n and h by rows — each part split over the threads, a barrier after each.
  const int nthreads = threads_for(2.0 * B * GH * H, 3 * H / GemmShape<T>::NR + 1);
  parallel(nthreads, [&](ThreadCtx& ctx) {
    for (int64_t t = 0; t < T_; ++t) {
      const int64_t M = d.bs[t];
      int64_t b0, b1;
      split(M, ctx.rank(), ctx.size(), b0, b1);
      const T* h_prev =
          train ? ws_h + prev_row(d, t) * H : (t == 0 ? h0 : y + off[t - 1] * H);
      T* yt = y + off[t] * H;
      T* h_save = train ? ws_h + out_row(d, t) * H : nullptr;
      T* gxt = gx + off[t] * GH;
      T* rh = train ? ws_aux + off[t] * H : rh_scratch.data();
      gemm<T>(ctx, M, h_prev, H, 1, w.whh_t, gh.data(), 2 * H, false, nullptr);
      ctx.barrier();
      for (int64_t b = b0; b < b1; ++b)
        gru_rb_fwd_rz_row<T>(H, gxt + b * GH, gh.data() + b * 2 * H, h_prev + b * H,
                             rh + b * H);
      ctx.barrier();
      gemm<T>(ctx, M, rh, H, 1, w.whn_t, gh.data(), H, false, nullptr);
      ctx.barrier();
      for (int64_t b = b0; b < b1; ++b)
        gru_rb_fwd_n_row<T>(H, gxt + b * GH, gh.data() + b * H, h_prev + b * H, yt + b * H,
                            h_save ? h_save + b * H : nullptr);
      if (!ctx.step_barrier()) return;  // the team may shrink here (cpu/threads.h)
    }
  });
  final_states(d, H, y, [&](int64_t t) { return off[t]; }, h_n);
}

template <class T>
void backward_reset_before(const Weights<T>& w, const Dims& d, const T* x, const T* ws,
                           const T* dy, const T* dh_n, T* dx, T* dh0, T* dw_ih, T* dw_hh,
                           T* db_ih, T* db_hh) {
  FUSEDRNN_DEBUG_ASSERT(w.cell == Cell::gru_reset_before && w.H == d.H && d.P == 0);
  FUSEDRNN_DEBUG_ASSERT(w.whh_t.N == 2 * d.H && w.whn_t.N == d.H);
  const int64_t T_ = d.T, B = d.B, H = d.H, GH = 3 * H, BH = B * H;
  const int64_t* off = d.off;
  const Workspace layout{w.cell, d};
  const T* ws_gates = ws + layout.gates_offset();
  const T* ws_aux = ws + layout.aux_offset();
  const T* ws_h = ws + layout.h_offset();
  Buffer<T> dgi(d.N * GH), dh_a(BH), dh_b(BH), drh(BH), h_prev_buf;
  const T* h_prev_all = prev_states(d, ws_h, H, h_prev_buf);
  T* dh_rec = dh_a.data();  // dL/dh_t from the steps after t
  T* dh_next = dh_b.data();
  // Both buffers start as dh_n: a row that has not started yet (in reverse) is written
  // in neither, so it finds dh_n in whichever one is current at its last step.
  for (T* buf : {dh_rec, dh_next}) copy_or_zero(buf, dh_n, BH);
  const int nthreads = threads_for(2.0 * B * GH * H, 3 * H / GemmShape<T>::NR + 1);
  parallel(nthreads, [&](ThreadCtx& ctx) {
    T* rec = dh_rec;  // each thread swaps its own copies of the two pointers in step
    T* next = dh_next;
    for (int64_t t = T_ - 1; t >= 0; --t) {
      const int64_t M = d.bs[t];
      int64_t b0, b1;
      split(M, ctx.rank(), ctx.size(), b0, b1);
      const T* h_prev = ws_h + prev_row(d, t) * H;
      const T* gates = ws_gates + off[t] * GH;
      T* dgt = dgi.data() + off[t] * GH;
      for (int64_t b = b0; b < b1; ++b)
        gru_rb_bwd_zn_row<T>(H, gates + b * GH, h_prev + b * H, dy + (off[t] + b) * H,
                             rec + b * H, dgt + b * GH, next + b * H);
      ctx.barrier();
      gemm<T>(ctx, M, dgt + 2 * H, GH, 1, w.whn, drh.data(), H, false, nullptr);
      ctx.barrier();
      for (int64_t b = b0; b < b1; ++b)
        gru_rb_bwd_r_row<T>(H, gates + b * GH, h_prev + b * H, drh.data() + b * H,
                            dgt + b * GH, next + b * H);
      ctx.barrier();
      gemm<T>(ctx, M, dgt, GH, 1, w.whh, next, H, true, nullptr);
      std::swap(rec, next);
      if (!ctx.step_barrier()) return;  // the team may shrink here (cpu/threads.h)
    }
  });
  if (T_ % 2 == 1) std::swap(dh_rec, dh_next);  // where the threads' `rec` ended
  std::memcpy(dh0, dh_rec, sizeof(T) * BH);
  weight_gradients<T>(w, d, x, h_prev_all, ws_aux, dgi.data(), dgi.data(), nullptr, nullptr, dx,
                      dw_ih, dw_hh, nullptr, db_ih, db_hh);
}

}  // namespace FUSEDRNN_ISA
}  // namespace fusedrnn
