#include "cpu/threads.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FUSEDRNN_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define FUSEDRNN_PAUSE() asm volatile("yield")
#else
#define FUSEDRNN_PAUSE() ((void)0)
#endif

namespace fusedrnn {

int available_cpus() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  const unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? static_cast<int>(n) : 1;
}

namespace {
std::atomic<int> g_num_threads{0};  // 0: not set yet, use the default
std::atomic<int> g_default_threads{0};  // the default (tests: reset_adaptive); 0: the CPUs

// The contention policy (threads.h, "Contention").  A wait at a barrier or at the end of
// a region is a stall when it exceeds kStallMin and kStallFactor times the work the
// first thread to arrive did since the previous barrier (the work is split evenly, so
// on an idle machine the others arrive within a fraction of it).  A descheduled thread
// costs a scheduler time slice, milliseconds; shorter hiccups (an interrupt, a short
// process) are not worth a thread.  The first probe comes soon (a lone stall on a quiet
// machine costs little), later ones back off (see after_region).
constexpr int64_t kStallMinNs = 1000000;  // 1 ms (tests: reset_adaptive's stall_min_ms)
constexpr int64_t kStallFactor = 2;
std::atomic<int64_t> g_stall_min_ns{kStallMinNs};
constexpr double kProbeMs = 10, kProbeMaxMs = 2000;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t ms_to_ns(double ms) { return static_cast<int64_t>(ms * 1e6); }

bool is_stall(int64_t work_ns, int64_t wait_ns) {
  return wait_ns > g_stall_min_ns.load(std::memory_order_relaxed) &&
         wait_ns > kStallFactor * work_ns;
}

// Between regions a worker spins briefly, then keeps polling with sched_yield (it gives
// its CPU to any other thread that wants it, so it costs others almost nothing, but
// the worker stays runnable) for kIdleYield, and only then sleeps.  A sleeping worker
// can take milliseconds to wake on a virtual machine whose idle CPUs the host has
// descheduled (7 ms measured on this project's CI machines), which would swamp any
// region shorter than that.  A waiter at a barrier or at the end of a region spins
// for kWaitSpins pauses, then yields.
constexpr int kIdleSpins = 2000;
constexpr auto kIdleYield = std::chrono::milliseconds(100);
constexpr int kWaitSpins = 2000;

// Waits until done() is true: spinning at first, then yielding the CPU.
template <class F>
void spin_wait(F&& done) {
  for (int spins = 0; !done(); ++spins) {
    if (spins < kWaitSpins)
      FUSEDRNN_PAUSE();
    else
      std::this_thread::yield();
  }
}
}  // namespace

namespace {
// The half of a pair (parallel_pair) that this thread leads, while it runs its job
// outside that half's regions (its parallel() calls start them); else null.  And the
// half's size, get_num_threads() for the whole job; else 0.
thread_local Team* t_group = nullptr;
thread_local int t_group_threads = 0;
// This thread is running a region's function (any team's): a parallel() call from it
// runs alone, unless it leads a half (t_group).
thread_local bool t_in_region = false;

// Marks the current thread as inside a region for its lifetime (so nested parallel()
// calls run alone, a half's leader's too).
class InRegion {
 public:
  InRegion() : in_(t_in_region), group_(t_group) {
    t_in_region = true;
    t_group = nullptr;
  }
  ~InRegion() {
    t_in_region = in_;
    t_group = group_;
  }
  InRegion(const InRegion&) = delete;
  InRegion& operator=(const InRegion&) = delete;

 private:
  bool in_;
  Team* group_;
};
}  // namespace

int get_num_threads() {
  if (t_group_threads > 0) return t_group_threads;
  const int n = g_num_threads.load(std::memory_order_relaxed);
  if (n > 0) return n;
  const int d = g_default_threads.load(std::memory_order_relaxed);
  return d > 0 ? d : available_cpus();
}

void set_num_threads(int n) {
  if (n < 1)
    throw std::invalid_argument("set_num_threads: expected n >= 1, got " + std::to_string(n));
  g_num_threads.store(n, std::memory_order_relaxed);
}

