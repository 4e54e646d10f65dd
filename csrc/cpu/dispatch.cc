// Chooses the kernel table once per process: the best ISA that is both compiled into
// this build and usable on this CPU, unless FUSEDRNN_ISA forces a lower one.
//
// This build compiles the portable `generic` path only; the SIMD paths slot in here
// as further entries of kIsas (best first), each with its own CPU check.
#include "cpu/dispatch.h"

#include <cstdlib>
#include <stdexcept>

namespace fusedrnn {

namespace generic {
extern const KernelTable<float> table_f32;
extern const KernelTable<double> table_f64;
}  // namespace generic

namespace {

struct IsaEntry {
  const char* name;
  bool (*usable)();
  const KernelTable<float>* f32;
  const KernelTable<double>* f64;
};

bool always() { return true; }

// Best first.
const IsaEntry kIsas[] = {
    {"generic", &always, &generic::table_f32, &generic::table_f64},
};

const char* const kKnownIsas[] = {"avx512", "avx2", "generic"};

struct Selection {
  CpuInfo info;
  const IsaEntry* entry = nullptr;
};

Selection select() {
  Selection s;
  for (const auto& e : kIsas) {
    s.info.compiled.push_back(e.name);
    if (e.usable()) s.info.available.push_back(e.name);
  }
  const char* forced = std::getenv("FUSEDRNN_ISA");
  std::string want = forced ? forced : "";
  if (want.empty()) {
    for (const auto& e : kIsas)
      if (e.usable()) {
        s.entry = &e;
        break;
      }
  } else {
    bool known = false;
    for (const char* k : kKnownIsas) known = known || want == k;
    if (!known)
      throw std::runtime_error("FUSEDRNN_ISA: expected one of avx512, avx2, generic, got '" +
                               want + "'");
    for (const auto& e : kIsas)
      if (want == e.name) {
        if (!e.usable())
          throw std::runtime_error("FUSEDRNN_ISA=" + want + ": this CPU cannot run it");
        s.entry = &e;
      }
    if (!s.entry)
      throw std::runtime_error("FUSEDRNN_ISA=" + want +
                               ": not compiled into this build of fusedrnn");
  }
  s.info.isa = s.entry->name;
  return s;
}

const Selection& selection() {
  static const Selection s = select();
  return s;
}

}  // namespace

const CpuInfo& cpu_info() { return selection().info; }
const KernelTable<float>& kernels_f32() { return *selection().entry->f32; }
const KernelTable<double>& kernels_f64() { return *selection().entry->f64; }

}  // namespace fusedrnn
