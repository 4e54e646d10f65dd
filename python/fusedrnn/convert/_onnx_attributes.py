"""The attributes of an ONNX LSTM / GRU / RNN node: each one honoured or refused by name.

``check_attributes`` reads a node's attributes (an ``onnx.NodeProto`` or a plain dict)
and returns the settings a fusedrnn layer needs (``NodeSettings``), or raises a
ValueError that names the attribute and its value when no fusedrnn layer computes what
the node computes.  Nothing here imports ``onnx``: a NodeProto is read through its
fields.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

OPS = ("LSTM", "GRU", "RNN")
# The activations the operator applies when the node names none (one direction's list).
DEFAULT_ACTIVATIONS = {"LSTM": ("Sigmoid", "Tanh", "Tanh"), "GRU": ("Sigmoid", "Tanh"),
                       "RNN": ("Tanh",)}
_COMMON = {"hidden_size", "direction", "layout", "activations", "activation_alpha",
           "activation_beta", "clip"}
KNOWN = {"LSTM": _COMMON | {"input_forget"}, "GRU": _COMMON | {"linear_before_reset"},
         "RNN": _COMMON}
DIRECTIONS = {"forward": 1, "reverse": 1, "bidirectional": 2}


@dataclass(frozen=True)
class NodeSettings:
    """What a node's attributes ask of a fusedrnn layer (all of them supported)."""

    hidden_size: int | None  # None: the attribute is absent (R's shape says it)
    direction: str  # "forward", "reverse" or "bidirectional"
    layout: int  # 0: (T, B, ...) tensors; 1: (B, T, ...), the layer's batch_first=True
    linear_before_reset: int | None  # GRU: 0 or 1 (the layer's reset_after); else None
    nonlinearity: str | None  # RNN: "tanh" or "relu"; else None

    @property
    def num_directions(self) -> int:
        return DIRECTIONS[self.direction]


def _value(a):
    """One onnx AttributeProto's value, read from its fields (ints, floats, strings)."""
    # AttributeProto.AttributeType: FLOAT 1, INT 2, STRING 3, FLOATS 6, INTS 7, STRINGS 8
    t = a.type
    if t == 1:
        return float(str(np.float32(a.f)))  # float32 as written: 0.1, not 0.10000000149
    if t == 2:
        return int(a.i)
    if t == 3:
        return a.s.decode()
    if t == 6:
        return [float(str(np.float32(v))) for v in a.floats]
    if t == 7:
        return [int(v) for v in a.ints]
    if t == 8:
        return [s.decode() for s in a.strings]
    return f"<an attribute of ONNX type {t}>"


def attributes_of(node) -> dict:
    """A NodeProto's attributes as a dict of Python values; a mapping as a dict."""
    if isinstance(node, Mapping):
        return {str(k): (v.decode() if isinstance(v, bytes) else v) for k, v in node.items()}
    if hasattr(node, "attribute") and hasattr(node, "op_type"):
        return {a.name: _value(a) for a in node.attribute}
    raise TypeError(f"attributes: expected a dict of the node's attributes or an "
                    f"onnx.NodeProto, got {type(node).__name__}")


def _bad(where: str, name: str, value, why: str) -> ValueError:
    return ValueError(f"{where}: {name}={value!r}: {why}")


def _int(where, name, value, allowed=None):
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.bool_)):
        raise _bad(where, name, value, "expected an integer")
    if allowed is not None and int(value) not in allowed:
        raise _bad(where, name, value, f"expected one of {sorted(allowed)}")
    return int(value)


def _names_list(where, name, value) -> list:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise _bad(where, name, value, "expected a list of activation names")
    return [v.decode() if isinstance(v, bytes) else str(v) for v in value]


