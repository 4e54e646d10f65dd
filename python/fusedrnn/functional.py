"""Stateless functions over arrays: argument checks and one kernel call each.

The layer and cell classes are built on these; they are public for users who keep
their own parameters.  Arrays follow the kernel layout: x (T, B, I), states (B, H),
weights in torch's layout (weight_ih (G*H, I), weight_hh (G*H, H), biases (G*H,)).
"""

from __future__ import annotations

import numbers

import numpy as np

from . import _core

__all__ = ["CELLS", "as_array", "as_dtype", "pack", "packed_rows", "reverse_rows",
           "sequence_forward", "sequence_backward", "sequence_forward_pair",
           "sequence_backward_pair", "step", "quant_pack", "quant_forward",
           "quant_forward_pair"]

#: Kernel cell names and their gate counts.
CELLS = {
    "lstm": 4,
    "gru": 3,  # reset_after=True
    "gru_reset_before": 3,  # reset_after=False
    "rnn_tanh": 1,
    "rnn_relu": 1,
}

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def as_dtype(dtype) -> np.dtype:
    """The layer dtype: float32 or float64 (anything np.dtype() accepts for them)."""
    try:
        dt = np.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"dtype: expected float32 or float64, got {dtype!r}") from e
    if dt not in _FLOATS:
        raise TypeError(f"dtype: expected float32 or float64, got {dt}")
    return dt


def _to_numpy(value):
    """np.asarray, also for CPU torch tensors (detached) without importing torch."""
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach") and hasattr(value, "cpu") and hasattr(value, "numpy"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def as_array(value, name: str, dtype: np.dtype, *, copy: bool = False, exact: bool = True):
    """Convert `value` to a C-contiguous array of `dtype`.

    Only floating inputs are accepted.  With ``exact=True`` (inputs, states and
    gradients) only conversions that lose nothing are made: float16 -> float32 /
    float64 and float32 -> float64.  With ``exact=False`` (weights in
    load_state_dict) any floating dtype is cast, as torch's ``copy_`` does.
    """
    try:
        a = _to_numpy(value)
    except Exception as e:  # e.g. ragged nested lists
        raise TypeError(f"{name}: expected an array of {dtype}, got {type(value).__name__}") from e
    if a.dtype.kind != "f":
        raise TypeError(f"{name}: expected a floating array ({dtype}), got dtype {a.dtype}")
    if a.dtype != dtype and exact and not np.can_cast(a.dtype, dtype, "safe"):
        raise TypeError(
            f"{name}: expected dtype {dtype} (or one that converts to it exactly), got {a.dtype}"
        )
    try:
        if copy:
            return np.array(a, dtype=dtype, order="C", copy=True)
        # np.asarray keeps a 0-d array 0-d (np.ascontiguousarray would make it (1,) and
        # let a wrong shape through when a size is 1).
        return np.asarray(a, dtype=dtype, order="C")
    except MemoryError as e:  # e.g. a huge broadcast view that needs a contiguous copy
        raise MemoryError(f"{name}: a contiguous {dtype} copy of shape {a.shape} does not fit "
                          "in memory") from e


def expect_shape(a: np.ndarray, name: str, shape: tuple) -> None:
    if a.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {a.shape}")


