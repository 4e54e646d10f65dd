// The vector types of the ISA that this translation unit compiles its kernels for.
//
// A per-ISA translation unit (seq/<what>__<isa>.cc) defines two macros before any
// include: FUSEDRNN_ISA, the ISA's namespace (generic, avx2, avx512), and
// FUSEDRNN_VEC_HEADER, its vector header ("simd/vec__<isa>.h").  Every kernel header
// includes this file for Vec<T>, Scalar<T> and kVecRegisters, so each one compiles on
// its own, whatever the order of the includes.
#pragma once

#if !defined(FUSEDRNN_ISA) || !defined(FUSEDRNN_VEC_HEADER)
#error "define FUSEDRNN_ISA and FUSEDRNN_VEC_HEADER before including kernel headers"
#endif

#include FUSEDRNN_VEC_HEADER
