"""The kernels' packed variable-length rows (batch_sizes) and LSTM projection (weight_hr).

Against the float64 NumPy reference (its ``lengths`` and ``weight_hr`` options): every
cell kind, float32 and float64, forward (inference and training) and every gradient,
on sizes around the SIMD tiles.  Tolerances are norm-wise relative errors, as in
test_kernels.py: float32 outputs/states <= 1e-5, gradients <= 1e-4; float64 <= 1e-12.
Also: batch_sizes all equal to B give exactly the padded call's results, and the binding
rejects bad batch_sizes / weight_hr arguments.  (Thread counts: test_threads.py;
workspace sizes: test_workspace.py.)

Layouts: the reference takes the padded (T, B, ...) arrays and per-row lengths; the
kernels take the rows of a batch sorted by length (longest first) packed step by step,
``batch_sizes[t] = #{b : len_b > t}``.  The problems here draw their lengths already
sorted (longest first), so row b is the same row in both layouts.

Every test runs once per ISA this CPU can run (the `isa` fixture).  Each run also
checks that ``need_dx=False`` leaves every other gradient unchanged, bit for bit.
"""

import itertools

import numpy as np
import pytest

from _problems import (
    CELLS,
    batch_sizes_of,
    check_against_reference,
    draw_lengths,
    kernel_run,
    make_problem,
    pack_weights,
    rounded,
    to_packed,
    to_padded,
)
from fusedrnn import functional as F
DTYPES = pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])


# Every test runs once per ISA this CPU can run (conftest.py).
pytestmark = pytest.mark.usefixtures("isa")


# ----------------------------------------------------------------------------- layouts
def test_layout_helpers_round_trip():
    rng = np.random.default_rng(0)
    lengths = draw_lengths(rng, 9, 13)
    bs = batch_sizes_of(lengths, 9)
    a = rng.standard_normal((9, 13, 2))
    a[np.arange(9)[:, None] >= lengths[None, :]] = 0
    p = to_packed(a, bs)
    assert p.shape == (lengths.sum(), 2)
    np.testing.assert_array_equal(to_padded(p, bs, 13), a)


# ----------------------------------------------------------------------------- 1. batch_sizes
HS = [1, 7, 8, 9, 17, 33, 100]
BS = [1, 3, 8, 13]
TS = [1, 2, 9]
INPUTS = [1, 5, 16, 33]
# The whole T x B x H grid: 84 sizes, about 6 s per ISA on two cores.
GRID = list(itertools.product(TS, BS, HS))


@DTYPES
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("T,B,H", GRID, ids=[f"T{t}B{b}H{h}" for t, b, h in GRID])
def test_batch_sizes_match_reference(cell, T, B, H, dtype):
    i = GRID.index((T, B, H))
    I = INPUTS[i % len(INPUTS)]
    bias = i % 5 != 4  # some sizes run without biases
    p = make_problem(cell, T, B, I, H, bias, seed=1000 + i)
    if T > 1 and B > 2:
        assert len(set(p["lengths"].tolist())) >= 2
    check_against_reference(cell, p, dtype, packed_rows=True)


@DTYPES
@pytest.mark.parametrize("cell", CELLS)
def test_batch_sizes_with_every_length(cell, dtype):
    """B = 13 rows over T = 9 steps with every length 1..9 present (and some repeated)."""
    p = make_problem(cell, 9, 13, 6, 17, True, seed=77)
    p["lengths"] = np.array([9, 8, 7, 7, 6, 5, 4, 4, 3, 3, 2, 1, 1], np.int64)
    check_against_reference(cell, p, dtype, packed_rows=True)


# ----------------------------------------------------------------------------- 2. projection
PROJ = sorted({(H, P) for H in (2, 8, 17, 40) for P in (1, 3, H - 1) if 1 <= P < H})


@DTYPES
@pytest.mark.parametrize("packed_rows", [False, True], ids=["padded", "rows"])
@pytest.mark.parametrize("H,P", PROJ, ids=[f"H{h}P{p}" for h, p in PROJ])
def test_projection_matches_reference(H, P, packed_rows, dtype):
    i = PROJ.index((H, P))
    T, B, I = [(1, 3, 5), (2, 8, 1), (9, 13, 16), (5, 1, 33), (9, 4, 7)][i % 5]
    p = make_problem("lstm", T, B, I, H, i % 4 != 3, seed=2000 + i, P=P, lengths=packed_rows)
    check_against_reference("lstm", p, dtype, packed_rows)


