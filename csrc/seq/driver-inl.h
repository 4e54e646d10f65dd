// The time loop of one layer and direction, forward and backward.
//
// Forward: the input projection of all T steps is one product (T*B x I by I x G*H).
// Then one parallel region runs the whole sequence: each thread owns a fixed slice of
// hidden units (all G gates of them: one packed panel of W_hh^T per tile, so its W_hh
// slice stays in its own cache); per step it computes its tiles of h_{t-1} W_hh^T and
// finishes the cell on each tile while it is still in registers (cells/fused-inl.h);
// one barrier per step publishes h_t to the other threads.
// Backward: the same structure in reverse — per step the tiles of dgates_{t+1} W_hh
// (the recurrent part of dh_t) with the element-wise backward of step t fused onto
// them; dx, dW_ih, dW_hh and the bias gradients are large products and sums after the
// loop.  GRU reset_after=False needs two recurrent products per step with a cell part
// between them; it runs the unfused loop at the end of this file.
//
// Layouts: x (T, B, I), y (T, B, H), states (B, H), all row-major and contiguous; the
// training workspace as described in fusedrnn/dims.h.  Results do not depend on the
// number of threads: work is split by whole tiles and every sum has a fixed order.
//
// Included by each per-ISA translation unit inside namespace fusedrnn::FUSEDRNN_ISA.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>

#include "cpu/threads.h"
#include "fusedrnn/dims.h"
#include "fusedrnn/kernels.h"

