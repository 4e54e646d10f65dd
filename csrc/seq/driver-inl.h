// The time loop of one layer and direction, forward and backward.
//
// Forward: the input projection of all T steps is one product (T*B x I by I x G*H),
// then per step the recurrent product h_{t-1} W_hh^T and the fused element-wise cell.
// Backward: the reverse loop runs the element-wise backward and the per-step product
// dgates W_hh; dx, dW_ih, dW_hh and the bias gradients are large products / sums
// after the loop.  Layouts: x (T, B, I), y (T, B, H), states (B, H), all row-major
// and contiguous; the training workspace as described in fusedrnn/dims.h.
//
// Included by each per-ISA translation unit inside namespace fusedrnn::FUSEDRNN_ISA.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>

#include "fusedrnn/dims.h"
#include "fusedrnn/kernels.h"

namespace fusedrnn {
namespace FUSEDRNN_ISA {

extern const char kIsaName[];

template <class T>
void pack_weights(Weights<T>& w, Cell cell, int64_t I, int64_t H, const T* w_ih, const T* w_hh,
                  const T* b_ih, const T* b_hh) {
  const int64_t G = num_gates(cell), GH = G * H;
  w.isa = kIsaName;
  w.cell = cell;
  w.I = I;
  w.H = H;
  w.has_bias = b_ih != nullptr;
  // W^T as a K x N matrix: element (k, n) = W[n, k] = W[n * K + k].
  pack_b(w.wih_t, I, GH, w_ih, 1, I);
  pack_b(w.wih, GH, I, w_ih, I, 1);
  if (cell == Cell::gru_reset_before) {
    pack_b(w.whh_t, H, 2 * H, w_hh, 1, H);
    pack_b(w.whn_t, H, H, w_hh + 2 * H * H, 1, H);
    pack_b(w.whh, 2 * H, H, w_hh, H, 1);
    pack_b(w.whn, H, H, w_hh + 2 * H * H, H, 1);
  } else {
    pack_b(w.whh_t, H, GH, w_hh, 1, H);
    pack_b(w.whh, GH, H, w_hh, H, 1);
  }
  w.bias_x.reset(GH);
  w.bias_hn.reset(H);
  for (int64_t j = 0; j < GH; ++j)
    w.bias_x.data()[j] = b_ih ? b_ih[j] + b_hh[j] : T(0);
  for (int64_t j = 0; j < H; ++j) w.bias_hn.data()[j] = T(0);
  if (cell == Cell::gru && b_ih) {
    // The candidate's recurrent bias sits inside r * (W_hn h + b_hn).
    for (int64_t j = 0; j < H; ++j) {
      w.bias_x.data()[2 * H + j] = b_ih[2 * H + j];
      w.bias_hn.data()[j] = b_hh[2 * H + j];
    }
  }
}

template <class T>
void forward(const Weights<T>& w, const Dims& d, const T* x, const T* h0, const T* c0, T* y,
             T* h_n, T* c_n, T* ws) {
  const Cell cell = w.cell;
  const int64_t T_ = d.T, B = d.B, H = d.H, G = num_gates(cell), GH = G * H, BH = B * H;
  const Workspace layout{cell, d};
  const bool train = ws != nullptr;
  T* ws_gates = train ? ws + layout.gates_offset() : nullptr;
  T* ws_aux = train ? ws + layout.aux_offset() : nullptr;
  T* ws_h = train ? ws + layout.h_offset() : nullptr;

  // Where the input projection goes: over the gate region of the workspace when
  // training (each step overwrites its slice with the activated gates), over y for
  // an inference RNN (each step overwrites it with h), else scratch.
  Buffer<T> gx_scratch;
  T* gx;
  if (is_rnn(cell)) {
    gx = train ? ws_h + BH : y;
  } else if (train) {
    gx = ws_gates;
  } else {
    gx_scratch.reset(T_ * B * GH);
    gx = gx_scratch.data();
  }
  gemm<T>(T_ * B, x, d.I, 1, w.wih_t, gx, GH, false, w.bias_x.data());

  const bool rb = cell == Cell::gru_reset_before;
  Buffer<T> gh(B * GH), c_state(cell == Cell::lstm && !train ? BH : 0);
  Buffer<T> rh_scratch(rb && !train ? BH : 0);
  if (train) std::memcpy(ws_h, h0, sizeof(T) * BH);
  if (cell == Cell::lstm) {
    if (train)
      std::memcpy(ws_aux, c0, sizeof(T) * BH);
    else
      std::memcpy(c_state.data(), c0, sizeof(T) * BH);
  }

  for (int64_t t = 0; t < T_; ++t) {
    const T* h_prev = train ? ws_h + t * BH : (t == 0 ? h0 : y + (t - 1) * BH);
    T* yt = y + t * BH;
    T* h_save = train ? ws_h + (t + 1) * BH : nullptr;
    T* gxt = gx + t * B * GH;
    switch (cell) {
      case Cell::lstm: {
        gemm<T>(B, h_prev, H, 1, w.whh_t, gh.data(), GH, false, nullptr);
        const T* c_prev = train ? ws_aux + t * BH : c_state.data();
        T* c_out = train ? ws_aux + (t + 1) * BH : c_state.data();
        for (int64_t b = 0; b < B; ++b)
          lstm_fwd_row<T>(H, gxt + b * GH, gh.data() + b * GH, c_prev + b * H, c_out + b * H,
                          yt + b * H, h_save ? h_save + b * H : nullptr,
                          train ? gxt + b * GH : nullptr);
        break;
      }
      case Cell::gru: {
        gemm<T>(B, h_prev, H, 1, w.whh_t, gh.data(), GH, false, nullptr);
        T* hn = train ? ws_aux + t * BH : nullptr;
        for (int64_t b = 0; b < B; ++b)
          gru_fwd_row<T>(H, gxt + b * GH, gh.data() + b * GH, w.bias_hn.data(), h_prev + b * H,
                         yt + b * H, h_save ? h_save + b * H : nullptr,
                         train ? gxt + b * GH : nullptr, hn ? hn + b * H : nullptr);
        break;
      }
      case Cell::gru_reset_before: {
        gemm<T>(B, h_prev, H, 1, w.whh_t, gh.data(), 2 * H, false, nullptr);
        T* rh = train ? ws_aux + t * BH : rh_scratch.data();
        for (int64_t b = 0; b < B; ++b)
          gru_rb_fwd_rz_row<T>(H, gxt + b * GH, gh.data() + b * 2 * H, h_prev + b * H,
                               rh + b * H);
        gemm<T>(B, rh, H, 1, w.whn_t, gh.data(), H, false, nullptr);
        for (int64_t b = 0; b < B; ++b)
          gru_rb_fwd_n_row<T>(H, gxt + b * GH, gh.data() + b * H, h_prev + b * H, yt + b * H,
                              h_save ? h_save + b * H : nullptr);
        break;
      }
      case Cell::rnn_tanh:
      case Cell::rnn_relu: {
        gemm<T>(B, h_prev, H, 1, w.whh_t, gh.data(), H, false, nullptr);
        // gxt is h_save (training) or yt (inference): h overwrites its own projection.
        T* h_out2 = train ? yt : nullptr;
        for (int64_t b = 0; b < B; ++b) {
          if (cell == Cell::rnn_relu)
            rnn_fwd_row<true, T>(H, gxt + b * H, gh.data() + b * H, gxt + b * H,
                                 h_out2 ? h_out2 + b * H : nullptr);
          else
            rnn_fwd_row<false, T>(H, gxt + b * H, gh.data() + b * H, gxt + b * H,
                                  h_out2 ? h_out2 + b * H : nullptr);
        }
        break;
      }
    }
  }
  std::memcpy(h_n, y + (T_ - 1) * BH, sizeof(T) * BH);
  if (cell == Cell::lstm)
    std::memcpy(c_n, train ? ws_aux + T_ * BH : c_state.data(), sizeof(T) * BH);
}

// Column sums of a (rows x cols) matrix with row stride ld, in row order.
template <class T>
static void column_sums(int64_t rows, int64_t cols, const T* a, int64_t ld, T* out) {
  for (int64_t j = 0; j < cols; ++j) out[j] = T(0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) out[j] += a[r * ld + j];
}

template <class T>
void backward(const Weights<T>& w, const Dims& d, const T* x, const T* ws, const T* dy,
              const T* dh_n, const T* dc_n, T* dx, T* dh0, T* dc0, T* dw_ih, T* dw_hh,
              T* db_ih, T* db_hh) {
  const Cell cell = w.cell;
  const int64_t T_ = d.T, B = d.B, H = d.H, I = d.I, G = num_gates(cell), GH = G * H,
                BH = B * H, TB = T_ * B;
  const Workspace layout{cell, d};
  const T* ws_gates = ws + layout.gates_offset();
  const T* ws_aux = ws + layout.aux_offset();
  const T* ws_h = ws + layout.h_offset();

  Buffer<T> dgi(TB * GH), dgh(cell == Cell::gru ? TB * GH : 0);
  Buffer<T> dh_a(BH), dh_b(BH), dc(cell == Cell::lstm ? BH : 0);
  Buffer<T> drh(cell == Cell::gru_reset_before ? BH : 0);  // dL/d(r * h_prev)
  T* dh_rec = dh_a.data();  // dL/dh_{t} from the steps after t
  T* dh_next = dh_b.data();
  if (dh_n)
    std::memcpy(dh_rec, dh_n, sizeof(T) * BH);
  else
    std::fill(dh_rec, dh_rec + BH, T(0));
  if (cell == Cell::lstm) {
    if (dc_n)
      std::memcpy(dc.data(), dc_n, sizeof(T) * BH);
    else
      std::fill(dc.data(), dc.data() + BH, T(0));
  }

  for (int64_t t = T_ - 1; t >= 0; --t) {
    const T* dyt = dy + t * BH;
    const T* h_prev = ws_h + t * BH;
    T* dgt = dgi.data() + t * B * GH;
    switch (cell) {
      case Cell::lstm: {
        const T* gates = ws_gates + t * B * GH;
        for (int64_t b = 0; b < B; ++b)
          lstm_bwd_row<T>(H, gates + b * GH, ws_aux + (t + 1) * BH + b * H,
                          ws_aux + t * BH + b * H, dyt + b * H, dh_rec + b * H,
                          dc.data() + b * H, dgt + b * GH);
        gemm<T>(B, dgt, GH, 1, w.whh, dh_next, H, false, nullptr);
        break;
      }
      case Cell::gru: {
        const T* gates = ws_gates + t * B * GH;
        T* dght = dgh.data() + t * B * GH;
        for (int64_t b = 0; b < B; ++b)
          gru_bwd_row<T>(H, gates + b * GH, ws_aux + t * BH + b * H, h_prev + b * H,
                         dyt + b * H, dh_rec + b * H, dgt + b * GH, dght + b * GH,
                         dh_next + b * H);
        gemm<T>(B, dght, GH, 1, w.whh, dh_next, H, true, nullptr);
        break;
      }
      case Cell::gru_reset_before: {
        const T* gates = ws_gates + t * B * GH;
        for (int64_t b = 0; b < B; ++b)
          gru_rb_bwd_zn_row<T>(H, gates + b * GH, h_prev + b * H, dyt + b * H, dh_rec + b * H,
                               dgt + b * GH, dh_next + b * H);
        gemm<T>(B, dgt + 2 * H, GH, 1, w.whn, drh.data(), H, false, nullptr);
        for (int64_t b = 0; b < B; ++b)
          gru_rb_bwd_r_row<T>(H, gates + b * GH, h_prev + b * H, drh.data() + b * H,
                              dgt + b * GH, dh_next + b * H);
        gemm<T>(B, dgt, GH, 1, w.whh, dh_next, H, true, nullptr);
        break;
      }
      case Cell::rnn_tanh:
      case Cell::rnn_relu: {
        const T* h = ws_h + (t + 1) * BH;
        for (int64_t b = 0; b < B; ++b) {
          if (cell == Cell::rnn_relu)
            rnn_bwd_row<true, T>(H, h + b * H, dyt + b * H, dh_rec + b * H, dgt + b * H);
          else
            rnn_bwd_row<false, T>(H, h + b * H, dyt + b * H, dh_rec + b * H, dgt + b * H);
        }
        gemm<T>(B, dgt, GH, 1, w.whh, dh_next, H, false, nullptr);
        break;
      }
    }
    std::swap(dh_rec, dh_next);
  }
  std::memcpy(dh0, dh_rec, sizeof(T) * BH);
  if (cell == Cell::lstm) std::memcpy(dc0, dc.data(), sizeof(T) * BH);

  // dx = dgates_x * W_ih
  gemm<T>(TB, dgi.data(), GH, 1, w.wih, dx, I, false, nullptr);
  // dW_ih = dgates_x^T * x
  {
    Packed<T> xp;
    pack_b(xp, TB, I, x, I, 1);
    gemm<T>(GH, dgi.data(), 1, GH, xp, dw_ih, I, false, nullptr);
  }
  // dW_hh = dgates_h^T * h_prev  (h_0 .. h_{T-1} are contiguous in the workspace)
  {
    Packed<T> hp;
    pack_b(hp, TB, H, ws_h, H, 1);
    if (cell == Cell::gru) {
      gemm<T>(GH, dgh.data(), 1, GH, hp, dw_hh, H, false, nullptr);
    } else if (cell == Cell::gru_reset_before) {
      gemm<T>(2 * H, dgi.data(), 1, GH, hp, dw_hh, H, false, nullptr);
      Packed<T> rhp;  // the candidate's recurrent product saw r * h_prev
      pack_b(rhp, TB, H, ws_aux, H, 1);
      gemm<T>(H, dgi.data() + 2 * H, 1, GH, rhp, dw_hh + 2 * H * H, H, false, nullptr);
    } else {
      gemm<T>(GH, dgi.data(), 1, GH, hp, dw_hh, H, false, nullptr);
    }
  }
  if (db_ih) {
    column_sums(TB, GH, dgi.data(), GH, db_ih);
    if (cell == Cell::gru)
      column_sums(TB, GH, dgh.data(), GH, db_hh);
    else
      std::memcpy(db_hh, db_ih, sizeof(T) * GH);
  }
}

template <class T>
KernelTable<T> make_table() {
  return KernelTable<T>{kIsaName, &pack_weights<T>, &forward<T>, &backward<T>};
}

}  // namespace FUSEDRNN_ISA
}  // namespace fusedrnn