# ----------------------------------------------------------------------------- 3. bs == B
EQUAL = [(c, 0) for c in CELLS] + [("lstm", 5)]


@DTYPES
@pytest.mark.parametrize("cell,P", EQUAL, ids=[f"{c}-P{p}" for c, p in EQUAL])
def test_full_batch_sizes_equal_padded_call(cell, P, dtype):
    """batch_sizes = [B] * T is the padded layout: the same numbers, bit for bit."""
    T, B, I, H = 6, 11, 9, 19
    p = make_problem(cell, T, B, I, H, True, seed=3, P=P, lengths=False)
    p = rounded(p, dtype)
    pad_out, pad_g = kernel_run(cell, p, dtype, packed_rows=False)
    row_out, row_g = kernel_run(cell, p, dtype, packed_rows=True)
    assert set(pad_out) == set(row_out) and set(pad_g) == set(row_g)
    for k in pad_out:
        np.testing.assert_array_equal(row_out[k], pad_out[k], err_msg=k)
    for k in pad_g:
        np.testing.assert_array_equal(row_g[k], pad_g[k], err_msg=k)


# ----------------------------------------------------------------------------- 4. errors
def _small(cell="gru", dtype=np.float32, P=0, H=4, I=3):
    p = make_problem(cell, 3, 2, I, H, True, seed=5, P=P, lengths=False)
    return {k: (v if v is None or k == "lengths" else np.ascontiguousarray(v, dtype))
            for k, v in p.items()}


BAD_BATCH_SIZES = [
    ("increasing", np.array([2, 3], np.int64), 5, "batch_sizes"),
    ("zero", np.array([3, 0], np.int64), 3, "batch_sizes"),
    ("negative", np.array([3, -1], np.int64), 2, "batch_sizes"),
    ("empty", np.zeros(0, np.int64), 0, "batch_sizes"),
    ("sum", np.array([3, 2], np.int64), 4, "x"),
    ("int32", np.array([3, 2], np.int32), 5, "batch_sizes"),
    ("float", np.array([3.0, 2.0]), 5, "batch_sizes"),
    ("2d", np.array([[3, 2]], np.int64), 5, "batch_sizes"),
]


@pytest.mark.parametrize("bs,N,name", [b[1:] for b in BAD_BATCH_SIZES],
                         ids=[b[0] for b in BAD_BATCH_SIZES])
def test_bad_batch_sizes_rejected(bs, N, name):
    p = _small()
    w = pack_weights("gru", p, np.float32)
    B = 3
    x = np.zeros((N, 3), np.float32)
    h0 = np.zeros((B, 4), np.float32)
    with pytest.raises(ValueError, match=name):
        F.sequence_forward(w, x, h0, batch_sizes=bs)
    with pytest.raises(ValueError, match=name):
        F.sequence_forward(w, x, h0, train=True, batch_sizes=bs)
    good = np.array([3, 2], np.int64)
    _, _, _, ws = F.sequence_forward(w, np.zeros((5, 3), np.float32), h0, train=True,
                                     batch_sizes=good)
    with pytest.raises(ValueError, match=name):
        F.sequence_backward(w, x, ws, np.zeros((N, 4), np.float32), batch_sizes=bs)


def test_x_with_three_dimensions_and_batch_sizes_rejected():
    p = _small()
    w = pack_weights("gru", p, np.float32)
    bs = np.array([2, 2, 2], np.int64)
    h0 = p["h0"]
    with pytest.raises(ValueError, match="^x: expected 2 dimensions"):
        F.sequence_forward(w, p["x"], h0, batch_sizes=bs)  # x is (3, 2, 3)
    _, _, _, ws = F.sequence_forward(w, p["x"].reshape(6, 3), h0, train=True, batch_sizes=bs)
    with pytest.raises(ValueError, match="^x: expected 2 dimensions"):
        F.sequence_backward(w, p["x"], ws, p["dy"].reshape(6, 4), batch_sizes=bs)


