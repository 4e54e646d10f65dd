#!/usr/bin/env bash
# Build fusedrnn._core with AddressSanitizer + UndefinedBehaviorSanitizer and run a
# representative subset of the kernel and API tests under it, once per ISA this CPU runs.
#
#   bash tools/sanitize.sh            (python: $PYTHON, else `python` on PATH, else python3)
#   FUSEDRNN_EMULATE_AVX512=ON bash tools/sanitize.sh
#       also builds the avx512 kernels emulated with SIMDe on AVX2 (needs the pip package
#       simde-py >= 0.8.2 in that python; CMake option FUSEDRNN_EMULATE_AVX512), so a CPU
#       without AVX-512 runs them too: the CI of a machine without AVX-512 does this.
#
# The sanitized module is built in build/asan (CMake option FUSEDRNN_SANITIZE) and copied
# into a temporary copy of python/fusedrnn; the checkout's own _core*.so is never touched.
# Exits nonzero on any sanitizer report (ASan aborts; UBSan halts via halt_on_error and
# -fno-sanitize-recover=undefined) or any failing test.  The first build compiles nine
# instrumented kernel translation units (three per ISA), later incremental builds take
# seconds; the tests run once per ISA, the emulated avx512 kernels (slow: SIMDe in
# portable code) included.  .ci/run prints this stage's time.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

PY=${PYTHON:-$(command -v python || command -v python3)}
build=${FUSEDRNN_SANITIZE_BUILD:-build/asan}

pybind11_dir=$("$PY" -c "import pybind11; print(pybind11.get_cmake_dir())")
# The venv's cmake and ninja (pip packages) come first, as if the venv were activated.
PATH="$(dirname "$PY"):$PATH"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
[ -f "$build/CMakeCache.txt" ] && generator=()   # keep whatever generator it was made with
emulate=${FUSEDRNN_EMULATE_AVX512:-OFF}
cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DFUSEDRNN_SANITIZE=address,undefined -DFUSEDRNN_EMULATE_AVX512="$emulate" \
  -DPython_EXECUTABLE="$PY" -Dpybind11_DIR="$pybind11_dir" >/dev/null
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)"

so=$(ls "$build"/_core*.so)
pkg=$(mktemp -d)
trap 'rm -rf "$pkg"' EXIT
cp -r python/fusedrnn "$pkg/fusedrnn"
rm -f "$pkg"/fusedrnn/_core*.so
cp "$so" "$pkg/fusedrnn/"

# The interpreter itself is not instrumented, so the runtimes must be loaded first.
CXX=${CXX:-c++}
asan=$("$CXX" -print-file-name=libasan.so)
ubsan=$("$CXX" -print-file-name=libubsan.so)
for lib in "$asan" "$ubsan"; do
  [ -e "$lib" ] || { echo "sanitize.sh: $lib not found" >&2; exit 1; }
done
export LD_PRELOAD="$asan:$ubsan"
# detect_leaks=0: CPython's own allocations (interned objects, arenas kept until exit)
# would otherwise flood LeakSanitizer with reports that are not ours.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export PYTHONPATH="$pkg${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
# torch is kept out of the sanitized process (deselected below, and not required here
# even when CI requires it for the normal run): it is not ours and is slow under ASan.
unset FUSEDRNN_REQUIRE_TORCH FUSEDRNN_ISA

"$PY" -c 'import fusedrnn, sys; assert fusedrnn._core.__file__.startswith(sys.argv[1]), fusedrnn._core.__file__' "$pkg"
isas=$("$PY" -c 'import fusedrnn; print(*fusedrnn.cpu_info()["available"])')
emulated=$("$PY" -c 'import fusedrnn; print(*fusedrnn.cpu_info()["emulated"])')
case "$emulate" in
  ON|on|1|TRUE|true|YES|yes)
    [ "$emulated" = avx512 ] || { echo "sanitize.sh: emulation asked, got '$emulated'" >&2; exit 1; }
    case " $isas " in *" avx512 "*) ;; *) echo "sanitize.sh: avx512 not available" >&2; exit 1;; esac ;;
  *) [ -z "$emulated" ] || { echo "sanitize.sh: unexpected emulated ISAs '$emulated'" >&2; exit 1; } ;;
esac

# --capture=sys: pytest must not capture fd 2, or an aborting sanitizer report is lost.
# The subset: sizes on both sides of the SIMD widths (H 7/9/17/33/100 with B 1/3, I
# rotating through 1/5/16/33), every cell kind and dtype, the packed-rows and
# projection kernels, the quantized kernels (every ISA path and the argument checks),
# thread teams (bit-identical results, fork, concurrent callers, pairs), the binding's argument
# checks and the layer options.  The kernel tests switch ISA
# in-process (the `isa` fixture); each pass keeps only that pass's ISA.
kernel_k='(test_kernel_matches_reference and (T2B3H7- or T2B3H9- or T17B1H17- or T2B1H33- or T2B3H100- or T1B8H31-))
  or test_kernel_longer_sequence or test_kernels_are_deterministic or test_one_step_kernel
  or test_results_bit_identical or test_kernel_with_strip_packed or test_saturated
  or test_optional_state or test_workspace_size'
rows_k='(test_batch_sizes_match_reference and (T2B3H7- or T9B8H9- or T9B3H17- or T2B13H33- or T9B13H100-))
  or test_batch_sizes_with_every_length or test_projection_matches_reference
  or test_full_batch_sizes_equal or test_bit_identical_across_thread_counts
  or test_bad_batch_sizes or test_packed_arrays or test_weight_hr or test_x_with_three'

kernel_k=${kernel_k//$'\n'/ } rows_k=${rows_k//$'\n'/ }   # -k wants one line

status=0
for isa in $isas; do
  tag=""
  case " $emulated " in *" $isa "*) tag=" (emulated with SIMDe)";; esac
  echo "== sanitize.sh: ASan+UBSan, FUSEDRNN_ISA=$isa$tag"
  export FUSEDRNN_ISA=$isa
  "$PY" -m pytest -q -p no:cacheprovider --capture=sys --maxfail=1 -x \
      "$root/tests/test_kernels.py" "$root/tests/test_kernels_rows.py" \
      -k "$isa and ($kernel_k or $rows_k)" || { status=1; break; }
  "$PY" -m pytest -q -p no:cacheprovider --capture=sys --maxfail=1 -x \
      "$root/tests/test_simd_math.py" -k "$isa" || { status=1; break; }
  # The quantized kernels: this pass's ISA (avx512 with and without VNNI), and the
  # argument checks, which take no ISA.
  "$PY" -m pytest -q -p no:cacheprovider --capture=sys --maxfail=1 -x \
      "$root/tests/test_quant_kernels.py" "$root/tests/test_quant_errors.py" \
      -k "$isa or not (avx512 or avx2 or generic)" \
      || { status=1; break; }
  "$PY" -m pytest -q -p no:cacheprovider --capture=sys --maxfail=1 -x \
      "$root/tests/test_threads.py" "$root/tests/test_errors.py" "$root/tests/test_pair.py" \
      "$root/tests/test_layer_options.py" -k "not torch and not onnx" || { status=1; break; }
done
[ "$status" = 0 ] && echo "== sanitize.sh: no sanitizer reports, all tests passed (ISAs: $isas${emulated:+; emulated: $emulated})"
exit "$status"
