// The avx512 instantiation of every kernel template.
// Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma (this file only).
#define FUSEDRNN_ISA avx512
#include "simd/vec__avx512.h"

namespace fusedrnn {
namespace avx512 {
constexpr int kVecRegisters = 32;  // architectural vector registers
}  // namespace avx512
}  // namespace fusedrnn

#include "gemm/ukernel-inl.h"
#include "gemm/gemm-inl.h"
#include "cells/common-inl.h"
#include "cells/fused-inl.h"
#include "cells/gru-inl.h"
#include "cpu/peak-inl.h"
#include "seq/driver-inl.h"

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