// What Team::run reports about a region.
struct RegionResult {
  int ran = 1;       // threads that ran fn
  int final = 1;     // threads left at its end (fewer after a step barrier dropped some)
  int shrinks = 0;   // step barriers that dropped a thread
  bool stalled = false;
};

// A slow worker for the tests (reset_adaptive): rank (-1 once it has slept), step,
// nanoseconds.
std::atomic<int> g_slow_rank{-1}, g_slow_step{0};
std::atomic<int64_t> g_slow_ns{0};

class Team {
 public:
  // borrowed: a pair's half (parallel_pair), whose workers are threads of the process's
  // team that serve it (serve) until its leader closes it; else the process's team,
  // which starts its own workers as regions need them.
  explicit Team(bool borrowed = false) : borrowed_(borrowed) {}
  Team(const Team&) = delete;
  Team& operator=(const Team&) = delete;

  // The region lock: taken by the thread that starts a region.
  std::mutex& region_mutex() { return region_mu_; }

  // Runs fn on n threads; adaptive: time the waits, and let step barriers shrink the
  // region (the default thread count).
  RegionResult run(int n, const std::function<void(ThreadCtx&)>& fn, bool adaptive) {
    if (!borrowed_) grow(n - 1);
    fn_ = &fn;
    done_.store(0, std::memory_order_relaxed);
    bar_count_.store(0, std::memory_order_relaxed);
    active_.store(n, std::memory_order_relaxed);
    adaptive_ = adaptive;
    stalled_.store(false, std::memory_order_relaxed);
    shrinks_.store(0, std::memory_order_relaxed);
    if (adaptive) release_ns_.store(now_ns(), std::memory_order_relaxed);
    error_ = nullptr;
    {
      // The generation and the region's size travel in one word, so a worker never
      // pairs one region's generation with another's size.
      std::lock_guard<std::mutex> lock(mu_);
      const uint64_t gen = (job_.load(std::memory_order_relaxed) >> 16) + 1;
      job_.store(gen << 16 | static_cast<uint64_t>(n), std::memory_order_release);
    }
    cv_.notify_all();
    ThreadCtx ctx;
    ctx.team_ = this;
    ctx.rank_ = 0;
    ctx.size_ = n;
    std::exception_ptr err;
    try {
      InRegion in;
      fn(ctx);
    } catch (...) {
      err = std::current_exception();
    }
    // The region ends when its n - 1 workers have finished (dropped ones included);
    // fn_ stays valid till then.  A long wait here is a stall too, for the next regions.
    const int64_t t0 = adaptive ? now_ns() : 0;
    spin_wait([&] { return done_.load(std::memory_order_acquire) == n - 1; });
    RegionResult r;
    if (adaptive) {
      const int64_t t1 = now_ns();
      if (is_stall(t0 - release_ns_.load(std::memory_order_relaxed), t1 - t0))
        stalled_.store(true, std::memory_order_relaxed);
    }
    fn_ = nullptr;
    if (err) std::rethrow_exception(err);
    if (error_) std::rethrow_exception(error_);
    r.ran = 1 + done_.load(std::memory_order_acquire);
    r.final = active_.load(std::memory_order_relaxed);
    r.stalled = stalled_.load(std::memory_order_relaxed);
    r.shrinks = shrinks_.load(std::memory_order_relaxed);
    return r;
  }

  // The region's barrier; may_shrink: a step barrier (ThreadCtx::step_barrier), where a
  // stall drops the highest rank.  Returns the region's size after it.
  int barrier(bool may_shrink) {
    const int sense = bar_sense_.load(std::memory_order_acquire);
    const int n = active_.load(std::memory_order_relaxed);  // fixed until this releases
    const int ticket = bar_count_.fetch_add(1, std::memory_order_acq_rel);
    if (adaptive_ && ticket == 0) first_ns_.store(now_ns(), std::memory_order_relaxed);
    if (ticket == n - 1) {
      if (adaptive_) judge(n, may_shrink);
      bar_count_.store(0, std::memory_order_relaxed);
      bar_sense_.store(sense ^ 1, std::memory_order_release);
    } else {
      spin_wait([&] { return bar_sense_.load(std::memory_order_acquire) != sense; });
    }
    return active_.load(std::memory_order_relaxed);
  }

