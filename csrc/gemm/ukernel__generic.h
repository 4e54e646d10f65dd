// Portable GEMM micro-kernel: one M x NR tile of C from an A block read in place and
// a packed B panel.
//
// Assumptions: the B panel is K x NR contiguous (Packed layout, zero-padded past N;
// no alignment needed); A element (m, k) is at A[m * a_rs + k * a_cs] (any strides, so
// A or A^T); 1 <= M <= MR and 1 <= n <= NR; C rows are ldc apart.  Loops have
// compile-time trip counts so the compiler unrolls them and keeps the tile in registers.
#pragma once

#include <cstdint>

namespace fusedrnn {
namespace generic {

#if defined(__GNUC__) || defined(__clang__)
// GCC/Clang vector extensions: 16-byte vectors, which every x86-64 (SSE2) and aarch64
// (NEON) CPU has, without any ISA flag.  The plain-loop form below is what other
// compilers get; GCC does not keep its accumulator array in registers.
template <class T>
struct Ukernel {
  static constexpr int L = 16 / sizeof(T);  // lanes per 16-byte vector
  static constexpr int MR = 4;
  static constexpr int NR = 2 * L;
  typedef T V __attribute__((vector_size(16), aligned(sizeof(T))));

  // C[0:M, 0:n] = (accumulate ? C : bias or 0) + A[0:M, 0:K] * Bp[0:K, 0:n]
  // Small M has few independent accumulators, so the add latency would bind: P
  // interleaved partial sums over k (k mod P) keep 8 chains in flight for any M.
  template <int M>
  static void run(int64_t K, const T* A, int64_t a_rs, int64_t a_cs, const T* Bp, T* C,
                  int64_t ldc, int n, const T* bias, bool accumulate) {
    constexpr int P = M == 1 ? 4 : (M == 2 ? 2 : 1);
    V acc0[P][M], acc1[P][M];
    for (int p = 0; p < P; ++p)
      for (int r = 0; r < M; ++r) acc0[p][r] = acc1[p][r] = V{};
    int64_t k = 0;
    for (; k + P <= K; k += P) {
      for (int p = 0; p < P; ++p) {
        const V b0 = *reinterpret_cast<const V*>(Bp + (k + p) * NR);
        const V b1 = *reinterpret_cast<const V*>(Bp + (k + p) * NR + L);
        for (int r = 0; r < M; ++r) {
          const V a = V{} + A[r * a_rs + (k + p) * a_cs];  // broadcast
          acc0[p][r] += a * b0;
          acc1[p][r] += a * b1;
        }
      }
    }
    for (; k < K; ++k) {
      const V b0 = *reinterpret_cast<const V*>(Bp + k * NR);
      const V b1 = *reinterpret_cast<const V*>(Bp + k * NR + L);
      for (int r = 0; r < M; ++r) {
        const V a = V{} + A[r * a_rs + k * a_cs];
        acc0[0][r] += a * b0;
        acc1[0][r] += a * b1;
      }
    }
    for (int r = 0; r < M; ++r) {
      for (int p = 1; p < P; ++p) {
        acc0[0][r] += acc0[p][r];
        acc1[0][r] += acc1[p][r];
      }
      T tile[NR];
      for (int j = 0; j < L; ++j) {
        tile[j] = acc0[0][r][j];
        tile[L + j] = acc1[0][r][j];
      }
      store_row(C + r * ldc, tile, n, bias, accumulate);
    }
  }
#else
template <class T>
struct Ukernel {
  static constexpr int MR = 4;
  static constexpr int NR = sizeof(T) == 4 ? 8 : 4;

  template <int M>
  static void run(int64_t K, const T* A, int64_t a_rs, int64_t a_cs, const T* Bp, T* C,
                  int64_t ldc, int n, const T* bias, bool accumulate) {
    T acc[M][NR];
    for (int r = 0; r < M; ++r)
      for (int j = 0; j < NR; ++j) acc[r][j] = T(0);
    for (int64_t k = 0; k < K; ++k) {
      const T* b = Bp + k * NR;
      for (int r = 0; r < M; ++r) {
        const T a = A[r * a_rs + k * a_cs];
        for (int j = 0; j < NR; ++j) acc[r][j] += a * b[j];
      }
    }
    for (int r = 0; r < M; ++r) store_row(C + r * ldc, acc[r], n, bias, accumulate);
  }
#endif

  static void store_row(T* c, const T* tile, int n, const T* bias, bool accumulate) {
    if (accumulate) {
      for (int j = 0; j < n; ++j) c[j] += tile[j];
    } else if (bias) {
      for (int j = 0; j < n; ++j) c[j] = bias[j] + tile[j];
    } else {
      for (int j = 0; j < n; ++j) c[j] = tile[j];
    }
  }
};

}  // namespace generic
}  // namespace fusedrnn
