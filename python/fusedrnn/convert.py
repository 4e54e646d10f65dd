"""Weights of the recurrent layers in the layouts of Keras and of the ONNX operators.

The layers (``fusedrnn.LSTM``, ``GRU``, ``RNN``) keep torch's layout: per layer ``k``
and direction, ``weight_ih_l{k}`` (G*H, I_k), ``weight_hh_l{k}`` (G*H, H), ``bias_ih_l{k}``
and ``bias_hh_l{k}`` (G*H,), the reverse direction with the suffix ``_reverse``; gate
blocks LSTM i, f, g, o, GRU r, z, n.  This module converts them both ways:

Keras (``to_keras`` / ``from_keras``): one entry per layer, each the list that Keras'
``LSTM`` / ``GRU`` / ``SimpleRNN`` ``get_weights()`` gives (``set_weights()`` takes)::

    kernel            (I_k, G*H)   = weight_ih.T, gate columns in Keras' order
    recurrent_kernel  (H, G*H)     = weight_hh.T
    bias              LSTM, SimpleRNN, GRU(reset_after=False): (G*H,)
                      GRU(reset_after=True): (2, G*H) = [input bias; recurrent bias]

Keras' gate order is LSTM i, f, c, o (torch's) and GRU z, r, h (torch's r, z, n with the
first two swapped).  Without biases (``bias=False``, Keras ``use_bias=False``) the list
is ``[kernel, recurrent_kernel]``.  A bidirectional layer's entry is the pair
``(forward_weights, backward_weights)``, the ``get_weights()`` of the ``forward_layer``
and ``backward_layer`` of Keras' ``Bidirectional`` wrapper (whose own ``get_weights()``
is their concatenation, ``[*forward_weights, *backward_weights]``; ``from_keras`` takes
either form).  A stack of ``num_layers`` Keras layers with ``return_sequences=True``
(``merge_mode="concat"`` for the bidirectional ones) computes what the module computes.

ONNX (``to_onnx`` / ``from_onnx``): one dict per layer with the inputs of the ONNX
``LSTM`` / ``GRU`` / ``RNN`` operator, direction "forward" (or "bidirectional" for a
bidirectional module; num_directions D = 1 or 2, forward first)::

    "W"  (D, G*H, I_k)   gate blocks LSTM i, o, f, c; GRU z, r, h; RNN one block
    "R"  (D, G*H, H)
    "B"  (D, 2*G*H)      = [Wb, Rb] (input biases, then recurrent biases)
    "linear_before_reset"   GRU only: 1 for reset_after=True, 0 for reset_after=False

The operator's other settings are what it defaults to (activations Sigmoid/Tanh, Tanh or
``Relu`` for an RNN as its ``nonlinearity`` says, no clip, ``input_forget=0``) and its
``hidden_size`` is the module's.  A reverse-only ONNX layer (direction "reverse") has no
counterpart here.

Both formats fold torch's two biases where their cell has only one: Keras' LSTM,
SimpleRNN and GRU(reset_after=False) bias is ``bias_ih + bias_hh`` (exact for these
formulas), and importing it sets ``bias_ih`` to it and ``bias_hh`` to zeros.  ONNX keeps
both biases.  LSTM projections (``proj_size > 0``) and ONNX peepholes have no
counterpart in the other format and are refused.

Every ``from_*`` checks everything (count, types and shapes of the arrays, options)
before it changes the module, then loads the weights with ``load_state_dict`` (which
casts them to the module's dtype) and returns the module.  ``to_*`` returns new arrays
of the module's dtype.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping

import numpy as np

from .functional import _to_numpy
from .layers import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

__all__ = ["to_keras", "from_keras", "to_onnx", "from_onnx"]

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


def _check_reset_after(module, kind: str, reset_after) -> None:
    """The `reset_after` argument of the Keras functions: None or the module's."""
    if reset_after is None:
        return
    if kind != "GRU":
        raise ValueError(f"reset_after: only a GRU has it; got reset_after={reset_after!r} for a "
                         f"{kind}")
    if bool(reset_after) != module.reset_after:
        raise ValueError(f"reset_after: Keras' GRU(reset_after={bool(reset_after)}) computes a "
                         f"different cell from this GRU(reset_after={module.reset_after}); "
                         "build the fusedrnn.GRU with the same reset_after")


