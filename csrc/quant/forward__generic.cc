// The generic quantized kernels (quant/table-inl.h): inference of every cell kind with int8 or
// 16-bit weights, the test probes and the ISA's QuantTable.
// Compiled with FUSEDRNN_FLAGS_generic (CMakeLists.txt), on this ISA's files only.
#define FUSEDRNN_ISA generic
#define FUSEDRNN_VEC_HEADER "simd/vec__generic.h"
#define FUSEDRNN_QUANT_ISA 0
#include "quant/table-inl.h"
