// The generic instantiation of the LSTM projection path (seq/proj-inl.h).
// Compiled with the baseline flags of the build only.
#define FUSEDRNN_ISA generic
#define FUSEDRNN_VEC_HEADER "simd/vec__generic.h"
#include "seq/proj-inl.h"
#include "seq/entries-inl.h"

namespace fusedrnn {
namespace generic {
FUSEDRNN_INSTANTIATE_PROJ(float)
FUSEDRNN_INSTANTIATE_PROJ(double)
}  // namespace generic
}  // namespace fusedrnn
