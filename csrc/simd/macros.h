// Macros of the kernel templates: forced inlining of register-tile code, the checks of
// each kernel file's stated assumptions in debug builds, and a prefetch hint.
#pragma once

#include <cassert>

// Register tiles live in registers only if the functions that pass them around are
// inlined into one body.
#if defined(__GNUC__) || defined(__clang__)
#define FUSEDRNN_INLINE inline __attribute__((always_inline))
#else
#define FUSEDRNN_INLINE inline
#endif

// Checks an assumption a kernel file states at its top.  Compiled out when NDEBUG is
// defined (CMake's Release and RelWithDebInfo builds, so every wheel): no code and no
// cost there.  A Debug build (-DCMAKE_BUILD_TYPE=Debug) checks them.
#if defined(NDEBUG)
#define FUSEDRNN_DEBUG_ASSERT(cond) ((void)0)
#else
#define FUSEDRNN_DEBUG_ASSERT(cond) assert(cond)
#endif

// Asks for the cache line at p to be brought into L2 (a hint: no fault, no effect on
// results).  On x86 with GCC or Clang an asm volatile statement: GCC 12 deleted
// __builtin_prefetch calls in a helper lambda, which it judged free of side effects.
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define FUSEDRNN_PREFETCH_L2(p) \
  asm volatile("prefetcht1 %0" : : "m"(*reinterpret_cast<const char*>(p)))
#elif defined(__GNUC__) || defined(__clang__)
#define FUSEDRNN_PREFETCH_L2(p) __builtin_prefetch((p), 0, 2)
#elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
#include <xmmintrin.h>
#define FUSEDRNN_PREFETCH_L2(p) _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T1)
#else
#define FUSEDRNN_PREFETCH_L2(p) ((void)(p))
#endif
