// Weight packing and the portable GEMM macro-kernel (BLIS split): this file owns the
// loops, blocking and edges; the per-ISA Ukernel<T> only computes register tiles.
//
// Included by each per-ISA translation unit inside namespace fusedrnn::FUSEDRNN_ISA,
// after that ISA's Ukernel<T> is defined.
//
// C (M x N, row stride ldc) = [C if accumulate] + op(A) (M x K) * B (K x N, packed)
//                             [+ bias (N) if not accumulate and bias != null]
// A element (m, k) is at A[m * a_rs + k * a_cs]: (lda, 1) for A, (1, lda) for A^T.
// The summation order is fixed by the sizes alone, so results are reproducible.
#include <algorithm>
#include <cstdint>

#include "fusedrnn/kernels.h"

namespace fusedrnn {
namespace FUSEDRNN_ISA {

// Pack the K x N matrix whose element (k, n) is src[k * rs + n * cs].
template <class T>
void pack_b(Packed<T>& p, int64_t K, int64_t N, const T* src, int64_t rs, int64_t cs) {
  constexpr int NR = Ukernel<T>::NR;
  p.K = K;
  p.N = N;
  p.nr = NR;
  const int64_t panels = (N + NR - 1) / NR;
  p.data.reset(panels * K * NR);
  T* out = p.data.data();
  for (int64_t q = 0; q < panels; ++q)
    for (int64_t k = 0; k < K; ++k)
      for (int j = 0; j < NR; ++j) {
        const int64_t n = q * NR + j;
        *out++ = n < N ? src[k * rs + n * cs] : T(0);
      }
}

template <class T>
inline void ukernel_rows(int m, int64_t K, const T* A, int64_t a_rs, int64_t a_cs, const T* Bp,
                         T* C, int64_t ldc, int n, const T* bias, bool accumulate) {
  static_assert(Ukernel<T>::MR == 4, "ukernel_rows dispatches M = 1..4");
  switch (m) {
    case 1: Ukernel<T>::template run<1>(K, A, a_rs, a_cs, Bp, C, ldc, n, bias, accumulate); break;
    case 2: Ukernel<T>::template run<2>(K, A, a_rs, a_cs, Bp, C, ldc, n, bias, accumulate); break;
    case 3: Ukernel<T>::template run<3>(K, A, a_rs, a_cs, Bp, C, ldc, n, bias, accumulate); break;
    default: Ukernel<T>::template run<4>(K, A, a_rs, a_cs, Bp, C, ldc, n, bias, accumulate); break;
  }
}

template <class T>
void gemm(int64_t M, const T* A, int64_t a_rs, int64_t a_cs, const Packed<T>& B, T* C,
          int64_t ldc, bool accumulate, const T* bias) {
  constexpr int MR = Ukernel<T>::MR;
  constexpr int NR = Ukernel<T>::NR;
  constexpr int64_t KC = 256;  // B panel slice KC x NR stays in L1
  constexpr int64_t MC = 128;  // A block MC x KC stays in L2
  const int64_t K = B.K, N = B.N;
  if (M <= 0 || N <= 0) return;
  const int64_t panels = (N + NR - 1) / NR;
  int64_t k0 = 0;
  do {
    const int64_t kc = std::min(KC, K - k0);
    const bool acc = accumulate || k0 > 0;
    const T* bias0 = (!acc && bias) ? bias : nullptr;
    for (int64_t m0 = 0; m0 < M; m0 += MC) {
      const int64_t mc = std::min(MC, M - m0);
      for (int64_t q = 0; q < panels; ++q) {
        const int n = static_cast<int>(std::min<int64_t>(NR, N - q * NR));
        const T* Bp = B.data.data() + q * K * NR + k0 * NR;
        for (int64_t i = m0; i < m0 + mc; i += MR) {
          const int m = static_cast<int>(std::min<int64_t>(MR, m0 + mc - i));
          ukernel_rows<T>(m, kc, A + i * a_rs + k0 * a_cs, a_rs, a_cs, Bp, C + i * ldc + q * NR,
                          ldc, n, bias0 ? bias0 + q * NR : nullptr, acc);
        }
      }
    }
    k0 += kc;
  } while (k0 < K);
}

}  // namespace FUSEDRNN_ISA
}  // namespace fusedrnn
