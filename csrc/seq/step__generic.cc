// The generic instantiation of the cells' one-step kernel (seq/step-inl.h).
// Compiled with the baseline flags of the build only.
#define FUSEDRNN_ISA generic
#define FUSEDRNN_VEC_HEADER "simd/vec__generic.h"
#include "seq/step-inl.h"
#include "seq/entries-inl.h"

namespace fusedrnn {
namespace generic {
FUSEDRNN_INSTANTIATE_STEP_FUSED(float)
FUSEDRNN_INSTANTIATE_STEP_FUSED(double)
}  // namespace generic
}  // namespace fusedrnn