  // A borrowed team's worker `rank` (1 .. size - 1) runs its regions until close().
  void serve(int rank) { loop(rank, 0); }
  // Ends serve() on every worker of a borrowed team (after its last region).
  void close() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      const uint64_t gen = (job_.load(std::memory_order_relaxed) >> 16) + 1;
      job_.store(gen << 16, std::memory_order_release);  // size 0: closed
    }
    cv_.notify_all();
  }

 private:
  void grow(int workers) {
    while (static_cast<int>(workers_.size()) < workers) {
      const int rank = static_cast<int>(workers_.size()) + 1;
      // The worker must wait for the next job after this moment, even if it starts
      // running only after that job was published.
      const uint64_t seen = job_.load(std::memory_order_acquire);
      workers_.emplace_back([this, rank, seen] { loop(rank, seen); });
      workers_.back().detach();  // the team lives as long as the process
    }
  }

  // The last thread to arrive at a barrier: was the wait of the first one a stall?
  // (first_ns_ older than the last release: the first arriver has not written it yet, so
  // no judgement this time.)
  void judge(int n, bool may_shrink) {
    const int64_t now = now_ns(), first = first_ns_.load(std::memory_order_relaxed);
    const int64_t rel = release_ns_.load(std::memory_order_relaxed);
    if (first >= rel && is_stall(first - rel, now - first)) {
      stalled_.store(true, std::memory_order_relaxed);
      if (may_shrink && n > 1) {
        active_.store(n - 1, std::memory_order_relaxed);  // published by the release
        shrinks_.fetch_add(1, std::memory_order_relaxed);
      }
    }
    release_ns_.store(now_ns(), std::memory_order_relaxed);
  }

  void loop(int rank, uint64_t seen) {
    for (;;) {
      int spins = 0;
      uint64_t job;
      while ((job = job_.load(std::memory_order_acquire)) == seen && ++spins < kIdleSpins)
        FUSEDRNN_PAUSE();
      if (job == seen) {
        const auto until = std::chrono::steady_clock::now() + kIdleYield;
        do {
          std::this_thread::yield();
          job = job_.load(std::memory_order_acquire);
        } while (job == seen && ((++spins & 63) != 0 || std::chrono::steady_clock::now() < until));
      }
      if (job == seen) {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return job_.load(std::memory_order_acquire) != seen; });
        job = job_.load(std::memory_order_acquire);
      }
      seen = job;
      const int size = static_cast<int>(job & 0xffff);
      if (size == 0) return;  // a borrowed team closed
      if (rank >= size) continue;
      ThreadCtx ctx;
      ctx.team_ = this;
      ctx.rank_ = rank;
      ctx.size_ = size;
      try {
        InRegion in;
        (*fn_)(ctx);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!error_) error_ = std::current_exception();
      }
      done_.fetch_add(1, std::memory_order_release);
    }
  }

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

void ThreadCtx::barrier() {
  if (size_ > 1) team_->barrier(false);
}

bool ThreadCtx::step_barrier() {
  if (size_ <= 1) return true;
  int slow = rank_;  // the tests' slow worker, once
  if (steps_ == g_slow_step.load(std::memory_order_relaxed) &&
      g_slow_rank.compare_exchange_strong(slow, -1, std::memory_order_relaxed))
    std::this_thread::sleep_for(std::chrono::nanoseconds(g_slow_ns.load(std::memory_order_relaxed)));
  ++steps_;
  size_ = team_->barrier(true);
  return rank_ < size_;
}

