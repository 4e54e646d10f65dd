// The quantized inference of one layer-direction (fusedrnn/quant.h): every cell kind,
// padded or packed rows, int8 or 16-bit weights.
//
// One parallel region runs the whole sequence.  Every Tc steps the threads project the
// next block of rows of x (quantized once, before the region, in int8 mode) into a
// scratch gx of about 1 MB, split by panels of W_ih; then, per step, each thread owns
// fixed panels of W_hh^T (U units of each gate), quantizes h_{t-1} into its own copy
// (int8; no barrier needed for it), computes the tiles of its panels (quant/tile-inl.h),
// dequantizes them and finishes the cell on each row with the float kernels' tile
// epilogues (cells/fused-inl.h); one barrier per step.  The LSTM projection and GRU
// reset_after=False take a second product per step (W_hr on o * tanh(c); W_hn on r * h)
// over a (B, H) scratch, after a second barrier.  Results do not depend on the number of
// threads: each output is computed by one thread in an order fixed by the sizes.
//
// Assumes: rows packed as in fusedrnn/dims.h; x (N, I), y (N, Hr), h0, h_n (B, Hr), c0,
// c_n (B, H) row-major and contiguous, no alignment; w packed by this ISA's quant_pack;
// every panel width nr <= 4 * Vec<float>::width.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>

#include "cells/fused-inl.h"
#include "cpu/threads.h"
#include "fusedrnn/cell.h"
#include "fusedrnn/dims.h"
#include "fusedrnn/quant.h"
#include "gemm/ukernel-inl.h"
#include "quant/pack-inl.h"
#include "quant/quantize-inl.h"
#include "quant/tile-inl.h"
#include "quant/tile16-inl.h"
#include "seq/rows-inl.h"
#include "seq/shape-inl.h"
#include "simd/macros.h"
#include "simd/tail-inl.h"
#include "simd/vec.h"

