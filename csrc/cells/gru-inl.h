// GRU element-wise part, forward and backward, for one batch row.
// Gate blocks in the order r, z, n, each H wide.  No alignment is assumed.
#include <cstdint>

namespace fusedrnn {
namespace FUSEDRNN_ISA {

// reset_after=True.  gx: input projection + b_ih + (b_hr, b_hz, 0) (3H);
// gh: h_prev * W_hh^T without bias (3H); b_hn (H).
// gates (3H, activated r, z, n) may alias gx or be null; hn (H) receives
// W_hn h_prev + b_hn for backward, or is null.
template <class T>
inline void gru_fwd_row(int64_t H, const T* gx, const T* gh, const T* b_hn, const T* h_prev,
                        T* h_out, T* h_out2, T* gates, T* hn) {
  for_each_vec<T>(H, [&](auto tag, int64_t j) {
    using V = typename decltype(tag)::type;
    V r = sigmoid(V::load(gx + j) + V::load(gh + j));
    V z = sigmoid(V::load(gx + H + j) + V::load(gh + H + j));
    V hnv = V::load(gh + 2 * H + j) + V::load(b_hn + j);
    V n = tanh(fma(r, hnv, V::load(gx + 2 * H + j)));
    V hp = V::load(h_prev + j);
    V h = fma(z, hp - n, n);  // (1 - z) n + z h
    h.store(h_out + j);
    if (h_out2) h.store(h_out2 + j);
    if (gates) {
      r.store(gates + j);
      z.store(gates + H + j);
      n.store(gates + 2 * H + j);
    }
    if (hn) hnv.store(hn + j);
  });
}

// reset_after=True backward.  dgi (3H): gradient of the input-side pre-activations
// (r, z, n); dgh (3H): of the recurrent ones (r, z, W_hn h + b_hn); dh_next = dh * z,
// the direct part of dL/dh_prev (the product with W_hh is added by the caller).
template <class T>
inline void gru_bwd_row(int64_t H, const T* gates, const T* hn, const T* h_prev, const T* dy,
                        const T* dh_rec, T* dgi, T* dgh, T* dh_next) {
  for_each_vec<T>(H, [&](auto tag, int64_t j) {
    using V = typename decltype(tag)::type;
    const V one = V::set1(T(1));
    V r = V::load(gates + j), z = V::load(gates + H + j), n = V::load(gates + 2 * H + j);
    V dh = V::load(dy + j) + V::load(dh_rec + j);
    V dn = dh * (one - z) * (one - n * n);
    V dz = dh * (V::load(h_prev + j) - n) * z * (one - z);
    V dr = dn * V::load(hn + j) * r * (one - r);
    dr.store(dgi + j);
    dz.store(dgi + H + j);
    dn.store(dgi + 2 * H + j);
    dr.store(dgh + j);
    dz.store(dgh + H + j);
    (dn * r).store(dgh + 2 * H + j);
    (dh * z).store(dh_next + j);
  });
}

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