namespace {

// The process's team.  After fork() the child has none of the parent's threads, so
// the child forgets the parent's team (deliberately leaked) and builds its own.
Team* g_team = nullptr;
std::mutex g_team_mu;

#if defined(__linux__)
void forget_team_after_fork() {
  g_team = nullptr;
  new (&g_team_mu) std::mutex();
}
struct AtFork {
  AtFork() { pthread_atfork(nullptr, nullptr, &forget_team_after_fork); }
} g_atfork;
#endif

thread_local int t_last_region_threads = 0;

Team& team() {
  std::lock_guard<std::mutex> lock(g_team_mu);
  if (!g_team) g_team = new Team();  // never destroyed: workers may outlive static teardown
  return *g_team;
}

// The policy's state across regions; read and written only under the region lock
// (parallel() holds it), except by adaptive_state() and reset_adaptive(), which take it.
struct Policy {
  int cap = 0;  // 0: none
  int64_t next_probe_ns = 0;
  double probe_ms = kProbeMs, probe_base_ms = kProbeMs, probe_max_ms = kProbeMaxMs;
  int64_t stalls = 0, shrinks = 0, probes = 0, probes_failed = 0;
  int64_t last_stall_ns = 0;
  int last_final = 0;
};
Policy g_policy;

// After a region of n threads (probe: n was cap + 1).  A stall caps the next regions at
// the threads that kept up and sets the wait before the next probe: doubled (up to
// probe_max_ms) when the previous stall was recent (within 10 waits), else back to
// probe_base_ms.  A probe that did not stall lifts the cap by one.  So under lasting
// contention the probes thin out to one per probe_max_ms, and after a lone stall on a
// quiet machine the team is whole again within probe_base_ms.
void after_region(Policy& p, int n, bool probe, const RegionResult& r) {
  const int64_t now = now_ns();
  p.last_final = r.final;
  p.shrinks += r.shrinks;
  if (probe) ++p.probes;
  if (r.stalled) {
    ++p.stalls;
    if (probe) ++p.probes_failed;
    const int keep = std::max(1, std::min(r.final, n - 1));
    p.cap = p.cap > 0 ? std::min(p.cap, keep) : keep;
    const bool recent = p.stalls > 1 && now - p.last_stall_ns < 10 * ms_to_ns(p.probe_ms);
    p.probe_ms = recent ? std::min(p.probe_max_ms, 2 * p.probe_ms) : p.probe_base_ms;
    p.last_stall_ns = now;
    p.next_probe_ns = now + ms_to_ns(p.probe_ms);
  } else if (probe) {
    p.cap = n >= get_num_threads() ? 0 : n;
    p.next_probe_ns = now + ms_to_ns(p.probe_ms);
  }
}

}  // namespace

void parallel(int n, const std::function<void(ThreadCtx&)>& fn) {
  // The count read once (another thread may set it): never more than n, which callers
  // size their per-thread buffers for.
  int want = std::min(n, get_num_threads());
  if (want > 4096) want = 4096;
  t_last_region_threads = 1;
  if (want <= 1 || (t_in_region && !t_group)) {
    ThreadCtx ctx;  // one thread, or nested in a region outside a pair's half: alone
    fn(ctx);
    return;
  }
  if (t_group) {  // a pair's half: its own threads, a count given (not adapted)
    t_last_region_threads = t_group->run(want, fn, false).ran;
    return;
  }
  Team& t = team();
  std::unique_lock<std::mutex> lock(t.region_mutex(), std::try_to_lock);
  if (!lock.owns_lock()) {
    ThreadCtx ctx;  // busy: run alone rather than queue behind another caller
    fn(ctx);
    return;
  }
  const bool adaptive = g_num_threads.load(std::memory_order_relaxed) == 0;
  Policy& p = g_policy;
  bool probe = false;
  if (adaptive && p.cap > 0 && want > p.cap) {
    probe = now_ns() >= p.next_probe_ns;
    want = probe ? p.cap + 1 : p.cap;
  }
  if (want <= 1) {
    lock.unlock();
    ThreadCtx ctx;
    fn(ctx);
    return;
  }
  const RegionResult r = t.run(want, fn, adaptive);
  t_last_region_threads = r.ran;
  if (adaptive) after_region(p, want, probe, r);
}

namespace {
// The leader of a pair's half while it runs its job: its parallel() calls go to the half,
// and the half is closed when the job ends (returns or throws).
class Leading {
 public:
  Leading(Team& group, int threads) : group_(group) {
    t_group = &group;
    t_group_threads = threads;
  }
  ~Leading() {
    t_group = nullptr;
    t_group_threads = 0;
    group_.close();
  }
  Leading(const Leading&) = delete;
  Leading& operator=(const Leading&) = delete;

