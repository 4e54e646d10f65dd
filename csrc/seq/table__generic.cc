// The generic kernel table (seq/table-inl.h), weight packing and activations; the
// kernels it points to are compiled in the other seq/*__generic.cc files.
// Compiled with the baseline flags of the build only.
#define FUSEDRNN_ISA generic
#define FUSEDRNN_VEC_HEADER "simd/vec__generic.h"
#include "seq/table-inl.h"

namespace fusedrnn {
namespace generic {
const char kIsaName[] = "generic";
extern const KernelTable<float> table_f32;
extern const KernelTable<double> table_f64;
// constexpr: constant-initialised, so no start-up code of this ISA runs on import
// (on a CPU without the ISA it would fault).
constexpr KernelTable<float> table_f32 = make_table<float>();
constexpr KernelTable<double> table_f64 = make_table<double>();
}  // namespace generic
}  // namespace fusedrnn
