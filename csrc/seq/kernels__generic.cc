// The generic instantiation of every kernel template.
// Compiled with the baseline flags of the build only.
#define FUSEDRNN_ISA generic
#include "simd/vec__generic.h"

namespace fusedrnn {
namespace generic {
constexpr int kVecRegisters = 16;  // architectural vector registers
}  // namespace generic
}  // namespace fusedrnn

#include "gemm/ukernel-inl.h"
#include "gemm/gemm-inl.h"
#include "cells/common-inl.h"
#include "cells/fused-inl.h"
#include "cells/gru-inl.h"
#include "cpu/peak-inl.h"
#include "seq/driver-inl.h"

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
