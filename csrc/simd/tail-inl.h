// Partial vectors and loops with a scalar tail: how the kernels handle a length that is
// not a multiple of the vector width, without reading or writing past an array's end.
//
// Assumes: 0 <= n <= V::width for load_n / store_n; n >= 0 for for_each_vec.  No
// alignment is assumed anywhere (the vectors load and store unaligned).
#pragma once

#include <cstdint>

#include "simd/macros.h"
#include "simd/vec.h"

namespace fusedrnn {
namespace FUSEDRNN_ISA {

// Loads and stores of the first n <= width lanes (the rest read as 0), for the last,
// partial tile of a row: through a small stack buffer, never past the array's end.
template <class V, class T>
FUSEDRNN_INLINE V load_n(const T* p, int n) {
  FUSEDRNN_DEBUG_ASSERT(n >= 0 && n <= V::width);
  if (n == V::width) return V::load(p);
  T buf[V::width];
  for (int i = 0; i < V::width; ++i) buf[i] = i < n ? p[i] : T(0);
  return V::load(buf);
}

template <class V, class T>
FUSEDRNN_INLINE void store_n(V v, T* p, int n) {
  FUSEDRNN_DEBUG_ASSERT(n >= 0 && n <= V::width);
  if (n == V::width) {
    v.store(p);
    return;
  }
  T buf[V::width];
  v.store(buf);
  for (int i = 0; i < n; ++i) p[i] = buf[i];
}

template <class V>
struct VecTag {
  using type = V;
};

// Calls f(VecTag<V>{}, j) for j = 0, w, 2w, ... over full vectors of Vec<T>, then
// f(VecTag<Scalar<T>>{}, j) for the remaining tail elements.  Element-wise bodies are
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
