"""What the reference's cells and sequences share: the overflow-free sigmoid, the
bias and nonlinearity arguments, and the schedule of variable-length and reverse
sequences (the quantized reference's too)."""

from __future__ import annotations

import numpy as np


def sigmoid(x):
    """Logistic function 1 / (1 + exp(-x)), without overflow for large |x|."""
    x = np.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def check_biases(bias_ih, bias_hh):
    if (bias_ih is None) != (bias_hh is None):
        raise ValueError("bias_ih, bias_hh: give both or neither")


def bias_or_zeros(b, rows, dtype):
    return np.zeros(rows, dtype) if b is None else b


def check_lengths(lengths, T, B):
    """lengths as an int array (B,), all of them T when None."""
    if lengths is None:
        return np.full(B, T, dtype=np.int64)
    lengths = np.asarray(lengths)
    if lengths.shape != (B,) or lengths.dtype.kind not in "iu":
        raise ValueError(f"lengths: expected integers of shape ({B},), "
                         f"got {lengths.dtype} of shape {lengths.shape}")
    if lengths.size and (lengths.min() < 1 or lengths.max() > T):
        raise ValueError(f"lengths: expected 1 <= length <= T = {T}, got {lengths.tolist()}")
    return lengths.astype(np.int64)


def schedule(T, B, lengths, reverse):
    """Which time index each row reads at each step, and whether it is still running.

    Returns (times, on), both (T, B).  At step s, row b reads x[times[s, b], b] and
    writes y[times[s, b], b] if on[s, b] (that is s < len_b); otherwise the row has
    finished: it keeps its state and writes nothing (times is then 0, a placeholder).
    Forward: times[s, b] = s; reverse: times[s, b] = len_b - 1 - s.
    """
    lengths = check_lengths(lengths, T, B)
    steps = np.arange(T)[:, None]
    on = steps < lengths[None, :]
    times = lengths[None, :] - 1 - steps if reverse else np.broadcast_to(steps, (T, B))
    return np.where(on, times, 0), on


def gather(a, times_s):
    """Row b of a[times_s[b]] for every row b: (T, B, ...) -> (B, ...)."""
    return a[times_s, np.arange(a.shape[1])]


def scatter(a, times_s, on_s, v):
    """a[times_s[b], b] = v[b] for the rows b that are running (on_s[b])."""
    a[times_s[on_s], np.arange(a.shape[1])[on_s]] = v[on_s]


def activation(name):
    if name == "tanh":
        return np.tanh
    if name == "relu":
        return lambda v: np.maximum(v, 0)
    raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {name!r}")
