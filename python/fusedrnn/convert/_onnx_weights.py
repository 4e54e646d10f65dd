"""Weights as inputs of the ONNX LSTM / GRU / RNN operators: ``to_onnx`` / ``from_onnx``
(see the package docstring)."""

from __future__ import annotations

import numbers
from collections.abc import Mapping

import numpy as np

from ._common import (_GATES, _ONNX_ORDER, _array, _inverse, _kind, _layers_list, _names,
                      _reorder, _shaped)

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