# -------------------------------------------------------------------------------- Keras
def to_keras(module, *, reset_after=None) -> list:
    """The module's weights as Keras holds them: one entry per layer.

    A unidirectional layer's entry is ``[kernel, recurrent_kernel, bias]`` as Keras'
    ``LSTM`` / ``GRU`` / ``SimpleRNN`` ``get_weights()`` gives it (``[kernel,
    recurrent_kernel]`` when ``module.bias`` is False: Keras ``use_bias=False``);
    kernel (I_k, G*H), recurrent_kernel (H, G*H), bias (G*H,) or, for a
    GRU with reset_after=True, (2, G*H).  Gate columns: LSTM i, f, c, o; GRU z, r, h.
    A bidirectional layer's entry is the tuple ``(forward_weights, backward_weights)``.

    The Keras layers to load them into: ``LSTM(H)``, ``SimpleRNN(H, activation=
    module.nonlinearity)``, ``GRU(H, reset_after=module.reset_after)`` (``reset_after``
    here, if given, must equal the module's), each with ``use_bias=module.bias`` and
    their default activations.  LSTM and SimpleRNN (and GRU with reset_after=False)
    biases are ``bias_ih + bias_hh``.  ValueError for an LSTM with ``proj_size > 0``.
    """
    kind = _kind(module, "to_keras")
    _check_reset_after(module, kind, reset_after)
    order = _KERAS_ORDER[kind]
    two_biases = kind == "GRU" and module.reset_after
    sd = module.state_dict()
    out = []
    for layer in _names(module):
        per_dir = []
        for n in layer:
            w = [np.ascontiguousarray(_reorder(sd[n["weight_ih"]], order).T),
                 np.ascontiguousarray(_reorder(sd[n["weight_hh"]], order).T)]
            if module.bias:
                b_ih = _reorder(sd[n["bias_ih"]], order)
                b_hh = _reorder(sd[n["bias_hh"]], order)
                w.append(np.stack([b_ih, b_hh]) if two_biases else b_ih + b_hh)
            per_dir.append(w)
        out.append(per_dir[0] if len(per_dir) == 1 else tuple(per_dir))
    return out


def _keras_directions(entry, name: str, n: int, D: int) -> list:
    """One layer's Keras entry as a list of D lists of n arrays."""
    if not isinstance(entry, (list, tuple)):
        raise TypeError(f"{name}: expected a list of Keras weight arrays, got "
                        f"{type(entry).__name__}")
    what = "[kernel, recurrent_kernel, bias]" if n == 3 else "[kernel, recurrent_kernel]"
    if D == 1:
        if len(entry) == 2 and n == 3 and all(isinstance(e, (list, tuple)) for e in entry):
            raise ValueError(f"{name}: got a (forward, backward) pair of a bidirectional layer, "
                             "but the module has bidirectional=False")
        if len(entry) != n:
            raise ValueError(f"{name}: expected {n} arrays {what}"
                             f"{' (the module has bias=False)' if n == 2 else ''}, got "
                             f"{len(entry)}")
        return [list(entry)]
    if len(entry) == 2 and all(isinstance(e, (list, tuple)) for e in entry):
        dirs = [list(e) for e in entry]
        for d, e in zip(("forward", "backward"), dirs):
            if len(e) != n:
                raise ValueError(f"{name} ({d} weights): expected {n} arrays {what}"
                                 f"{' (the module has bias=False)' if n == 2 else ''}, got "
                                 f"{len(e)}")
        return dirs
    if len(entry) == 2 * n:  # Keras' Bidirectional.get_weights(): forward then backward
        return [list(entry[:n]), list(entry[n:])]
    raise ValueError(f"{name}: the module is bidirectional: expected a pair (forward_weights, "
                     f"backward_weights) of {n} arrays each, or the {2 * n} arrays of Keras' "
                     f"Bidirectional.get_weights(), got {len(entry)} entries")