def check_size(value, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return int(value)


def pack(cell: str, weight_ih, weight_hh, bias_ih=None, bias_hh=None, *, weight_hr=None,
         one_step=False):
    """Pack one layer-direction's weights for the kernels (done once per weight version).

    Weights must already be C-contiguous float32/float64 arrays of torch's shapes.
    ``weight_hr`` (P, H): an LSTM's projection (weight_hh is then (4H, P)).
    ``one_step`` also packs them for single-step calls (cells; not GRU reset_before).
    """
    if cell not in CELLS:
        raise ValueError(f"cell: expected one of {sorted(CELLS)}, got {cell!r}")
    return _core.Weights(cell, weight_ih, weight_hh, bias_ih, bias_hh, bool(one_step), weight_hr)


def packed_rows(batch_sizes: np.ndarray):
    """Where rows packed by ``batch_sizes`` (see sequence_forward) sit: (off, t_of, j_of).

    off (T+1,): step t's rows are off[t] .. off[t+1]-1 (off[T] = N); t_of and j_of (N,):
    the step of each packed row and its place in that step's batch (row = off[t] + j).
    """
    bs = batch_sizes
    off = np.concatenate([[0], np.cumsum(bs)])
    t_of = np.repeat(np.arange(len(bs)), bs)
    j_of = np.arange(int(off[-1])) - off[t_of]
    return off, t_of, j_of


def reverse_rows(batch_sizes: np.ndarray) -> np.ndarray:
    """For rows packed by ``batch_sizes`` (see sequence_forward): the permutation of the
    N rows that pairs step t of each sequence with its step len-1-t, which is what a
    reverse direction reads (the permutation is its own inverse)."""
    bs = batch_sizes
    off, t_of, j_of = packed_rows(bs)
    lengths = (bs[None, :] > np.arange(int(bs[0]))[:, None]).sum(1)  # row j's length
    return off[lengths[j_of] - 1 - t_of] + j_of


def sequence_forward(packed, x, h0, c0=None, *, train=False, batch_sizes=None):
    """Run one layer-direction over x (T, B, I) from states h0 (B, Hr), c0 (B, H).

    Hr is the projection size of an LSTM with one, else H.  With ``batch_sizes`` (int64
    (T,), non-increasing, each >= 1: rows per step of a batch sorted by length, longest
    first, as torch's PackedSequence) x is (N, I), its rows packed step by step, and so
    is y.  Returns (y, h_n, c_n, workspace); c_n is None except for LSTM, workspace is
    None unless ``train`` (then pass it to sequence_backward).
    """
    return _core.forward(packed, x, h0, c0, bool(train), batch_sizes)


def step(packed, x, h0, c0=None):
    """One inference step of a cell: x (B, I), h0 (B, H), c0 (B, H) for an LSTM, all
    C-contiguous arrays of the weights' dtype; the weights packed with ``one_step=True``.
    Returns (h1, c1); c1 is None except for LSTM."""
    return _core.step(packed, x, h0, c0)


#: A cell's inference step, (h1, c1) for an LSTM else h1, when x (B, I) and hx need no
#: conversion (C-contiguous arrays of the weights' dtype and shapes, batched), else None:
#: then take the checked path.  The compiled function itself, so that the per-step path
#: pays for no Python call.
cell_call_unchecked = _core.cell_call


def sequence_backward(packed, x, workspace, dy, dh_n=None, dc_n=None, *, batch_sizes=None,
                      need_dx=True):
    """Gradients of one layer-direction, given the forward's x, workspace and batch_sizes.

    Returns a dict with dx (like x), dh0 (B, Hr), dc0 (LSTM), weight_ih, weight_hh,
    weight_hr (LSTM projection) and, when the weights have biases, bias_ih and bias_hh.
    ``need_dx=False`` skips the product for dx (then None): an input that needs no
    gradient; every other result is the same, bit for bit.
    """
    return _grads(_core.backward(packed, x, workspace, dy, dh_n, dc_n, batch_sizes,
                                 bool(need_dx)))


def _grads(results):
    """The kernels' backward results as sequence_backward's dict."""
    dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr = results
    out = {"dx": dx, "dh0": dh0, "weight_ih": dw_ih, "weight_hh": dw_hh}
    if dw_hr is not None:
        out["weight_hr"] = dw_hr
    if dc0 is not None:
        out["dc0"] = dc0
    if db_ih is not None:
        out["bias_ih"] = db_ih
        out["bias_hh"] = db_hh
    return out


def sequence_forward_pair(packed, x, h0, c0=None, *, train=False, batch_sizes=None):
    """sequence_forward for the two directions of a bidirectional layer at once, side by
    side on the threads (each direction on half of them when their count is even; else
    one after the other): packed, x and h0 are pairs (one per direction), c0 a pair or
    None.  Each direction runs as sequence_forward would run it (the reverse direction's
    x already reversed) and its results are the same, bit for bit.  Returns a pair of
    sequence_forward's results.  Errors name the direction ("direction 1: x: ...")."""
    return _core.forward_pair(packed, x, h0, c0, bool(train), batch_sizes)


def sequence_backward_pair(packed, x, workspace, dy, dh_n=None, dc_n=None, *,
                           batch_sizes=None, need_dx=True):
    """sequence_backward for both directions of a bidirectional layer, side by side (see
    sequence_forward_pair): packed, x, workspace and dy pairs, dh_n and dc_n pairs or
    None.  Returns a pair of sequence_backward's dicts."""
    r0, r1 = _core.backward_pair(packed, x, workspace, dy, dh_n, dc_n, batch_sizes,
                                 bool(need_dx))
    return _grads(r0), _grads(r1)


# -- quantized inference (fusedrnn.quantized) --------------------------------------------
#: The storage modes of quantized weights.
QUANT_MODES = ("int8", "float16", "bfloat16")


def quant_pack(cell: str, mode: str, weight_ih, weight_hh, bias_ih=None, bias_hh=None, *,
               scale_ih=None, scale_hh=None, weight_hr=None, scale_hr=None):
    """Pack one layer-direction's quantized weights for the kernels (once per version).

    mode "int8": int8 weights in torch's shapes with float32 per-row scales
    (``scale_*``, one per output row); "float16": float16 weights; "bfloat16": uint16
    arrays of bfloat16 bits.  Biases float32 (G*H,) or both None.  ``weight_hr`` (P, H)
    (and ``scale_hr``): an LSTM's projection.  All C-contiguous.  See
    docs/quantization.md for the scheme.
    """
    if cell not in CELLS:
        raise ValueError(f"cell: expected one of {sorted(CELLS)}, got {cell!r}")
    if mode not in QUANT_MODES:
        raise ValueError(f"mode: expected one of {list(QUANT_MODES)}, got {mode!r}")
    return _core.QuantWeights(cell, mode, weight_ih, weight_hh, bias_ih, bias_hh, scale_ih,
                              scale_hh, weight_hr, scale_hr)


def quant_forward(weights, x, h0, c0=None, *, batch_sizes=None):
    """Inference of one quantized layer-direction (weights from quant_pack): float32
    arrays with the shapes and semantics of ``sequence_forward(..., train=False)``
    (``batch_sizes``: packed rows).  Returns (y, h_n, c_n); c_n is None except for LSTM.
    int8 weights: a non-finite value in x, h0 or c0 raises ValueError."""
    return _core.quant_forward(weights, x, h0, c0, batch_sizes)


def quant_forward_pair(weights, x, h0, c0=None, *, batch_sizes=None):
    """quant_forward for both directions of a bidirectional layer, side by side on the
    threads (see sequence_forward_pair): weights, x and h0 pairs, c0 a pair or None.
    Returns a pair of quant_forward's results, each the same, bit for bit."""
    return _core.quant_forward_pair(weights, x, h0, c0, batch_sizes)


#: quant_forward's compiled function itself, positional (weights, x, h0, c0): the
#: quantized cells' per-step path, which pays for no Python call.  It checks its
#: arguments (TypeError / ValueError naming them) and converts nothing.
quant_forward_unchecked = _core.quant_forward
