// The avx512 quantized kernels (quant/table-inl.h): inference of every cell kind with int8 or
// 16-bit weights, the test probes and the ISA's QuantTable.
// Compiled with FUSEDRNN_FLAGS_avx512 (CMakeLists.txt), on this ISA's files only.
#define FUSEDRNN_ISA avx512
#define FUSEDRNN_VEC_HEADER "simd/vec__avx512.h"
#define FUSEDRNN_QUANT_ISA 2
#include "quant/table-inl.h"