def test_packed_arrays_checked_against_batch_sizes():
    """dy/h0/workspace sizes follow batch_sizes (N rows, B = bs[0])."""
    p = _small()
    w = pack_weights("gru", p, np.float32)
    bs = np.array([2, 1, 1], np.int64)
    x = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="^h0"):
        F.sequence_forward(w, x, np.zeros((3, 4), np.float32), batch_sizes=bs)
    y, _, _, ws = F.sequence_forward(w, x, np.zeros((2, 4), np.float32), train=True,
                                     batch_sizes=bs)
    assert y.shape == (4, 4)
    with pytest.raises(ValueError, match="^dy"):
        F.sequence_backward(w, x, ws, np.zeros((3, 2, 4), np.float32), batch_sizes=bs)
    with pytest.raises(ValueError, match="^workspace"):
        F.sequence_backward(w, x, ws[:-1].copy(), np.zeros((4, 4), np.float32), batch_sizes=bs)
    # The padded workspace of the same T and B is bigger than the packed one.
    _, _, _, ws_pad = F.sequence_forward(w, np.zeros((3, 2, 3), np.float32),
                                         np.zeros((2, 4), np.float32), train=True)
    with pytest.raises(ValueError, match="^workspace"):
        F.sequence_backward(w, x, ws_pad, np.zeros((4, 4), np.float32), batch_sizes=bs)


@pytest.mark.parametrize("cell", CELLS[1:])
def test_weight_hr_only_for_lstm(cell):
    p = _small(cell)
    with pytest.raises(ValueError, match="weight_hr"):
        F.pack(cell, p["weight_ih"], p["weight_hh"], weight_hr=np.zeros((2, 4), np.float32))


@pytest.mark.parametrize("P", [4, 5])
def test_weight_hr_projection_must_be_smaller(P):
    p = _small("lstm")  # H = 4
    w_hh = np.zeros((16, P), np.float32)
    with pytest.raises(ValueError, match="weight_hr"):
        F.pack("lstm", p["weight_ih"], w_hh, weight_hr=np.zeros((P, 4), np.float32))


@pytest.mark.parametrize("shape", [(2, 3), (2, 5), (2,), (2, 4, 1)])
def test_weight_hr_wrong_shape(shape):
    p = _small("lstm")  # H = 4
    with pytest.raises(ValueError, match="weight_hr"):
        F.pack("lstm", p["weight_ih"], np.zeros((16, 2), np.float32),
               weight_hr=np.zeros(shape, np.float32))


def test_weight_hh_must_have_projection_columns():
    p = _small("lstm")  # H = 4, weight_hh (16, 4)
    with pytest.raises(ValueError, match="weight_hh"):
        F.pack("lstm", p["weight_ih"], p["weight_hh"], weight_hr=np.zeros((2, 4), np.float32))
    F.pack("lstm", p["weight_ih"], np.zeros((16, 2), np.float32),
           weight_hr=np.zeros((2, 4), np.float32))


def test_projection_state_shapes_checked():
    p = _small("lstm", P=2)
    w = pack_weights("lstm", p, np.float32)
    assert w.proj_size == 2 and w.hidden_size == 4
    with pytest.raises(ValueError, match="^h0"):  # h0 needs P columns, not H
        F.sequence_forward(w, p["x"], np.zeros((2, 4), np.float32), p["c0"])
    with pytest.raises(ValueError, match="^c0"):  # c0 keeps H columns
        F.sequence_forward(w, p["x"], p["h0"], np.zeros((2, 2), np.float32))
    y, h_n, c_n, ws = F.sequence_forward(w, p["x"], p["h0"], p["c0"], train=True)
    assert y.shape == (3, 2, 2) and h_n.shape == (2, 2) and c_n.shape == (2, 4)
    with pytest.raises(ValueError, match="^dy"):
        F.sequence_backward(w, p["x"], ws, np.zeros((3, 2, 4), np.float32))
    with pytest.raises(ValueError, match="^dh_n"):
        F.sequence_backward(w, p["x"], ws, p["dy"], np.zeros((2, 4), np.float32))
    g = F.sequence_backward(w, p["x"], ws, p["dy"], p["dh_n"], p["dc_n"])
    assert g["weight_hr"].shape == (2, 4) and g["weight_hh"].shape == (16, 2)
    assert g["dh0"].shape == (2, 2) and g["dc0"].shape == (2, 4)


def test_weight_hr_not_packed_for_one_step():
    p = _small("lstm", P=2)
    with pytest.raises(ValueError, match="weight_hr"):
        F.pack("lstm", p["weight_ih"], p["weight_hh"], weight_hr=p["weight_hr"], one_step=True)


def test_weight_hr_dtype_must_match():
    p = _small("lstm", P=2)
    with pytest.raises(TypeError, match="weight_hr"):
        F.pack("lstm", p["weight_ih"], p["weight_hh"], weight_hr=p["weight_hr"].astype(np.float64))


