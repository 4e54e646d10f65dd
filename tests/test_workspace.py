"""The training workspace's size, every check of it in this file: the compiled formula
(``_core.workspace_size``) against the layout the kernels write (fusedrnn/dims.h: gates,
aux, states, projection), padded and packed rows; the workspace a training forward
returns, from the kernels and from the NumPy layers' tape.

The kernel tests run once per ISA this CPU can run (the ``isa`` fixture).
"""

import numpy as np
import pytest

import fusedrnn
from _problems import CELLS, batch_sizes_of, make_problem, pack_weights, to_packed
from _util import make_layer as make
from fusedrnn import functional as F


# ------------------------------------------------------------------ the kernels
@pytest.mark.usefixtures("isa")
@pytest.mark.parametrize("cell", CELLS)
def test_workspace_size_formula(cell):
    """Workspace of one training call: (G + 2) T B H + O(B H) for the gated cells."""
    T, B, H = 11, 3, 7
    G = F.CELLS[cell]
    n = fusedrnn._core.workspace_size(cell, T, B, H)
    if cell == "lstm":
        assert n == (G + 2) * T * B * H + 2 * B * H
    elif cell.startswith("gru"):
        assert n == (G + 2) * T * B * H + B * H
    else:
        assert n == (T + 1) * B * H


WS_CASES = [(c, 0) for c in CELLS] + [("lstm", 1), ("lstm", 3)]


@pytest.mark.usefixtures("isa")
@pytest.mark.parametrize("packed_rows", [False, True], ids=["padded", "rows"])
@pytest.mark.parametrize("cell,P", WS_CASES, ids=[f"{c}-P{p}" for c, p in WS_CASES])
def test_workspace_size_matches_training_forward(cell, P, packed_rows):
    T, B, I, H = 7, 5, 3, 9
    p = make_problem(cell, T, B, I, H, True, seed=8, P=P, lengths=packed_rows)
    p["lengths"] = np.array([7, 5, 5, 2, 1], np.int64) if packed_rows else p["lengths"]
    bs = batch_sizes_of(p["lengths"], T)
    N = int(bs.sum())
    assert N == (20 if packed_rows else T * B)
    w = pack_weights(cell, p, np.float64)
    x = to_packed(p["x"], bs) if packed_rows else p["x"]
    _, _, _, ws = F.sequence_forward(w, x, p["h0"], p["c0"], train=True,
                                     batch_sizes=bs if packed_rows else None)
    n = fusedrnn._core.workspace_size(cell, T, B, H, P, N)
    assert ws.shape == (n,)
    if not packed_rows:
        assert fusedrnn._core.workspace_size(cell, T, B, H, P) == n  # N defaults to T * B
    # The layout of dims.h: gates [N][G H], aux, h [B + N][Hr], m [N][H] (projection).
    G, Hr = F.CELLS[cell], P or H
    aux = {"lstm": (B + N) * H, "gru": N * H, "gru_reset_before": N * H}.get(cell, 0)
    gates = 0 if cell.startswith("rnn") else N * G * H
    assert n == gates + aux + (B + N) * Hr + (N * H if P else 0)


# ------------------------------------------------------------------ the NumPy layers
def _workspace_formula(kind, T, B, H, P=0):
    """Elements of one layer-direction's training workspace (its memory cost; see docs/robustness.md)."""
    N = T * B
    G = fusedrnn.functional.CELLS[kind]
    if kind == "lstm":
        return (G + 2) * N * H + 2 * B * H if not P else (G + 2) * N * H + N * P + B * (H + P)
    if kind.startswith("gru"):
        return (G + 2) * N * H + B * H
    return N * H + B * H  # RNN: the states only


@pytest.mark.parametrize("T,B,H", [(1, 1, 1), (7, 3, 9), (20, 5, 33)])
def test_lstm_workspace_size(T, B, H):
    m = fusedrnn.LSTM(4, H, seed=0)
    _, _, tape = m.forward(np.zeros((T, B, 4), np.float32))
    ws = tape._runs[0][2]
    G = 4
    assert ws.size <= (G + 2) * T * B * H + 2 * B * H
    assert ws.size == fusedrnn._core.workspace_size("lstm", T, B, H)
    assert ws.size == _workspace_formula("lstm", T, B, H)


@pytest.mark.parametrize("kind,P", [("lstm", 5), ("gru", 0), ("gru_reset_before", 0),
                                    ("rnn_tanh", 0), ("rnn_relu", 0)])
def test_other_workspace_sizes(kind, P):
    T, B, H = 7, 3, 9
    m = make(kind, 4, H, **({"proj_size": P} if P else {}))
    _, _, tape = m.forward(np.zeros((T, B, 4), np.float32))
    size = tape._runs[0][2].size
    assert size == fusedrnn._core.workspace_size(kind, T, B, H, P)
    assert size == _workspace_formula(kind, T, B, H, P)
