// The GEMM micro-kernel, written once over the ISA's vector type Vec<T>: an M x NR
// register tile (NR = NV vectors) of A[0:M, 0:K] * Bp[0:K, 0:NR].  The tile stays in
// registers for the whole K loop and is handed back to the caller, which fuses its
// epilogue (a store, or a whole recurrent cell) onto it.
//
// Assumes (checked in debug builds where a value is at hand):
//   - A element (m, k) is at A[m * a_rs + k * a_cs] (so A or A^T, read in place); any
//     strides, no alignment.  With a second part (KSplit), A is two matrices side by
//     side in k: K columns of A, then sp.K columns at sp.A (row stride sp.rs, a_cs 1).
//   - Bp is a K x NR panel, contiguous, row k at Bp + k * NR (the Packed layout of
//     fusedrnn/kernels.h); no alignment (unaligned vector loads).
//   - K >= 0 (K = 0 gives a zero tile); 1 <= m <= MR rows for the run-time row counts.
//   - Tile sizes: M <= 8 rows, NV vectors wide, chosen by tile_rows / tile_chains so
//     that the accumulators and the NV loaded B vectors fit kVecRegisters.
#pragma once

#include <cstdint>
#include <type_traits>

#include "simd/macros.h"
#include "simd/vec.h"

