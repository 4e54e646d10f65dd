// The avx2 instantiation of GRU reset_after=False (seq/gru_reset_before-inl.h).
// Compiled with FUSEDRNN_FLAGS_avx2 (CMakeLists.txt), on this ISA's files only.
#define FUSEDRNN_ISA avx2
#define FUSEDRNN_VEC_HEADER "simd/vec__avx2.h"
#include "seq/gru_reset_before-inl.h"
#include "seq/entries-inl.h"

namespace fusedrnn {
namespace avx2 {
FUSEDRNN_INSTANTIATE_RESET_BEFORE(float)
FUSEDRNN_INSTANTIATE_RESET_BEFORE(double)
}  // namespace avx2
}  // namespace fusedrnn
