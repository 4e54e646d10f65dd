// The avx512 instantiation of GRU reset_after=False (seq/gru_reset_before-inl.h).
// Compiled with FUSEDRNN_FLAGS_avx512 (CMakeLists.txt), on this ISA's files only.
#define FUSEDRNN_ISA avx512
#define FUSEDRNN_VEC_HEADER "simd/vec__avx512.h"
#include "seq/gru_reset_before-inl.h"
#include "seq/entries-inl.h"

namespace fusedrnn {
namespace avx512 {
FUSEDRNN_INSTANTIATE_RESET_BEFORE(float)
FUSEDRNN_INSTANTIATE_RESET_BEFORE(double)
}  // namespace avx512
}  // namespace fusedrnn
