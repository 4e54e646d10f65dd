// Two macros of the kernel templates: forced inlining of register-tile code, and the
// checks of each kernel file's stated assumptions in debug builds.
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
