// The input projection of all steps of one layer-direction, x W_ih^T + biases: one
// large product before the time loop (the recurrent part is the loop's); and the threads
// such a product is worth (product_threads, which the matmul probe shares).
//
// Assumes: x (N, I) packed rows, row-major, contiguous; gx (N, G*H); w.wih_t packed by
// this ISA's pack_b (GEMM panels).
#pragma once

#include <cstdint>

#include "cpu/profile.h"
#include "cpu/threads.h"
#include "fusedrnn/dims.h"
#include "fusedrnn/kernels.h"
#include "gemm/gemm-inl.h"
#include "seq/shape-inl.h"
#include "simd/vec.h"

namespace fusedrnn {
namespace FUSEDRNN_ISA {

// Threads worth using for one M x K by K x N product: gemm splits it by panels of NR
// columns or by tiles of MR rows.
template <class T>
int product_threads(int64_t M, int64_t N, int64_t K) {
  return threads_for(2.0 * M * N * K, (N + GemmShape<T>::NR - 1) / GemmShape<T>::NR +
                                          (M + GemmShape<T>::MR - 1) / GemmShape<T>::MR);
}

// The input projection of all steps: gx (N, G*H) = x W_ih^T + bias_x.
template <class T>
void input_projection(const Weights<T>& w, const Dims& d, const T* x, T* gx) {
  const int64_t M = d.N, N = w.wih_t.N;
  parallel(product_threads<T>(M, N, d.I),
           [&](ThreadCtx& ctx) {
             profile::Scope part(ctx.rank(), profile::kInputProjection);
             gemm<T>(ctx, M, x, d.I, 1, w.wih_t, gx, N, false, w.bias_x.data());
           });
}

}  // namespace FUSEDRNN_ISA
}  // namespace fusedrnn
