// The generic instantiation of the fused backward time loop (seq/backward-inl.h).
// Compiled with the baseline flags of the build only.
#define FUSEDRNN_ISA generic
#define FUSEDRNN_VEC_HEADER "simd/vec__generic.h"
#include "seq/backward-inl.h"
#include "seq/entries-inl.h"

namespace fusedrnn {
namespace generic {
FUSEDRNN_INSTANTIATE_BACKWARD_FUSED(float)
FUSEDRNN_INSTANTIATE_BACKWARD_FUSED(double)
}  // namespace generic
}  // namespace fusedrnn
