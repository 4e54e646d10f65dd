// The avx512 kernel table (seq/table-inl.h) with the smaller kernels, in one translation
// unit: weight packing, activations, the cells' one-step kernel, the LSTM projection
// path and GRU reset_after=False (they share its GEMM code), all from
// seq/table_unit-inl.h; the fused forward and backward loops are compiled in
// seq/forward__avx512.cc and seq/backward__avx512.cc.
// Compiled with FUSEDRNN_FLAGS_avx512 (CMakeLists.txt), on this ISA's files only.
#define FUSEDRNN_ISA avx512
#define FUSEDRNN_VEC_HEADER "simd/vec__avx512.h"
#include "seq/table_unit-inl.h"