def _activations(op: str, where: str, value, D: int):
    """The RNN's nonlinearity ("tanh"/"relu") or None for LSTM/GRU; ValueError unless the
    list is the operator's defaults (RNN: Tanh or Relu, the same in both directions)."""
    names = _names_list(where, "activations", value)
    default = DEFAULT_ACTIVATIONS[op]
    if len(names) != len(default) * D:
        raise _bad(where, "activations", value,
                   f"an ONNX {op} with {D} direction{'s' if D > 1 else ''} takes "
                   f"{len(default) * D} activations ({len(default)} per direction)")
    lower = [n.lower() for n in names]
    if op == "RNN":
        if len(set(lower)) > 1:
            raise _bad(where, "activations", value,
                       "fusedrnn's RNN has one nonlinearity for both directions")
        if lower[0] not in ("tanh", "relu"):
            raise _bad(where, "activations", value,
                       "fusedrnn's RNN computes Tanh or Relu only (nonlinearity='tanh' or "
                       "'relu')")
        return lower[0]
    if lower != [d.lower() for d in default] * D:
        raise _bad(where, "activations", value,
                   f"fusedrnn's {op} computes only the defaults {list(default)} per direction")
    return None


def check_attributes(op: str, attrs, where: str = "attributes") -> NodeSettings:
    """The settings of an `op` node with attributes `attrs` (dict or NodeProto).

    ValueError naming the attribute and its value for anything no fusedrnn layer
    computes: clip, input_forget=1, activations other than the defaults (RNN: Tanh or
    Relu), activation_alpha / activation_beta, an unknown attribute or value.
    """
    if op not in OPS:
        raise ValueError(f"{where}: op_type={op!r}: fusedrnn converts the ONNX operators "
                         f"{list(OPS)}")
    if not isinstance(attrs, Mapping):
        node_op = getattr(attrs, "op_type", op)
        if node_op != op:
            raise ValueError(f"{where}: op_type={node_op!r}: the node is not an ONNX {op}")
    a = attributes_of(attrs)
    for name in sorted(a):
        if name not in KNOWN[op]:
            extra = ""
            if any(name in KNOWN[o] for o in OPS):
                extra = f" (an attribute of the ONNX {[o for o in OPS if name in KNOWN[o]]})"
            raise _bad(where, name, a[name], f"not an attribute of the ONNX {op}{extra}")
    hidden = a.get("hidden_size")
    if hidden is not None:
        hidden = _int(where, "hidden_size", hidden)
        if hidden < 1:
            raise _bad(where, "hidden_size", hidden, "expected a positive integer")
    direction = a.get("direction", "forward")
    if isinstance(direction, bytes):
        direction = direction.decode()
    if direction not in DIRECTIONS:
        raise _bad(where, "direction", direction, f"expected one of {list(DIRECTIONS)}")
    layout = _int(where, "layout", a.get("layout", 0), {0, 1})
    if "clip" in a:
        raise _bad(where, "clip", a["clip"],
                   "the node clips its gates' inputs to [-clip, clip]; fusedrnn's cells never "
                   "clip, so no fusedrnn layer computes this node")
    if op == "LSTM" and _int(where, "input_forget", a.get("input_forget", 0), {0, 1}):
        raise _bad(where, "input_forget", a["input_forget"],
                   "the node couples the input and forget gates (f = 1 - i); fusedrnn's LSTM "
                   "has independent gates")
    for name in ("activation_alpha", "activation_beta"):
        if name in a and len(np.atleast_1d(a[name])) > 0:
            raise _bad(where, name, a[name],
                       "parameters of activations fusedrnn does not compute (it computes only "
                       "Sigmoid, Tanh and, for the RNN, Relu, which take none)")
    lbr = None
    if op == "GRU":
        lbr = _int(where, "linear_before_reset", a.get("linear_before_reset", 0), {0, 1})
    nonlinearity = "tanh" if op == "RNN" else None
    if "activations" in a:
        nonlinearity = _activations(op, where, a["activations"], DIRECTIONS[direction])
    return NodeSettings(hidden, direction, layout, lbr, nonlinearity)
