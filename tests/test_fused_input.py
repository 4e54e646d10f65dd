"""The forward paths of the LSTM, GRU and RNN kernels, on both sides of the sizes at
which they switch (csrc/seq/shape-inl.h).

The fused input first (kL2ShareBytes = 512 KB of stacked weights, and a batch of at
least kFuseInputMinRows = 4 rows): a small LSTM or RNN layer multiplies [x_t | h_{t-1}]
by the stacked [W_ih | W_hh] in each step (the input projection fused into the step), a
larger one projects x first.  Then the training projection of LSTM and GRU (the end of
this file): in blocks of steps, or in one product above kBlockedTrainBytes.  Each side
is checked against the float64 reference, forward and backward, padded and packed
rows, with and without bias, on every ISA; inference equals training and 1, 2 and 3
threads agree, bit for bit (kernel_run checks the first)."""

import numpy as np
import pytest

import fusedrnn

from _problems import check_against_reference, kernel_run, make_problem
from _util import make_layer

LIMIT = 512 * 1024  # bytes of G*H x (I + H) weights


def _timed_parts(fn):
    """fn()'s result and thread 0's seconds per part, the kernels' timers on meanwhile."""
    fusedrnn._core._profile(True)
    try:
        out = fn()
        return out, fusedrnn._core._profile()[0]
    finally:
        fusedrnn._core._profile(False)


def _input_size(cell, H, dtype, fused):
    """The largest I whose stacked weights fit LIMIT (fused), or one more."""
    G = 4 if cell == "lstm" else 1
    fit = LIMIT // (G * H * np.dtype(dtype).itemsize) - H
    return fit if fused else fit + 1


CASES = [(c, d, f) for c in ("lstm", "rnn_tanh", "rnn_relu")
         for d in (np.float32, np.float64) for f in (True, False)]
IDS = [f"{c}-{np.dtype(d).name}-{'fused' if f else 'projected'}" for c, d, f in CASES]


@pytest.mark.usefixtures("isa")
@pytest.mark.parametrize("cell,dtype,fused", CASES, ids=IDS)
@pytest.mark.parametrize("packed_rows,bias", [(False, True), (True, False)],
                         ids=["padded-bias", "packed-nobias"])
def test_matches_reference_on_both_sides_of_the_switch(cell, dtype, fused, packed_rows, bias):
    H = 64 if cell == "lstm" else 128
    I = _input_size(cell, H, dtype, fused)  # noqa: E741
    p = make_problem(cell, 4, 7, I, H, bias, seed=3, lengths=packed_rows)
    check_against_reference(cell, p, dtype, packed_rows)


@pytest.mark.parametrize("cell,dtype,fused", CASES, ids=IDS)
def test_bit_identical_across_thread_counts(cell, dtype, fused, restore_threads):
    H = 64 if cell == "lstm" else 128
    I = _input_size(cell, H, dtype, fused)  # noqa: E741
    p = make_problem(cell, 5, 13, I, H, True, seed=5)
    results = []
    for n in (1, 2, 3):
        fusedrnn.set_num_threads(n)
        results.append(kernel_run(cell, p, dtype, packed_rows=True))
    for out, g in results[1:]:
        for k in out:
            np.testing.assert_array_equal(out[k], results[0][0][k], err_msg=k)
        for k in g:
            np.testing.assert_array_equal(g[k], results[0][1][k], err_msg=k)


@pytest.mark.parametrize("B", [1, 2, 6, 7, 8, 13, 32])
def test_row_blocks_of_every_height(B):
    """A step's rows run in blocks of nearly equal height (RowBlocks): every batch size
    from one block to several, on the fused path (H = 32) and the projected one (H = 96,
    I = 321: 626 KB of weights), against the reference."""
    for H, I in ((32, 32), (96, 321)):  # noqa: E741
        p = make_problem("lstm", 3, B, I, H, True, seed=B)
        check_against_reference("lstm", p, np.float32, packed_rows=True)


@pytest.mark.parametrize("B", [3, 4])
@pytest.mark.parametrize("cell,dtype,fused", CASES, ids=IDS)
def test_the_switch_is_where_documented(cell, dtype, fused, B, restore_threads):
    """The per-part timers (_core._profile) show an input projection only on the
    projected side (which is also every batch of fewer than 4 rows), at any thread
    count; and the timers are zero while off."""
    H = 64 if cell == "lstm" else 128
    I = _input_size(cell, H, dtype, fused)  # noqa: E741
    p = make_problem(cell, 3, B, I, H, True, seed=7, lengths=False)
    fused = fused and B >= 4
    for n in (1, 2):
        fusedrnn.set_num_threads(n)
        _, parts = _timed_parts(lambda: kernel_run(cell, p, dtype, packed_rows=False))
        assert parts["steps"] > 0 and parts["dw"] > 0
        assert (parts["input_projection"] == 0) == fused, parts
    kernel_run(cell, p, dtype, packed_rows=False)
    assert fusedrnn._core._profile() == []


@pytest.mark.usefixtures("isa")
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_sliced_k_matches_reference(cell):
    """Weights beyond L2 (several MB) with more rows than one tile: each step walks K in
    slices of 256 rows of the panel (three slices at H = 520, on every ISA), the
    row blocks' partial sums carried between slices; against the reference, and the
    padded and packed layouts at once (lengths)."""
    p = make_problem(cell, 3, 9, 520, 520, True, seed=2)
    check_against_reference(cell, p, np.float32, packed_rows=True)


