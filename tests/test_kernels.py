"""The compiled kernels against the float64 NumPy reference (tolerances: docs/numerics.md;
sizes and ISAs tested: docs/architecture.md).

Sizes straddle the SIMD tiles: H in {1, 7, 8, 9, 16, 17, 31, 32, 33, 100}, B in {1, 3, 8},
T in {1, 2, 17}, for every cell kind, float32 and float64, forward (inference and
training) and every gradient.  Tolerances are norm-wise relative errors: float32
outputs/states <= 1e-5, gradients <= 1e-4; float64 <= 1e-12.

Every test here runs once per ISA this CPU can run (the `isa` fixture switches the
kernels in-process), so a user's machine with a lower ISA than ours runs tested code.
"""

import itertools

import numpy as np
import pytest

import fusedrnn
from _problems import (
    CELLS,
    TOL,
    check_against_reference,
    kernel_run,
    make_problem,
    rounded,
)
from _util import reference_run, rel_err
from fusedrnn import functional as F


# Every test runs once per ISA this CPU can run (conftest.py).
pytestmark = pytest.mark.usefixtures("isa")
HS = [1, 7, 8, 9, 16, 17, 31, 32, 33, 100]
BS = [1, 3, 8]
TS = [1, 2, 17]
INPUTS = [1, 5, 16, 33]  # input sizes, rotated through the grid so I hits tails too


def check(cell, T, B, I, H, bias, dtype, seed):
    """The padded call (every sequence of length T) against the reference."""
    p = make_problem(cell, T, B, I, H, bias, seed, lengths=False)
    check_against_reference(cell, p, dtype, packed_rows=False)


def run(cell, p, dtype):
    return kernel_run(cell, p, dtype, packed_rows=False)


GRID = list(itertools.product(TS, BS, HS))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("T,B,H", GRID, ids=[f"T{t}B{b}H{h}" for t, b, h in GRID])
def test_kernel_matches_reference(cell, T, B, H, dtype):
    i = GRID.index((T, B, H))
    I = INPUTS[i % len(INPUTS)]
    bias = i % 5 != 4  # every fifth size runs without biases
    check(cell, T, B, I, H, bias, dtype, seed=i)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_kernel_longer_sequence(cell, bias, dtype):
    """T = 100 (the longest for which docs/numerics.md states the float32 tolerances), H
    across a tile edge."""
    check(cell, 100, 4, 24, 33, bias, dtype, seed=7)


@pytest.mark.parametrize("cell", CELLS)
def test_kernels_are_deterministic(cell):
    p = make_problem(cell, 9, 3, 5, 17, True, seed=3, lengths=False)
    a_out, a_g = run(cell, p, np.float32)
    b_out, b_g = run(cell, p, np.float32)
    for k in a_out:
        np.testing.assert_array_equal(a_out[k], b_out[k])
    for k in a_g:
        np.testing.assert_array_equal(a_g[k], b_g[k])


def test_optional_state_gradients_default_to_zero():
    p = make_problem("lstm", 4, 2, 3, 5, True, seed=1, lengths=False)
    c = lambda a: np.ascontiguousarray(a, np.float64)  # noqa: E731
    packed = F.pack("lstm", c(p["weight_ih"]), c(p["weight_hh"]), c(p["bias_ih"]), c(p["bias_hh"]))
    _, _, _, ws = F.sequence_forward(packed, c(p["x"]), c(p["h0"]), c(p["c0"]), train=True)
    zeros = np.zeros_like(p["h0"])
    g_none = F.sequence_backward(packed, c(p["x"]), ws, c(p["dy"]))
    g_zero = F.sequence_backward(packed, c(p["x"]), ws, c(p["dy"]), zeros, zeros)
    for k in g_none:
        np.testing.assert_array_equal(g_none[k], g_zero[k])


def test_saturated_gates_stay_finite():
    """Pre-activations of +-1e4 saturate exactly: no NaN or inf anywhere."""
    for cell in CELLS:
        p = make_problem(cell, 3, 2, 4, 9, True, seed=5, lengths=False)
        p["x"] = p["x"] * 1e4
        for dtype in (np.float32, np.float64):
            out, g = run(cell, p, dtype)
            for k, v in list(out.items()) + list(g.items()):
                assert np.all(np.isfinite(v)), (cell, dtype, k)
            if cell != "rnn_relu":
                assert np.all(np.abs(out["y"]) <= 1), cell


STEP_CELLS = ["lstm", "gru", "rnn_tanh", "rnn_relu"]
STEP_GRID = list(itertools.product([1, 7, 8, 9, 16, 17, 33, 100], [1, 2, 3, 5, 8, 13]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell", STEP_CELLS)
@pytest.mark.parametrize("H,B", STEP_GRID, ids=[f"H{h}B{b}" for h, b in STEP_GRID])
def test_one_step_kernel_matches_reference(cell, H, B, dtype):
    """The cells' one-step kernel (both products on one register tile)."""
    i = STEP_GRID.index((H, B))
    I = [1, 5, 16, 33, 40][i % 5]
    p = make_problem(cell, 1, B, I, H, i % 4 != 3, seed=100 + i, lengths=False)
    p = rounded(p, dtype)
    ref_out, _ = reference_run(cell, p)

    def c(a):
        return None if a is None else np.ascontiguousarray(a, dtype)

    packed = F.pack(cell, c(p["weight_ih"]), c(p["weight_hh"]), c(p["bias_ih"]),
                    c(p["bias_hh"]), one_step=True)
    assert packed.one_step
    h1, c1 = fusedrnn._core.step(packed, c(p["x"][0]), c(p["h0"]), c(p["c0"]))
    assert h1.dtype == dtype and h1.shape == (B, H)
    floor = 1e-2 if dtype == np.float32 else 0.0
    tol = TOL[dtype][0]
    assert rel_err(h1, ref_out["h_n"], floor) <= tol
    if cell == "lstm":
        assert rel_err(c1, ref_out["c_n"], floor) <= tol
    else:
        assert c1 is None


def test_gru_reset_before_has_no_one_step_kernel():
    p = make_problem("gru_reset_before", 1, 2, 3, 4, True, seed=0, lengths=False)
    c = lambda a: np.ascontiguousarray(a, np.float32)  # noqa: E731
    packed = F.pack("gru_reset_before", c(p["weight_ih"]), c(p["weight_hh"]), one_step=True)
    assert not packed.one_step
    with pytest.raises(ValueError, match="one_step"):
        fusedrnn._core.step(packed, c(p["x"][0]), c(p["h0"]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell,H", [("lstm", 128), ("lstm", 64), ("gru", 512), ("rnn_tanh", 512),
                                    ("rnn_relu", 256)])
def test_kernel_with_strip_packed_operands(cell, H, dtype):
    """Sizes where the kernels copy the per-step A operands into MR-row strips (row
    strides that are multiples of 2 KB), with a partial last strip (B = 5)."""
    check(cell, 3, 5, 7, H, True, dtype, seed=H)
