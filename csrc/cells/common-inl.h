// Helpers shared by the cell templates.  Included inside namespace
// fusedrnn::FUSEDRNN_ISA by the per-ISA translation unit, after the ISA's Vec<T>
// and Scalar<T> are defined.
#include <cstdint>

namespace fusedrnn {
namespace FUSEDRNN_ISA {

template <class V>
struct VecTag {
  using type = V;
};

// Calls f(VecTag<V>{}, j) for j = 0, w, 2w, ... over full vectors of Vec<T>, then
// f(VecTag<Scalar<T>>{}, j) for the remaining tail elements.  Cell bodies are
// written once as generic lambdas and run at both widths.
template <class T, class F>
inline void for_each_vec(int64_t n, F&& f) {
  constexpr int W = Vec<T>::width;
  int64_t j = 0;
  for (; j + W <= n; j += W) f(VecTag<Vec<T>>{}, j);
  for (; j < n; ++j) f(VecTag<Scalar<T>>{}, j);
}

}  // namespace FUSEDRNN_ISA
}  // namespace fusedrnn
