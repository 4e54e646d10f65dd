#include "cpu/threads.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#endif

#include "cpu/host_openmp.h"
#include "cpu/team.h"

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

// The contention policy (threads.h, "Contention"), acting on the stalls that the team
// reports (team.h): the first probe comes soon (a lone stall on a quiet machine costs
// little), later ones back off (see after_region).
constexpr double kProbeMs = 10, kProbeMaxMs = 2000;
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
  int ran = 1;
  if (host_openmp_run(want, fn, ran)) {  // the host runtime's threads (drop-in scope)
    t_last_region_threads = ran;
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
