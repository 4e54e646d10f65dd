// The fused forward time loop of one layer and direction (LSTM without projection, GRU
// reset_after=True, RNN tanh/relu), for padded and packed rows alike.
//
// The input projection of all steps is one product (N x I by I x G*H), or blocks of
// steps inside the loop (LSTM and GRU inference, and their training up to
// kBlockedTrainBytes of weights), or none: a small LSTM/RNN multiplies
// [x_t | h_{t-1}] by its stacked weights in each step (xfused).  Then one
// parallel region runs the whole sequence: each thread owns a fixed slice of hidden
// units (all G gates of them: one packed panel of W_hh^T per tile, so its W_hh slice
// stays in its own cache); per step it computes its tiles of h_{t-1} W_hh^T (in row
// blocks of nearly equal heights, rows-inl.h RowBlocks) and
// finishes the cell on each tile while it is still in registers (cells/fused-inl.h);
// one barrier per step publishes h_t to the other threads.  Results do not depend on
// the number of threads: work is split by whole tiles and every sum has a fixed order.
//
// Assumes (checked in debug builds):
//   - rows packed as in fusedrnn/dims.h: x (N, I), y (N, H), step t's rows at
//     [off[t], off[t] + bs[t]); h0, c0, h_n, c_n (B, H); all row-major, contiguous, no
//     alignment; ws null (inference) or a Workspace::size() buffer (training).
//   - w packed by this ISA's pack_weights for cell C, P == 0: W_hh^T in panels of U
//     units x G gates (NR = G * U columns, K = H), see pack_units; wxh_u, where packed
//     (wxh_u.K = I + H), [W_ih | W_hh]^T in the same panels.
//   - Tiles: M <= MR = fused_tile_rows(NV) rows, NV = G * unit_vectors(C) vectors.
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
#include "gemm/ukernel-inl.h"
#include "seq/input-inl.h"
#include "seq/rows-inl.h"
#include "seq/shape-inl.h"
#include "simd/macros.h"
#include "simd/tail-inl.h"
#include "simd/vec.h"