namespace fusedrnn {
namespace FUSEDRNN_ISA {

extern const char kIsaName[];

// The fused recurrent tiles hold unit_vectors(c) vectors of hidden units of each of
// the cell's G gates (an RNN has one gate, so two vectors of units keep the tile wide).
constexpr int unit_vectors(Cell c) { return is_rnn(c) ? 2 : 1; }

// Copies the rows x cols matrix a (row-major) into MR-row strips: strip s holds rows
// [s*MR, s*MR + MR) as [col][MR], rows past `rows` zero.
template <class T, int MR>
void pack_strips(int64_t rows, int64_t cols, const T* a, T* out) {
  for (int64_t s = 0; s * MR < rows; ++s) {
    T* o = out + s * cols * MR;
    for (int r = 0; r < MR; ++r) {
      const int64_t row = s * MR + r;
      if (row < rows) {
        const T* src = a + row * cols;
        for (int64_t k = 0; k < cols; ++k) o[k * MR + r] = src[k];
      } else {
        for (int64_t k = 0; k < cols; ++k) o[k * MR + r] = T(0);
      }
    }
  }
}

// Rows of the fused forward tile.  With 16 registers an LSTM tile (4 gate vectors per
// row) takes 3 rows, its B vectors then read from L1 by the FMAs themselves: measured
// 15% faster than 2 rows on Zen 3 (S2, S4).  Other shapes: as the GEMM's rule.
constexpr int fused_tile_rows(int nv) {
  return nv == 4 && kVecRegisters == 16 ? 3 : tile_rows(nv);
}

// Threads worth using for `flops` of work split into `parts` independent pieces, at
// least `per_thread` FLOPs each (below about 32K a barrier costs more than it saves).
inline int threads_for(double flops, int64_t parts, double per_thread = 32768) {
  int64_t n = static_cast<int64_t>(flops / per_thread);
  n = std::min<int64_t>(n, parts);
  n = std::min<int64_t>(n, get_num_threads());
  return static_cast<int>(std::max<int64_t>(n, 1));
}

template <class T>
void pack_weights(Weights<T>& w, Cell cell, int64_t I, int64_t H, int64_t P, const T* w_ih,
                  const T* w_hh, const T* b_ih, const T* b_hh, const T* w_hr, bool one_step) {
  const int64_t G = num_gates(cell), GH = G * H, Hr = P ? P : H;
  w.isa = kIsaName;
  w.cell = cell;
  w.I = I;
  w.H = H;
  w.P = P;
  w.has_bias = b_ih != nullptr;
  w.one_step = one_step && cell != Cell::gru_reset_before && P == 0;
  // W^T as a K x N matrix: element (k, n) = W[n, k] = W[n * K + k].
  pack_b(w.wih_t, I, GH, w_ih, 1, I);
  pack_b(w.wih, GH, I, w_ih, I, 1);
  if (cell == Cell::gru_reset_before) {
    pack_b(w.whh_t, H, 2 * H, w_hh, 1, H);
    pack_b(w.whn_t, H, H, w_hh + 2 * H * H, 1, H);
    pack_b(w.whh, 2 * H, H, w_hh, H, 1);
    pack_b(w.whn, H, H, w_hh + 2 * H * H, H, 1);
  } else {
    pack_units(w.whh_t, static_cast<int>(G), unit_vectors(cell), H, Hr, w_hh);
    if (w.one_step) pack_units(w.wih_u, static_cast<int>(G), unit_vectors(cell), H, I, w_ih);
    pack_b(w.whh, GH, Hr, w_hh, Hr, 1);
  }
  if (P) {
    pack_b(w.whr_t, H, P, w_hr, 1, H);
    pack_b(w.whr, P, H, w_hr, H, 1);
  }
  w.bias_x.reset(GH);
  w.bias_hn.reset(H);
  for (int64_t j = 0; j < GH; ++j) w.bias_x.data()[j] = b_ih ? b_ih[j] + b_hh[j] : T(0);
  for (int64_t j = 0; j < H; ++j) w.bias_hn.data()[j] = T(0);
  if (cell == Cell::gru && b_ih) {
    // The candidate's recurrent bias sits inside r * (W_hn h + b_hn).
    for (int64_t j = 0; j < H; ++j) {
      w.bias_x.data()[2 * H + j] = b_ih[2 * H + j];
      w.bias_hn.data()[j] = b_hh[2 * H + j];
    }
  }
}

// The input projection of all steps: gx (N, G*H) = x W_ih^T + bias_x.
template <class T>
void input_projection(const Weights<T>& w, const Dims& d, const T* x, T* gx) {
  const int64_t M = d.N, N = w.wih_t.N;
  parallel(threads_for(2.0 * M * N * d.I, (N + GemmShape<T>::NR - 1) / GemmShape<T>::NR +
                                              (M + GemmShape<T>::MR - 1) / GemmShape<T>::MR),
           [&](ThreadCtx& ctx) { gemm<T>(ctx, M, x, d.I, 1, w.wih_t, gx, N, false,
                                         w.bias_x.data()); });
}

// Rows of the state regions ([initial state (B rows)][state after each step (N rows)],
// see fusedrnn/dims.h) that hold step t's input state and its output state.
inline int64_t prev_row(const Dims& d, int64_t t) { return t == 0 ? 0 : d.B + d.off[t - 1]; }
inline int64_t out_row(const Dims& d, int64_t t) { return d.B + d.off[t]; }

// Each row's final state, from the per-step states s (row of step t, batch row b at
// s + (row(t) + b) * width): row b ends at the step t with bs[t + 1] <= b < bs[t].
template <class T, class Row>
void final_states(const Dims& d, int64_t width, const T* s, Row row, T* out) {
  for (int64_t t = d.T - 1; t >= 0; --t)
    for (int64_t b = d.bs[t + 1]; b < d.bs[t]; ++b)
      std::memcpy(out + b * width, s + (row(t) + b) * width, sizeof(T) * width);
}

// h_{t-1} for every packed row (N x width), aligned with the gradient rows, from a state
// region: that region itself when every step has all B rows, else a copy in `buf`
// (allocates: call before a parallel region).
template <class T>
const T* prev_states(const Dims& d, const T* states, int64_t width, Buffer<T>& buf) {
  if (d.bs[d.T - 1] == d.B) return states;  // bs is non-increasing: no row ends early
  buf.reset(d.N * width);
  for (int64_t t = 0; t < d.T; ++t)
    std::memcpy(buf.data() + d.off[t] * width, states + prev_row(d, t) * width,
                sizeof(T) * d.bs[t] * width);
  return buf.data();
}

// Tiles of rows [0, mt) against one packed panel: rows below `na` take the product of
// A's rows (a_of(m0): the A of the tile starting at row m0), the rest a zero product
// (their A row does not exist: a sequence that ends at this step).  epi(b, acc).
template <class T, int MR, int NV, class AOf, class Epi>
FUSEDRNN_INLINE void rows_tiles(int64_t mt, int64_t na, int64_t K, AOf a_of, int64_t a_rs,
                                int64_t a_cs, const T* Bp, Epi&& epi) {
  using V = Vec<T>;
  for (int64_t m0 = 0; m0 < mt; m0 += MR) {
    const int m = static_cast<int>(std::min<int64_t>(MR, mt - m0));
    const int ma = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(m, na - m0)));
    if (ma > 0)
      tile_rows_dispatch<T, MR, NV>(ma, K, a_of(m0), a_rs, a_cs, Bp,
                                    [&](int r, const V* acc) { epi(m0 + r, acc); });
    if (ma < m) {
      V zero[NV];
      for (int v = 0; v < NV; ++v) zero[v] = V::zero();
      for (int r = ma; r < m; ++r) epi(m0 + r, zero);
    }
  }
}

