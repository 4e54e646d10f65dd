// GRU reset_after=False (the reset gate multiplies h before the candidate's product):
// its element-wise parts, forward and backward, one batch row at a time.  This form
// needs two recurrent products per step with a cell part between them, so it is not
// fused onto the GEMM tiles (reset_after=True and the other cells are: fused-inl.h);
// seq/gru_reset_before-inl.h runs these rows between its products.
//
// Assumes: gate blocks in the order r, z, n, each H wide; H >= 0; no alignment; rows do
// not overlap except where a function says so.
#pragma once

#include <cstdint>

#include "simd/tail-inl.h"
#include "simd/vec.h"

namespace fusedrnn {
namespace FUSEDRNN_ISA {

// reset_after=False forward, first half.  grz: h_prev * W_hrz^T (2H).  Writes the
// activated r, z over gx[0:2H] (gx is scratch or the workspace's gate row) and
// rh = r * h_prev, the input of the candidate's recurrent product.
template <class T>
inline void gru_rb_fwd_rz_row(int64_t H, T* gx, const T* grz, const T* h_prev, T* rh) {
  for_each_vec<T>(H, [&](auto tag, int64_t j) {
    using V = typename decltype(tag)::type;
    V r = sigmoid(V::load(gx + j) + V::load(grz + j));
    V z = sigmoid(V::load(gx + H + j) + V::load(grz + H + j));
    r.store(gx + j);
    z.store(gx + H + j);
    (r * V::load(h_prev + j)).store(rh + j);
  });
}

// reset_after=False forward, second half.  gx: activated r, z then the candidate's
// input projection + b_in + b_hn; gn: rh * W_hn^T (H).  Writes n over gx[2H:3H].
template <class T>
inline void gru_rb_fwd_n_row(int64_t H, T* gx, const T* gn, const T* h_prev, T* h_out,
                             T* h_out2) {
  for_each_vec<T>(H, [&](auto tag, int64_t j) {
    using V = typename decltype(tag)::type;
    V z = V::load(gx + H + j);
    V n = tanh(V::load(gx + 2 * H + j) + V::load(gn + j));
    V h = fma(z, V::load(h_prev + j) - n, n);
    n.store(gx + 2 * H + j);
    h.store(h_out + j);
    if (h_out2) h.store(h_out2 + j);
  });
}

// reset_after=False backward, first half: dz, dn into dgi, dh_next = dh * z.
template <class T>
inline void gru_rb_bwd_zn_row(int64_t H, const T* gates, const T* h_prev, const T* dy,
                              const T* dh_rec, T* dgi, T* dh_next) {
  for_each_vec<T>(H, [&](auto tag, int64_t j) {
    using V = typename decltype(tag)::type;
    const V one = V::set1(T(1));
    V z = V::load(gates + H + j), n = V::load(gates + 2 * H + j);
    V dh = V::load(dy + j) + V::load(dh_rec + j);
    (dh * (V::load(h_prev + j) - n) * z * (one - z)).store(dgi + H + j);
    (dh * (one - z) * (one - n * n)).store(dgi + 2 * H + j);
    (dh * z).store(dh_next + j);
  });
}

// reset_after=False backward, second half.  drh = dn * W_hn (H), the gradient of r * h_prev.
template <class T>
inline void gru_rb_bwd_r_row(int64_t H, const T* gates, const T* h_prev, const T* drh, T* dgi,
                             T* dh_next) {
  for_each_vec<T>(H, [&](auto tag, int64_t j) {
    using V = typename decltype(tag)::type;
    const V one = V::set1(T(1));
    V r = V::load(gates + j);
    V d = V::load(drh + j);
    (d * V::load(h_prev + j) * r * (one - r)).store(dgi + j);
    fma(d, r, V::load(dh_next + j)).store(dh_next + j);
  });
}

}  // namespace FUSEDRNN_ISA
}  // namespace fusedrnn
