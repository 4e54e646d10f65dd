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
std::atomic<int> g_num_threads{0};  // 0: not set yet, use available_cpus()

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

int get_num_threads() {
  const int n = g_num_threads.load(std::memory_order_relaxed);
  return n > 0 ? n : available_cpus();
}

void set_num_threads(int n) {
  if (n < 1)
    throw std::invalid_argument("set_num_threads: expected n >= 1, got " + std::to_string(n));
  g_num_threads.store(n, std::memory_order_relaxed);
}

class Team {
 public:
  // The region lock: taken by the thread that starts a region.
  std::mutex& region_mutex() { return region_mu_; }

  // Returns how many threads ran fn: the caller and every worker that finished it.
  int run(int n, const std::function<void(ThreadCtx&)>& fn) {
    grow(n - 1);
    fn_ = &fn;
    size_ = n;
    done_.store(0, std::memory_order_relaxed);
    bar_count_.store(0, std::memory_order_relaxed);
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
      fn(ctx);
    } catch (...) {
      err = std::current_exception();
    }
    // The region ends when its n - 1 workers have finished; fn_ stays valid till then.
    spin_wait([&] { return done_.load(std::memory_order_acquire) == n - 1; });
    fn_ = nullptr;
    if (err) std::rethrow_exception(err);
    if (error_) std::rethrow_exception(error_);
    return 1 + done_.load(std::memory_order_acquire);
  }

  void barrier() {
    const int sense = bar_sense_.load(std::memory_order_acquire);
    if (bar_count_.fetch_add(1, std::memory_order_acq_rel) == size_ - 1) {
      bar_count_.store(0, std::memory_order_relaxed);
      bar_sense_.store(sense ^ 1, std::memory_order_release);
      return;
    }
    spin_wait([&] { return bar_sense_.load(std::memory_order_acquire) != sense; });
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
      if (rank >= size) continue;
      ThreadCtx ctx;
      ctx.team_ = this;
      ctx.rank_ = rank;
      ctx.size_ = size;
      try {
        (*fn_)(ctx);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!error_) error_ = std::current_exception();
      }
      done_.fetch_add(1, std::memory_order_release);
    }
  }

  std::mutex region_mu_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::thread> workers_;
  std::atomic<uint64_t> job_{0};  // generation << 16 | region size
  const std::function<void(ThreadCtx&)>* fn_ = nullptr;
  int size_ = 1;
  std::atomic<int> done_{0};
  std::exception_ptr error_;
  alignas(64) std::atomic<int> bar_count_{0};
  alignas(64) std::atomic<int> bar_sense_{0};
};

void ThreadCtx::barrier() {
  if (size_ > 1) team_->barrier();
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

}  // namespace

void parallel(int n, const std::function<void(ThreadCtx&)>& fn) {
  int want = n < get_num_threads() ? n : get_num_threads();
  if (want > 4096) want = 4096;
  t_last_region_threads = 1;
  if (want <= 1) {
    ThreadCtx ctx;
    fn(ctx);
    return;
  }
  Team& t = team();
  std::unique_lock<std::mutex> lock(t.region_mutex(), std::try_to_lock);
  if (!lock.owns_lock()) {
    ThreadCtx ctx;  // busy: run alone rather than queue behind another caller
    fn(ctx);
    return;
  }
  t_last_region_threads = t.run(want, fn);
}

int last_region_threads() { return t_last_region_threads; }

}  // namespace fusedrnn
