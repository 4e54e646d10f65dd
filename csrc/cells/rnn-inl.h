// Elman RNN element-wise part (tanh or relu), forward and backward, for one batch row.
#include <cstdint>

namespace fusedrnn {
namespace FUSEDRNN_ISA {

// gx: input projection plus both biases (H); gh: h_prev * W_hh^T (H).
// h_out may alias gx.
template <bool kRelu, class T>
inline void rnn_fwd_row(int64_t H, const T* gx, const T* gh, T* h_out, T* h_out2) {
  for_each_vec<T>(H, [&](auto tag, int64_t j) {
    using V = typename decltype(tag)::type;
    V pre = V::load(gx + j) + V::load(gh + j);
    V h = kRelu ? max(pre, V::set1(T(0))) : tanh(pre);
    h.store(h_out + j);
    if (h_out2) h.store(h_out2 + j);
  });
}

// h: this step's output; dgates (H): gradient of the pre-activation.
template <bool kRelu, class T>
inline void rnn_bwd_row(int64_t H, const T* h, const T* dy, const T* dh_rec, T* dgates) {
  for_each_vec<T>(H, [&](auto tag, int64_t j) {
    using V = typename decltype(tag)::type;
    V hv = V::load(h + j);
    V dh = V::load(dy + j) + V::load(dh_rec + j);
    V d = kRelu ? positive_mask(hv, dh) : dh * (V::set1(T(1)) - hv * hv);
    d.store(dgates + j);
  });
}

}  // namespace FUSEDRNN_ISA
}  // namespace fusedrnn
