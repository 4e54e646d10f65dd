"""Weights as inputs of the ONNX LSTM / GRU / RNN operators: ``to_onnx`` / ``from_onnx``
(see the package docstring)."""

from __future__ import annotations

import numbers
from collections.abc import Mapping

import numpy as np

from ._common import (_GATES, _ONNX_ORDER, _array, _inverse, _kind, _layers_list, _names,
                      _reorder, _shaped)
from ._onnx_attributes import attributes_of, check_attributes

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


def from_onnx(module, weights, *, attributes=None):
    """Load ONNX operator weights (see ``to_onnx``) into `module`; returns it.

    `weights` has one mapping per layer with "W" and "R", optionally "B" (missing:
    zero biases), for a GRU "linear_before_reset" (1 must go with reset_after=True, 0
    with False; required unless `attributes` gives it) and for an LSTM optionally the
    peepholes "P" (D, 3*H), accepted only when all zero.  Their first axis
    (num_directions) must be 2 for a bidirectional module and 1 otherwise (ONNX
    direction "forward").  A module with ``bias=False`` accepts "B" only when it is all
    zero.  Nothing is changed unless all weights are valid.

    `attributes`: the ONNX node's attributes, a dict (``{"hidden_size": 4, "direction":
    "bidirectional", ...}``) or the ``onnx.NodeProto`` itself, or a list of them, one per
    layer; a single one applies to every layer.  Each attribute is checked against the
    module and either honoured or refused with a ValueError that names it and its value:
    hidden_size, direction ("reverse" is refused here: no fusedrnn layer runs one
    direction backwards; ``from_onnx_model`` runs such a node), layout (1 must go with
    batch_first=True), linear_before_reset, activations (only the defaults; an RNN's
    Tanh or Relu must be the module's nonlinearity), clip, input_forget=1,
    activation_alpha / activation_beta (all refused) and any attribute the operator
    does not have.

    Without `attributes` the node's other settings are ASSUMED to be the operator's
    defaults (no clip, input_forget=0, default activations, or Relu for a module with
    nonlinearity="relu") and its direction "forward" or "bidirectional" as the module
    is: weights from a node that sets any of them load without complaint and compute
    something else.  Pass the node's attributes, or use ``from_onnx_model``, which reads
    them from the model.
    """
    kind = _kind(module, "from_onnx")
    inv = _inverse(_ONNX_ORDER[kind])
    G, H = _GATES[kind], module.hidden_size
    GH = G * H
    shapes = {k: a.shape for k, a in module.state_dict().items()}
    layers = _layers_list(weights, module, "ONNX")
    settings = _settings_per_layer(module, kind, attributes, len(layers))
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
            if settings is None:
                missing.append("linear_before_reset")
            else:
                entry = {**entry, "linear_before_reset": settings[k].linear_before_reset}
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


def _settings_per_layer(module, kind: str, attributes, L: int):
    """None without `attributes`; else one checked NodeSettings per layer, each matched
    against the module (ValueError naming the attribute otherwise)."""
    if attributes is None:
        return None
    if isinstance(attributes, (list, tuple)):
        if len(attributes) != L:
            raise ValueError(f"attributes: expected one node's attributes for every layer, or "
                             f"a list of {L} (num_layers={L}), got a list of {len(attributes)}")
        per_layer = [(a, f"attributes[{k}] (layer {k})") for k, a in enumerate(attributes)]
    else:
        per_layer = [(attributes, "attributes")] * L
    out = []
    for a, where in per_layer:
        s = check_attributes(kind, a, where)
        if s.hidden_size is not None and s.hidden_size != module.hidden_size:
            raise ValueError(f"{where}: hidden_size={s.hidden_size}, but the module has "
                             f"hidden_size={module.hidden_size}")
        if s.direction == "reverse":
            raise ValueError(
                f"{where}: direction='reverse': no fusedrnn layer runs one direction backwards "
                "in time; fusedrnn.convert.from_onnx_model imports such a node (its run() "
                "reverses each sequence around the forward layer)")
        bidirectional = getattr(module, "bidirectional", False)
        if (s.direction == "bidirectional") != bidirectional:
            raise ValueError(f"{where}: direction={s.direction!r}, but the module has "
                             f"bidirectional={bidirectional}")
        if bool(s.layout) != module.batch_first:
            raise ValueError(f"{where}: layout={s.layout} ({'batch' if s.layout else 'time'}-"
                             f"major tensors), but the module has batch_first="
                             f"{module.batch_first}; build it with batch_first="
                             f"{bool(s.layout)}")
        if kind == "GRU" and bool(s.linear_before_reset) != module.reset_after:
            raise ValueError(f"{where}: linear_before_reset={s.linear_before_reset} is the GRU "
                             f"with reset_after={bool(s.linear_before_reset)}, but the module "
                             f"has reset_after={module.reset_after}")
        if kind == "RNN" and s.nonlinearity != module.nonlinearity:
            acts = attributes_of(a).get("activations", "absent: Tanh")
            raise ValueError(f"{where}: activations={acts!r} computes {s.nonlinearity}, but "
                             f"the module has nonlinearity={module.nonlinearity!r}")
        out.append(s)
    return out
