// The persistent thread team that runs every parallel kernel.
//
// One team per process, created lazily and grown on demand; the calling thread is
// thread 0 and takes part.  A parallel region runs fn(ctx) on ctx.size() threads;
// inside it ctx.barrier() synchronises them (a spinning, sense-reversing barrier:
// the sequence kernels call it once per time step, so it must cost well under a
// microsecond).  Between regions the workers spin briefly, then sleep.
//
// Determinism: kernels split work statically by ctx.rank() and ctx.size() so that
// every output element is computed by one thread in an order fixed by the problem
// sizes alone; results are then bit-identical for any thread count.
//
// Compiled without ISA flags (plain C++): it is shared by every ISA's kernels.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>

namespace fusedrnn {

class Team;

class ThreadCtx {
 public:
  int rank() const { return rank_; }
  int size() const { return size_; }
  // All `size()` threads of this region wait here until each has arrived.
  void barrier();

 private:
  friend class Team;
  Team* team_ = nullptr;
  int rank_ = 0, size_ = 1;
};

// Threads that parallel kernels use (default: the CPUs this process may run on).
int get_num_threads();
// n >= 1; throws std::invalid_argument otherwise.
void set_num_threads(int n);
// CPUs this process may run on (its affinity mask), at least 1.
int available_cpus();

// Runs fn on min(n, get_num_threads()) threads (at least 1) and returns when all have
// finished.  If the team is busy with a region started by another thread (say two
// Python threads calling kernels at once), the region runs on the calling thread
// alone.  fn must not throw past a barrier; an exception thrown by thread 0 is
// rethrown here after the others finish.
void parallel(int n, const std::function<void(ThreadCtx&)>& fn);

// [begin, end) of `n` items for thread `rank` of `size`, in contiguous blocks: the
// static split every kernel uses (integer code only, so the copies that ISA-flagged
// translation units compile are all the same instructions).
inline void split(int64_t n, int rank, int size, int64_t& begin, int64_t& end) {
  const int64_t base = n / size, extra = n % size;
  begin = rank * base + std::min<int64_t>(rank, extra);
  end = begin + base + (rank < extra ? 1 : 0);
}

// Tests only: how many threads ran fn in the last parallel() region started by the
// calling thread (0 before its first).
int last_region_threads();

}  // namespace fusedrnn
