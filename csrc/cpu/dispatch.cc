// Chooses the kernel table once per process: the best ISA that is both compiled into
// this build and usable on this CPU, unless FUSEDRNN_ISA forces one.
//
// "Usable" means the CPU has the instructions (CPUID) and the operating system saves
// the registers they use (XCR0, read with XGETBV): a CPU with AVX-512 under an OS or
// hypervisor that does not enable the zmm state must not run AVX-512 code.
//
// A test build with FUSEDRNN_EMULATE_AVX512 (CMake option) compiles the avx512 kernels
// with AVX2 instructions only (SIMDe), so there "avx512" runs wherever avx2 does, and
// cpu_info().emulated lists it.
#include "cpu/dispatch.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>

#if defined(FUSEDRNN_HAVE_X86_KERNELS)
#include <cpuid.h>
#endif

namespace fusedrnn {

#define FUSEDRNN_DECLARE_TABLES(isa)             \
  namespace isa {                                \
  extern const KernelTable<float> table_f32;     \
  extern const KernelTable<double> table_f64;    \
  extern const QuantTable quant_table;           \
  }
FUSEDRNN_DECLARE_TABLES(generic)
#if defined(FUSEDRNN_HAVE_X86_KERNELS)
FUSEDRNN_DECLARE_TABLES(avx2)
FUSEDRNN_DECLARE_TABLES(avx512)
#endif
#undef FUSEDRNN_DECLARE_TABLES

namespace {

#if defined(FUSEDRNN_HAVE_X86_KERNELS)
struct X86Features {
  bool avx2 = false, avx512 = false;
};

uint64_t xgetbv0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

X86Features detect() {
  X86Features f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12);
  const bool f16c = c & (1u << 29);  // the quantized kernels' float16 conversions
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = xgetbv0();
  const bool ymm_state = (xcr0 & 0x6) == 0x6;     // SSE and AVX state
  const bool zmm_state = (xcr0 & 0xe6) == 0xe6;   // + opmask, ZMM_Hi256, Hi16_ZMM
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  const bool avx2 = b & (1u << 5);
  const bool avx512f = b & (1u << 16), avx512dq = b & (1u << 17);
  const bool avx512bw = b & (1u << 30), avx512vl = b & (1u << 31);
  f.avx2 = ymm_state && avx2 && fma && f16c;
  f.avx512 = f.avx2 && zmm_state && avx512f && avx512dq && avx512bw && avx512vl;
  return f;
}

const X86Features& features() {
  static const X86Features f = detect();
  return f;
}

bool has_avx2() { return features().avx2; }
#if defined(FUSEDRNN_EMULATE_AVX512)
bool has_avx512() { return features().avx2; }
#else
bool has_avx512() { return features().avx512; }
#endif
#endif

bool always() { return true; }

#if defined(FUSEDRNN_EMULATE_AVX512)
constexpr bool kEmulatedAvx512 = true;
#else
constexpr bool kEmulatedAvx512 = false;
#endif

struct IsaEntry {
  const char* name;
  bool emulated;
  bool (*usable)();
  const KernelTable<float>* f32;
  const KernelTable<double>* f64;
  const QuantTable* quant;
};

// Best first.
const IsaEntry kIsas[] = {
#if defined(FUSEDRNN_HAVE_X86_KERNELS)
    {"avx512", kEmulatedAvx512, &has_avx512, &avx512::table_f32, &avx512::table_f64,
     &avx512::quant_table},
    {"avx2", false, &has_avx2, &avx2::table_f32, &avx2::table_f64,
     &avx2::quant_table},
#endif
    {"generic", false, &always, &generic::table_f32, &generic::table_f64,
     &generic::quant_table},
};

const char* const kKnownIsas[] = {"avx512", "avx2", "generic"};

// The entry for `want` (a known name), or an exception saying why it cannot run.
const IsaEntry& entry_for(const std::string& want, const char* what) {
  bool known = false;
  for (const char* k : kKnownIsas) known = known || want == k;
  if (!known)
    throw std::runtime_error(std::string(what) + ": expected one of avx512, avx2, generic, got '" +
                             want + "'");
  for (const auto& e : kIsas)
    if (want == e.name) {
      if (!e.usable())
        throw std::runtime_error(std::string(what) + "=" + want + ": this CPU cannot run it");
      return e;
    }
  throw std::runtime_error(std::string(what) + "=" + want +
                           ": not compiled into this build of fusedrnn");
}

struct Selection {
  CpuInfo info;
  std::atomic<const IsaEntry*> entry{nullptr};
};

Selection* select() {
  auto* s = new Selection();  // lives for the process
  for (const auto& e : kIsas) {
    s->info.compiled.push_back(e.name);
    if (e.emulated) s->info.emulated.push_back(e.name);
    if (e.usable()) s->info.available.push_back(e.name);
  }
  const char* forced = std::getenv("FUSEDRNN_ISA");
  const std::string want = forced ? forced : "";
  const IsaEntry* chosen = nullptr;
  if (want.empty()) {
    for (const auto& e : kIsas)
      if (e.usable()) {
        chosen = &e;
        break;
      }
  } else {
    chosen = &entry_for(want, "FUSEDRNN_ISA");
  }
  s->entry.store(chosen);
  return s;
}

Selection& selection() {
  static Selection* s = select();
  return *s;
}

}  // namespace

CpuInfo cpu_info() {
  Selection& s = selection();
  CpuInfo info = s.info;
  info.isa = s.entry.load()->name;
  return info;
}

void use_isa(const std::string& name) { selection().entry.store(&entry_for(name, "isa")); }

const KernelTable<float>& kernels_f32() { return *selection().entry.load()->f32; }
const KernelTable<double>& kernels_f64() { return *selection().entry.load()->f64; }
const QuantTable& quant_kernels() { return *selection().entry.load()->quant; }

}  // namespace fusedrnn
