#include "cpu/profile.h"

namespace fusedrnn {
namespace profile {

std::atomic<bool> g_enabled{false};

namespace {
std::atomic<int64_t> g_ns[kMaxRanks][kParts];
}

void add(int rank, Part part, int64_t ns) {
  const int r = rank < 0 ? 0 : rank >= kMaxRanks ? kMaxRanks - 1 : rank;
  g_ns[r][part].fetch_add(ns, std::memory_order_relaxed);
}

void set_enabled(bool on) { g_enabled.store(on, std::memory_order_relaxed); }

void reset() {
  for (auto& row : g_ns)
    for (auto& v : row) v.store(0, std::memory_order_relaxed);
}

void read(int64_t (*ns)[kParts], int ranks) {
  for (int r = 0; r < ranks && r < kMaxRanks; ++r)
    for (int p = 0; p < kParts; ++p) ns[r][p] = g_ns[r][p].load(std::memory_order_relaxed);
}

}  // namespace profile
}  // namespace fusedrnn
