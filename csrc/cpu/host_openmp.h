// Regions on a host OpenMP runtime's threads: the part of parallel() (threads.cc) that
// host_openmp.cc implements; the scope itself is declared in threads.h.
//
// Compiled without ISA flags (plain C++), as threads.cc.
#pragma once

#include <functional>

#include "cpu/threads.h"

namespace fusedrnn {

// Runs fn on up to `want` threads of the host runtime when the calling thread's scope
// is on and a runtime was found; then sets `ran` (the threads that ran fn) and returns
// true (an exception from fn is rethrown here after the region ends).  Else returns
// false and does nothing.
bool host_openmp_run(int want, const std::function<void(ThreadCtx&)>& fn, int& ran);

}  // namespace fusedrnn