namespace fusedrnn {
namespace FUSEDRNN_ISA {

constexpr int kQMaxNr = 4 * Vec<float>::width;
// Rows of x from which the input projection converts 16-bit panels to float32 first.
constexpr int64_t kConvertRows = 8;

// The A operand of a product: quantized rows (int8 mode: `q` in `form`, K4 elements a
// row, scales `scale`) or float rows (16-bit mode: `f`, stride lda).
struct QA {
  const char* q = nullptr;
  const float* scale = nullptr;
  const float* f = nullptr;
  int64_t lda = 0;
  int abytes = 1;
  AForm form = AForm::i8;
};

// Rows [0, M) of A against panel p of w, dequantized: epi(b, pre) with pre the row's nr
// floats, [gate][U units] (int8: float(acc) * (scale_a[b] * scale_w[col])).
template <class Epi>
FUSEDRNN_INLINE void panel_rows(QuantMode mode, const QPanels& w, int64_t p, int64_t M,
                                const QA& a, Epi&& epi) {
  alignas(64) int32_t ti[kQRows * kQMaxNr];
  alignas(64) float tf[(kQRows > kW16Rows ? kQRows : kW16Rows) * kQMaxNr];
  const int nr = w.nr;
  FUSEDRNN_DEBUG_ASSERT(nr <= kQMaxNr);
  const int rows = mode == QuantMode::int8 ? kQRows : kW16Rows;
  for (int64_t m0 = 0; m0 < M; m0 += rows) {
    const int m = static_cast<int>(std::min<int64_t>(rows, M - m0));
    if (mode == QuantMode::int8) {
      qtile_i8(m, w, p, a.form, a.q + m0 * a.lda * a.abytes, a.lda, ti);
      const float* sw = w.scale.data() + p * nr;
      for (int r = 0; r < m; ++r) {
        const float sa = a.scale[m0 + r];
        for (int j = 0; j < nr; ++j)
          tf[r * nr + j] = static_cast<float>(ti[r * nr + j]) * (sa * sw[j]);
      }
    } else if (mode == QuantMode::float16) {
      qtile_w16<false>(m, w, p, a.f + m0 * a.lda, a.lda, tf);
    } else {
      qtile_w16<true>(m, w, p, a.f + m0 * a.lda, a.lda, tf);
    }
    for (int r = 0; r < m; ++r) epi(m0 + r, tf + r * nr);
  }
}

// What every thread reads, set up before the region.
struct QForward {
  QForward(const QuantWeights& w_, const Dims& d_, const float* h0_, float* y_)
      : w(w_), d(d_), h0(h0_), y(y_) {}
  const QuantWeights& w;
  const Dims& d;
  const float* h0;
  float* y;
  int64_t Hr = 0, Tc = 0, K4max = 0;
  QA ax;             // x, all rows (quantized before the region in int8 mode)
  float* gx = nullptr;   // Tc steps of the input projection
  float* c = nullptr;    // LSTM cell state (B, H), updated in place (c_n)
  float* mid = nullptr;  // (B, H): LSTM o * tanh(c) before W_hr; GRU reset_before r * h
  float* wconv = nullptr;  // per thread: one W_ih panel in float32 (16-bit weights)
  char* qbuf = nullptr;  // per thread: quantized rows (B x K4max) ...
  float* sbuf = nullptr;  // ... and their scales (B)
  std::atomic<int>* status = nullptr;
};

// Quantizes M rows (stride lda, K wide) into this thread's buffers (int8 mode), or
// describes the float rows (16-bit).  False: a non-finite value.
inline bool quantize_a(const QForward& f, int rank, int64_t M, int64_t K, const float* a,
                       int64_t lda, QA& out) {
  if (f.w.mode != QuantMode::int8) {
    out.f = a;
    out.lda = lda;
    return true;
  }
  out.form = quant_a_form();
  out.abytes = aform_bytes(out.form);
  const int64_t K4 = (K + 3) / 4 * 4;
  out.lda = K4;
  char* q = f.qbuf + static_cast<int64_t>(rank) * f.d.B * f.K4max * 2;
  float* s = f.sbuf + static_cast<int64_t>(rank) * f.d.B;
  out.q = q;
  out.scale = s;
  return quantize_rows_to(M, K, a, lda, out.form, q, K4, s);
}

// Converts panel p of 16-bit weights to float32 (the float GEMM's packed panel layout).
inline void w16_panel_to_f32(const QPanels& w, int64_t p, bool bf16, float* out) {
  constexpr int W = Vec<float>::width;
  const int nr = w.nr, nvt = nr / W;
  const uint16_t* h = w.h.data() + p * w.K * nr;
  for (int64_t k = 0; k < w.K; ++k) {
    const uint16_t* row = h + k * nr;
    float* o = out + k * nr;
    int v = 0;
    if (bf16 && kPairBf16)
      for (; v + 1 < nvt; v += 2) {
        Vec<float> lo, hi;
        bf16_pair(row + v * W, lo, hi);
        lo.store(o + v * W);
        hi.store(o + (v + 1) * W);
      }
    for (; v < nvt; ++v)
      (bf16 ? w16_vec<true>(row + v * W) : w16_vec<false>(row + v * W)).store(o + v * W);
  }
}

// The input projection of packed rows [r0, r1) into gx (+ bias_x), this thread's panels.
// 16-bit weights with enough rows: each panel converted once to float32 (f.wconv, this
// thread's), then the float kernels' register tiles; else the quantized tiles.
template <Cell C>
void q_project(const QForward& f, int rank, int size, int64_t r0, int64_t r1) {
  constexpr int W = Vec<float>::width, NV = num_gates(C) * unit_vectors(C);
  // Rows of the converted tiles: kW16Chains sets of MR x NV accumulators beside NV weight
  // vectors and a broadcast.
  constexpr int MR0 = (kVecRegisters - NV - 1) / (kW16Chains * NV);
  constexpr int MR = MR0 < 1 ? 1 : MR0 > 8 ? 8 : MR0;  // (the tiles take at most 8 rows)
  using V = Vec<float>;
  const QPanels& pw = f.w.wih;
  FUSEDRNN_DEBUG_ASSERT(pw.nr == NV * W);
  const int64_t H = f.d.H, GH = pw.G * H, R = r1 - r0;
  const int U = pw.U;
  QA a = f.ax;
  if (a.q) a.q += r0 * a.lda * a.abytes, a.scale += r0;
  if (a.f) a.f += r0 * a.lda;
  // Row b of the block, its vector v (gate v / UV, units p * U + (v % UV) * W...).
  auto store = [&](int64_t p, int64_t b, int v, V pre) {
    const int gi = v / (U / W);
    const int64_t u = p * U + (v % (U / W)) * W, col = gi * H + u;
    const int n = static_cast<int>(std::min<int64_t>(W, H - u));
    if (n > 0)
      store_n(pre + load_n<V>(f.w.bias_x.data() + col, n), f.gx + b * GH + col, n);
  };
  int64_t p0, p1;
  split(pw.panels, rank, size, p0, p1);
  const bool convert = f.w.mode != QuantMode::int8 && R >= kConvertRows;
  float* wf = convert ? f.wconv + static_cast<int64_t>(rank) * pw.K * pw.nr : nullptr;
  for (int64_t p = p0; p < p1; ++p) {
    if (convert) {
      w16_panel_to_f32(pw, p, f.w.mode == QuantMode::bfloat16, wf);
      for (int64_t m0 = 0; m0 < R; m0 += MR)
        // kW16Chains accumulator sets: the sums of qtile_w16, bit for bit.
        tile_rows_dispatch<float, MR, NV, kW16Chains>(
            static_cast<int>(std::min<int64_t>(MR, R - m0)), pw.K, a.f + m0 * a.lda, a.lda, 1,
            wf, [&](int r, const V* acc) {
              for (int v = 0; v < NV; ++v) store(p, m0 + r, v, acc[v]);
            });
    } else {
      panel_rows(f.w.mode, pw, p, R, a, [&](int64_t b, const float* pre) {
        for (int v = 0; v < NV; ++v) store(p, b, v, V::load(pre + v * W));
      });
    }
  }
}

template <Cell C>
void quant_forward_thread(ThreadCtx& ctx, const QForward& f) {
  constexpr int W = Vec<float>::width;
  using V = Vec<float>;
  const Dims& d = f.d;
  const QuantWeights& w = f.w;
  const int64_t H = d.H, Hr = f.Hr, GH = num_gates(C) * H;
  const bool two = w.P > 0 || C == Cell::gru_reset_before;  // a second product per step
  const QPanels& p1w = w.whh;
  const QPanels& p2w = w.P ? w.whr : w.whn;
  const int U = p1w.U, UV = U / W;
  int64_t row0 = 0;
  for (int64_t t = 0; t < d.T; ++t) {
    // The team may shrink at a step barrier (cpu/threads.h, "Contention"): split whole
    // panels again at every step; a panel's sums do not depend on who computes it.
    const int rank = ctx.rank(), size = ctx.size();
    int64_t a0, a1, b0 = 0, b1 = 0;
    split(p1w.panels, rank, size, a0, a1);
    if (two) split(p2w.panels, rank, size, b0, b1);
    if (t % f.Tc == 0) {
      const int64_t t1 = std::min(d.T, t + f.Tc);
      row0 = d.off[t];
      q_project<C>(f, rank, size, d.off[t], d.off[t1]);
      ctx.barrier();
    }
    const int64_t M = d.bs[t];
    const float* h_prev = t == 0 ? f.h0 : f.y + d.off[t - 1] * Hr;
    float* yt = f.y + d.off[t] * Hr;
    float* gxt = f.gx + (d.off[t] - row0) * GH;
    QA ah;
    if (!quantize_a(f, rank, M, Hr, h_prev, Hr, ah)) {
      f.status->store(1);
      return;  // every thread sees the same h_{t-1}: all stop here
    }
    for (int64_t p = a0; p < a1; ++p)
      panel_rows(w.mode, p1w, p, M, ah, [&](int64_t b, const float* pre) {
        float* gxb = gxt + b * GH;
        for (int uv = 0; uv < UV; ++uv) {
          const int64_t u = p * U + uv * W;
          const int n = static_cast<int>(std::min<int64_t>(W, H - u));
          if (n <= 0) break;
          V acc[4];
          for (int g = 0; g < p1w.G; ++g) acc[g] = V::load(pre + g * U + uv * W);
          if constexpr (C == Cell::lstm) {
            float* cb = f.c + b * H;
            float* h_out = w.P ? f.mid + b * H : yt + b * H;
            lstm_fwd_tile<V, float>(acc, H, u, n, gxb, cb, cb, h_out, nullptr, nullptr);
          } else if constexpr (C == Cell::gru) {
            gru_fwd_tile<V, float>(acc, H, u, n, gxb, w.bias_hn.data(), h_prev + b * H, yt + b * H,
                            nullptr, nullptr, nullptr);
          } else if constexpr (C == Cell::gru_reset_before) {
            const V r = sigmoid(acc[0] + load_n<V>(gxb + u, n));
            const V z = sigmoid(acc[1] + load_n<V>(gxb + H + u, n));
            store_n(z, gxb + H + u, n);
            store_n(r * load_n<V>(h_prev + b * H + u, n), f.mid + b * H + u, n);
          } else {
            rnn_fwd_tile<C == Cell::rnn_relu, V, float>(acc[0], u, n, gxb, yt + b * H, nullptr);
          }
        }
      });
    if (two) {
      ctx.barrier();
      QA am;
      if (!quantize_a(f, rank, M, H, f.mid, H, am)) {
        f.status->store(1);
        return;
      }
      const int U2 = p2w.U, Hg = static_cast<int>(p2w.Hg);
      for (int64_t p = b0; p < b1; ++p)
        panel_rows(w.mode, p2w, p, M, am, [&](int64_t b, const float* pre) {
          for (int uv = 0; uv < U2 / W; ++uv) {
            const int64_t u = p * U2 + uv * W;
            const int n = static_cast<int>(std::min<int64_t>(W, Hg - u));
            if (n <= 0) break;
            const V acc = V::load(pre + uv * W);
            if (w.P) {
              store_n(acc, yt + b * Hr + u, n);  // h_t = r_t W_hr^T
            } else {
              const float* gxb = gxt + b * GH;
              const V nv = tanh(acc + load_n<V>(gxb + 2 * H + u, n));
              const V z = load_n<V>(gxb + H + u, n);
              store_n(fma(z, load_n<V>(h_prev + b * H + u, n) - nv, nv), yt + b * H + u, n);
            }
          }
        });
    }
    if (!ctx.step_barrier()) return;  // dropped from the team: touch nothing more
  }
}

template <Cell C>
QuantStatus quant_forward(const QuantWeights& w, const Dims& d, const float* x, const float* h0,
                          const float* c0, float* y, float* h_n, float* c_n) {
  FUSEDRNN_DEBUG_ASSERT(w.cell == C && w.H == d.H && w.I == d.I && w.P == d.P);
  FUSEDRNN_DEBUG_ASSERT(d.T >= 1 && d.bs[0] == d.B && d.off[d.T] == d.N);
  const int64_t B = d.B, H = d.H, GH = num_gates(C) * H, Hr = d.P ? d.P : H;
  QForward f(w, d, h0, y);
  f.Hr = Hr;
  f.K4max = (std::max(Hr, H) + 3) / 4 * 4;
  f.Tc = std::max<int64_t>(1, std::min<int64_t>(d.T, (int64_t(1) << 18) / (B * GH)));
  const bool i8 = w.mode == QuantMode::int8;
  const int nthreads = threads_for(2.0 * B * GH * Hr, w.whh.panels);
  if (i8) {
    f.ax.form = quant_a_form();
    f.ax.abytes = aform_bytes(f.ax.form);
    f.ax.lda = (d.I + 3) / 4 * 4;
  } else {
    f.ax.f = x;
    f.ax.lda = d.I;
  }
  // Every scratch region in one allocation (64-byte aligned pieces, sizes in floats).
  auto floats = [](int64_t bytes) { return (bytes + 63) / 64 * 16; };
  const int64_t n_xq = i8 ? floats(d.N * f.ax.lda * f.ax.abytes) : 0;
  const int64_t n_xs = i8 ? floats(4 * d.N) : 0;
  const int64_t n_gx = floats(4 * f.Tc * B * GH);
  const int64_t n_mid = d.P || C == Cell::gru_reset_before ? floats(4 * B * H) : 0;
  const int64_t n_q = i8 ? floats(int64_t(nthreads) * B * f.K4max * 2) : 0;
  const int64_t n_s = floats(4 * int64_t(nthreads) * B);
  const int64_t n_wc =
      !i8 && f.Tc * B >= kConvertRows ? floats(4 * int64_t(nthreads) * w.wih.K * w.wih.nr) : 0;
  Buffer<float> scratch(n_xq + n_xs + n_gx + n_mid + n_q + n_s + n_wc);
  float* next = scratch.data();
  auto take = [&](int64_t n) {
    float* p = next;
    next += n;
    return p;
  };
  char* xq = reinterpret_cast<char*>(take(n_xq));
  float* xs = take(n_xs);
  f.gx = take(n_gx);
  f.mid = take(n_mid);
  f.qbuf = reinterpret_cast<char*>(take(n_q));
  f.sbuf = take(n_s);
  f.wconv = take(n_wc);
  // x: quantized once, all rows (int8), or read as it is (16-bit).
  if (i8) {
    if (!quantize_rows_to(d.N, d.I, x, d.I, f.ax.form, xq, f.ax.lda, xs))
      return QuantStatus::non_finite;
    f.ax.q = xq;
    f.ax.scale = xs;
  }
  // LSTM: the cell state is updated in place in c_n (rows that end keep their last state).
  if (C == Cell::lstm) std::memcpy(c_n, c0, sizeof(float) * B * H);
  f.c = c_n;
  std::atomic<int> status{0};
  f.status = &status;
  parallel(nthreads, [&](ThreadCtx& ctx) { quant_forward_thread<C>(ctx, f); });
  if (status.load()) return QuantStatus::non_finite;
  final_states(d, Hr, y, [&](int64_t t) { return d.off[t]; }, h_n);
  return QuantStatus::ok;
}

}  // namespace FUSEDRNN_ISA
}  // namespace fusedrnn
