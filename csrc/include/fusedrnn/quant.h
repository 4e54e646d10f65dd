// Quantized inference: the weights one layer-direction's quantized kernels read, and the
// table of those kernels one ISA exports (csrc/quant/).
//
// Modes: int8 (per-row weight scales, activations quantized per row at each call and
// step, exact int32 products, float32 dequantization and cell), float16 and bfloat16
// (16-bit weights converted to float32 in registers, float32 products and cell).
#pragma once

#include <cstdint>

#include "fusedrnn/cell.h"
#include "fusedrnn/dims.h"
#include "fusedrnn/kernels.h"

namespace fusedrnn {

enum class QuantMode : int { int8 = 0, float16 = 1, bfloat16 = 2 };

// W^T (K x N, W in torch's (N, K) layout) in column panels of nr = G * U columns: panel
// p holds units [p*U, p*U + U) of each of G gate blocks of Hg rows (column j of the panel
// is row (j / U) * Hg + p * U + j % U of W; units past Hg are zero).
//   int8:   q[p][K4 / 4][nr][4], K4 = K rounded up to 4 (the k's past K are zero);
//           scale[p * nr + j] the row's scale (0 on padding), comp[p * nr + j] =
//           128 * sum_k q (the VNNI path's compensation).
//   16-bit: h[p][K][nr] (float16 or bfloat16 bits).
struct QPanels {
  int64_t K = 0, K4 = 0, Hg = 0, panels = 0;
  int G = 1, U = 0, nr = 0;
  Buffer<int8_t> q;
  Buffer<uint16_t> h;
  Buffer<float> scale;
  Buffer<int32_t> comp;
};

struct QuantWeights {
  const char* isa = nullptr;  // the table that packed them
  Cell cell = Cell::lstm;
  QuantMode mode = QuantMode::int8;
  int64_t I = 0, H = 0, P = 0;
  bool has_bias = false;
  QPanels wih;  // W_ih: G gates of H units, K = I
  QPanels whh;  // W_hh: G gates (GRU reset_before: r, z only), K = Hr
  QPanels whn;  // GRU reset_before: W_hn, K = H
  QPanels whr;  // LSTM projection W_hr: P units, K = H
  Buffer<float> bias_x;   // G*H, added to the input projection (as Weights::bias_x)
  Buffer<float> bias_hn;  // H, inside r * (W_hn h + b_hn) (GRU reset_after only)
};

// A kernel's status: ok, or a non-finite activation met while quantizing.
enum class QuantStatus : int { ok = 0, non_finite = 1 };

struct QuantTable {
  const char* isa;
  // Raw torch-layout weights: w_ih (G*H, I), w_hh (G*H, Hr), w_hr (P, H) or null, of the
  // mode's element type (int8, float16 bits, bfloat16 bits); scales float32 per row
  // (int8 only, else null); biases float32 (G*H,) or null.
  void (*pack)(QuantWeights& w, Cell cell, QuantMode mode, int64_t I, int64_t H, int64_t P,
               const void* w_ih, const void* w_hh, const float* b_ih, const float* b_hh,
               const float* s_ih, const float* s_hh, const void* w_hr, const float* s_hr);
  // As KernelTable::forward with ws null (inference), rows packed as fusedrnn/dims.h.
  QuantStatus (*forward)(const QuantWeights& w, const Dims& d, const float* x, const float* h0,
                         const float* c0, float* y, float* h_n, float* c_n);
  // Tests: the kernels' row quantizer, a (M, K) -> q (M, K), scale (M,).
  QuantStatus (*quantize_rows)(int64_t M, int64_t K, const float* a, int8_t* q, float* scale);
  // Tests: out (M, N) int32 = a (M, K) w (N, K)^T through the packed int8 tiles.
  void (*matmul)(int64_t M, int64_t N, int64_t K, const int8_t* a, const int8_t* w,
                 int32_t* out);
  // Tests: mode -1 asks, 0 turns off, 1 turns on (where the CPU has it) the AVX-512 VNNI
  // int8 tiles; returns whether they are in use (false on the other ISAs).
  bool (*use_vnni)(int mode);
};

}  // namespace fusedrnn