def from_keras(module, weights, *, reset_after=None):
    """Load weights in Keras' layout (see ``to_keras``) into `module`; returns it.

    `weights` has one entry per layer: ``[kernel, recurrent_kernel, bias]`` (``[kernel,
    recurrent_kernel]`` for a module with ``bias=False``), or for a bidirectional layer
    ``(forward_weights, backward_weights)`` or the flat list of Keras' ``Bidirectional``
    (forward's arrays, then backward's).  A one-bias Keras cell (LSTM, SimpleRNN,
    GRU(reset_after=False)) loads its bias into ``bias_ih`` and zeros into ``bias_hh``;
    a GRU(reset_after=True) bias (2, G*H) loads its rows into ``bias_ih`` and ``bias_hh``.
    A GRU's bias shape tells Keras' reset_after, which must equal the module's (as must
    ``reset_after`` here if given).  Nothing is changed unless all weights are valid.
    """
    kind = _kind(module, "from_keras")
    _check_reset_after(module, kind, reset_after)
    inv = _inverse(_KERAS_ORDER[kind])
    G, H = _GATES[kind], module.hidden_size
    GH = G * H
    shapes = {k: a.shape for k, a in module.state_dict().items()}
    layers = _layers_list(weights, module, "Keras")
    n = 3 if module.bias else 2
    sd = {}
    for k, (entry, layer) in enumerate(zip(layers, _names(module))):
        dirs = _keras_directions(entry, f"weights[{k}] (layer {k})", n, len(layer))
        for d, (arrays, names) in enumerate(zip(dirs, layer)):
            where = f"weights[{k}]" + ("" if len(layer) == 1 else f"[{d}]")
            where_l = f" (layer {k}{'' if len(layer) == 1 else ', ' + ('forward', 'backward')[d]})"
            I_k = shapes[names["weight_ih"]][1]
            kernel = _shaped(arrays[0], f"{where}[0] (kernel){where_l}", (I_k, GH))
            rec = _shaped(arrays[1], f"{where}[1] (recurrent_kernel){where_l}", (H, GH))
            sd[names["weight_ih"]] = _reorder(kernel.T, inv)
            sd[names["weight_hh"]] = _reorder(rec.T, inv)
            if not module.bias:
                continue
            bname = f"{where}[2] (bias){where_l}"
            bias = _array(arrays[2], bname)
            if kind == "GRU" and bias.shape in ((GH,), (2, GH)):
                keras_ra = bias.ndim == 2
                if keras_ra != module.reset_after:
                    raise ValueError(
                        f"reset_after: {bname} has shape {bias.shape}, the bias of Keras' "
                        f"GRU(reset_after={keras_ra}), but the module has reset_after="
                        f"{module.reset_after}; build the fusedrnn.GRU with the same reset_after")
            expected = (2, GH) if kind == "GRU" and module.reset_after else (GH,)
            bias = _shaped(bias, bname, expected)
            if bias.ndim == 2:
                b_ih, b_hh = bias[0], bias[1]
            else:
                b_ih, b_hh = bias, np.zeros_like(bias)
            sd[names["bias_ih"]] = _reorder(b_ih, inv)
            sd[names["bias_hh"]] = _reorder(b_hh, inv)
    module.load_state_dict(sd)
    return module


# --------------------------------------------------------------------------------- ONNX
def to_onnx(module) -> list:
    """The module's weights as inputs of the ONNX LSTM / GRU / RNN operator, per layer.

    Returns one dict per layer: "W" (D, G*H, I_k), "R" (D, G*H, H) and, when
    ``module.bias``, "B" (D, 2*G*H) = [Wb, Rb]; D = 2 (ONNX direction "bidirectional",
    forward first) for a bidirectional module, else 1 (direction "forward").  Gate
    blocks: LSTM i, o, f, c; GRU z, r, h.  A GRU's dict also has
    "linear_before_reset": 1 for reset_after=True (torch's form), 0 for False.
    ValueError for an LSTM with ``proj_size > 0``.
    """
    kind = _kind(module, "to_onnx")
    order = _ONNX_ORDER[kind]
    sd = module.state_dict()
    out = []
    for layer in _names(module):
        d = {"W": np.stack([_reorder(sd[n["weight_ih"]], order) for n in layer]),
             "R": np.stack([_reorder(sd[n["weight_hh"]], order) for n in layer])}
        if module.bias:
            d["B"] = np.stack([np.concatenate([_reorder(sd[n["bias_ih"]], order),
                                               _reorder(sd[n["bias_hh"]], order)])
                               for n in layer])
        if kind == "GRU":
            d["linear_before_reset"] = int(module.reset_after)
        out.append(d)
    return out


def _zero_or_error(a, name: str, why: str) -> None:
    if np.any(a != 0):
        raise ValueError(f"{name}: {why}; only all zeros can be accepted")


