// The kernel table: what one ISA provides, and the packed-weight type it works on.
//
// Each ISA (generic, avx2, avx512) compiles the same templates in its own
// translation unit and namespace, and exports one KernelTable per element type.
// cpu/dispatch.cc picks a table once per process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>

#include "fusedrnn/cell.h"
#include "fusedrnn/dims.h"

namespace fusedrnn {

// 64-byte-aligned storage (types/buffer.cc); throws std::bad_alloc.
void* aligned_bytes(int64_t n, size_t elem);
void free_bytes(void* p);

// A 64-byte-aligned, uninitialised array.  Throws std::bad_alloc (MemoryError in Python).
// Instantiated once, in types/buffer.cc (see the note on Workspace in dims.h).
template <class T>
class Buffer {
 public:
  Buffer();
  explicit Buffer(int64_t n);
  void reset(int64_t n);
  T* data() { return ptr_.get(); }
  const T* data() const { return ptr_.get(); }
  int64_t size() const { return size_; }

 private:
  struct Free {
    void operator()(T* p) const { free_bytes(p); }
  };
  std::unique_ptr<T, Free> ptr_;
  int64_t size_ = 0;
};

template <class T>
Buffer<T>::Buffer() = default;
template <class T>
Buffer<T>::Buffer(int64_t n) {
  reset(n);
}
template <class T>
void Buffer<T>::reset(int64_t n) {
  ptr_.reset(static_cast<T*>(aligned_bytes(n, sizeof(T))));
  size_ = n;
}
extern template class Buffer<float>;
extern template class Buffer<double>;
extern template class Buffer<int8_t>;
extern template class Buffer<uint16_t>;
extern template class Buffer<int32_t>;

// The B operand of a product C = A * B (B is K x N), packed into column panels of
// `nr` columns: element (k, n) lives at data[(n / nr) * K * nr + k * nr + n % nr];
// columns past N in the last panel are zero.  `nr` is the micro-kernel's width.
template <class T>
struct Packed {
  int64_t K = 0, N = 0, nr = 0;
  Buffer<T> data;
};

// One layer-direction's weights, packed once per weight version by the ISA that
// will use them.
template <class T>
struct Weights {
  const char* isa = nullptr;  // the table that packed them
  Cell cell = Cell::lstm;
  int64_t I = 0, H = 0;
  int64_t P = 0;  // LSTM projection size (0: none); K of the recurrent products is P then
  bool has_bias = false;
  bool one_step = false;  // wih_u is packed
  // forward products
  Packed<T> wih_t;  // W_ih^T          K = I, N = G*H
  Packed<T> whh_t;  // W_hh^T          K = H, N = G*H   (GRU reset_before: r, z rows only, N = 2H)
  Packed<T> whn_t;  // W_hn^T          K = H, N = H     (GRU reset_before only)
  Packed<T> wih_u;  // W_ih^T in the recurrent tiles' layout (one-step cells only)
  Packed<T> wxh_u;  // [W_ih | W_hh]^T, K = I + H, in the recurrent tiles' layout: small
                    // LSTM / RNN layers, whose inference fuses x_t W_ih^T into each step
  Packed<T> whr_t;  // W_hr^T          K = H, N = P     (LSTM with projection only)
  // backward products
  Packed<T> wih;    // W_ih            K = G*H, N = I
  Packed<T> whh;    // W_hh            K = G*H, N = H   (GRU reset_before: r, z rows, K = 2H)
  Packed<T> whn;    // W_hn            K = H, N = H     (GRU reset_before only)
  Packed<T> whr;    // W_hr            K = P, N = H     (LSTM with projection only)
  Buffer<T> bias_x;   // G*H: added to the input projection (b_ih + the parts of b_hh that add)
  Buffer<T> bias_hn;  // H: b_hn, inside r * (W_hn h + b_hn) (GRU reset_after only)
};

template <class T>
struct KernelTable {
  const char* isa;
  // Packs raw row-major torch-layout weights; biases may be null (bias=False).
  // w_hr (P, H): LSTM projection, or null (P = 0); w_hh is then (G*H, P).
  // one_step: also pack for `step` (cells; never with a projection).
  void (*pack_weights)(Weights<T>& w, Cell cell, int64_t I, int64_t H, int64_t P,
                       const T* w_ih, const T* w_hh, const T* b_ih, const T* b_hh,
                       const T* w_hr, bool one_step);
  // Rows are packed as described in fusedrnn/dims.h (Hr = P or H):
  // x (N, I); h0 (B, Hr), c0 (B, H) only for LSTM; y (N, Hr); h_n (B, Hr), c_n (B, H)
  // (each row's state after its own last step).
  // ws: a Workspace::size() buffer to fill for backward, or null for inference.
  void (*forward)(const Weights<T>& w, const Dims& d, const T* x, const T* h0, const T* c0,
                  T* y, T* h_n, T* c_n, T* ws);
  // dy (N, Hr); dh_n (B, Hr), dc_n (B, H) or null (zero).  Writes dx (N, I), dh0 (B, Hr),
  // dc0 (B, H), dw_ih (G*H, I), dw_hh (G*H, Hr), dw_hr (P, H) when P, db_ih, db_hh (G*H)
  // — the bias ones only when non-null; dx may be null too (not computed: the product
  // dgates W_ih is skipped).
  void (*backward)(const Weights<T>& w, const Dims& d, const T* x, const T* ws, const T* dy,
                   const T* dh_n, const T* dc_n, T* dx, T* dh0, T* dc0, T* dw_ih, T* dw_hh,
                   T* dw_hr, T* db_ih, T* db_hh);
  // One inference step of a cell (weights packed with one_step; not GRU reset_before):
  // x (B, I); h0, c0 (B, H), c0 only for LSTM; writes h1, c1 (B, H).  Both products
  // run on the same register tile, with no input projection in memory.
  void (*step)(const Weights<T>& w, int64_t B, const T* x, const T* h0, const T* c0, T* h1,
               T* c1);
  // y = exp(x), sigmoid(x) or tanh(x) for which = 0, 1, 2, with this ISA's vector code
  // (for the accuracy tests).
  void (*activation)(int which, const T* x, T* y, int64_t n);
  // float32 FMA GFLOP/s of one thread with this ISA's vectors (simd/peak-inl.h).
  double (*fma_peak)(double seconds);
  // c (M, N) = a (M, K) w^T with the large-product kernel (gemm/gemm-inl.h) on the
  // threads set; w (N, K) row-major, torch's layout, packed once; the product repeated
  // `reps` >= 1 times.  Returns the seconds of the products (the packing not counted).
  double (*matmul)(int64_t M, int64_t N, int64_t K, const T* a, const T* w, T* c,
                   int64_t reps);
};

}  // namespace fusedrnn