namespace fusedrnn {
namespace FUSEDRNN_ISA {

// The fused tile of cell C: UV vectors of units (U units) of each of its G gates, side
// by side (NV vectors, NR columns), MR rows.
template <class T, Cell C>
struct FusedTile {
  static constexpr int W = Vec<T>::width, G = num_gates(C), UV = unit_vectors(C);
  static constexpr int NV = G * UV, MR = fused_tile_rows(NV), U = UV * W, NR = NV * W;
};

// What every thread of forward_fused reads: the call's arguments and where its buffers
// are, set up once before the parallel region.
template <class T>
struct FusedForward {
  const Weights<T>& w;
  const Dims& d;
  const T* x = nullptr;
  const T* h0 = nullptr;
  T* y = nullptr;
  bool train = false;
  bool blocked = false;  // a gated cell: project Tc steps at a time into gx (a scratch)
  int64_t Tc = 0;
  // xfused: a small LSTM / RNN (shape-inl.h, kL2ShareBytes): each step multiplies
  // [x_t | h_{t-1}] by wxh_u (K = I + H), and gx is the bias, one row for all.
  bool xfused = false;
  const Packed<T>* wk = nullptr;  // the step's B panels: w.whh_t (K = H) or w.wxh_u
  int64_t K = 0;
  T* gx = nullptr;  // the input projection (all steps, or Tc steps when blocked)
  int64_t gx_rs = 0;  // gx's row stride: G*H, or 0 (xfused: the bias for every row)
  T* gates = nullptr;  // training: the workspace's gate region (rows of G*H)
  T* c_buf = nullptr;  // LSTM cell states: the workspace's (training) or one (B, H) state
  T* ws_aux = nullptr;  // training: the workspace's aux region (GRU: W_hn h + b_hn)
  T* ws_h = nullptr;  // training: the workspace's h region
  int64_t panels = 0;  // panels of W_hh^T (U units each), split over the threads
  bool chunked = false;  // several row blocks share a panel: walk K in slices of KCF
  int64_t KCF = 0;
  T* partial = nullptr;  // chunked: each thread's B x NR partial sums
  bool pack_h = false;  // copy h_{t-1} (xfused: [x_t | h_{t-1}]) into MR-row strips
  bool split = false;   // xfused, not pack_h: the tiles read x_t's and h_{t-1}'s rows
  int64_t strips = 0;
  T* h_strips = nullptr;  // pack_h: each thread's strips
};

// One step as a thread of forward_fused sees it.
template <class T>
struct FusedStep {
  int64_t t;
  int64_t M;       // rows still running (bs[t])
  int64_t r_prev;  // rows of the state regions holding this step's input state
  int64_t r_out;   //   ... and its output state
  const T* h_prev;
  const T* xt;     // this step's input rows
  T* yt;
  T* h_save;       // training: h_t in the workspace, else null
  T* gxt;          // this step's input projection rows
  const T* hs;     // pack_h: this thread's strips of h_prev, else null
};

// The cell on one row b of a tile of panel units [u0, u0 + U): acc holds that row's
// product h_{t-1} W_hh^T for every gate.
template <class T, Cell C>
FUSEDRNN_INLINE void fused_forward_cell(const FusedForward<T>& f, const FusedStep<T>& s,
                                        int64_t u0, int64_t b, const Vec<T>* acc) {
  using V = Vec<T>;
  using Tile = FusedTile<T, C>;
  constexpr int W = Tile::W, UV = Tile::UV;
  const int64_t H = f.d.H;
  const bool train = f.train;
  T* gxb = s.gxt + b * f.gx_rs;
  for (int uv = 0; uv < UV; ++uv) {
    const int64_t u = u0 + uv * W;
    const int n = static_cast<int>(std::min<int64_t>(W, H - u));
    if (n <= 0) break;
    if constexpr (C == Cell::lstm) {
      T* c_prev = f.c_buf + ((train ? s.r_prev : 0) + b) * H;
      T* c_out = f.c_buf + ((train ? s.r_out : 0) + b) * H;
      lstm_fwd_tile<V>(acc, H, u, n, gxb, c_prev, c_out, s.yt + b * H,
                       s.h_save ? s.h_save + b * H : nullptr,
                       train ? f.gates + (f.d.off[s.t] + b) * Tile::G * H : nullptr);
    } else if constexpr (C == Cell::gru) {
      gru_fwd_tile<V>(acc, H, u, n, gxb, f.w.bias_hn.data(), s.h_prev + b * H, s.yt + b * H,
                      s.h_save ? s.h_save + b * H : nullptr,
                      train ? f.gates + (f.d.off[s.t] + b) * Tile::G * H : nullptr,
                      train ? f.ws_aux + (f.d.off[s.t] + b) * H : nullptr);
    } else {
      // gxb is h_save (training) or yt (inference): h overwrites its projection;
      // xfused: gxb is the bias, h goes to h_save (training) or yt.
      T* hb = !f.xfused ? gxb : train ? s.h_save + b * H : s.yt + b * H;
      rnn_fwd_tile<C == Cell::rnn_relu, V>(acc[uv], u, n, gxb, hb,
                                           train ? s.yt + b * H : nullptr);
    }
  }
}

// Panel p of one step: the tiles of its rows, each finished by the cell.
template <class T, Cell C>
FUSEDRNN_INLINE void fused_forward_panel(ThreadCtx& ctx, const FusedForward<T>& f,
                                         const FusedStep<T>& s, int64_t p) {
  using V = Vec<T>;
  using Tile = FusedTile<T, C>;
  constexpr int W = Tile::W, NV = Tile::NV, MR = Tile::MR, U = Tile::U, NR = Tile::NR;
  const int64_t H = f.d.H, I = f.d.I, K = f.K, M = s.M, B = f.d.B, KCF = f.KCF;
  const bool pack_h = f.pack_h;
  // A of row block i (first row m0), from column k0 (not pack_h: K = H, A = h_prev).
  auto a_of = [&](int64_t i, int64_t m0, int64_t k0) {
    return pack_h ? s.hs + i * K * MR + k0 * MR : s.h_prev + m0 * H + k0;
  };
  const int64_t a_rs = pack_h ? 1 : H, a_cs = pack_h ? MR : 1;
  const T* Bp = f.wk->data.data() + p * K * NR;
  const int64_t u0 = p * U;
  auto epi = [&](int64_t b, const V* acc) { fused_forward_cell<T, C>(f, s, u0, b, acc); };
  if constexpr (is_rnn(C)) {
    if (!f.xfused) {
      // gx is the projection of all steps (in y or the workspace's h rows), far out of
      // cache: ask for this panel's lines of every row now, a whole panel's products
      // before the cells read and overwrite them (RNN S3's steps: 69-70 -> 66-68 ms, one
      // thread; LSTM's and GRU's training steps gained nothing).
      constexpr int64_t L = 64 / sizeof(T);
      for (int64_t b = 0; b < M; ++b)
        for (int64_t j = 0; j < U && u0 + j < H; j += L)
          FUSEDRNN_PREFETCH_L2(s.gxt + b * f.gx_rs + u0 + j);
    }
  }
  // When several row blocks share this panel (chunked), walk K in slices that stay in L2
  // across the row blocks, keeping each block's partial sums in a small scratch (in L1
  // too) between slices; the last slice finishes the cell in registers.  Otherwise one
  // slice of all K: the same products (the tiles' sums do not depend on the slicing
  // when there is one slice), and one copy of the tile code for both cases.
  const int64_t kcf = f.chunked ? KCF : std::max<int64_t>(K, 1);
  T* part = f.chunked ? f.partial + ctx.rank() * B * NR : nullptr;
  const RowBlocks blocks(M, MR);
  for (int64_t k0 = 0; k0 < K || k0 == 0; k0 += kcf) {
    const int64_t kc = std::min<int64_t>(kcf, K - k0);
    const bool first = k0 == 0, last = k0 + kc == K;
    for (int64_t i = 0; i < blocks.n; ++i) {
      int64_t m0, m1;
      blocks.rows(i, m0, m1);
      auto row = [&](int r, const V* acc_in) {
        const int64_t b = m0 + r;
        V acc[NV];
        for (int v = 0; v < NV; ++v)
          acc[v] = first ? acc_in[v] : acc_in[v] + V::load(part + b * NR + v * W);
        if (last) {
          epi(b, acc);
        } else {
          for (int v = 0; v < NV; ++v) acc[v].store(part + b * NR + v * W);
        }
      };
      const int height = static_cast<int>(m1 - m0);
      if (f.split)  // one slice, K = I + H: x_t's rows, then h_{t-1}'s, where they are
        tile_rows_loop<T, MR, NV>(height, I, s.xt + m0 * I, I, 1, Bp, row,
                                  KSplit<T>{H, s.h_prev + m0 * H, H});
      else
        tile_rows_loop<T, MR, NV>(height, kc, a_of(i, m0, k0), a_rs, a_cs, Bp + k0 * NR, row);
    }
  }
}

// One thread's part of the whole sequence: its panels of every step, a barrier after
// each step (and after each block's input projection when blocked).  The panels are
// split again after every step barrier, where the team may shrink (cpu/threads.h).
template <class T, Cell C>
void fused_forward_thread(ThreadCtx& ctx, const FusedForward<T>& f) {
  constexpr int MR = FusedTile<T, C>::MR, G = FusedTile<T, C>::G;
  const Dims& d = f.d;
  const int64_t T_ = d.T, H = d.H, GH = G * H;
  const int64_t* off = d.off;
  int64_t p0, p1;
  T* hs = f.pack_h ? f.h_strips + ctx.rank() * f.strips * MR * f.K : nullptr;
  int64_t gx_row0 = 0;  // the first packed row held by the scratch (blocked)
  for (int64_t t = 0; t < T_; ++t) {
    split(f.panels, ctx.rank(), ctx.size(), p0, p1);
    if (f.blocked && t % f.Tc == 0) {
      const int64_t t1 = std::min(T_, t + f.Tc);
      gx_row0 = off[t];
      {
        profile::Scope part(ctx.rank(), profile::kInputProjection);
        gemm<T>(ctx, off[t1] - off[t], f.x + off[t] * d.I, d.I, 1, f.w.wih_t, f.gx, GH, false,
                f.w.bias_x.data());
      }
      profile::Scope part(ctx.rank(), profile::kBarrier);
      ctx.barrier();
    }
    FusedStep<T> s;
    s.t = t;
    s.M = d.bs[t];
    s.r_prev = prev_row(d, t);
    s.r_out = out_row(d, t);
    s.h_prev = f.train ? f.ws_h + s.r_prev * H : (t == 0 ? f.h0 : f.y + off[t - 1] * H);
    s.xt = f.x + off[t] * d.I;
    s.yt = f.y + off[t] * H;
    s.h_save = f.train ? f.ws_h + s.r_out * H : nullptr;
    s.gxt = f.gx + (f.blocked ? off[t] - gx_row0 : off[t]) * f.gx_rs;
    s.hs = hs;
    if (f.pack_h && p0 < p1) {
      profile::Scope part(ctx.rank(), profile::kStrips);
      if (f.xfused) pack_strips<T, MR>(s.M, d.I, s.xt, hs, f.K, 0);
      pack_strips<T, MR>(s.M, H, s.h_prev, hs, f.K, f.K - H);
    }
    {
      profile::Scope part(ctx.rank(), profile::kSteps);
      // Every other step walks its panels backwards: the panels the last step read last
      // are still in cache when this one starts (a forward walk of weights larger than
      // the cache would find none of them there).  No sum depends on the order.
      for (int64_t j = 0; j < p1 - p0; ++j)
        fused_forward_panel<T, C>(ctx, f, s, t % 2 ? p1 - 1 - j : p0 + j);
    }
    profile::Scope part(ctx.rank(), profile::kBarrier);
    if (!ctx.step_barrier()) return;
  }
}

template <class T, Cell C>
void forward_fused(const Weights<T>& w, const Dims& d, const T* x, const T* h0, const T* c0,
                   T* y, T* h_n, T* c_n, T* ws) {
  using Tile = FusedTile<T, C>;
  constexpr int G = Tile::G, MR = Tile::MR, U = Tile::U, NR = Tile::NR;
  FUSEDRNN_DEBUG_ASSERT(w.cell == C && w.P == 0 && d.P == 0 && w.H == d.H && w.I == d.I);
  FUSEDRNN_DEBUG_ASSERT(w.whh_t.nr == NR && w.whh_t.K == d.H);
  FUSEDRNN_DEBUG_ASSERT(d.T >= 1 && d.bs[0] == d.B && d.off[d.T] == d.N);
  const int64_t T_ = d.T, B = d.B, H = d.H, GH = G * H, BH = B * H;
  const Workspace layout{C, d};
  const bool train = ws != nullptr;
  T* ws_gates = train ? ws + layout.gates_offset() : nullptr;

  // Where the input projection goes (unless xfused, below): for the gated cells, Tc
  // steps at a time, inside the parallel region, into a scratch of about 1 MB that stays
  // in cache (a T-step scratch would be written once and read once, page faults
  // included); when training, each step writes its activated gates to the workspace.
  // Training with weights larger than kBlockedTrainBytes (shape-inl.h) instead projects
  // all steps at once over the workspace's gate region (each step overwrites its slice
  // with the activated gates).  An RNN's goes over the h slots (training) or y
  // (inference), each step overwriting it with h.  The product of a block of rows
  // equals that part of the whole product bit for bit, so inference and training agree
  // exactly.  A small LSTM or RNN has no projection at all (xfused, shape-inl.h): its
  // steps multiply [x_t | h_{t-1}] by the stacked weights, in training and inference
  // alike (so they still agree exactly).
  FusedForward<T> f{w, d, x, h0, y, train};
  f.ws_aux = train ? ws + layout.aux_offset() : nullptr;
  f.ws_h = train ? ws + layout.h_offset() : nullptr;
  f.panels = (H + U - 1) / U;
  // Never a function of the thread count: it changes the order of the sums.
  f.xfused = fuses_input(C) && B >= kFuseInputMinRows && w.wxh_u.K == d.I + H &&
             w.wxh_u.nr == NR &&
             GH * w.wxh_u.K * static_cast<int64_t>(sizeof(T)) <= kL2ShareBytes;
  f.wk = f.xfused ? &w.wxh_u : &w.whh_t;
  f.K = f.wk->K;
  f.gx_rs = f.xfused ? 0 : GH;
  f.gates = ws_gates;
  const int nthreads = threads_for(2.0 * B * GH * f.K, f.panels);
  f.blocked = !is_rnn(C) && !f.xfused &&
              (!train || GH * (d.I + H) * static_cast<int64_t>(sizeof(T)) <= kBlockedTrainBytes);
  f.Tc = f.blocked ? std::max<int64_t>(1, std::min<int64_t>(T_, (int64_t(1) << 18) / (B * GH)))
                   : T_;
  Buffer<T> gx_scratch;
  if (f.xfused) {
    // Read only: with xfused the cells write the training gates to f.gates, never to gx.
    f.gx = const_cast<T*>(w.bias_x.data());
  } else if (is_rnn(C)) {
    f.gx = train ? f.ws_h + BH : y;
  } else if (!f.blocked) {
    f.gx = ws_gates;  // training: each step overwrites its rows with the activated gates
  } else {
    gx_scratch.reset(f.Tc * B * GH);
    f.gx = gx_scratch.data();
  }
  if (!f.blocked && !f.xfused) input_projection(w, d, x, f.gx);

  // LSTM cell states: per step in the workspace ([c_0][c_t ...]) when training, else
  // one (B, H) state updated in place (rows that have ended keep their last state).
  Buffer<T> c_state(C == Cell::lstm && !train ? BH : 0);
  f.c_buf = C == Cell::lstm ? (train ? f.ws_aux : c_state.data()) : nullptr;
  if (train) std::memcpy(f.ws_h, h0, sizeof(T) * BH);
  if (C == Cell::lstm) std::memcpy(f.c_buf, c0, sizeof(T) * BH);

  // K slices of 256 rows of the panel (64 KB on AVX-512, 32 KB on AVX2), when more than
  // one row block reuses it and the weights do not stay in L2 (shape-inl.h,
  // kL2ShareBytes): the first row block brings a slice from L3 into L2, where the others
  // read it.  (Slices of 64 rows, which stay in L1, cost 4-10% at S2/S3 in partial
  // sums; 512 rows gain nothing more.)
  f.KCF = 256;
  f.chunked = B > MR && f.K > f.KCF &&
              GH * f.K * static_cast<int64_t>(sizeof(T)) > kL2ShareBytes;
  Buffer<T> partial(f.chunked ? nthreads * B * NR : 0);
  f.partial = partial.data();
  // Each thread copies h_{t-1} (xfused: x_t's rows too, beside them) into MR-row
  // strips ([k][MR]) at every step when those rows alias in the cache (rows_alias:
  // H = 1024 floats), so that a tile reads its A elements side by side.  Other rows are
  // read where they are (xfused: the tiles' K in two parts, x_t's and h_{t-1}'s).
  // Copying them cost 2-3% of GRU S4's inference, 4% (LSTM) and 12% (RNN) of S4's
  // fused steps (one thread), and each thread copied them all.
  f.strips = (B + MR - 1) / MR;
  f.pack_h = B > 1 && (rows_alias<T>(H) || (f.xfused && rows_alias<T>(d.I)));
  f.split = f.xfused && !f.pack_h;
  FUSEDRNN_DEBUG_ASSERT(!(f.split && f.chunked));
  Buffer<T> h_strips(f.pack_h ? nthreads * f.strips * MR * f.K : 0);
  f.h_strips = h_strips.data();
  parallel(nthreads, [&](ThreadCtx& ctx) { fused_forward_thread<T, C>(ctx, f); });

  const int64_t* off = d.off;
  final_states(d, H, y, [&](int64_t t) { return off[t]; }, h_n);
  if (C == Cell::lstm) {
    if (train)
      final_states(d, H, f.c_buf, [&](int64_t t) { return out_row(d, t); }, c_n);
    else
      std::memcpy(c_n, f.c_buf, sizeof(T) * BH);
  }
}

}  // namespace FUSEDRNN_ISA
}  // namespace fusedrnn