template <class T, Cell C>
void forward_fused(const Weights<T>& w, const Dims& d, const T* x, const T* h0, const T* c0,
                   T* y, T* h_n, T* c_n, T* ws) {
  using V = Vec<T>;
  constexpr int W = V::width;
  constexpr int G = num_gates(C);
  constexpr int UV = unit_vectors(C);
  constexpr int NV = G * UV, MR = fused_tile_rows(NV), U = UV * W, NR = NV * W;
  const int64_t T_ = d.T, B = d.B, H = d.H, GH = G * H, BH = B * H;
  const int64_t* bs = d.bs;
  const int64_t* off = d.off;
  const Workspace layout{C, d};
  const bool train = ws != nullptr;
  T* ws_gates = train ? ws + layout.gates_offset() : nullptr;
  T* ws_aux = train ? ws + layout.aux_offset() : nullptr;
  T* ws_h = train ? ws + layout.h_offset() : nullptr;

  // Where the input projection goes: over the gate region of the workspace when
  // training (each step overwrites its slice with the activated gates), over the h
  // slots (training) or y (inference) for an RNN (each step overwrites it with h).
  // Inference of the gated cells instead projects Tc steps at a time, inside the
  // parallel region, into a scratch of about 1 MB that stays in cache (a T-step
  // scratch would be written once and read once, page faults included).  The product
  // of a block of rows equals that part of the whole product bit for bit, so
  // inference and training still agree exactly.
  const bool blocked = !is_rnn(C) && !train;
  const int64_t Tc =
      blocked ? std::max<int64_t>(1, std::min<int64_t>(T_, (int64_t(1) << 18) / (B * GH))) : T_;
  Buffer<T> gx_scratch;
  T* gx;
  if (is_rnn(C)) {
    gx = train ? ws_h + BH : y;
  } else if (train) {
    gx = ws_gates;
  } else {
    gx_scratch.reset(Tc * B * GH);
    gx = gx_scratch.data();
  }
  if (!blocked) input_projection(w, d, x, gx);

  // LSTM cell states: per step in the workspace ([c_0][c_t ...]) when training, else
  // one (B, H) state updated in place (rows that have ended keep their last state).
  Buffer<T> c_state(C == Cell::lstm && !train ? BH : 0);
  T* c_buf = C == Cell::lstm ? (train ? ws_aux : c_state.data()) : nullptr;
  if (train) std::memcpy(ws_h, h0, sizeof(T) * BH);
  if (C == Cell::lstm) std::memcpy(c_buf, c0, sizeof(T) * BH);

  const int64_t panels = (H + U - 1) / U;
  const int nthreads = threads_for(2.0 * B * GH * H, panels);
  // K slices of about 16 KB of the panel, when more than one row block reuses it.
  const int64_t KCF = std::max<int64_t>(64, 16384 / (NR * static_cast<int64_t>(sizeof(T))));
  const bool chunked = B > MR && H > KCF;
  Buffer<T> partial(chunked ? nthreads * B * NR : 0);
  // Each thread copies h_{t-1} into MR-row strips ([k][MR]) at every step, so that a
  // tile reads its A elements side by side (rows H floats apart, a multiple of 4 KB
  // for the large H, would alias in the cache).
  const int64_t strips = (B + MR - 1) / MR;
  const bool pack_h = B > 1;
  Buffer<T> h_strips(pack_h ? nthreads * strips * MR * H : 0);
  parallel(nthreads, [&](ThreadCtx& ctx) {
    int64_t p0, p1;
    split(panels, ctx.rank(), ctx.size(), p0, p1);
    T* hs = pack_h ? h_strips.data() + ctx.rank() * strips * MR * H : nullptr;
    int64_t gx_row0 = 0;  // the first packed row held by the scratch (blocked)
    for (int64_t t = 0; t < T_; ++t) {
      if (blocked && t % Tc == 0) {
        const int64_t t1 = std::min(T_, t + Tc);
        gx_row0 = off[t];
        gemm<T>(ctx, off[t1] - off[t], x + off[t] * d.I, d.I, 1, w.wih_t, gx, GH, false,
                w.bias_x.data());
        ctx.barrier();
      }
      const int64_t M = bs[t];  // rows still running
      // Rows of the state regions holding this step's input and output states.
      const int64_t r_prev = prev_row(d, t), r_out = out_row(d, t);
      const T* h_prev = train ? ws_h + r_prev * H : (t == 0 ? h0 : y + off[t - 1] * H);
      T* yt = y + off[t] * H;
      T* h_save = train ? ws_h + r_out * H : nullptr;
      T* gxt = gx + (blocked ? off[t] - gx_row0 : off[t]) * GH;
      if (pack_h && p0 < p1) pack_strips<T, MR>(M, H, h_prev, hs);
      // A of the tile whose first row is m0, from column k0.
      auto a_of = [&](int64_t m0, int64_t k0) {
        return pack_h ? hs + (m0 / MR) * H * MR + k0 * MR : h_prev + m0 * H + k0;
      };
      const int64_t a_rs = pack_h ? 1 : H, a_cs = pack_h ? MR : 1;
      for (int64_t p = p0; p < p1; ++p) {
        const T* Bp = w.whh_t.data.data() + p * H * NR;
        const int64_t u0 = p * U;
        auto epi = [&](int64_t b, const V* acc) {
          T* gxb = gxt + b * GH;
          for (int uv = 0; uv < UV; ++uv) {
            const int64_t u = u0 + uv * W;
            const int n = static_cast<int>(std::min<int64_t>(W, H - u));
            if (n <= 0) break;
            if constexpr (C == Cell::lstm) {
              T* c_prev = c_buf + ((train ? r_prev : 0) + b) * H;
              T* c_out = c_buf + ((train ? r_out : 0) + b) * H;
              lstm_fwd_tile<V>(acc, H, u, n, gxb, c_prev, c_out, yt + b * H,
                               h_save ? h_save + b * H : nullptr, train ? gxb : nullptr);
            } else if constexpr (C == Cell::gru) {
              gru_fwd_tile<V>(acc, H, u, n, gxb, w.bias_hn.data(), h_prev + b * H, yt + b * H,
                              h_save ? h_save + b * H : nullptr, train ? gxb : nullptr,
                              train ? ws_aux + (off[t] + b) * H : nullptr);
            } else {
              // gxb is h_save (training) or yt (inference): h overwrites its projection.
              rnn_fwd_tile<C == Cell::rnn_relu, V>(acc[uv], u, n, gxb, gxb,
                                                   train ? yt + b * H : nullptr);
            }
          }
        };
        if (!chunked) {
          for (int64_t m0 = 0; m0 < M; m0 += MR)
            tile_rows_dispatch<T, MR, NV>(
                static_cast<int>(std::min<int64_t>(MR, M - m0)), H, a_of(m0, 0), a_rs, a_cs, Bp,
                [&](int r, const V* acc) { epi(m0 + r, acc); });
          continue;
        }
        // Several row blocks share this panel: walk K in slices that stay in L1 across
        // the row blocks, keeping each block's partial sums in a small scratch (in L1
        // too) between slices; the last slice finishes the cell in registers.
        T* part = partial.data() + ctx.rank() * B * NR;
        for (int64_t k0 = 0; k0 < H; k0 += KCF) {
          const int64_t kc = std::min<int64_t>(KCF, H - k0);
          const bool first = k0 == 0, last = k0 + kc == H;
          for (int64_t m0 = 0; m0 < M; m0 += MR)
            tile_rows_dispatch<T, MR, NV>(
                static_cast<int>(std::min<int64_t>(MR, M - m0)), kc, a_of(m0, k0), a_rs, a_cs,
                Bp + k0 * NR, [&](int r, const V* acc_in) {
                  const int64_t b = m0 + r;
                  T* pb = part + b * NR;
                  V acc[NV];
                  for (int v = 0; v < NV; ++v)
                    acc[v] = first ? acc_in[v] : acc_in[v] + V::load(pb + v * W);
                  if (last) {
                    epi(b, acc);
                  } else {
                    for (int v = 0; v < NV; ++v) acc[v].store(pb + v * W);
                  }
                });
        }
      }
      ctx.barrier();
    }
  });
  final_states(d, H, y, [&](int64_t t) { return off[t]; }, h_n);
  if (C == Cell::lstm) {
    if (train)
      final_states(d, H, c_buf, [&](int64_t t) { return out_row(d, t); }, c_n);
    else
      std::memcpy(c_n, c_buf, sizeof(T) * BH);
  }
}

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
    split(panels, ctx.rank(), ctx.size(), p0, p1);
    for (int64_t t = 0; t < T_; ++t) {
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
        for (int64_t m0 = 0; m0 < M; m0 += MR)
          tile_rows_dispatch<T, MR, NV>(
              static_cast<int>(std::min<int64_t>(MR, M - m0)), P, h_prev + m0 * P, P, 1, Bp,
              [&](int r, const V* acc) {
                const int64_t b = m0 + r;
                T* gxb = gxt + b * GH;
                lstm_fwd_tile<V, T>(acc, H, u, n, gxb, c_prev + b * H, c_out + b * H, mt + b * H,
                                 nullptr, train ? gxb : nullptr);
              });
      }
      ctx.barrier();
      gemm<T>(ctx, M, mt, H, 1, w.whr_t, train ? ws_h + out_row(d, t) * P : y + off[t] * P, P,
              false, nullptr);
      ctx.barrier();
    }
  });
  if (train) std::memcpy(y, ws_h + B * P, sizeof(T) * d.N * P);
  final_states(d, P, y, [&](int64_t t) { return off[t]; }, h_n);
  if (train)
    final_states(d, H, c_buf, [&](int64_t t) { return out_row(d, t); }, c_n);
  else
    std::memcpy(c_n, c_buf, sizeof(T) * BH);
}

