#!/usr/bin/env bash
# Cross-compile fusedrnn's C++ for aarch64 (Linux, GCC) and run a smoke test of the
# generic kernels under qemu-aarch64: checks that "builds on aarch64" holds.
#
#   bash tools/cross_aarch64.sh
#
# Needs Debian's g++-aarch64-linux-gnu and qemu-user (CI installs them:
# apt-get install g++-aarch64-linux-gnu qemu-user).  Environment: CROSS_CXX (default
# aarch64-linux-gnu-g++), QEMU (default qemu-aarch64), OUT (default build/aarch64).
#
# 1. Every translation unit of _core that needs no Python headers (all of csrc/ except
#    csrc/bindings/ and the x86-only csrc/**/*__avx*.cc), with the module's own flags
#    (-std=c++17 -O3 -fno-math-errno) plus -Wall -Wextra -Werror.
# 2. The generic kernels' objects contain NEON vector arithmetic (fmla/fmul on .4s
#    lanes): GCC's vector extensions in simd/vec__generic.h compile to NEON.
# 3. tools/aarch64_smoke.cc, linked statically with those objects, run under qemu:
#    forward of every cell kind (float32, float64), backward against finite
#    differences, the float32 activations, and 1 vs 3 threads bit for bit.
# On 2 cores about 2 minutes (the kernels' translation unit at -O3 dominates).
set -euo pipefail
cd "$(dirname "$0")/.."

CXX=${CROSS_CXX:-aarch64-linux-gnu-g++}
QEMU=${QEMU:-qemu-aarch64}
out=${OUT:-build/aarch64}
command -v "$CXX" >/dev/null || { echo "cross_aarch64.sh: $CXX not found (apt-get install g++-aarch64-linux-gnu)" >&2; exit 1; }
command -v "$QEMU" >/dev/null || { echo "cross_aarch64.sh: $QEMU not found (apt-get install qemu-user)" >&2; exit 1; }
mkdir -p "$out"

flags=(-std=c++17 -O3 -fno-math-errno -Wall -Wextra -Werror -Icsrc -Icsrc/include)
mapfile -t srcs < <(find csrc -name '*.cc' ! -path 'csrc/bindings/*' ! -name '*__avx*' | sort)
[ "${#srcs[@]}" -gt 0 ] || { echo "cross_aarch64.sh: no sources found" >&2; exit 1; }
echo "== cross_aarch64.sh: $("$CXX" --version | head -1)"
echo "== compiling ${#srcs[@]} translation units with -Werror: ${srcs[*]}"
objs=()
for s in "${srcs[@]}"; do objs+=("$out/$(echo "${s#csrc/}" | tr / _).o"); done
export CXX out
printf '%s\n' "${srcs[@]}" | xargs -P "$(nproc 2>/dev/null || echo 2)" -I{} \
  sh -c 'o="$out/$(echo "${0#csrc/}" | tr / _).o"; "$CXX" "$@" -c "$0" -o "$o"' {} \
  "${flags[@]}"
for o in "${objs[@]}"; do [ -s "$o" ] || { echo "cross_aarch64.sh: $o missing" >&2; exit 1; }; done

# NEON in the generic kernels (the float32 vector type: 4 lanes per instruction).
objdump=${CXX%g++}objdump
generic_objs=("$out"/seq_*__generic.cc.o)
neon=$("$objdump" -d "${generic_objs[@]}" | grep -cE '\s(fmla|fmul|fadd)\s+v[0-9]+\.4s' || true)
echo "== NEON float32x4 arithmetic instructions in the generic kernels: $neon"
[ "$neon" -gt 100 ] || { echo "cross_aarch64.sh: expected NEON code in the generic kernels" >&2; exit 1; }

"$CXX" "${flags[@]}" -static -pthread tools/aarch64_smoke.cc "${objs[@]}" -o "$out/aarch64_smoke"
file "$out/aarch64_smoke" 2>/dev/null | grep -q aarch64 || true
echo "== running the smoke test under $QEMU"
"$QEMU" "$out/aarch64_smoke"