namespace fusedrnn {
namespace FUSEDRNN_ISA {

// Rows of a tile NV vectors wide: as many as fit beside the NV loaded B vectors and
// one broadcast A element, at most 8.
constexpr int tile_rows(int nv) {
  return (kVecRegisters - nv - 1) / nv < 1 ? 1
         : (kVecRegisters - nv - 1) / nv > 8 ? 8
                                             : (kVecRegisters - nv - 1) / nv;
}

// Independent accumulator sets (interleaved over k) so that at least 8 FMA chains
// are in flight even for a one-row tile, within about 3/4 of the registers.
constexpr int tile_chains(int accumulators) {
  return accumulators >= 8 ? 1
         : (8 + accumulators - 1) / accumulators * accumulators <= kVecRegisters * 3 / 4
             ? (8 + accumulators - 1) / accumulators
             : (kVecRegisters * 3 / 4) / accumulators < 1 ? 1
                                                          : (kVecRegisters * 3 / 4) / accumulators;
}

// The second part of a split A (see the top): `K` more columns of k, element (m, k) at
// A[m * rs + k]; NoSplit: none (the default, with no code for it).
template <class T>
struct KSplit {
  int64_t K;
  const T* A;
  int64_t rs;
};
struct NoSplit {};

// Adds A[0:M, 0:K] * Bp[0:K, 0:NR] to the P accumulator sets s: set p takes k = p,
// p + P, ... (the last K % P values of k go to set 0).
template <class T, int M, int NV, int P>
FUSEDRNN_INLINE void tile_accumulate(int64_t K, const T* A, int64_t a_rs, int64_t a_cs,
                                     const T* Bp, Vec<T> (&s)[P][M][NV]) {
  using V = Vec<T>;
  constexpr int W = V::width, NR = NV * W;
  int64_t k = 0;
  for (; k + P <= K; k += P) {
    for (int p = 0; p < P; ++p) {
      V b[NV];
      for (int v = 0; v < NV; ++v) b[v] = V::load(Bp + (k + p) * NR + v * W);
      for (int m = 0; m < M; ++m) {
        const V a = V::set1(A[m * a_rs + (k + p) * a_cs]);
        for (int v = 0; v < NV; ++v) s[p][m][v] = fma(a, b[v], s[p][m][v]);
      }
    }
  }
  for (; k < K; ++k) {
    V b[NV];
    for (int v = 0; v < NV; ++v) b[v] = V::load(Bp + k * NR + v * W);
    for (int m = 0; m < M; ++m) {
      const V a = V::set1(A[m * a_rs + k * a_cs]);
      for (int v = 0; v < NV; ++v) s[0][m][v] = fma(a, b[v], s[0][m][v]);
    }
  }
}

// P: accumulator sets over k (0: tile_chains's choice for this M; a fixed P makes every
// row's sum independent of how many rows share its tile).  sp: a second part of A.
template <class T, int M, int NV, int P0 = 0, class S = NoSplit>
FUSEDRNN_INLINE void tile_product(int64_t K, const T* A, int64_t a_rs, int64_t a_cs,
                                  const T* Bp, Vec<T> (&acc)[M][NV], const S& sp = {}) {
  using V = Vec<T>;
  constexpr int NR = NV * V::width, P = P0 > 0 ? P0 : tile_chains(M * NV);
  FUSEDRNN_DEBUG_ASSERT(K >= 0);
  V s[P][M][NV];
  for (int p = 0; p < P; ++p)
    for (int m = 0; m < M; ++m)
      for (int v = 0; v < NV; ++v) s[p][m][v] = V::zero();
  tile_accumulate<T, M, NV, P>(K, A, a_rs, a_cs, Bp, s);
  if constexpr (!std::is_same_v<S, NoSplit>)
    tile_accumulate<T, M, NV, P>(sp.K, sp.A, sp.rs, 1, Bp + K * NR, s);
  for (int m = 0; m < M; ++m)
    for (int v = 0; v < NV; ++v) {
      V t = s[0][m][v];
      for (int p = 1; p < P; ++p) t = t + s[p][m][v];
      acc[m][v] = t;
    }
}

// Runs tile_product for a tile of m rows (1 <= m <= MR, known only at run time) and
// then epi(row, acc_row) for each row, where acc_row is an array of NV vectors.
template <class T, int M, int NV, int P0, class Epi, class S>
FUSEDRNN_INLINE void tile_run(int64_t K, const T* A, int64_t a_rs, int64_t a_cs, const T* Bp,
                              Epi& epi, const S& sp) {
  Vec<T> acc[M][NV];
  tile_product<T, M, NV, P0>(K, A, a_rs, a_cs, Bp, acc, sp);
  for (int r = 0; r < M; ++r) epi(r, acc[r]);
}

template <class T, int MR, int NV, int P0, int M, class Epi, class S>
FUSEDRNN_INLINE void tile_rows_select(int m, int64_t K, const T* A, int64_t a_rs, int64_t a_cs,
                                      const T* Bp, Epi& epi, const S& sp) {
  if constexpr (M > 1) {
    if (m < M) {
      tile_rows_select<T, MR, NV, P0, M - 1>(m, K, A, a_rs, a_cs, Bp, epi, sp);
      return;
    }
  }
  tile_run<T, M, NV, P0>(K, A, a_rs, a_cs, Bp, epi, sp);
}

template <class T, int MR, int NV, int P0 = 0, class Epi, class S = NoSplit>
FUSEDRNN_INLINE void tile_rows_dispatch(int m, int64_t K, const T* A, int64_t a_rs, int64_t a_cs,
                                        const T* Bp, Epi&& epi, const S& sp = {}) {
  FUSEDRNN_DEBUG_ASSERT(m >= 1 && m <= MR);
  tile_rows_select<T, MR, NV, P0, MR>(m, K, A, a_rs, a_cs, Bp, epi, sp);
}

// As tile_rows_dispatch, but the tile goes to a small array first and epi(row, acc_row)
// then runs in a loop over the m rows: one copy of the epilogue's code instead of one per
// row of every tile height (1 + 2 + ... + MR copies), for the large epilogues (a whole
// recurrent cell).  The values epi receives are the same, bit for bit.
template <class T, int MR, int NV, class Epi, class S = NoSplit>
FUSEDRNN_INLINE void tile_rows_loop(int m, int64_t K, const T* A, int64_t a_rs, int64_t a_cs,
                                    const T* Bp, Epi&& epi, const S& sp = {}) {
  Vec<T> acc[MR][NV];
  tile_rows_dispatch<T, MR, NV>(m, K, A, a_rs, a_cs, Bp, [&](int r, const Vec<T>* row) {
    for (int v = 0; v < NV; ++v) acc[r][v] = row[v];
  }, sp);
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 1
#endif
  for (int r = 0; r < m; ++r) epi(r, acc[r]);
}

// Calls f(std::integral_constant<int, M>{}) with M = m, for 1 <= m <= MR: a run-time
// row count made a compile-time one, for tiles the caller drives itself.
template <int MR, class F>
FUSEDRNN_INLINE void with_rows(int m, F&& f) {
  FUSEDRNN_DEBUG_ASSERT(m >= 1 && m <= MR);
  if constexpr (MR > 1) {
    if (m < MR) {
      with_rows<MR - 1>(m, f);
      return;
    }
  }
  f(std::integral_constant<int, MR>{});
}

}  // namespace FUSEDRNN_ISA
}  // namespace fusedrnn