 private:
  Team& group_;
};
}  // namespace

void parallel_pair(int n, const std::function<void(int)>& job) {
  bool paired = false;  // written by rank 0, the calling thread
  const int want = std::min(n, get_num_threads());
  if (!t_group && !t_in_region && want >= 2 && want % 2 == 0) {
    Team halves[2] = {Team(true), Team(true)};
    parallel(n, [&](ThreadCtx& ctx) {
      const int s = ctx.size();  // the same on every rank: no step barrier here
      if (s % 2 != 0) return;  // 1 (the team was busy) or odd: one job after the other
      const int half = s / 2, g = ctx.rank() / half, local = ctx.rank() % half;
      Team& group = halves[g];
      if (local != 0) {
        group.serve(local);
        return;
      }
      if (g == 0) paired = true;
      Leading lead(group, half);
      job(g);
    });
  }
  if (!paired) {
    job(0);
    job(1);
  }
}

int last_region_threads() { return t_last_region_threads; }

int largest_region_under_flips(int n, int regions) {
  if (n < 1 || regions < 0)
    throw std::invalid_argument("largest_region_under_flips: expected n >= 1, regions >= 0");
  const int saved = g_num_threads.load(std::memory_order_relaxed);
  std::atomic<bool> stop{false};
  std::thread flipper([&] {
    for (int k = 0; !stop.load(std::memory_order_relaxed); ++k) set_num_threads(1 + k % (n + 1));
  });
  std::atomic<int> largest{0};
  for (int i = 0; i < regions; ++i)
    parallel(n, [&](ThreadCtx& ctx) {
      int seen = largest.load(std::memory_order_relaxed);
      while (ctx.size() > seen && !largest.compare_exchange_weak(seen, ctx.size())) continue;
    });
  stop.store(true, std::memory_order_relaxed);
  flipper.join();
  g_num_threads.store(saved, std::memory_order_relaxed);
  return largest.load();
}

AdaptiveState adaptive_state() {
  Team& t = team();
  std::lock_guard<std::mutex> lock(t.region_mutex());
  const Policy& p = g_policy;
  AdaptiveState s;
  s.adaptive = g_num_threads.load(std::memory_order_relaxed) == 0;
  s.cap = p.cap;
  s.probe_interval_ms = p.probe_ms;
  s.stalls = p.stalls;
  s.shrinks = p.shrinks;
  s.probes = p.probes;
  s.probes_failed = p.probes_failed;
  s.last_region_final = p.last_final;
  return s;
}

void reset_adaptive(double probe_ms, double probe_max_ms, int threads, double stall_min_ms) {
  if (!(probe_ms >= 0) || !(probe_max_ms >= probe_ms) || threads < 0 || !(stall_min_ms >= 0))
    throw std::invalid_argument("reset_adaptive: expected 0 <= probe_ms <= probe_max_ms, "
                                "threads >= 0 and stall_min_ms >= 0");
  Team& t = team();
  std::lock_guard<std::mutex> lock(t.region_mutex());
  g_num_threads.store(0, std::memory_order_relaxed);
  g_default_threads.store(threads, std::memory_order_relaxed);
  g_policy = Policy{};
  g_policy.probe_ms = g_policy.probe_base_ms = probe_ms;
  g_policy.probe_max_ms = probe_max_ms;
  g_stall_min_ns.store(ms_to_ns(stall_min_ms), std::memory_order_relaxed);
}

void slow_worker(int rank, int step, double ms) {
  if (step < 0 || !(ms >= 0))
    throw std::invalid_argument("slow_worker: expected step >= 0 and ms >= 0");
  g_slow_step.store(step, std::memory_order_relaxed);
  g_slow_ns.store(static_cast<int64_t>(ms * 1e6), std::memory_order_relaxed);
  g_slow_rank.store(rank, std::memory_order_relaxed);
}

}  // namespace fusedrnn