// One inference step of a cell: per tile, x W_ih^T and h0 W_hh^T into two register
// tiles, then the cell.  (A sequence computes x W_ih^T for all steps at once instead.)
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
  Packed<T> xp, hp, rhp, mp;
  pack_b_alloc(xp, N, I);
  pack_b_alloc(hp, N, Hr);
  if (cell == Cell::gru_reset_before) pack_b_alloc(rhp, N, H);
  if (P) pack_b_alloc(mp, N, H);
  const double flops = 2.0 * N * GH * ((dx ? 2 : 1) * I + Hr) + 2.0 * N * P * H;
  parallel(threads_for(flops, 1 << 20), [&](ThreadCtx& ctx) {
    if (dx) gemm<T>(ctx, N, dgi, GH, 1, w.wih, dx, I, false, nullptr);  // null: not wanted
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
    if (db_ih) {
      column_sums(ctx, N, GH, dgi, GH, db_ih);
      if (cell == Cell::gru) column_sums(ctx, N, GH, dgh, GH, db_hh);
    }
  });
  if (db_ih && cell != Cell::gru) std::memcpy(db_hh, db_ih, sizeof(T) * GH);
}

template <class T, Cell C>
void backward_fused(const Weights<T>& w, const Dims& d, const T* x, const T* ws, const T* dy,
                    const T* dh_n, const T* dc_n, T* dx, T* dh0, T* dc0, T* dw_ih, T* dw_hh,
                    T* db_ih, T* db_hh) {
  using V = Vec<T>;
  constexpr int W = V::width;
  constexpr int G = num_gates(C);
  constexpr int NV = GemmShape<T>::NV, MR = GemmShape<T>::MR, NR = NV * W;
  const int64_t T_ = d.T, B = d.B, H = d.H, GH = G * H, BH = B * H, N = d.N;
  const int64_t* bs = d.bs;
  const int64_t* off = d.off;
  const Workspace layout{C, d};
  const T* ws_gates = ws + layout.gates_offset();
  const T* ws_aux = ws + layout.aux_offset();
  const T* ws_h = ws + layout.h_offset();

  // dgi: gradient of the pre-activations, all steps (the input side); dgh: of the
  // recurrent side where it differs (GRU: the candidate's r * (...) ).
  Buffer<T> dgi(N * GH), dgh_buf(C == Cell::gru ? N * GH : 0), h_prev_buf;
  T* dgh = C == Cell::gru ? dgh_buf.data() : dgi.data();
  const T* h_prev_all = prev_states(d, ws_h, H, h_prev_buf);
  // direct: the part of dL/dh_t that does not come through W_hh: dh_n until a row's
  // last step (rows start in reverse at their own last step), then GRU's dh * z.
  // dc: LSTM's dL/dc_t (dc_n until a row's last step).
  Buffer<T> direct(BH), dc(C == Cell::lstm ? BH : 0);
  if (dh_n)
    std::memcpy(direct.data(), dh_n, sizeof(T) * BH);
  else
    std::fill(direct.data(), direct.data() + BH, T(0));
  if (C == Cell::lstm) {
    if (dc_n)
      std::memcpy(dc.data(), dc_n, sizeof(T) * BH);
    else
      std::fill(dc.data(), dc.data() + BH, T(0));
  }

  const int64_t panels = (H + NR - 1) / NR;
  const int nthreads = threads_for(2.0 * B * GH * H, panels);
  // As in forward_fused, A (dgh_{t+1}, rows G*H apart) is copied into MR-row strips
  // when its rows would alias in the cache (a row stride that is a multiple of 2 KB).
  const int64_t strips = (B + MR - 1) / MR;
  const bool pack_a = B > 1 && (GH * static_cast<int64_t>(sizeof(T))) % 2048 == 0;
  Buffer<T> a_strips(pack_a ? nthreads * strips * MR * GH : 0);
  parallel(nthreads, [&](ThreadCtx& ctx) {
    int64_t q0, q1;
    split(panels, ctx.rank(), ctx.size(), q0, q1);
    T* as = pack_a ? a_strips.data() + ctx.rank() * strips * MR * GH : nullptr;
    // Step t's tiles: dh_t = dy_t + direct + dgh_{t+1} W_hh, then the cell backward.
    // Rows b >= na = bs[t + 1] end at step t: no product, dh_n comes in through direct.
    // t = -1 is the last product alone: dh0.
    for (int64_t t = T_ - 1; t >= -1; --t) {
      const int64_t mt = t >= 0 ? bs[t] : B, na = bs[t + 1];
      // Rows of the state regions holding step t's input and output states.
      const int64_t r_prev = t >= 0 ? prev_row(d, t) : 0, r_out = t >= 0 ? out_row(d, t) : 0;
      const T* A = dgh + off[t + 1] * GH;
      if (na > 0 && pack_a && q0 < q1) pack_strips<T, MR>(na, GH, A, as);
      auto a_of = [&](int64_t m0) { return pack_a ? as + (m0 / MR) * GH * MR : A + m0 * GH; };
      for (int64_t q = q0; q < q1; ++q) {
        const T* Bp = w.whh.data.data() + q * GH * NR;
        const int64_t u0 = q * NR;
        auto epi = [&](int64_t b, const V* acc) {
          const bool add_direct = C == Cell::gru || b >= na;
          for (int v = 0; v < NV; ++v) {
            const int64_t u = u0 + v * W;
            const int n = static_cast<int>(std::min<int64_t>(W, H - u));
            if (n <= 0) break;
            V dh = acc[v];
            if (add_direct) dh = dh + load_n<V>(direct.data() + b * H + u, n);
            if (t < 0) {
              store_n(dh, dh0 + b * H + u, n);
              continue;
            }
            const int64_t row = off[t] + b;
            dh = dh + load_n<V>(dy + row * H + u, n);
            T* dgb = dgi.data() + row * GH;
            const T* gates = ws_gates + row * GH;
            if constexpr (C == Cell::lstm) {
              lstm_bwd_tile<V>(dh, H, u, n, gates, ws_aux + (r_out + b) * H,
                               ws_aux + (r_prev + b) * H, dc.data() + b * H, dgb);
            } else if constexpr (C == Cell::gru) {
              gru_bwd_tile<V>(dh, H, u, n, gates, ws_aux + row * H,
                              ws_h + (r_prev + b) * H, dgb, dgh + row * GH,
                              direct.data() + b * H);
            } else {
              rnn_bwd_tile<C == Cell::rnn_relu, V>(dh, u, n, ws_h + (r_out + b) * H, dgb);
            }
          }
        };
        if (pack_a)
          rows_tiles<T, MR, NV>(mt, na, GH, a_of, 1, MR, Bp, epi);
        else
          rows_tiles<T, MR, NV>(mt, na, GH, a_of, GH, 1, Bp, epi);
      }
      ctx.barrier();
    }
  });
  if (C == Cell::lstm) std::memcpy(dc0, dc.data(), sizeof(T) * BH);
  weight_gradients<T>(w, d, x, h_prev_all, nullptr, dgi.data(), dgh, nullptr, nullptr, dx,
                      dw_ih, dw_hh, nullptr, db_ih, db_hh);
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
  const Workspace layout{Cell::lstm, d};
  const T* ws_gates = ws + layout.gates_offset();
  const T* ws_c = ws + layout.aux_offset();
  const T* ws_h = ws + layout.h_offset();
  const T* ws_m = ws + layout.m_offset();
  Buffer<T> dgi(N * GH), dh_all(N * P), direct(B * P), dc(BH), h_prev_buf;
  const T* h_prev_all = prev_states(d, ws_h, P, h_prev_buf);
  if (dh_n)
    std::memcpy(direct.data(), dh_n, sizeof(T) * B * P);
  else
    std::fill(direct.data(), direct.data() + B * P, T(0));
  if (dc_n)
    std::memcpy(dc.data(), dc_n, sizeof(T) * BH);
  else
    std::fill(dc.data(), dc.data() + BH, T(0));

  const int64_t panels_p = (P + NR - 1) / NR, panels_h = (H + NR - 1) / NR;
  const int nthreads = threads_for(2.0 * B * H * (4 * P + P), std::max(panels_p, panels_h));
  parallel(nthreads, [&](ThreadCtx& ctx) {
    int64_t q0, q1, r0, r1;
    split(panels_p, ctx.rank(), ctx.size(), q0, q1);
    split(panels_h, ctx.rank(), ctx.size(), r0, r1);
    for (int64_t t = T_ - 1; t >= -1; --t) {
      const int64_t mt = t >= 0 ? bs[t] : B, na = bs[t + 1];
      const T* A = dgi.data() + off[t + 1] * GH;
      T* dh_t = t >= 0 ? dh_all.data() + off[t] * P : dh0;
      for (int64_t q = q0; q < q1; ++q) {
        const T* Bp = w.whh.data.data() + q * GH * NR;
        const int64_t u0 = q * NR;
        rows_tiles<T, MR, NV>(
            mt, na, GH, [&](int64_t m0) { return A + m0 * GH; }, GH, 1, Bp,
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
            mt, mt, P, [&](int64_t m0) { return dh_t + m0 * P; }, P, 1, Bp,
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
      ctx.barrier();
    }
  });
  std::memcpy(dc0, dc.data(), sizeof(T) * BH);
  weight_gradients<T>(w, d, x, h_prev_all, nullptr, dgi.data(), dgi.data(), dh_all.data(), ws_m,
                      dx, dw_ih, dw_hh, dw_hr, db_ih, db_hh);
}

// ---- GRU reset_after=False: two recurrent products per step with a cell part between
// them; each part is split over the threads (rows or product panels), not fused --------

template <class T>
void forward_reset_before(const Weights<T>& w, const Dims& d, const T* x, const T* h0, T* y,
                          T* h_n, T* ws) {
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
      ctx.barrier();
    }
  });
  final_states(d, H, y, [&](int64_t t) { return off[t]; }, h_n);
}

