// The thread team itself, internal to csrc/cpu (threads.cc drives it through threads.h's
// functions): a region's start and end, its barrier with the stall judgement, the
// workers' loop, and a borrowed team (the half of a pair, parallel_pair).  The stall rule
// is here; the contention policy that acts on stalls (caps, probes) is in threads.cc.
//
// Compiled without ISA flags (plain C++), as threads.cc.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "cpu/threads.h"

namespace fusedrnn {

// A wait at a barrier or at the end of a region is a stall when it exceeds
// g_stall_min_ns (kStallMinNs unless the tests' reset_adaptive changed it) and
// kStallFactor times the work the first thread to arrive did since the previous barrier
// (the work is split evenly, so on an idle machine the others arrive within a fraction of
// it).  A descheduled thread costs a scheduler time slice, milliseconds; shorter hiccups
// (an interrupt, a short process) are not worth a thread.
constexpr int64_t kStallMinNs = 1000000;  // 1 ms
constexpr int64_t kStallFactor = 2;
extern std::atomic<int64_t> g_stall_min_ns;

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline int64_t ms_to_ns(double ms) { return static_cast<int64_t>(ms * 1e6); }

inline bool is_stall(int64_t work_ns, int64_t wait_ns) {
  return wait_ns > g_stall_min_ns.load(std::memory_order_relaxed) &&
         wait_ns > kStallFactor * work_ns;
}

// A slow worker for the tests (slow_worker): rank (-1 once it has slept), step,
// nanoseconds.
extern std::atomic<int> g_slow_rank, g_slow_step;
extern std::atomic<int64_t> g_slow_ns;

// The half of a pair (parallel_pair) that this thread leads, while it runs its job
// outside that half's regions (its parallel() calls start them); else null.  And the
// half's size, get_num_threads() for the whole job; else 0.
extern thread_local Team* t_group;
extern thread_local int t_group_threads;
// This thread is running a region's function (any team's): a parallel() call from it
// runs alone, unless it leads a half (t_group).
extern thread_local bool t_in_region;

// What Team::run reports about a region.
struct RegionResult {
  int ran = 1;       // threads that ran fn
  int final = 1;     // threads left at its end (fewer after a step barrier dropped some)
  int shrinks = 0;   // step barriers that dropped a thread
  bool stalled = false;
};

class Team {
 public:
  // borrowed: a pair's half (parallel_pair), whose workers are threads of the process's
  // team, or a region on a host OpenMP runtime (host_openmp.cc), whose workers are that
  // runtime's threads: they serve it (serve) until its leader closes it.  Else the
  // process's team, which starts its own workers as regions need them.
  explicit Team(bool borrowed = false) : borrowed_(borrowed) {}
  Team(const Team&) = delete;
  Team& operator=(const Team&) = delete;

  // The region lock: taken by the thread that starts a region.
  std::mutex& region_mutex() { return region_mu_; }

  // Runs fn on n threads; adaptive: time the waits, and let step barriers shrink the
  // region (the default thread count).
  RegionResult run(int n, const std::function<void(ThreadCtx&)>& fn, bool adaptive);

  // The region's barrier; may_shrink: a step barrier (ThreadCtx::step_barrier), where a
  // stall drops the highest rank.  Returns the region's size after it.
  int barrier(bool may_shrink);

  // A borrowed team's worker `rank` (1 .. size - 1) runs its regions until close().
  void serve(int rank) { loop(rank, 0); }
  // Ends serve() on every worker of a borrowed team (after its last region).
  void close();

 private:
  void grow(int workers);
  // The last thread to arrive at a barrier: was the wait of the first one a stall?
  // (first_ns_ older than the last release: the first arriver has not written it yet, so
  // no judgement this time.)
  void judge(int n, bool may_shrink);
  // A worker's life: wait for a job (spin, yield, sleep), run its rank's part, repeat.
  void loop(int rank, uint64_t seen);

  const bool borrowed_;
  std::mutex region_mu_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::thread> workers_;
  std::atomic<uint64_t> job_{0};  // generation << 16 | region size
  const std::function<void(ThreadCtx&)>* fn_ = nullptr;
  std::atomic<int> done_{0};
  std::exception_ptr error_;
  bool adaptive_ = false;  // written before the job is published, read-only in the region
  std::atomic<bool> stalled_{false};
  std::atomic<int> shrinks_{0};
  alignas(64) std::atomic<int> bar_count_{0};
  std::atomic<int> active_{1};  // threads in the region (step barriers may lower it)
  alignas(64) std::atomic<int> bar_sense_{0};
  alignas(64) std::atomic<int64_t> first_ns_{0};  // the first arrival at the open barrier
  std::atomic<int64_t> release_ns_{0};            // the last release (or region start)
};

}  // namespace fusedrnn
