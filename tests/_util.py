"""Small helpers shared by the test files (import as ``from _util import ...``)."""

from __future__ import annotations

import numpy as np

import fusedrnn
from fusedrnn import reference as ref

TINY = np.finfo(np.float64).tiny


def rel_err(a, b, floor: float = 0.0) -> float:
    """Norm-wise relative error ||a - b|| / max(||b||, floor * sqrt(b.size), tiny), in float64."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, f"shape {a.shape} != {b.shape}"
    denom = max(np.linalg.norm(b), floor * np.sqrt(b.size), TINY)
    return float(np.linalg.norm(a - b) / denom)


def assert_close(a, b, tol, what=""):
    """rel_err(a, b) <= tol, with a message that names the quantity."""
    e = rel_err(a, b)
    assert e <= tol, f"{what}: relative error {e:.3e} > {tol:.1e}"


def reference_run(cell, p):
    """The float64 reference's outputs and gradients (padded layout) as flat dicts.

    p: x, h0, c0, weights, biases, dy, dh_n, dc_n; optional lengths and weight_hr."""
    w = (p["weight_ih"], p["weight_hh"], p["bias_ih"], p["bias_hh"])
    L = p.get("lengths")
    if cell == "lstm":
        y, h_n, c_n, cache = ref.lstm_forward(p["x"], p["h0"], p["c0"], *w, lengths=L,
                                              weight_hr=p.get("weight_hr"))
        g = ref.lstm_backward(cache, p["dy"], p["dh_n"], p["dc_n"])
        out = dict(y=y, h_n=h_n, c_n=c_n)
    elif cell.startswith("gru"):
        y, h_n, cache = ref.gru_forward(p["x"], p["h0"], *w, reset_after=cell == "gru",
                                        lengths=L)
        g = ref.gru_backward(cache, p["dy"], p["dh_n"])
        out = dict(y=y, h_n=h_n)
    else:
        y, h_n, cache = ref.rnn_forward(p["x"], p["h0"], *w, nonlinearity=cell[4:], lengths=L)
        g = ref.rnn_backward(cache, p["dy"], p["dh_n"])
        out = dict(y=y, h_n=h_n)
    return out, g


#: The kernels' cell kinds, as the layers select them.
KINDS = ["lstm", "gru", "gru_reset_before", "rnn_tanh", "rnn_relu"]


def make_layer(kind, input_size, hidden_size, dtype=np.float32, seed=0, **kw):
    """A NumPy layer (fusedrnn.LSTM / GRU / RNN) of the given kernel kind."""
    if kind == "lstm":
        return fusedrnn.LSTM(input_size, hidden_size, dtype=dtype, seed=seed, **kw)
    if kind.startswith("gru"):
        return fusedrnn.GRU(input_size, hidden_size, reset_after=kind == "gru", dtype=dtype,
                            seed=seed, **kw)
    return fusedrnn.RNN(input_size, hidden_size, nonlinearity=kind[4:], dtype=dtype, seed=seed,
                        **kw)


def run_layer(m, x, dy=None, lengths=None):
    """Training forward + backward of a NumPy layer; every result as a flat dict of arrays."""
    y, state, tape = m.forward(x, lengths=lengths)
    dx, dstate, grads = m.backward(tape, np.ones_like(y) if dy is None else dy)
    out = {"y": y, "dx": dx}
    if isinstance(state, tuple):
        out.update(h_n=state[0], c_n=state[1], dh0=dstate[0], dc0=dstate[1])
    else:
        out.update(h_n=state, dh0=dstate)
    out.update(grads)
    return out
