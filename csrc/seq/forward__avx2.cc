// The avx2 instantiation of the fused forward time loop (seq/forward-inl.h).
// Compiled with FUSEDRNN_FLAGS_avx2 (CMakeLists.txt), on this ISA's files only.
#define FUSEDRNN_ISA avx2
#define FUSEDRNN_VEC_HEADER "simd/vec__avx2.h"
#include "seq/forward-inl.h"
#include "seq/entries-inl.h"

namespace fusedrnn {
namespace avx2 {
FUSEDRNN_INSTANTIATE_FORWARD_FUSED(float)
FUSEDRNN_INSTANTIATE_FORWARD_FUSED(double)
}  // namespace avx2
}  // namespace fusedrnn
