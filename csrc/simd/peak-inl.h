// This CPU's float32 FMA peak, measured: a loop of independent FMAs on registers only
// (no memory traffic), so its rate is what the FMA units can do on one thread with this
// ISA's vectors.  The benchmark reports kernels as a fraction of it.
//
// Assumes nothing about memory (it touches none but a small stack array).
#pragma once

#include <chrono>
#include <cstdint>

#include "simd/vec.h"

namespace fusedrnn {
namespace FUSEDRNN_ISA {

// GFLOP/s of float32 FMAs (2 FLOPs per lane) over about `seconds` of wall time; the
// best of several short rounds, so a preempted round does not count.
inline double fma_peak_gflops(double seconds) {
  using V = Vec<float>;
  constexpr int kChains = 12;  // > FMA latency x FMA units: the units, not latency, bind
  constexpr int64_t kInner = 1 << 14;
  V acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = V::set1(1.0f + c * 1e-3f);
  const V a = V::set1(0.999999f), b = V::set1(1e-7f);
  double best = 0;
  const auto t_end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  do {
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < kInner; ++i)
      for (int c = 0; c < kChains; ++c) acc[c] = fma(acc[c], a, b);
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double gflops = 2.0 * V::width * kChains * kInner / dt * 1e-9;
    if (gflops > best) best = gflops;
  } while (std::chrono::steady_clock::now() < t_end);
  // Keep the result alive so the loop is not optimised away.
  float sink[V::width];
  V s = acc[0];
  for (int c = 1; c < kChains; ++c) s = s + acc[c];
  s.store(sink);
  if (sink[0] == 12345.f) best += 1e-30;
  return best;
}

}  // namespace FUSEDRNN_ISA
}  // namespace fusedrnn
