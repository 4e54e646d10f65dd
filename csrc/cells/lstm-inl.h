// LSTM element-wise part (the "postgemm"), forward and backward, for one batch row.
// Gate blocks in the order i, f, g, o, each H wide.  No alignment is assumed.
#include <cstdint>

namespace fusedrnn {
namespace FUSEDRNN_ISA {

// gx: input projection plus both biases (4H); gh: h_prev * W_hh^T (4H).
// c_prev may alias c_out; gates (4H, activated i, f, g, o) may alias gx or be null.
// h_out2 is an optional second destination of h (null to skip).
template <class T>
inline void lstm_fwd_row(int64_t H, const T* gx, const T* gh, const T* c_prev, T* c_out,
                         T* h_out, T* h_out2, T* gates) {
  for_each_vec<T>(H, [&](auto tag, int64_t j) {
    using V = typename decltype(tag)::type;
    V i = sigmoid(V::load(gx + j) + V::load(gh + j));
    V f = sigmoid(V::load(gx + H + j) + V::load(gh + H + j));
    V g = tanh(V::load(gx + 2 * H + j) + V::load(gh + 2 * H + j));
    V o = sigmoid(V::load(gx + 3 * H + j) + V::load(gh + 3 * H + j));
    V c = fma(f, V::load(c_prev + j), i * g);
    V h = o * tanh(c);
    c.store(c_out + j);
    h.store(h_out + j);
    if (h_out2) h.store(h_out2 + j);
    if (gates) {
      i.store(gates + j);
      f.store(gates + H + j);
      g.store(gates + 2 * H + j);
      o.store(gates + 3 * H + j);
    }
  });
}

// gates: activated i, f, g, o of this step; c, c_prev: this and the previous cell state.
// dc: in, dL/dc_t from later steps; out, its part carried to c_{t-1} (dc * f).
// dgates (4H): gradient of the pre-activations.
template <class T>
inline void lstm_bwd_row(int64_t H, const T* gates, const T* c, const T* c_prev, const T* dy,
                         const T* dh_rec, T* dc, T* dgates) {
  for_each_vec<T>(H, [&](auto tag, int64_t j) {
    using V = typename decltype(tag)::type;
    const V one = V::set1(T(1));
    V i = V::load(gates + j), f = V::load(gates + H + j);
    V g = V::load(gates + 2 * H + j), o = V::load(gates + 3 * H + j);
    V dh = V::load(dy + j) + V::load(dh_rec + j);
    V tc = tanh(V::load(c + j));
    V dct = fma(dh * o, one - tc * tc, V::load(dc + j));
    V di = dct * g * i * (one - i);
    V df = dct * V::load(c_prev + j) * f * (one - f);
    V dg = dct * i * (one - g * g);
    V d_o = dh * tc * o * (one - o);
    di.store(dgates + j);
    df.store(dgates + H + j);
    dg.store(dgates + 2 * H + j);
    d_o.store(dgates + 3 * H + j);
    (dct * f).store(dc + j);
  });
}

}  // namespace FUSEDRNN_ISA
}  // namespace fusedrnn