template <class T>
void backward_reset_before(const Weights<T>& w, const Dims& d, const T* x, const T* ws,
                           const T* dy, const T* dh_n, T* dx, T* dh0, T* dw_ih, T* dw_hh,
                           T* db_ih, T* db_hh) {
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
  for (T* buf : {dh_rec, dh_next}) {
    if (dh_n)
      std::memcpy(buf, dh_n, sizeof(T) * BH);
    else
      std::fill(buf, buf + BH, T(0));
  }
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
      ctx.barrier();
      std::swap(rec, next);
    }
  });
  if (T_ % 2 == 1) std::swap(dh_rec, dh_next);  // where the threads' `rec` ended
  std::memcpy(dh0, dh_rec, sizeof(T) * BH);
  weight_gradients<T>(w, d, x, h_prev_all, ws_aux, dgi.data(), dgi.data(), nullptr, nullptr, dx,
                      dw_ih, dw_hh, nullptr, db_ih, db_hh);
}

// ---- entry points ----------------------------------------------------------------------

template <class T>
void forward(const Weights<T>& w, const Dims& d, const T* x, const T* h0, const T* c0, T* y,
             T* h_n, T* c_n, T* ws) {
  switch (w.cell) {
    case Cell::lstm:
      if (w.P) return forward_proj<T>(w, d, x, h0, c0, y, h_n, c_n, ws);
      return forward_fused<T, Cell::lstm>(w, d, x, h0, c0, y, h_n, c_n, ws);
    case Cell::gru: return forward_fused<T, Cell::gru>(w, d, x, h0, c0, y, h_n, c_n, ws);
    case Cell::rnn_tanh:
      return forward_fused<T, Cell::rnn_tanh>(w, d, x, h0, c0, y, h_n, c_n, ws);
    case Cell::rnn_relu:
      return forward_fused<T, Cell::rnn_relu>(w, d, x, h0, c0, y, h_n, c_n, ws);
    case Cell::gru_reset_before: return forward_reset_before<T>(w, d, x, h0, y, h_n, ws);
  }
}

