// Regions on a host OpenMP runtime's threads (threads.h, "Host OpenMP").
//
// torch's CPU builds run their operations on GNU OpenMP (libgomp), whose idle threads
// poll for milliseconds after each operation (GOMP_SPINCOUNT, 300,000 polls by default)
// before they sleep.  A fusedrnn region started in that window competes with them for
// the cores: on a machine where torch uses every core, the team's workers then get half
// a core each and every step barrier waits for them.  While the calling thread's scope
// is on, parallel() therefore hands its region to that runtime instead: GOMP_parallel
// runs a trampoline on the runtime's threads, whose thread 0 (the caller) leads a
// borrowed Team (team.h) and whose others serve it, so the polling threads pick the
// region up at once instead of holding the cores.  The fusedrnn.torch modules turn the
// scope on around their kernel calls, where torch's operations have just run; outside
// it the team's own workers are used (a sleeping OpenMP thread can take milliseconds to
// wake on a virtual machine, which the team's workers avoid by polling for 100 ms).
//
// Not in a child of fork() (below).  Assumes: Linux with dlfcn/dl_iterate_phdr; a loaded
// object whose file name contains "libgomp" exports GOMP_parallel, omp_get_thread_num
// and omp_get_num_threads (any GNU OpenMP since GCC 4.9).  Elsewhere, without such a
// runtime, or in a ThreadSanitizer build (which cannot see the runtime's
// synchronisation), the scope changes nothing.
//
// Compiled without ISA flags (plain C++), as threads.cc.
#include "cpu/host_openmp.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <string>

#include "cpu/team.h"

#if defined(__linux__)
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#endif

#if defined(__SANITIZE_THREAD__)
#define FUSEDRNN_NO_HOST_OPENMP 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FUSEDRNN_NO_HOST_OPENMP 1
#endif
#endif

namespace fusedrnn {

namespace {
using GompParallel = void (*)(void (*)(void*), void*, unsigned, unsigned);
using OmpInt = int (*)();

struct Runtime {
  GompParallel parallel = nullptr;
  OmpInt thread_num = nullptr;
  OmpInt num_threads = nullptr;
  bool ok() const { return parallel && thread_num && num_threads; }
};

Runtime g_runtime;  // resolved once, at the first scope turned on
std::once_flag g_resolve;
std::atomic<int64_t> g_regions{0};
thread_local bool t_scope = false;

// GNU OpenMP is not fork-safe: in a child of fork() its pool still counts the parent's
// threads, and a region of more than one thread waits for them forever (torch's own
// operations too, unless the child sets torch.set_num_threads(1), as DataLoader workers
// do).  So a child never uses the host runtime: its regions go to the team, which the
// child starts afresh (threads.cc).
std::atomic<bool> g_forked{false};
#if defined(__linux__)
struct AtFork {
  AtFork() { pthread_atfork(nullptr, nullptr, [] { g_forked.store(true); }); }
} g_atfork;
#endif

#if defined(__linux__) && !defined(FUSEDRNN_NO_HOST_OPENMP)
int find_gomp(struct dl_phdr_info* info, size_t, void* out) {
  const char* name = info->dlpi_name;
  if (!name || std::string(name).find("libgomp") == std::string::npos) return 0;
  void* lib = dlopen(name, RTLD_NOLOAD | RTLD_LAZY);  // already loaded: no new reference
  if (!lib) return 0;
  Runtime r;
  r.parallel = reinterpret_cast<GompParallel>(dlsym(lib, "GOMP_parallel"));
  r.thread_num = reinterpret_cast<OmpInt>(dlsym(lib, "omp_get_thread_num"));
  r.num_threads = reinterpret_cast<OmpInt>(dlsym(lib, "omp_get_num_threads"));
  if (!r.ok()) return 0;
  *static_cast<Runtime*>(out) = r;
  return 1;  // stop at the first usable one
}
#endif

void resolve() {
#if defined(__linux__) && !defined(FUSEDRNN_NO_HOST_OPENMP)
  Runtime r;
  dl_iterate_phdr(find_gomp, &r);
  g_runtime = r;
#endif
}

struct HostRegion {
  int want;
  const std::function<void(ThreadCtx&)>* fn;
  Team* team;
  int ran = 1;
  std::exception_ptr error;
};

// On every thread of the runtime's region: thread 0 leads the borrowed team and closes
// it (also when the region throws: nothing may cross the runtime's C frames), threads
// 1 .. m - 1 serve it, any beyond return.
void trampoline(void* data) {
  auto* h = static_cast<HostRegion*>(data);
  const int rank = g_runtime.thread_num();
  const int m = std::min(h->want, g_runtime.num_threads());
  if (rank == 0) {
    try {
      h->ran = h->team->run(m, *h->fn, false).ran;
    } catch (...) {
      h->error = std::current_exception();
    }
    h->team->close();
  } else if (rank < m) {
    h->team->serve(rank);
  }
}
}  // namespace

bool set_host_openmp(bool on) {
  const bool before = t_scope;
  if (on) std::call_once(g_resolve, resolve);
  t_scope = on;
  return before;
}

bool host_openmp_available() {
  std::call_once(g_resolve, resolve);
  return g_runtime.ok();
}

int64_t host_openmp_regions() { return g_regions.load(std::memory_order_relaxed); }

bool host_openmp_run(int want, const std::function<void(ThreadCtx&)>& fn, int& ran) {
  if (!t_scope || !g_runtime.ok() || g_forked.load(std::memory_order_relaxed)) return false;
  Team team(true);
  HostRegion h{want, &fn, &team, 1, nullptr};
  g_regions.fetch_add(1, std::memory_order_relaxed);
  g_runtime.parallel(trampoline, &h, static_cast<unsigned>(want), 0);
  ran = h.ran;
  if (h.error) std::rethrow_exception(h.error);
  return true;
}

std::vector<int> host_openmp_probe(int n) {
  host_openmp_available();  // g_runtime resolved before it is read below
  std::vector<int> seen(static_cast<size_t>(std::max(n, 1)), -1);
  parallel(n, [&](ThreadCtx& ctx) {
    seen[static_cast<size_t>(ctx.rank())] = g_runtime.ok() ? g_runtime.thread_num() : -1;
  });
  return seen;
}

}  // namespace fusedrnn
