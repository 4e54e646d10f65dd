// Weight packing and the portable GEMM macro-kernel (BLIS split): this file owns the
// loops, blocking, edges and the split over threads; the micro-kernel (ukernel-inl.h)
// only computes register tiles.
//
// C (M x N, row stride ldc) = [C if accumulate] + op(A) (M x K) * B (K x N, packed)
//                             [+ bias (N) if not accumulate and bias != null]
// Every element of C is computed by one thread, in an order fixed by the sizes alone,
// so results do not depend on the number of threads.
//
// Assumes (checked in debug builds):
//   - A element (m, k) is at A[m * a_rs + k * a_cs]: (lda, 1) for A, (1, lda) for A^T;
//     any strides, no alignment.
//   - B was packed by pack_b / pack_b_alloc of this ISA: panels of NR = GemmShape<T>::NR
//     columns (B.nr == NR), K x NR each, columns past N zero.
//   - ldc >= N; C does not overlap A or B.  M >= 0, K >= 0.
//   - Tiles: MR x NR with NV = 2 vectors (16 registers) or 4 (32 registers); A is copied
//     in blocks of MC = 48 rows x KC = 2 KB of k, on the stack, unless its rows are
//     contiguous and their stride is not a multiple of 4 KB.
#pragma once

#include <algorithm>
#include <cstdint>

#include "cpu/threads.h"
#include "fusedrnn/kernels.h"
#include "gemm/ukernel-inl.h"
#include "simd/tail-inl.h"
#include "simd/vec.h"

