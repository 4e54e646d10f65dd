// The generic kernel table (seq/table-inl.h) with the smaller kernels, in one translation
// unit: weight packing, activations, the cells' one-step kernel, the LSTM projection
// path and GRU reset_after=False (they share its GEMM code); the fused forward and
// backward loops are compiled in seq/forward__generic.cc and seq/backward__generic.cc.
// Compiled with the baseline flags of the build only.
#define FUSEDRNN_ISA generic
#define FUSEDRNN_VEC_HEADER "simd/vec__generic.h"
#include "seq/entries-inl.h"
#include "seq/gru_reset_before-inl.h"
#include "seq/proj-inl.h"
#include "seq/step-inl.h"
#include "seq/table-inl.h"

namespace fusedrnn {
namespace generic {
FUSEDRNN_INSTANTIATE_STEP_FUSED(float)
FUSEDRNN_INSTANTIATE_STEP_FUSED(double)
FUSEDRNN_INSTANTIATE_PROJ(float)
FUSEDRNN_INSTANTIATE_PROJ(double)
FUSEDRNN_INSTANTIATE_RESET_BEFORE(float)
FUSEDRNN_INSTANTIATE_RESET_BEFORE(double)

const char kIsaName[] = "generic";
extern const KernelTable<float> table_f32;
extern const KernelTable<double> table_f64;
// constexpr: constant-initialised, so no start-up code of this ISA runs on import
// (on a CPU without the ISA it would fault).
constexpr KernelTable<float> table_f32 = make_table<float>();
constexpr KernelTable<double> table_f64 = make_table<double>();
}  // namespace generic
}  // namespace fusedrnn