template <class T>
void backward(const Weights<T>& w, const Dims& d, const T* x, const T* ws, const T* dy,
              const T* dh_n, const T* dc_n, T* dx, T* dh0, T* dc0, T* dw_ih, T* dw_hh,
              T* dw_hr, T* db_ih, T* db_hh) {
#define FUSEDRNN_BWD(C)                                                                      \
  return backward_fused<T, C>(w, d, x, ws, dy, dh_n, dc_n, dx, dh0, dc0, dw_ih, dw_hh, db_ih, \
                              db_hh)
  switch (w.cell) {
    case Cell::lstm:
      if (w.P)
        return backward_proj<T>(w, d, x, ws, dy, dh_n, dc_n, dx, dh0, dc0, dw_ih, dw_hh, dw_hr,
                                db_ih, db_hh);
      FUSEDRNN_BWD(Cell::lstm);
    case Cell::gru: FUSEDRNN_BWD(Cell::gru);
    case Cell::rnn_tanh: FUSEDRNN_BWD(Cell::rnn_tanh);
    case Cell::rnn_relu: FUSEDRNN_BWD(Cell::rnn_relu);
    case Cell::gru_reset_before:
      return backward_reset_before<T>(w, d, x, ws, dy, dh_n, dx, dh0, dw_ih, dw_hh, db_ih,
                                      db_hh);
  }
#undef FUSEDRNN_BWD
}

