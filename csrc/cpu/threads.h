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
// Contention: while the thread count is the default (set_num_threads never called), the
// team adapts to other processes taking CPUs.  A barrier wait far longer than the work
// before it (a worker descheduled mid-step) is a stall: at a step barrier
// (ctx.step_barrier(), once per time step) the region drops its highest rank for the
// rest of the call, and the next regions are capped at the threads that kept up; a
// later region now and then probes one thread more (exponential back-off while the
// probes stall).  A pinned count (set_num_threads, FUSEDRNN_NUM_THREADS) is used as
// given.  Whole panels move between threads, never part of a sum, so a shrink does not
// change a bit of the results.
//
// Compiled without ISA flags (plain C++): it is shared by every ISA's kernels.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

namespace fusedrnn {

class Team;

class ThreadCtx {
 public:
  int rank() const { return rank_; }
  int size() const { return size_; }
  // All `size()` threads of this region wait here until each has arrived.
  void barrier();
  // A barrier between two time steps, where the region may shrink (see "Contention"
  // above).  Returns false if this thread has been dropped: it must return from the
  // region's function at once, touching nothing more.  Otherwise size() may now be
  // smaller (ranks stay 0 .. size() - 1), so split the next step's work after it.
  bool step_barrier();

 private:
  friend class Team;
  Team* team_ = nullptr;
  int rank_ = 0, size_ = 1;
  int steps_ = 0;  // step barriers passed in this region (the tests' slow-worker hook)
};

// Threads that parallel kernels use (default: the CPUs this process may run on).  With
// the default count the team may run fewer under contention (see above); this still
// returns the default.
int get_num_threads();
// n >= 1; throws std::invalid_argument otherwise.  Pins the count: no adaptation.
void set_num_threads(int n);
// CPUs this process may run on (its affinity mask), at least 1.
int available_cpus();

// Runs fn on min(n, get_num_threads()) threads (at least 1) and returns when all have
// finished.  If the team is busy with a region started by another thread (say two
// Python threads calling kernels at once), the region runs on the calling thread
// alone.  fn must not throw past a barrier; an exception thrown by thread 0 is
// rethrown here after the others finish.
void parallel(int n, const std::function<void(ThreadCtx&)>& fn);

// Runs job(0) and job(1), two independent jobs of the same size (the two directions of
// a bidirectional layer), side by side: a region of min(n, get_num_threads()) threads,
// when that is even, is split into two halves and job(i) runs on half i's first thread,
// where get_num_threads() is the half's size and parallel() runs on the half's threads
// (a count given, not adapted: the contention policy judges the whole call as one
// region).  An odd count (or 1, or a busy team, or a call from inside a region) runs
// job(0) and then job(1), each with the threads parallel() gives it.  Results are those
// of the two jobs run one after the other, bit for bit (the kernels' results do not
// depend on their thread count).  An exception from a job is rethrown here after both
// halves finish.
void parallel_pair(int n, const std::function<void(int)>& job);

// Host OpenMP.  In a process where another library runs its operations on GNU OpenMP
// (torch's CPU builds), that runtime's idle threads poll for milliseconds after each
// operation and hold the cores a region started then would need.  While the calling
// thread's scope is on, parallel() (and so parallel_pair) runs its regions on that
// runtime's threads instead of the team's own workers: the same work split, the same
// results bit for bit, a count given (not adapted).  Linux only, a runtime already
// loaded (never loaded by fusedrnn itself); elsewhere, and in ThreadSanitizer builds,
// the scope changes nothing.  Returns the calling thread's previous scope.
// (csrc/cpu/host_openmp.cc has the mechanism; the fusedrnn.torch modules use it.)
bool set_host_openmp(bool on);
// Whether a runtime was found (resolved at the first call of either function).
bool host_openmp_available();
// Tests only: regions run on a host runtime so far; and, for a parallel(n) region run
// with the caller's scope as it is, each rank's omp_get_thread_num() (-1 with no runtime).
int64_t host_openmp_regions();
std::vector<int> host_openmp_probe(int n);

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

// Tests only: runs `regions` parallel(n, ...) regions while another thread keeps setting
// the thread count to 1, 2, ..., n + 1 in turn, and returns the largest region size seen
// (the contract: never above n).  The count set before the call is restored.
int largest_region_under_flips(int n, int regions);

// The contention policy's state (tests and diagnostics).
struct AdaptiveState {
  bool adaptive = false;        // the count is the default, so the team adapts
  int cap = 0;                  // the regions' current limit, 0 for none
  double probe_interval_ms = 0;  // wait before the next probe of cap + 1 threads
  int64_t stalls = 0;           // regions that stalled
  int64_t shrinks = 0;          // step barriers that dropped a thread
  int64_t probes = 0, probes_failed = 0;
  int last_region_final = 0;    // threads left at the end of the last team region
};
AdaptiveState adaptive_state();

// Tests only: back to the default (adaptive) count, `threads` of them (0: the CPUs), the
// policy's state cleared, probes after probe_ms, doubling up to probe_max_ms, and waits
// shorter than stall_min_ms (1 by default) never a stall.
void reset_adaptive(double probe_ms, double probe_max_ms, int threads, double stall_min_ms);
// Tests only: rank `rank` sleeps `ms` before its step-th step barrier (counted from 0) of
// the next region that has one: a descheduled worker, once.
void slow_worker(int rank, int step, double ms);

}  // namespace fusedrnn
