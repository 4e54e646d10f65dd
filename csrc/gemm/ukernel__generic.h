// Portable GEMM micro-kernel: one M x NR tile of C from an A block read in place and
// a packed B panel.
//
// Assumptions: the B panel is K x NR contiguous (Packed layout, zero-padded past N);
// A element (m, k) is at A[m * a_rs + k * a_cs] (any strides, so A or A^T);
// 1 <= M <= MR and 1 <= n <= NR; C rows are ldc apart.  Plain loops with
// compile-time trip counts so the compiler unrolls them and keeps the tile in registers.
#pragma once

#include <cstdint>

namespace fusedrnn {
namespace generic {

template <class T>
struct Ukernel {
  static constexpr int MR = 4;
  static constexpr int NR = sizeof(T) == 4 ? 8 : 4;

  // C[0:M, 0:n] = (accumulate ? C : bias or 0) + A[0:M, 0:K] * Bp[0:K, 0:n]
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
    for (int r = 0; r < M; ++r) {
      T* c = C + r * ldc;
      if (accumulate) {
        for (int j = 0; j < n; ++j) c[j] += acc[r][j];
      } else if (bias) {
        for (int j = 0; j < n; ++j) c[j] = bias[j] + acc[r][j];
      } else {
        for (int j = 0; j < n; ++j) c[j] = acc[r][j];
      }
    }
  }
};

}  // namespace generic
}  // namespace fusedrnn
