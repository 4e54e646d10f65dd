// The element-wise cells as epilogues of a register tile: each function takes the
// recurrent product of one batch row for `n` <= width hidden units (one vector per
// gate, straight from the GEMM registers) and finishes the step for those units, so
// the pre-activations never make a round trip through memory.
//
// Layouts (row-major): a gate row holds G blocks of H (LSTM i, f, g, o; GRU r, z, n);
// `u` is the first unit of the vector; pointers are to the start of the batch row.
// (GRU reset_after=False has two products per step, so it cannot be fused onto one
// tile: its element-wise rows are in gru_reset_before-inl.h.)
//
// Assumes: 1 <= n <= V::width and u + n <= H (the units exist); no alignment (tails
// go through load_n / store_n); outputs do not overlap inputs except where a function
// says they may alias.
#pragma once

#include <cstdint>

#include "simd/macros.h"
#include "simd/tail-inl.h"
#include "simd/vec.h"

namespace fusedrnn {
namespace FUSEDRNN_ISA {

// ---- forward -------------------------------------------------------------------------

// The cell math on pre-activations held in registers.
template <class V>
struct LstmStep {
  V i, f, g, o, c, h;
};
template <class V>
FUSEDRNN_INLINE LstmStep<V> lstm_cell(V pi, V pf, V pg, V po, V c_prev) {
  LstmStep<V> s;
  s.i = sigmoid(pi);
  s.f = sigmoid(pf);
  s.g = tanh(pg);
  s.o = sigmoid(po);
  s.c = fma(s.f, c_prev, s.i * s.g);
  s.h = s.o * tanh(s.c);
  return s;
}

template <class V>
struct GruStep {
  V r, z, n, h;
};
// hn: W_hn h_prev + b_hn; n_in: the candidate's input part W_in x + b_in.
template <class V>
FUSEDRNN_INLINE GruStep<V> gru_cell(V pr, V pz, V hn, V n_in, V h_prev) {
  GruStep<V> s;
  s.r = sigmoid(pr);
  s.z = sigmoid(pz);
  s.n = tanh(fma(s.r, hn, n_in));
  s.h = fma(s.z, h_prev - s.n, s.n);  // (1 - z) n + z h
  return s;
}

template <bool kRelu, class V>
FUSEDRNN_INLINE V rnn_cell(V pre) {
  return kRelu ? max(pre, V::zero()) : tanh(pre);
}

// gx: input projection + biases (4H); in training `gates` (may alias gx) receives the
// activated gates.  c_prev may alias c_out.  h_out2 optional (null).
template <class V, class T>
FUSEDRNN_INLINE void lstm_fwd_tile(const V* acc, int64_t H, int64_t u, int n, const T* gx,
                                   const T* c_prev, T* c_out, T* h_out, T* h_out2, T* gates) {
  FUSEDRNN_DEBUG_ASSERT(n >= 1 && n <= V::width && u >= 0 && u + n <= H);
  const LstmStep<V> s = lstm_cell(
      acc[0] + load_n<V>(gx + u, n), acc[1] + load_n<V>(gx + H + u, n),
      acc[2] + load_n<V>(gx + 2 * H + u, n), acc[3] + load_n<V>(gx + 3 * H + u, n),
      load_n<V>(c_prev + u, n));
  store_n(s.c, c_out + u, n);
  store_n(s.h, h_out + u, n);
  if (h_out2) store_n(s.h, h_out2 + u, n);
  if (gates) {
    store_n(s.i, gates + u, n);
    store_n(s.f, gates + H + u, n);
    store_n(s.g, gates + 2 * H + u, n);
    store_n(s.o, gates + 3 * H + u, n);
  }
}

// GRU reset_after=True.  acc: h_prev W_hh^T for r, z and the candidate (no bias);
// gx: input projection + b_ih + (b_hr, b_hz, 0); b_hn (H).  In training `gates`
// receives r, z, n and `hn` (H) receives W_hn h_prev + b_hn.
template <class V, class T>
FUSEDRNN_INLINE void gru_fwd_tile(const V* acc, int64_t H, int64_t u, int n, const T* gx,
                                  const T* b_hn, const T* h_prev, T* h_out, T* h_out2, T* gates,
                                  T* hn) {
  FUSEDRNN_DEBUG_ASSERT(n >= 1 && n <= V::width && u >= 0 && u + n <= H);
  const V hnv = acc[2] + load_n<V>(b_hn + u, n);
  const GruStep<V> s = gru_cell(acc[0] + load_n<V>(gx + u, n), acc[1] + load_n<V>(gx + H + u, n),
                                hnv, load_n<V>(gx + 2 * H + u, n), load_n<V>(h_prev + u, n));
  store_n(s.h, h_out + u, n);
  if (h_out2) store_n(s.h, h_out2 + u, n);
  if (gates) {
    store_n(s.r, gates + u, n);
    store_n(s.z, gates + H + u, n);
    store_n(s.n, gates + 2 * H + u, n);
  }
  if (hn) store_n(hnv, hn + u, n);
}

// gx: input projection + both biases (H).  h_out may alias gx.
template <bool kRelu, class V, class T>
FUSEDRNN_INLINE void rnn_fwd_tile(V acc, int64_t u, int n, const T* gx, T* h_out, T* h_out2) {
  FUSEDRNN_DEBUG_ASSERT(n >= 1 && n <= V::width && u >= 0);
  const V h = rnn_cell<kRelu>(acc + load_n<V>(gx + u, n));
  store_n(h, h_out + u, n);
  if (h_out2) store_n(h, h_out2 + u, n);
}

// ---- backward ------------------------------------------------------------------------
// dh: the full gradient of this step's h for these units (dy + the recurrent part).

// dc: in, dL/dc_t from later steps; out, the part carried to c_{t-1}.
template <class V, class T>
FUSEDRNN_INLINE void lstm_bwd_tile(V dh, int64_t H, int64_t u, int n, const T* gates,
                                   const T* c, const T* c_prev, T* dc, T* dg) {
  FUSEDRNN_DEBUG_ASSERT(n >= 1 && n <= V::width && u >= 0 && u + n <= H);
  const V one = V::set1(T(1));
  V i = load_n<V>(gates + u, n), f = load_n<V>(gates + H + u, n);
  V g = load_n<V>(gates + 2 * H + u, n), o = load_n<V>(gates + 3 * H + u, n);
  V tc = tanh(load_n<V>(c + u, n));
  V dct = fma(dh * o, one - tc * tc, load_n<V>(dc + u, n));
  store_n(dct * g * i * (one - i), dg + u, n);
  store_n(dct * load_n<V>(c_prev + u, n) * f * (one - f), dg + H + u, n);
  store_n(dct * i * (one - g * g), dg + 2 * H + u, n);
  store_n(dh * tc * o * (one - o), dg + 3 * H + u, n);
  store_n(dct * f, dc + u, n);
}

// GRU reset_after=True.  dgi: gradient of the input-side pre-activations (r, z, n);
// dgh: of the recurrent ones (r, z, W_hn h + b_hn); dh_direct = dh * z, the part of
// dL/dh_prev that does not go through W_hh.
template <class V, class T>
FUSEDRNN_INLINE void gru_bwd_tile(V dh, int64_t H, int64_t u, int n, const T* gates,
                                  const T* hn, const T* h_prev, T* dgi, T* dgh, T* dh_direct) {
  FUSEDRNN_DEBUG_ASSERT(n >= 1 && n <= V::width && u >= 0 && u + n <= H);
  const V one = V::set1(T(1));
  V r = load_n<V>(gates + u, n), z = load_n<V>(gates + H + u, n);
  V c = load_n<V>(gates + 2 * H + u, n);
  V dn = dh * (one - z) * (one - c * c);
  V dz = dh * (load_n<V>(h_prev + u, n) - c) * z * (one - z);
  V dr = dn * load_n<V>(hn + u, n) * r * (one - r);
  store_n(dr, dgi + u, n);
  store_n(dz, dgi + H + u, n);
  store_n(dn, dgi + 2 * H + u, n);
  store_n(dr, dgh + u, n);
  store_n(dz, dgh + H + u, n);
  store_n(dn * r, dgh + 2 * H + u, n);
  store_n(dh * z, dh_direct + u, n);
}

// h: this step's output.
template <bool kRelu, class V, class T>
FUSEDRNN_INLINE void rnn_bwd_tile(V dh, int64_t u, int n, const T* h, T* dg) {
  FUSEDRNN_DEBUG_ASSERT(n >= 1 && n <= V::width && u >= 0);
  V hv = load_n<V>(h + u, n);
  V d = kRelu ? positive_mask(hv, dh) : dh * (V::set1(T(1)) - hv * hv);
  store_n(d, dg + u, n);
}

}  // namespace FUSEDRNN_ISA
}  // namespace fusedrnn
