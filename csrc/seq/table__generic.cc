// The generic kernel table (seq/table-inl.h) with the smaller kernels, in one translation
// unit: weight packing, activations, the cells' one-step kernel, the LSTM projection
// path and GRU reset_after=False (they share its GEMM code), all from
// seq/table_unit-inl.h; the fused forward and backward loops are compiled in
// seq/forward__generic.cc and seq/backward__generic.cc.
// Compiled with the baseline flags of the build only.
#define FUSEDRNN_ISA generic
#define FUSEDRNN_VEC_HEADER "simd/vec__generic.h"
#include "seq/table_unit-inl.h"
