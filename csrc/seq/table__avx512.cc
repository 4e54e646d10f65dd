// The avx512 kernel table (seq/table-inl.h), weight packing and activations; the
// kernels it points to are compiled in the other seq/*__avx512.cc files.
// Compiled with FUSEDRNN_FLAGS_avx512 (CMakeLists.txt), on this ISA's files only.
#define FUSEDRNN_ISA avx512
#define FUSEDRNN_VEC_HEADER "simd/vec__avx512.h"
#include "seq/table-inl.h"

namespace fusedrnn {
namespace avx512 {
const char kIsaName[] = "avx512";
extern const KernelTable<float> table_f32;
extern const KernelTable<double> table_f64;
// constexpr: constant-initialised, so no start-up code of this ISA runs on import
// (on a CPU without the ISA it would fault).
constexpr KernelTable<float> table_f32 = make_table<float>();
constexpr KernelTable<double> table_f64 = make_table<double>();
}  // namespace avx512
}  // namespace fusedrnn
