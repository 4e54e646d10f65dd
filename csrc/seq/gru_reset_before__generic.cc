// The generic instantiation of GRU reset_after=False (seq/gru_reset_before-inl.h).
// Compiled with the baseline flags of the build only.
#define FUSEDRNN_ISA generic
#define FUSEDRNN_VEC_HEADER "simd/vec__generic.h"
#include "seq/gru_reset_before-inl.h"
#include "seq/entries-inl.h"

namespace fusedrnn {
namespace generic {
FUSEDRNN_INSTANTIATE_RESET_BEFORE(float)
FUSEDRNN_INSTANTIATE_RESET_BEFORE(double)
}  // namespace generic
}  // namespace fusedrnn
