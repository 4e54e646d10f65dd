// The weight and bias gradients of one layer-direction, after its reverse time loop:
// large products over all N packed rows, split over the threads, and column sums.
// Shared by every backward (seq/backward-inl.h, proj-inl.h, gru_reset_before-inl.h).
//
// Assumes: all row arrays packed (N rows, fusedrnn/dims.h) and row-major, contiguous,
// no alignment; dgi, dgh (N, G*H); the outputs sized as KernelTable::backward says.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "cpu/profile.h"
#include "cpu/threads.h"
#include "fusedrnn/cell.h"
#include "fusedrnn/dims.h"
#include "fusedrnn/kernels.h"
#include "gemm/gemm-inl.h"
#include "seq/shape-inl.h"
#include "simd/macros.h"
#include "simd/vec.h"

namespace fusedrnn {
namespace FUSEDRNN_ISA {

// Column sums of a (rows x cols) matrix with row stride ld, in row order; columns split
// over the region's threads.
template <class T>
void column_sums(ThreadCtx& ctx, int64_t rows, int64_t cols, const T* a, int64_t ld, T* out) {
  int64_t j0, j1;
  split((cols + 63) / 64, ctx.rank(), ctx.size(), j0, j1);
  j0 *= 64;
  j1 = std::min(cols, j1 * 64);
  for (int64_t j = j0; j < j1; ++j) out[j] = T(0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = j0; j < j1; ++j) out[j] += a[r * ld + j];
}

// After the reverse loop: dx = dgi W_ih, dW_ih = dgi^T x, dW_hh = dgh^T [h_{t-1} of every
// row] (rh: the GRU reset_before candidate's input r * h_prev instead, for its rows),
// dW_hr = dh^T m (LSTM projection: dh_all, m_all), db_ih, db_hh column sums.  All rows
// packed (N of them); h_prev_all and rh_all aligned with them.
template <class T>
void weight_gradients(const Weights<T>& w, const Dims& d, const T* x, const T* h_prev_all,
                      const T* rh_all, const T* dgi, const T* dgh, const T* dh_all,
                      const T* m_all, T* dx, T* dw_ih, T* dw_hh, T* dw_hr, T* db_ih,
                      T* db_hh) {
  const Cell cell = w.cell;
  const int64_t H = d.H, I = d.I, P = d.P, Hr = P ? P : H, GH = num_gates(cell) * H, N = d.N;
  FUSEDRNN_DEBUG_ASSERT(N == d.off[d.T] && (P == 0 || (dw_hr && dh_all && m_all)));
  FUSEDRNN_DEBUG_ASSERT(cell != Cell::gru_reset_before || rh_all);
  Packed<T> xp, hp, rhp, mp;
  pack_b_alloc(xp, N, I);
  pack_b_alloc(hp, N, Hr);
  if (cell == Cell::gru_reset_before) pack_b_alloc(rhp, N, H);
  if (P) pack_b_alloc(mp, N, H);
  const double flops = 2.0 * N * GH * ((dx ? 2 : 1) * I + Hr) + 2.0 * N * P * H;
  parallel(threads_for(flops, 1 << 20), [&](ThreadCtx& ctx) {
    using profile::Scope;
    if (dx) {
      Scope part(ctx.rank(), profile::kDx);
      gemm<T>(ctx, N, dgi, GH, 1, w.wih, dx, I, false, nullptr);  // null: not wanted
    }
    {
      Scope part(ctx.rank(), profile::kDw);
      pack_b(ctx, xp, x, I, 1);
      gemm<T>(ctx, GH, dgi, 1, GH, xp, dw_ih, I, false, nullptr);
      pack_b(ctx, hp, h_prev_all, Hr, 1);
      if (cell == Cell::gru_reset_before) {
        gemm<T>(ctx, 2 * H, dgi, 1, GH, hp, dw_hh, H, false, nullptr);
        pack_b(ctx, rhp, rh_all, H, 1);
        gemm<T>(ctx, H, dgi + 2 * H, 1, GH, rhp, dw_hh + 2 * H * H, H, false, nullptr);
      } else {
        gemm<T>(ctx, GH, dgh, 1, GH, hp, dw_hh, Hr, false, nullptr);
      }
      if (P) {
        pack_b(ctx, mp, m_all, H, 1);
        gemm<T>(ctx, P, dh_all, 1, P, mp, dw_hr, H, false, nullptr);
      }
    }
    if (db_ih) {
      Scope part(ctx.rank(), profile::kBias);
      column_sums(ctx, N, GH, dgi, GH, db_ih);
      if (cell == Cell::gru) column_sums(ctx, N, GH, dgh, GH, db_hh);
    }
  });
  if (db_ih && cell != Cell::gru) std::memcpy(db_hh, db_ih, sizeof(T) * GH);
}

}  // namespace FUSEDRNN_ISA
}  // namespace fusedrnn
