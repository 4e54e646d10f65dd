// The out-of-line parts of the shared types (fusedrnn/dims.h, fusedrnn/kernels.h),
// compiled with the baseline flags only.  See the note on Workspace in dims.h.
#include <cstdint>
#include <cstdlib>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif
#if defined(_WIN32)
#include <malloc.h>
#endif

#include "fusedrnn/dims.h"
#include "fusedrnn/kernels.h"

namespace fusedrnn {

int64_t Workspace::G() const { return num_gates(cell); }
int64_t Workspace::gates_size() const { return is_rnn(cell) ? 0 : d.N * G() * d.H; }
int64_t Workspace::aux_size() const {
  if (cell == Cell::lstm) return (d.B + d.N) * d.H;
  if (is_gru(cell)) return d.N * d.H;
  return 0;
}
int64_t Workspace::h_size() const { return (d.B + d.N) * (d.P ? d.P : d.H); }
int64_t Workspace::m_size() const { return d.P ? d.N * d.H : 0; }
int64_t Workspace::gates_offset() const { return 0; }
int64_t Workspace::aux_offset() const { return gates_size(); }
int64_t Workspace::h_offset() const { return gates_size() + aux_size(); }
int64_t Workspace::m_offset() const { return h_offset() + h_size(); }
int64_t Workspace::size() const { return m_offset() + m_size(); }

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

}  // namespace fusedrnn