template <class T>
void step(const Weights<T>& w, int64_t B, const T* x, const T* h0, const T* c0, T* h1, T* c1) {
  switch (w.cell) {
    case Cell::lstm: return step_fused<T, Cell::lstm>(w, B, x, h0, c0, h1, c1);
    case Cell::gru: return step_fused<T, Cell::gru>(w, B, x, h0, c0, h1, c1);
    case Cell::rnn_tanh: return step_fused<T, Cell::rnn_tanh>(w, B, x, h0, c0, h1, c1);
    case Cell::rnn_relu: return step_fused<T, Cell::rnn_relu>(w, B, x, h0, c0, h1, c1);
    case Cell::gru_reset_before: break;  // never packed for one step
  }
}

// exp, sigmoid or tanh (which = 0, 1, 2) of n elements, with this ISA's vector code
// (the tail with its scalar code): what the tests sweep for accuracy.
template <class T>
void activation(int which, const T* x, T* y, int64_t n) {
  for_each_vec<T>(n, [&](auto tag, int64_t j) {
    using V = typename decltype(tag)::type;
    V v = V::load(x + j);
    (which == 0 ? exp(v) : which == 1 ? sigmoid(v) : tanh(v)).store(y + j);
  });
}

template <class T>
constexpr KernelTable<T> make_table() {
  return KernelTable<T>{kIsaName,     &pack_weights<T>, &forward<T>,     &backward<T>,
                       &step<T>, &activation<T>,   &fma_peak_gflops};
}

}  // namespace FUSEDRNN_ISA
}  // namespace fusedrnn