namespace fusedrnn {
namespace FUSEDRNN_ISA {

// The tile of the large products: NV vectors wide, MR rows.
template <class T>
struct GemmShape {
  static constexpr int NV = kVecRegisters >= 32 ? 4 : 2;
  static constexpr int MR = tile_rows(NV);
  static constexpr int NR = NV * Vec<T>::width;
};

// Rows of a matrix whose stride is a multiple of 4 KB start in the same sets of L1, so
// a tile reading several of them along k keeps evicting its own lines: such rows are
// copied into MR-row strips first (the large products here, the recurrent steps in
// seq/).  Rows with any other stride are read where they are.
template <class T>
constexpr bool rows_alias(int64_t stride) {
  return stride * static_cast<int64_t>(sizeof(T)) % 4096 == 0;
}

// Sizes `p` for a K x N matrix in panels of NR columns (may throw std::bad_alloc: call
// it before a parallel region, never inside one).
template <class T>
void pack_b_alloc(Packed<T>& p, int64_t K, int64_t N) {
  constexpr int NR = GemmShape<T>::NR;
  p.K = K;
  p.N = N;
  p.nr = NR;
  p.data.reset((N + NR - 1) / NR * K * NR);
}

// Packs the K x N matrix whose element (k, n) is src[k * rs + n * cs] into `p`, sized
// by pack_b_alloc.  Panels are split over the region's threads; ends with a barrier.
template <class T>
void pack_b(ThreadCtx& ctx, Packed<T>& p, const T* src, int64_t rs, int64_t cs) {
  constexpr int NR = GemmShape<T>::NR;
  const int64_t K = p.K, N = p.N, panels = (N + NR - 1) / NR;
  FUSEDRNN_DEBUG_ASSERT(p.nr == NR && p.data.size() >= panels * K * NR);
  int64_t q0, q1;
  split(panels, ctx.rank(), ctx.size(), q0, q1);
  for (int64_t q = q0; q < q1; ++q) {
    T* out = p.data.data() + q * K * NR;
    const int64_t n0 = q * NR, nn = std::min<int64_t>(NR, N - n0);
    for (int64_t k = 0; k < K; ++k) {
      for (int j = 0; j < nn; ++j) out[j] = src[k * rs + (n0 + j) * cs];
      for (int j = static_cast<int>(nn); j < NR; ++j) out[j] = T(0);
      out += NR;
    }
  }
  ctx.barrier();
}

template <class T>
void pack_b(Packed<T>& p, int64_t K, int64_t N, const T* src, int64_t rs, int64_t cs) {
  pack_b_alloc(p, K, N);
  ThreadCtx alone;
  pack_b(alone, p, src, rs, cs);
}

// Packs W^T (W is G*H x K row-major, gate blocks of H rows) for the fused recurrent
// tiles: panel p holds units [p*U, p*U + U), U = UV * width, and for each k the
// G * UV vectors (gate g, unit vector uv) side by side, so that one register tile
// holds every gate of the same hidden units.  Units past H are zero.
template <class T>
void pack_units(Packed<T>& p, int G, int UV, int64_t H, int64_t K, const T* w) {
  constexpr int W = Vec<T>::width;
  const int U = UV * W, NR = G * U;
  const int64_t panels = (H + U - 1) / U;
  p.K = K;
  p.N = G * H;
  p.nr = NR;
  p.data.reset(panels * K * NR);
  T* out = p.data.data();
  for (int64_t q = 0; q < panels; ++q)
    for (int64_t k = 0; k < K; ++k)
      for (int g = 0; g < G; ++g)
        for (int j = 0; j < U; ++j) {
          const int64_t u = q * U + j;
          *out++ = u < H ? w[(g * H + u) * K + k] : T(0);
        }
}

// Copies `rows` (<= MR) rows of A, kc elements of k each (element (r, k) at
// src[r * a_rs + k * a_cs]), into one MR-row strip, k-major ([k][MR]), rows past `rows`
// zero.  The two strides the products copy get loops of their own, with MR fixed: A^T
// (a_rs == 1, the weight gradients: each k's MR elements side by side) and A
// (a_cs == 1, rows a multiple of 4 KB apart).  The one general loop, with both strides
// and the row test in its body, cost 1.2 of S4's 19.5 ms of LSTM dW (one thread),
// where N = 128 reuses each strip for only two panels.  A^T whose rows alias
// (rows_alias: G*H a multiple of 1024 floats) is packed a whole block at a time in
// gemm_part instead.
template <class T, int MR>
FUSEDRNN_INLINE void pack_a_strip(int64_t rows, int64_t kc, const T* src, int64_t a_rs,
                                  int64_t a_cs, T* dst) {
  if (rows == MR && a_rs == 1) {
    for (int64_t k = 0; k < kc; ++k)
      for (int r = 0; r < MR; ++r) dst[k * MR + r] = src[k * a_cs + r];
  } else if (rows == MR && a_cs == 1) {
    for (int64_t k = 0; k < kc; ++k)
      for (int r = 0; r < MR; ++r) dst[k * MR + r] = src[r * a_rs + k];
  } else {
    for (int64_t k = 0; k < kc; ++k)
      for (int64_t r = 0; r < MR; ++r)
        dst[k * MR + r] = r < rows ? src[r * a_rs + k * a_cs] : T(0);
  }
}

// The rows [m_begin, m_end) x panels [q_begin, q_end) part of a product (see top).
template <class T>
void gemm_part(int64_t m_begin, int64_t m_end, int64_t q_begin, int64_t q_end, const T* A,
               int64_t a_rs, int64_t a_cs, const Packed<T>& B, T* C, int64_t ldc,
               bool accumulate, const T* bias) {
  using V = Vec<T>;
  constexpr int W = V::width, NV = GemmShape<T>::NV, MR = GemmShape<T>::MR, NR = NV * W;
  // Slices of 2 KB of k (512 floats): every slice adds its sums into C, so a product
  // with a large C (dx and dW at S3: 13-52 MB) makes K / KC passes over it through L3 or
  // memory; 512 rows of k instead of 256 took those products from 81-84 to 99 GFLOP/s
  // on AVX2 and from 99-100 to 104-106 on AVX-512 (one thread, Zen 4).  A tile's
  // KC x NR slice of the panel (32 KB on AVX2, 128 KB on AVX-512) comes from L1 or L2,
  // where every row block of MC rows reads it again.
  constexpr int64_t KC = 2048 / sizeof(T);
  constexpr int64_t MC = 48;  // an MC x KC block of A, packed on the stack (96 KB)
  const int64_t K = B.K, N = B.N;
  FUSEDRNN_DEBUG_ASSERT(B.nr == NR && K >= 0 && ldc >= N);
  // A's block is copied into MR-row strips, k-major ([k][MR]), so that a tile's A
  // elements sit side by side whatever A's strides (A^T's elements of one row are G*H
  // apart; rows of A whose stride is a multiple of 4 KB would alias in the cache).
  // Rows of A with any other stride are read where they are: each tile row is one
  // stream along k.  Copying them cost 12% of dx at S4 (8.8 -> 7.7 ms, LSTM, one
  // thread), where each strip serves two panels; the large product of the probe's
  // (6400 x 512) x (512 x 128) went from 98 to 113 GFLOP/s.
  const bool direct = a_cs == 1 && !rows_alias<T>(a_rs);
  alignas(64) T a_pack[MC * KC];
  for (int64_t k0 = 0; k0 < K || k0 == 0; k0 += KC) {
    const int64_t kc = std::min(KC, K - k0);
    const bool acc = accumulate || k0 > 0;
    const T* bias0 = (!acc && bias) ? bias : nullptr;
    for (int64_t m0 = m_begin; m0 < m_end; m0 += MC) {
      const int64_t mc = std::min(MC, m_end - m0);
      // A^T with aliasing rows: one k of every strip at a time, so that each cache line
      // of the source is read once (strip by strip, it left L1 before the next strip
      // wanted it).  dW at S2 and S3 2-4% faster; at 2 KB strides (S4) 10% slower.
      const bool whole = a_rs == 1 && mc == MC && rows_alias<T>(a_cs);
      if (whole) {
        const T* src = A + m0 + k0 * a_cs;
        for (int64_t k = 0; k < kc; ++k)
          for (int i = 0; i < MC / MR; ++i)
            for (int r = 0; r < MR; ++r)
              a_pack[i * MR * kc + k * MR + r] = src[k * a_cs + i * MR + r];
      }
      for (int64_t i = 0; i < mc && !direct && !whole; i += MR) {
        const int64_t rows = std::min<int64_t>(MR, mc - i);
        pack_a_strip<T, MR>(rows, kc, A + (m0 + i) * a_rs + k0 * a_cs, a_rs, a_cs,
                            a_pack + i * kc);
      }
      for (int64_t q = q_begin; q < q_end; ++q) {
        const int64_t n0 = q * NR;
        const int n = static_cast<int>(std::min<int64_t>(NR, N - n0));
        const T* Bp = B.data.data() + q * K * NR + k0 * NR;
        for (int64_t i = m0; i < m0 + mc; i += MR) {
          const int m = static_cast<int>(std::min<int64_t>(MR, m0 + mc - i));
          T* Ci = C + i * ldc + n0;
          // One accumulator set (the tile has enough rows for the FMA latency): a row's
          // sum then does not depend on where the tiles start, so the product of any
          // block of rows equals that part of the whole product, bit for bit.
          const T* Ai = direct ? A + i * a_rs + k0 : a_pack + (i - m0) * kc;
          tile_rows_dispatch<T, MR, NV, 1>(
              m, kc, Ai, direct ? a_rs : 1, direct ? 1 : MR, Bp, [&](int r, const V* row) {
                T* c = Ci + r * ldc;
                for (int v = 0; v < NV; ++v) {
                  const int lanes = std::min(W, n - v * W);
                  if (lanes <= 0) break;
                  V out = row[v];
                  if (acc)
                    out = out + load_n<V>(c + v * W, lanes);
                  else if (bias0)
                    out = out + load_n<V>(bias0 + n0 + v * W, lanes);
                  store_n(out, c + v * W, lanes);
                }
              });
        }
      }
    }
    if (K == 0) break;
  }
}

// The whole product, split over the region's threads: by panels of C when there are
// enough of them, else by blocks of MR rows.  No barrier: the caller adds one if
// other threads read C next.
template <class T>
void gemm(ThreadCtx& ctx, int64_t M, const T* A, int64_t a_rs, int64_t a_cs, const Packed<T>& B,
          T* C, int64_t ldc, bool accumulate, const T* bias) {
  constexpr int NR = GemmShape<T>::NR, MR = GemmShape<T>::MR;
  if (M <= 0 || B.N <= 0) return;
  const int64_t panels = (B.N + NR - 1) / NR, row_blocks = (M + MR - 1) / MR;
  int64_t b, e;
  if (panels >= 2 * ctx.size() || panels >= row_blocks) {
    split(panels, ctx.rank(), ctx.size(), b, e);
    gemm_part(0, M, b, e, A, a_rs, a_cs, B, C, ldc, accumulate, bias);
  } else {
    split(row_blocks, ctx.rank(), ctx.size(), b, e);
    gemm_part(b * MR, std::min(M, e * MR), 0, panels, A, a_rs, a_cs, B, C, ldc, accumulate,
              bias);
  }
}

template <class T>
void gemm(int64_t M, const T* A, int64_t a_rs, int64_t a_cs, const Packed<T>& B, T* C,
          int64_t ldc, bool accumulate, const T* bias) {
  ThreadCtx alone;
  gemm(alone, M, A, a_rs, a_cs, B, C, ldc, accumulate, bias);
}

}  // namespace FUSEDRNN_ISA
}  // namespace fusedrnn
