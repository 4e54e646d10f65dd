// One ISA's kernel table (fusedrnn/kernels.h): the switches from a call's cell to the
// kernel that runs it, the activations the accuracy tests sweep, the large product
// alone (matmul: its tests and benchmark), and make_table.
//
// The kernels themselves are defined in the other seq/*-inl.h files and compiled in
// their own translation units (seq/entries-inl.h lists them); here they are only
// declared.  Assumes: weights packed by this ISA's pack_weights (so w.cell, w.P and
// w.one_step say which kernel fits).
#pragma once

#include <chrono>
#include <cstdint>

#include "cpu/threads.h"
#include "fusedrnn/cell.h"
#include "fusedrnn/dims.h"
#include "fusedrnn/kernels.h"
#include "gemm/gemm-inl.h"
#include "seq/entries-inl.h"
#include "seq/input-inl.h"
#include "seq/pack-inl.h"
#include "simd/peak-inl.h"
#include "simd/tail-inl.h"
#include "simd/vec.h"

namespace fusedrnn {
namespace FUSEDRNN_ISA {

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

// c = a w^T (KernelTable::matmul): the input projection's product, alone.
template <class T>
double matmul(int64_t M, int64_t N, int64_t K, const T* a, const T* w, T* c, int64_t reps) {
  Packed<T> b;
  pack_b(b, K, N, w, 1, K);
  const int threads = product_threads<T>(M, N, K);
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t r = 0; r < reps; ++r)
    parallel(threads, [&](ThreadCtx& ctx) { gemm<T>(ctx, M, a, K, 1, b, c, N, false, nullptr); });
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

template <class T>
constexpr KernelTable<T> make_table() {
  return KernelTable<T>{kIsaName,       &pack_weights<T>, &forward<T>, &backward<T>, &step<T>,
                        &activation<T>, &fma_peak_gflops, &matmul<T>};
}

}  // namespace FUSEDRNN_ISA
}  // namespace fusedrnn
