// The generic (portable C++) instantiation of every kernel template.
// Compiled with the baseline flags of the build only.
#include "simd/vec__generic.h"
#include "gemm/ukernel__generic.h"

#define FUSEDRNN_ISA generic
#include "gemm/gemm-inl.h"
#include "cells/common-inl.h"
#include "cells/lstm-inl.h"
#include "cells/gru-inl.h"
#include "cells/rnn-inl.h"
#include "seq/driver-inl.h"

namespace fusedrnn {
namespace generic {
const char kIsaName[] = "generic";
extern const KernelTable<float> table_f32;
extern const KernelTable<double> table_f64;
const KernelTable<float> table_f32 = make_table<float>();
const KernelTable<double> table_f64 = make_table<double>();
}  // namespace generic
}  // namespace fusedrnn
