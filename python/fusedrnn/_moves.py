"""Moving weights between a layer's (layer, direction) slot and a cell.

``LSTMCell.from_layer(lstm, layer, direction)`` builds a cell holding copies of that
slot's weights; ``lstm.load_cell(cell, layer, direction)`` copies a cell's weights into
the slot.  Both go through ``load_state_dict``, so packed weights stay right.  The
layer and cell classes call these functions from thin methods.
"""

from __future__ import annotations

import numbers

import numpy as np

_ROLES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _pairs():
    """(layer class, cell class) per kind."""
    from . import layers  # noqa: PLC0415 - layers imports this module lazily too

    return ((layers.LSTM, layers.LSTMCell), (layers.GRU, layers.GRUCell),
            (layers.RNN, layers.RNNCell))


def _index(value, name, count, what):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if not 0 <= value < count:
        raise ValueError(f"{name}: expected an int in [0, {count - 1}] ({what}), got {value}")
    return int(value)


def _slot(rnn, layer, direction):
    """The suffix of a layer slot's parameter names and that slot's input size."""
    L = rnn.num_layers
    D = 2 if rnn.bidirectional else 1
    layer = _index(layer, "layer", L, f"the layer has num_layers={L}")
    direction = _index(direction, "direction", D,
                       "bidirectional: 0 forward, 1 reverse" if D == 2 else
                       "the layer is not bidirectional: only 0")
    if rnn.proj_size:
        raise ValueError(f"proj_size: the layer has proj_size={rnn.proj_size}; a cell has no "
                         "projection, so its weights cannot move to or from a cell")
    in_size = rnn.input_size if layer == 0 else D * rnn.hidden_size
    return f"_l{layer}" + ("_reverse" if direction else ""), in_size


def _options(m):
    """The kind-specific options a layer and its cell must share."""
    out = {}
    if hasattr(m, "reset_after"):
        out["reset_after"] = m.reset_after
    if hasattr(m, "nonlinearity"):
        out["nonlinearity"] = m.nonlinearity
    return out


def cell_from_layer(cell_cls, rnn, layer=0, direction=0):
    """A new ``cell_cls`` holding copies of ``rnn``'s (layer, direction) weights."""
    layer_cls = next(lc for lc, cc in _pairs() if issubclass(cell_cls, cc))
    if not isinstance(rnn, layer_cls):
        raise TypeError(f"rnn: {cell_cls.__name__}.from_layer expects a fusedrnn."
                        f"{layer_cls.__name__}, got {type(rnn).__name__}")
    suffix, in_size = _slot(rnn, layer, direction)
    cell = cell_cls(in_size, rnn.hidden_size, bias=rnn.bias, dtype=rnn.dtype, seed=0,
                    **_options(rnn))
    sd = rnn.state_dict()
    cell.load_state_dict({role: sd[role + suffix] for role in _ROLES if role + suffix in sd})
    return cell


def load_cell(rnn, cell, layer=0, direction=0):
    """Copy ``cell``'s weights into ``rnn``'s (layer, direction) slot, in place."""
    cell_cls = next(cc for lc, cc in _pairs() if isinstance(rnn, lc))
    if not isinstance(cell, cell_cls):
        raise TypeError(f"cell: {type(rnn).__name__}.load_cell expects a fusedrnn."
                        f"{cell_cls.__name__}, got {type(cell).__name__}")
    suffix, in_size = _slot(rnn, layer, direction)
    if cell.input_size != in_size:
        raise ValueError(f"cell: input_size {cell.input_size} does not match layer {layer}'s "
                         f"input size {in_size}")
    if cell.hidden_size != rnn.hidden_size:
        raise ValueError(f"cell: hidden_size {cell.hidden_size} does not match the layer's "
                         f"{rnn.hidden_size}")
    if cell.bias != rnn.bias:
        raise ValueError(f"cell: bias={cell.bias} does not match the layer's bias={rnn.bias}")
    for k, v in _options(rnn).items():
        if getattr(cell, k) != v:
            raise ValueError(f"cell: {k}={getattr(cell, k)!r} does not match the layer's "
                             f"{k}={v!r}")
    if cell.dtype != rnn.dtype:
        raise TypeError(f"cell: dtype {cell.dtype} does not match the layer's {rnn.dtype}")
    sd = cell.state_dict()
    rnn.load_state_dict({role + suffix: a for role, a in sd.items()}, strict=False)
