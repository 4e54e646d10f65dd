// 64-byte-aligned storage for the kernels (aligned_bytes, free_bytes and the Buffer
// instantiations declared in fusedrnn/kernels.h), compiled with the baseline flags only.
#include <cstdint>
#include <cstdlib>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif
#if defined(_WIN32)
#include <malloc.h>
#endif

#include "fusedrnn/kernels.h"

namespace fusedrnn {

void* aligned_bytes(int64_t n, size_t elem) {
  if (n < 0 || static_cast<uint64_t>(n) > (uint64_t(1) << 62) / elem) throw std::bad_alloc();
  size_t bytes = (static_cast<size_t>(n) * elem + 63) / 64 * 64;
  if (bytes == 0) bytes = 64;
#if defined(__linux__)
  // Large buffers (packed weights, the gradients of all steps, packed inputs) in 2 MB
  // pages where the kernel allows it, so that streaming them costs fewer TLB misses.
  // (A gain was not separable from this project's machines' noise; no loss was seen.)
  constexpr size_t kHuge = size_t(2) << 20;
  if (bytes >= 2 * kHuge) {
    const size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;
    void* p = std::aligned_alloc(kHuge, rounded);
    if (!p) throw std::bad_alloc();
    madvise(p, rounded, MADV_HUGEPAGE);  // advice only: failure is harmless
    return p;
  }
#endif
#if defined(_WIN32)
  // MSVC's C library has no aligned_alloc (std::free cannot release an over-aligned
  // block there): its own pair, _aligned_malloc and _aligned_free.
  void* p = _aligned_malloc(bytes, 64);
#else
  void* p = std::aligned_alloc(64, bytes);
#endif
  if (!p) throw std::bad_alloc();
  return p;
}

#if defined(_WIN32)
void free_bytes(void* p) { _aligned_free(p); }
#else
void free_bytes(void* p) { std::free(p); }
#endif

template class Buffer<float>;
template class Buffer<double>;
template class Buffer<int8_t>;
template class Buffer<uint16_t>;
template class Buffer<int32_t>;

}  // namespace fusedrnn
