#!/usr/bin/env bash
# Build fusedrnn._core with ThreadSanitizer and run the tests that exercise the thread
# team under it: tests/test_threads.py, the concurrency tests of tests/test_robustness.py,
# the kernels' thread-count tests (bit-identical results for 1, 2, 3 threads) and
# tests/test_contention.py (a team shrinking mid-call, a slow worker simulated) and
# tests/test_pair.py (the team split in halves for a bidirectional layer).
#
#   bash tools/tsan.sh            (python: $PYTHON, else `python` on PATH, else python3)
#
# The instrumented module is built in build/tsan (CMake option FUSEDRNN_SANITIZE=thread,
# -O1) and copied into a temporary copy of python/fusedrnn; the checkout's own _core*.so
# is never touched.  CPython, NumPy and their libraries are not instrumented: libtsan is
# preloaded (it must be loaded first) and sees their threads, locks and frees through its
# interceptors, but checks the memory accesses of our code only.  Any ThreadSanitizer
# report fails the run (halt_on_error=1 and exitcode=66, and the log is grepped too).
# Suppressions: tools/tsan.supp, each with its reason; none may name fusedrnn code.
# On 2 cores: the build about 4 minutes, the tests about 1 minute.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

PY=${PYTHON:-$(command -v python || command -v python3)}
build=${FUSEDRNN_TSAN_BUILD:-build/tsan}

pybind11_dir=$("$PY" -c "import pybind11; print(pybind11.get_cmake_dir())")
PATH="$(dirname "$PY"):$PATH"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
[ -f "$build/CMakeCache.txt" ] && generator=()
cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DFUSEDRNN_SANITIZE=thread \
  -DPython_EXECUTABLE="$PY" -Dpybind11_DIR="$pybind11_dir" >/dev/null
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)"

so=$(ls "$build"/_core*.so)
pkg=$(mktemp -d)
log=$(mktemp)
trap 'rm -rf "$pkg" "$log"' EXIT
cp -r python/fusedrnn "$pkg/fusedrnn"
rm -f "$pkg"/fusedrnn/_core*.so
cp "$so" "$pkg/fusedrnn/"

# No suppression may silence our own code: fusedrnn's functions and _core*.so.
if grep -vE '^\s*(#|$)' tools/tsan.supp | grep -iE 'fusedrnn|_core'; then
  echo "tsan.sh: tools/tsan.supp must not suppress reports in fusedrnn's own code" >&2
  exit 1
fi

CXX=${CXX:-c++}
tsan=$("$CXX" -print-file-name=libtsan.so)
[ -e "$tsan" ] || { echo "tsan.sh: $tsan not found" >&2; exit 1; }
# The runtime goes into the Python processes only (LD_PRELOAD on each command, not
# exported: shells and tools of this script would crash under it).  die_after_fork=0:
# test_threads.py forks a process that has threads (NumPy's, ours) and checks that the
# child gets a working team; TSan's default kills such a child.
run_tsan() {
  LD_PRELOAD="$tsan" \
  TSAN_OPTIONS="halt_on_error=1:exitcode=66:second_deadlock_stack=1:die_after_fork=0:suppressions=$root/tools/tsan.supp" \
  "$@"
}
export PYTHONPATH="$pkg${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
# OpenBLAS's own thread pool (NumPy's matmul in the reference) is not ours: one thread.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
unset FUSEDRNN_REQUIRE_TORCH FUSEDRNN_ISA

# The module is instrumented, and this setup (preloaded runtime, uninstrumented Python)
# does report a race: a negative control, a tiny instrumented library whose function
# two Python threads run at once (ctypes releases the GIL) must make TSan fail the run.
nm -D "$so" | grep __tsan_func_entry >/dev/null || { echo "tsan.sh: $so is not instrumented" >&2; exit 1; }
printf '%s\n' 'int counter;' \
  'void bump(void) { for (int i = 0; i < 20000000; ++i) { counter++; __asm__ volatile("" ::: "memory"); } }' \
  >"$pkg/race.c"
"$CXX" -x c -shared -fPIC -fsanitize=thread -O1 "$pkg/race.c" -o "$pkg/librace.so"
rc=0
run_tsan "$PY" -c '
import ctypes, sys, threading
lib = ctypes.CDLL(sys.argv[1])
ts = [threading.Thread(target=lib.bump) for _ in range(2)]
for t in ts: t.start()
for t in ts: t.join()' "$pkg/librace.so" >/dev/null 2>&1 || rc=$?
[ "$rc" = 66 ] || { echo "tsan.sh: the negative control's race was not reported (exit $rc)" >&2; exit 1; }
echo "== tsan.sh: negative control: a planted data race is reported (exit 66)"

run_tsan "$PY" -c 'import fusedrnn, sys; assert fusedrnn._core.__file__.startswith(sys.argv[1]), fusedrnn._core.__file__' "$pkg"
run_tsan "$PY" -c 'import sys, fusedrnn; print("== tsan.sh: ThreadSanitizer, cpu_info", fusedrnn.cpu_info())'

# The thread team with more threads than this machine's 2 CPUs is exercised by the
# tests themselves (1, 2, 3 threads; concurrent Python callers; fork).
status=0
run_tsan "$PY" -m pytest -q -p no:cacheprovider --capture=sys -x \
    "$root/tests/test_threads.py" "$root/tests/test_robustness.py" \
    "$root/tests/test_kernels.py" "$root/tests/test_kernels_rows.py" \
    "$root/tests/test_quant_kernels.py" "$root/tests/test_contention.py" \
    -k "(thread or concurrent or fork or load_state_dict or contention) and not torch" 2>&1 | tee "$log" || status=$?
# A bidirectional layer's directions side by side (parallel_pair: the team split in
# halves, each serving its leader's regions).
[ "$status" = 0 ] && { run_tsan "$PY" -m pytest -q -p no:cacheprovider --capture=sys -x \
    "$root/tests/test_pair.py" -k "not torch" 2>&1 | tee -a "$log" || status=$?; }
if grep -q "WARNING: ThreadSanitizer" "$log"; then
  echo "tsan.sh: ThreadSanitizer reported (see above)" >&2
  status=1
fi
[ "$status" = 0 ] && echo "== tsan.sh: no ThreadSanitizer reports, all tests passed"
exit "$status"
