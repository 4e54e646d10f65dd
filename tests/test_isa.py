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
    from test_kernels import CELLS, check_against_reference
    for cell in CELLS:
        for dtype in (np.float32, np.float64):
            for (T, B, I, H) in [(3, 1, 5, 7), (17, 3, 16, 33), (2, 8, 1, 100)]:
                check_against_reference(cell, T, B, I, H, True, dtype, seed=H)
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
    assert set(INFO) >= {"isa", "available", "compiled"}
    assert INFO["isa"] in INFO["available"]
    assert set(INFO["available"]) <= set(INFO["compiled"])
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


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_isa_not_compiled_or_not_usable_is_a_clear_error(isa):
    if isa in INFO["available"]:
        pytest.skip(f"{isa} is available here; covered by test_each_available_isa_matches_reference")
    r = run_with_isa(isa, "import fusedrnn")
    assert r.returncode != 0
    assert f"FUSEDRNN_ISA={isa}" in r.stderr
