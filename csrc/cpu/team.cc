#include "cpu/team.h"

#include <chrono>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FUSEDRNN_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define FUSEDRNN_PAUSE() asm volatile("yield")
#else
#define FUSEDRNN_PAUSE() ((void)0)
#endif

namespace fusedrnn {

std::atomic<int64_t> g_stall_min_ns{kStallMinNs};
std::atomic<int> g_slow_rank{-1}, g_slow_step{0};
std::atomic<int64_t> g_slow_ns{0};
thread_local Team* t_group = nullptr;
thread_local int t_group_threads = 0;
thread_local bool t_in_region = false;

namespace {
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

RegionResult Team::run(int n, const std::function<void(ThreadCtx&)>& fn, bool adaptive) {
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

int Team::barrier(bool may_shrink) {
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

void Team::close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    const uint64_t gen = (job_.load(std::memory_order_relaxed) >> 16) + 1;
    job_.store(gen << 16, std::memory_order_release);  // size 0: closed
  }
  cv_.notify_all();
}

void Team::grow(int workers) {
  while (static_cast<int>(workers_.size()) < workers) {
    const int rank = static_cast<int>(workers_.size()) + 1;
    // The worker must wait for the next job after this moment, even if it starts
    // running only after that job was published.
    const uint64_t seen = job_.load(std::memory_order_acquire);
    workers_.emplace_back([this, rank, seen] { loop(rank, seen); });
    workers_.back().detach();  // the team lives as long as the process
  }
}

void Team::judge(int n, bool may_shrink) {
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

void Team::loop(int rank, uint64_t seen) {
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

}  // namespace fusedrnn
