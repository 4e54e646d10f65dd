// Where a kernel call's time goes: per-thread wall-clock totals of its parts (the input
// projection, the time loop's fused tiles, the strip copies, the barrier waits, the
// large products after the loop), for the breakdown in docs/benchmarks.md
// (tools/breakdown.py).  Off unless turned on (_core._profile(True)); when off, a part
// costs one relaxed atomic load.
//
// Compiled without ISA flags (plain C++), like cpu/threads.h: the ISA translation units
// share these counters.  A thread adds only to its own rank's row; ranks past
// kMaxRanks share the last row.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace fusedrnn {
namespace profile {

enum Part : int {
  kInputProjection,  // x W_ih^T + bias, before or inside the time loop
  kSteps,            // the time loop's tiles: h W_hh^T (or dg W_hh) and the fused cell
  kStrips,           // copying h_{t-1} (dg_{t+1}) into MR-row strips each step
  kBarrier,          // waiting at a barrier of the time loop (including step barriers)
  kDx,               // after the backward loop: dx = dg W_ih
  kDw,               // dW_ih, dW_hh (dW_hr), their operands' packing and the waits between
  kBias,             // the bias gradients (column sums)
  kParts
};
constexpr int kMaxRanks = 64;

extern std::atomic<bool> g_enabled;
inline bool enabled() { return g_enabled.load(std::memory_order_relaxed); }
void add(int rank, Part part, int64_t ns);
void set_enabled(bool on);
void reset();
// ns[rank][part] summed since the last reset, for ranks [0, ranks).
void read(int64_t (*ns)[kParts], int ranks);

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Adds the time from construction to destruction to (rank, part) when profiling is on.
class Scope {
 public:
  Scope(int rank, Part part) : rank_(rank), part_(part), t0_(enabled() ? now_ns() : -1) {}
  ~Scope() {
    if (t0_ >= 0) add(rank_, part_, now_ns() - t0_);
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  int rank_;
  Part part_;
  int64_t t0_;
};

}  // namespace profile
}  // namespace fusedrnn
