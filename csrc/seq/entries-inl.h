// The kernels' entry points that one ISA's translation units define and its table
// calls: declarations (the table's switches need no definitions) and the macros that
// instantiate them, spread over three translation units per ISA so that ninja compiles
// them in parallel (CMakeLists.txt: FUSEDRNN_SOURCES_<isa>):
//
//   seq/forward__<isa>.cc    forward_fused (seq/forward-inl.h)
//   seq/backward__<isa>.cc   backward_fused (seq/backward-inl.h)
//   seq/table__<isa>.cc      the table itself (seq/table-inl.h) and the smaller kernels:
//                            packing, activations, the FMA peak, step_fused
//                            (seq/step-inl.h), forward_ / backward_proj (seq/proj-inl.h),
//                            forward_ / backward_reset_before (seq/gru_reset_before-inl.h)
//
// Each is instantiated for float and double and, where templated on the cell, for the
// cells that reach it (fused: lstm, gru, rnn_tanh, rnn_relu).
#pragma once

#include <cstdint>

#include "fusedrnn/cell.h"
#include "fusedrnn/dims.h"
#include "fusedrnn/kernels.h"
#include "simd/vec.h"

// Parameter lists, as in KernelTable (fusedrnn/kernels.h).
#define FUSEDRNN_FORWARD_PARAMS(T) \
  (const Weights<T>&, const Dims&, const T*, const T*, const T*, T*, T*, T*, T*)
#define FUSEDRNN_FORWARD_RB_PARAMS(T) \
  (const Weights<T>&, const Dims&, const T*, const T*, T*, T*, T*)
#define FUSEDRNN_BACKWARD_FUSED_PARAMS(T)                                                   \
  (const Weights<T>&, const Dims&, const T*, const T*, const T*, const T*, const T*, T*, T*, \
   T*, T*, T*, T*, T*)
#define FUSEDRNN_BACKWARD_PROJ_PARAMS(T)                                                    \
  (const Weights<T>&, const Dims&, const T*, const T*, const T*, const T*, const T*, T*, T*, \
   T*, T*, T*, T*, T*, T*)
#define FUSEDRNN_BACKWARD_RB_PARAMS(T)                                                      \
  (const Weights<T>&, const Dims&, const T*, const T*, const T*, const T*, T*, T*, T*, T*, T*, \
   T*)
#define FUSEDRNN_STEP_PARAMS(T) \
  (const Weights<T>&, int64_t, const T*, const T*, const T*, T*, T*)

namespace fusedrnn {
namespace FUSEDRNN_ISA {

template <class T, Cell C>
void forward_fused FUSEDRNN_FORWARD_PARAMS(T);
template <class T>
void forward_proj FUSEDRNN_FORWARD_PARAMS(T);
template <class T>
void forward_reset_before FUSEDRNN_FORWARD_RB_PARAMS(T);
template <class T, Cell C>
void backward_fused FUSEDRNN_BACKWARD_FUSED_PARAMS(T);
template <class T>
void backward_proj FUSEDRNN_BACKWARD_PROJ_PARAMS(T);
template <class T>
void backward_reset_before FUSEDRNN_BACKWARD_RB_PARAMS(T);
template <class T, Cell C>
void step_fused FUSEDRNN_STEP_PARAMS(T);

}  // namespace FUSEDRNN_ISA
}  // namespace fusedrnn

// Explicit instantiations for one element type T, inside namespace
// fusedrnn::FUSEDRNN_ISA, after the defining header.
#define FUSEDRNN_FOR_FUSED_CELLS(X, T) \
  X(T, Cell::lstm) X(T, Cell::gru) X(T, Cell::rnn_tanh) X(T, Cell::rnn_relu)
#define FUSEDRNN_FORWARD_FUSED_1(T, C) template void forward_fused<T, C> FUSEDRNN_FORWARD_PARAMS(T);
#define FUSEDRNN_BACKWARD_FUSED_1(T, C) \
  template void backward_fused<T, C> FUSEDRNN_BACKWARD_FUSED_PARAMS(T);
#define FUSEDRNN_STEP_FUSED_1(T, C) template void step_fused<T, C> FUSEDRNN_STEP_PARAMS(T);

#define FUSEDRNN_INSTANTIATE_FORWARD_FUSED(T) \
  FUSEDRNN_FOR_FUSED_CELLS(FUSEDRNN_FORWARD_FUSED_1, T)
#define FUSEDRNN_INSTANTIATE_BACKWARD_FUSED(T) \
  FUSEDRNN_FOR_FUSED_CELLS(FUSEDRNN_BACKWARD_FUSED_1, T)
#define FUSEDRNN_INSTANTIATE_STEP_FUSED(T) FUSEDRNN_FOR_FUSED_CELLS(FUSEDRNN_STEP_FUSED_1, T)
#define FUSEDRNN_INSTANTIATE_PROJ(T)                       \
  template void forward_proj<T> FUSEDRNN_FORWARD_PARAMS(T); \
  template void backward_proj<T> FUSEDRNN_BACKWARD_PROJ_PARAMS(T);
#define FUSEDRNN_INSTANTIATE_RESET_BEFORE(T)                               \
  template void forward_reset_before<T> FUSEDRNN_FORWARD_RB_PARAMS(T); \
  template void backward_reset_before<T> FUSEDRNN_BACKWARD_RB_PARAMS(T);
