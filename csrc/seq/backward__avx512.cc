// The avx512 instantiation of the fused backward time loop (seq/backward-inl.h).
// Compiled with FUSEDRNN_FLAGS_avx512 (CMakeLists.txt), on this ISA's files only.
#define FUSEDRNN_ISA avx512
#define FUSEDRNN_VEC_HEADER "simd/vec__avx512.h"
#include "seq/backward-inl.h"
#include "seq/entries-inl.h"

namespace fusedrnn {
namespace avx512 {
FUSEDRNN_INSTANTIATE_BACKWARD_FUSED(float)
FUSEDRNN_INSTANTIATE_BACKWARD_FUSED(double)
}  // namespace avx512
}  // namespace fusedrnn
