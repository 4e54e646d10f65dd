"""Helpers shared by the Keras and ONNX converters: the module's kind and state_dict
names, gate-block reordering, array checks."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..functional import _to_numpy
from ..layers import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

# Gate block k of the other format = torch's gate block ORDER[k].
_KERAS_ORDER = {"LSTM": (0, 1, 2, 3), "GRU": (1, 0, 2), "RNN": (0,)}
_ONNX_ORDER = {"LSTM": (0, 3, 1, 2), "GRU": (1, 0, 2), "RNN": (0,)}
_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
_KERAS_CLASS = {"LSTM": "LSTM", "GRU": "GRU", "RNN": "SimpleRNN"}
_ROLES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


# ------------------------------------------------------------------------------ helpers
def _kind(module, fn: str) -> str:
    """'LSTM', 'GRU' or 'RNN' for a fusedrnn layer; TypeError otherwise."""
    if isinstance(module, LSTM):
        kind = "LSTM"
    elif isinstance(module, GRU):
        kind = "GRU"
    elif isinstance(module, RNN):
        kind = "RNN"
    elif isinstance(module, (LSTMCell, GRUCell, RNNCell)):
        raise TypeError(f"module: {fn} converts the layers fusedrnn.LSTM, GRU and RNN, not the "
                        f"cell {type(module).__name__}")
    else:
        raise TypeError(f"module: expected a fusedrnn.LSTM, GRU or RNN layer, got "
                        f"{type(module).__name__}")
    if kind == "LSTM" and getattr(module, "proj_size", 0):
        fmt = "Keras" if "keras" in fn else "ONNX"
        raise ValueError(f"module: {fn} cannot express an LSTM with proj_size={module.proj_size} "
                         f"(the {fmt} LSTM has no projection); use proj_size=0")
    return kind


def _names(module) -> list:
    """[[{role: state_dict name} per direction] per layer], forward direction first."""
    dirs = ("", "_reverse") if getattr(module, "bidirectional", False) else ("",)
    roles = _ROLES if module.bias else _ROLES[:2]
    return [[{r: f"{r}_l{k}{d}" for r in roles} for d in dirs]
            for k in range(getattr(module, "num_layers", 1))]


def _reorder(a, order):
    """Gate blocks along axis 0, rearranged: block k of the result = block order[k] of a."""
    blocks = np.split(a, len(order), axis=0)
    return np.concatenate([blocks[k] for k in order], axis=0)


def _inverse(order):
    return tuple(int(k) for k in np.argsort(order))


def _array(value, name: str) -> np.ndarray:
    """A floating array (torch tensors accepted); TypeError naming `name` otherwise."""
    try:
        a = _to_numpy(value)
    except Exception as e:  # e.g. ragged nested lists
        raise TypeError(f"{name}: expected a floating array, got {type(value).__name__}") from e
    if a.dtype.kind != "f":
        raise TypeError(f"{name}: expected a floating array, got dtype {a.dtype}")
    return a


def _shaped(value, name: str, shape: tuple) -> np.ndarray:
    a = _array(value, name)
    if a.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {a.shape}")
    return a


def _layers_list(weights, module, fmt: str) -> list:
    """`weights` as a list with one entry per layer of `module`."""
    if isinstance(weights, Mapping) or not isinstance(weights, (list, tuple)):
        raise TypeError(f"weights: expected a list with one {fmt} entry per layer, got "
                        f"{type(weights).__name__}")
    L = getattr(module, "num_layers", 1)
    if len(weights) != L:
        hint = ""
        if fmt == "Keras" and L == 1 and len(weights) in (2, 3, 4, 6):
            hint = ("; for a one-layer module pass the Keras layer's weights in a list: "
                    "[layer.get_weights()]")
        elif fmt == "ONNX" and L == 1:
            hint = "; for a one-layer module pass [{'W': ..., 'R': ..., 'B': ...}]"
        raise ValueError(f"weights: expected {L} entries (one per layer, num_layers={L}), got "
                         f"{len(weights)}{hint}")
    return list(weights)
