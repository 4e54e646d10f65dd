"""Runtime ISA dispatch: every ISA this CPU can run is exercised, and FUSEDRNN_ISA is honoured.

The ISA is chosen once per process, so each forced choice runs in a subprocess.
"""

import os
import subprocess
import sys
import textwrap

import pytest

import fusedrnn

INFO = fusedrnn.cpu_info()

# A small end-to-end check of every cell kind against the float64 reference; run under
# each ISA.  (The full grid runs in-process under the selected ISA: test_kernels.py.)
CHECK = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import fusedrnn
    sys.path.insert(0, {tests!r})
    from test_kernels import CELLS, check
    for cell in CELLS:
        for dtype in (np.float32, np.float64):
            for (T, B, I, H) in [(3, 1, 5, 7), (17, 3, 16, 33), (2, 8, 1, 100)]:
                check(cell, T, B, I, H, True, dtype, seed=H)
    print(json.dumps(fusedrnn.cpu_info()))
    """
)


def run_with_isa(isa, code):
    env = dict(os.environ)
    if isa is None:
        env.pop("FUSEDRNN_ISA", None)
    else:
        env["FUSEDRNN_ISA"] = isa
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300)


def test_cpu_info_shape():
    assert set(INFO) >= {"isa", "available", "compiled", "emulated"}
    assert INFO["isa"] in INFO["available"]
    assert set(INFO["available"]) <= set(INFO["compiled"])
    # Only test builds (CMake FUSEDRNN_EMULATE_AVX512) emulate an ISA, and only avx512.
    assert INFO["emulated"] in ([], ["avx512"])
    assert "generic" in INFO["compiled"]  # the portable path is always built
    assert INFO["available"][-1] == "generic"  # best first, generic last


@pytest.mark.parametrize("isa", INFO["available"])
def test_each_available_isa_matches_reference(isa):
    tests = os.path.dirname(os.path.abspath(__file__))
    r = run_with_isa(isa, CHECK.format(tests=tests))
    assert r.returncode == 0, r.stderr[-3000:]
    assert f'"isa": "{isa}"' in r.stdout


def test_unknown_isa_is_a_clear_error():
    r = run_with_isa("sse9", "import fusedrnn")
    assert r.returncode != 0
    assert "FUSEDRNN_ISA" in r.stderr and "sse9" in r.stderr


def test_isa_not_usable_here_is_a_clear_error():
    """Every compiled ISA this CPU cannot run is refused by name (on a CPU that runs
    them all there is none, and then every compiled ISA must be listed as available)."""
    unusable = [isa for isa in INFO["compiled"] if isa not in INFO["available"]]
    for isa in unusable:
        r = run_with_isa(isa, "import fusedrnn")
        assert r.returncode != 0
        assert f"FUSEDRNN_ISA={isa}: this CPU cannot run it" in r.stderr
        with pytest.raises(RuntimeError, match=f"{isa}: this CPU cannot run it"):
            fusedrnn._core._use_isa(isa)
    if not unusable:
        assert INFO["available"] == INFO["compiled"]


def test_x86_builds_compile_every_isa():
    import platform

    if platform.machine().lower() in ("x86_64", "amd64") and platform.system() != "Windows":
        assert INFO["compiled"] == ["avx512", "avx2", "generic"]
    else:  # other CPUs, and MSVC builds (Windows wheels): the generic kernels only
        assert INFO["compiled"] == ["generic"]


def test_use_isa_rejects_unknown_names():
    with pytest.raises(RuntimeError, match="expected one of avx512, avx2, generic"):
        fusedrnn._core._use_isa("sse9")
    assert fusedrnn.cpu_info()["isa"] == INFO["isa"]


def test_weights_keep_the_kernels_that_packed_them():
    """Packed weights run on their own ISA's kernels even after the selection changes."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 5)).astype(np.float32)
    before = fusedrnn.cpu_info()["isa"]
    try:
        for isa in INFO["available"]:
            fusedrnn._core._use_isa(isa)
            m = fusedrnn.GRU(5, 9, seed=1)
            y0, _ = m(x)
            assert m._weights()[0].isa == isa
            for other in INFO["available"]:
                fusedrnn._core._use_isa(other)
                y1, _ = m(x)
                np.testing.assert_array_equal(y0, y1)
    finally:
        fusedrnn._core._use_isa(before)


def test_only_isa_kernels_contain_vex_instructions():
    """AVX code (VEX/EVEX-encoded instructions, mnemonics starting with 'v') appears only
    in functions of the fusedrnn::avx2 / fusedrnn::avx512 namespaces, so a CPU without
    AVX imports the module and runs the generic path.  (Catches ISA code that the linker
    or a static initialiser would run for every CPU.)

    An emulated-avx512 test build (cpu_info()["emulated"]) is exempt for one thing,
    stated here: SIMDe's helpers (simde_*) and the shim's (fusedrnn_emu_*) are functions
    outside the fusedrnn::avx512 namespace that hold the emulated kernels' AVX2 code
    when the compiler does not inline them; everything else is checked as usual."""
    import platform
    import re
    import shutil

    if platform.system() != "Linux" or platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("the disassembly check is for x86-64 Linux builds")
    objdump = shutil.which("objdump")
    assert objdump, "objdump (binutils) is needed for this check"
    out = subprocess.run([objdump, "-d", "-C", "--no-show-raw-insn", fusedrnn._core.__file__],
                         capture_output=True, text=True, check=True).stdout
    func, offenders, seen = None, {}, 0
    header = re.compile(r"^[0-9a-f]+ <(.*)>:$")
    insn = re.compile(r"^\s+[0-9a-f]+:\s+(v[a-z0-9]+)\b")
    for line in out.splitlines():
        m = header.match(line)
        if m:
            func = m.group(1)
            continue
        m = insn.match(line)
        if m:
            seen += 1
            if "fusedrnn::avx2::" in func or "fusedrnn::avx512::" in func:
                continue
            if INFO["emulated"] and func.startswith(("simde_", "fusedrnn_emu_")):
                continue
            offenders.setdefault(func, m.group(1))
    assert seen > 1000  # the SIMD kernels are there, and the parse found them
    assert not offenders, list(offenders.items())[:10]