# --------------------------------------------------------------------------------------
# A step's A operand, h_{t-1} (with the fused input, [x_t | h_{t-1}]): copied into MR-row
# strips when those rows are a multiple of 4 KB apart (they would alias in the cache:
# rows_alias in csrc/gemm/gemm-inl.h), else read where they are, the fused input's K in
# two parts, x_t's and h_{t-1}'s (csrc/seq/forward-inl.h).  Each case names the layout
# its sizes select.
LAYOUTS = [
    # cell, dtype, I, H, strips
    ("lstm", np.float32, 128, 128, False),     # fused input (512 KB of weights), in place
    ("rnn_relu", np.float32, 96, 256, False),  # fused input, in place
    ("lstm", np.float64, 40, 24, False),       # fused input, in place
    ("rnn_tanh", np.float32, 1024, 64, True),  # fused input, x_t's rows 4 KB apart
    ("gru", np.float32, 48, 1024, True),       # projected, h_{t-1}'s rows 4 KB apart
    ("rnn_tanh", np.float64, 64, 512, True),   # projected, 4 KB rows of float64
    ("gru", np.float32, 64, 512, False),       # projected, rows of 2 KB in place
    ("gru", np.float32, 100, 128, False),      # projected, h_{t-1} in place
    ("lstm", np.float32, 64, 300, False),      # projected (1.7 MB), rows of 1200 bytes
    ("rnn_tanh", np.float64, 300, 200, False),  # projected (800 KB), rows of 1600 bytes
]
LAYOUT_IDS = [f"{c}-{np.dtype(d).name}-I{i}-H{h}-{'strips' if s else 'in-place'}"
              for c, d, i, h, s in LAYOUTS]


@pytest.mark.usefixtures("isa")
@pytest.mark.parametrize("cell,dtype,I,H,strips", LAYOUTS, ids=LAYOUT_IDS)
def test_step_operand_layouts_match_reference(cell, dtype, I, H, strips):  # noqa: E741
    """Every layout against the reference, forward and backward, 7 rows (a partial
    tile) with lengths, on every ISA; inference equals training (kernel_run)."""
    p = make_problem(cell, 4, 7, I, H, True, seed=11)
    check_against_reference(cell, p, dtype, packed_rows=True)


@pytest.mark.parametrize("cell,dtype,I,H,strips", LAYOUTS, ids=LAYOUT_IDS)
def test_step_operand_layout_is_the_one_documented(cell, dtype, I, H, strips,
                                                    restore_threads):  # noqa: E741
    """The strip copies show in the forward's `strips` timer exactly where the sizes
    say (and never for one row); 1, 2 and 3 threads agree bit for bit."""
    layer = make_layer(cell, I, H, dtype=dtype, seed=1)
    rng = np.random.default_rng(2)
    outs = []
    for B, n in ((8, 1), (8, 2), (8, 3), (1, 2)):
        fusedrnn.set_num_threads(n)
        x = rng.standard_normal((5, B, I)).astype(dtype) if n == 1 or B == 1 else x
        y, parts = _timed_parts(lambda: layer(x)[0])
        assert parts["steps"] > 0
        assert (parts["strips"] > 0) == (strips and B > 1), parts
        if B > 1:
            outs.append(y)
    for y in outs[1:]:
        np.testing.assert_array_equal(y, outs[0])


@pytest.mark.parametrize("cell,dtype,I,H,strips", LAYOUTS, ids=LAYOUT_IDS)
def test_backward_operand_layout_is_the_one_documented(cell, dtype, I, H, strips):  # noqa: E741
    """The backward's steps read dg_{t+1} (rows G*H apart) from strips exactly when
    those rows are a multiple of 4 KB apart (csrc/seq/backward-inl.h), per the
    `strips` timer of a backward call alone."""
    G = {"lstm": 4, "gru": 3}.get(cell, 1)
    layer = make_layer(cell, I, H, dtype=dtype, seed=1)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 8, I)).astype(dtype)
    dy = rng.standard_normal((4, 8, H)).astype(dtype)
    _, _, tape = layer.forward(x, train=True)
    _, parts = _timed_parts(lambda: layer.backward(tape, dy))
    assert parts["steps"] > 0
    assert (parts["strips"] > 0) == (G * H * np.dtype(dtype).itemsize % 4096 == 0), parts


# --------------------------------------------------------------------------------------
# Training of an LSTM or GRU projects its input in blocks of steps (into a scratch, the
# gates then written to the workspace) while W_ih and W_hh together fit
# kBlockedTrainBytes = 16 MB (shape-inl.h), and in one product over the workspace's gate
# region above it.  Both sides against the reference, forward and backward, with
# inference equal to training bit for bit (check_against_reference / kernel_run).
BLOCKED_LIMIT = 16 << 20


def _blocked_input_size(cell, H, dtype, blocked):
    G = 4 if cell == "lstm" else 3
    fit = BLOCKED_LIMIT // (G * H * np.dtype(dtype).itemsize) - H
    return fit if blocked else fit + 1


@pytest.mark.usefixtures("isa")
@pytest.mark.parametrize("blocked", [True, False], ids=["blocked", "one-product"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_training_projection_on_both_sides_of_its_switch(cell, dtype, blocked):
    H = 256
    I = _blocked_input_size(cell, H, dtype, blocked)  # noqa: E741
    p = make_problem(cell, 3, 5, I, H, True, seed=11, lengths=True)
    check_against_reference(cell, p, dtype, packed_rows=True)
