// The body of every seq/table__<isa>.cc, written once: that translation unit defines
// FUSEDRNN_ISA and FUSEDRNN_VEC_HEADER, then includes this file, which instantiates the
// smaller kernels (the cells' one-step kernel, the LSTM projection path, GRU
// reset_after=False; they share the GEMM code) and defines the ISA's kernel tables
// (seq/table-inl.h).  The fused forward and backward loops are instantiated in
// seq/forward__<isa>.cc and seq/backward__<isa>.cc.
//
// Assumes: included once, by a table__<isa>.cc, after those two macros.
#pragma once

#include "seq/entries-inl.h"
#include "seq/gru_reset_before-inl.h"
#include "seq/proj-inl.h"
#include "seq/step-inl.h"
#include "seq/table-inl.h"

#define FUSEDRNN_STR_(x) #x
#define FUSEDRNN_STR(x) FUSEDRNN_STR_(x)

namespace fusedrnn {
namespace FUSEDRNN_ISA {
FUSEDRNN_INSTANTIATE_STEP_FUSED(float)
FUSEDRNN_INSTANTIATE_STEP_FUSED(double)
FUSEDRNN_INSTANTIATE_PROJ(float)
FUSEDRNN_INSTANTIATE_PROJ(double)
FUSEDRNN_INSTANTIATE_RESET_BEFORE(float)
FUSEDRNN_INSTANTIATE_RESET_BEFORE(double)

const char kIsaName[] = FUSEDRNN_STR(FUSEDRNN_ISA);
extern const KernelTable<float> table_f32;
extern const KernelTable<double> table_f64;
// constexpr: constant-initialised, so no start-up code of this ISA runs on import
// (on a CPU without the ISA it would fault).
constexpr KernelTable<float> table_f32 = make_table<float>();
constexpr KernelTable<double> table_f64 = make_table<double>();
}  // namespace FUSEDRNN_ISA
}  // namespace fusedrnn