def from_onnx(module, weights):
    """Load ONNX operator weights (see ``to_onnx``) into `module`; returns it.

    `weights` has one mapping per layer with "W" and "R", optionally "B" (missing:
    zero biases), for a GRU "linear_before_reset" (required; 1 must go with
    reset_after=True, 0 with False) and for an LSTM optionally the peepholes "P"
    (D, 3*H), accepted only when all zero.  Their first axis (num_directions) must be 2
    for a bidirectional module and 1 otherwise (ONNX direction "forward").  A module
    with ``bias=False`` accepts "B" only when it is all zero.  Nothing is changed unless
    all weights are valid.
    """
    kind = _kind(module, "from_onnx")
    inv = _inverse(_ONNX_ORDER[kind])
    G, H = _GATES[kind], module.hidden_size
    GH = G * H
    shapes = {k: a.shape for k, a in module.state_dict().items()}
    layers = _layers_list(weights, module, "ONNX")
    allowed = {"W", "R", "B"} | {"LSTM": {"P"}, "GRU": {"linear_before_reset"}}.get(kind, set())
    sd = {}
    for k, (entry, layer) in enumerate(zip(layers, _names(module))):
        where = f"weights[{k}]"
        layer_s = f" (layer {k})"
        if not isinstance(entry, Mapping):
            raise TypeError(f"{where}{layer_s}: expected a dict with 'W', 'R' and 'B', got "
                            f"{type(entry).__name__}")
        unexpected = sorted(str(key) for key in entry if key not in allowed)
        missing = [key for key in ("W", "R") if key not in entry]
        if kind == "GRU" and "linear_before_reset" not in entry:
            missing.append("linear_before_reset")
        if unexpected or missing:
            parts = ([f"missing keys {missing}"] if missing else []) + (
                [f"unexpected keys {unexpected}"] if unexpected else [])
            raise ValueError(f"{where}{layer_s}: {' and '.join(parts)}; an ONNX {kind} takes "
                             f"{sorted(allowed)}")
        if kind == "GRU":
            lbr = entry["linear_before_reset"]
            if isinstance(lbr, np.ndarray) and lbr.size == 1:
                lbr = lbr.item()  # e.g. read from an onnx AttributeProto via numpy
            if not isinstance(lbr, (numbers.Integral, np.bool_)) or lbr not in (0, 1):
                raise ValueError(f"{where}['linear_before_reset']{layer_s}: expected 0 or 1, got "
                                 f"{lbr!r}")
            if bool(lbr) != module.reset_after:
                raise ValueError(
                    f"{where}['linear_before_reset']{layer_s}: linear_before_reset={int(lbr)} "
                    f"is the GRU with reset_after={bool(lbr)}, but the module has reset_after="
                    f"{module.reset_after}; build the fusedrnn.GRU with reset_after="
                    f"{bool(lbr)}")
        D = len(layer)
        W = _array(entry["W"], f"{where}['W']{layer_s}")
        if W.ndim == 3 and W.shape[0] in (1, 2) and W.shape[0] != D:
            raise ValueError(
                f"{where}['W']{layer_s}: has {W.shape[0]} directions (num_directions, the first "
                f"axis; ONNX direction {'bidirectional' if W.shape[0] == 2 else 'forward'}), "
                f"but the module has bidirectional={D == 2}")
        I_k = shapes[layer[0]["weight_ih"]][1]
        W = _shaped(W, f"{where}['W']{layer_s}", (D, GH, I_k))
        R = _shaped(entry["R"], f"{where}['R']{layer_s}", (D, GH, H))
        B = None
        if entry.get("B") is not None:
            B = _shaped(entry["B"], f"{where}['B']{layer_s}", (D, 2 * GH))
            if not module.bias:
                _zero_or_error(B, f"{where}['B']{layer_s}", "the module has bias=False")
                B = None
        if entry.get("P") is not None:
            P = _shaped(entry["P"], f"{where}['P']{layer_s}", (D, 3 * H))
            _zero_or_error(P, f"{where}['P']{layer_s}",
                           "peepholes are unsupported (fusedrnn's LSTM has none)")
        for d, names in enumerate(layer):
            sd[names["weight_ih"]] = _reorder(W[d], inv)
            sd[names["weight_hh"]] = _reorder(R[d], inv)
            if module.bias:
                b = B[d] if B is not None else np.zeros(2 * GH, module.dtype)
                sd[names["bias_ih"]] = _reorder(b[:GH], inv)
                sd[names["bias_hh"]] = _reorder(b[GH:], inv)
    module.load_state_dict(sd)
    return module
