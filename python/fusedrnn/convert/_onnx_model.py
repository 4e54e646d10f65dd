"""ONNX models' LSTM / GRU / RNN nodes as fusedrnn layers: ``from_onnx_model``.

Each node becomes an ``OnnxRNN``: the fusedrnn layer with the node's weights
(``.module``), what the caller must feed the node (``.inputs``), and ``.run()``, which
computes exactly the node's outputs from its inputs in ONNX's shapes.  Every attribute
of the node is honoured or refused by name (see ``_onnx_attributes``).
"""

from __future__ import annotations

import os

import numpy as np

from ..layers import GRU, LSTM, RNN
from ._onnx_attributes import OPS, check_attributes
from ._onnx_weights import from_onnx

# The operators' inputs, in order (ONNX LSTM-14, GRU-14, RNN-14).
ROLES = {"LSTM": ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"),
         "GRU": ("X", "W", "R", "B", "sequence_lens", "initial_h"),
         "RNN": ("X", "W", "R", "B", "sequence_lens", "initial_h")}
WEIGHTS = ("W", "R", "B", "P")
FED = ("sequence_lens", "initial_h", "initial_c")  # optional inputs run() takes


class OnnxRNN:
    """One LSTM / GRU / RNN node of an ONNX model, imported by ``from_onnx_model``.

    ``name``, ``op_type`` ("LSTM", "GRU" or "RNN"), ``direction`` ("forward",
    "reverse" or "bidirectional") and ``layout`` (0: X is (T, B, I); 1: (B, T, I)) are
    the node's.  ``module``: the fusedrnn layer with the node's weights and settings
    (layout 1 -> batch_first=True; bidirectional -> bidirectional=True; GRU
    linear_before_reset -> reset_after; RNN Relu -> nonlinearity="relu"); its inputs and
    outputs are torch's, e.g. states (D, B, H) whatever the layout.  A direction="reverse"
    node has no module (``.module`` raises): ``.reverse_layer`` holds its weights as a
    forward layer, which gives the node's outputs when run over each sequence reversed
    in time; ``run()`` does exactly that.

    ``inputs``: the node's inputs that the model computes or takes from its caller, role
    -> tensor name; always "X", plus whichever of "sequence_lens", "initial_h",
    "initial_c" the node wires up.  ``constants``: those of the three the model fixes
    (initializers), role -> array.  ``outputs``: the node's named outputs, role ("Y",
    "Y_h", "Y_c") -> tensor name.

    ``run(X, sequence_lens=None, initial_h=None, initial_c=None)`` returns ``(Y, Y_h)``
    (LSTM: ``(Y, Y_h, Y_c)``) in ONNX's shapes: Y (T, D, B, H), Y_h and Y_c (D, B, H);
    layout 1: Y (B, T, D, H), Y_h and Y_c (B, D, H).  It takes exactly the inputs in
    ``inputs`` (a ValueError names one that is missing or that the node does not take:
    the node would ignore it) and uses ``constants`` for the rest.
    """

    def __init__(self, name, op_type, direction, layout, layer, inputs, constants, outputs):
        self.name, self.op_type, self.direction, self.layout = name, op_type, direction, layout
        self.inputs, self.constants, self.outputs = inputs, constants, outputs
        self._layer = layer
        self.reverse_layer = layer if direction == "reverse" else None

    @property
    def module(self):
        if self.direction == "reverse":
            raise ValueError(
                f"direction='reverse': node {self.name!r} runs backwards in time, which no "
                "fusedrnn layer does; use .run(...), or .reverse_layer on each sequence "
                "reversed in time (and reverse its outputs back)")
        return self._layer

    def __repr__(self):
        what = "reverse_layer" if self.direction == "reverse" else "module"
        return (f"OnnxRNN(name={self.name!r}, op_type={self.op_type!r}, direction="
                f"{self.direction!r}, layout={self.layout}, {what}={self._layer!r}, inputs="
                f"{self.inputs!r}, constants={sorted(self.constants)!r})")

    # --------------------------------------------------------------------------- run
    def _feed(self, role, value, B, T):
        D = 2 if self.direction == "bidirectional" else 1
        H = self._layer.hidden_size
        if value is None:
            if role in self.inputs:
                raise ValueError(f"{role}: node {self.name!r} takes it (tensor "
                                 f"{self.inputs[role]!r}); pass {role}=")
            value = self.constants.get(role)
            if value is None:
                return None
        elif role not in self.inputs:
            given = "fixes it to a constant" if role in self.constants else "does not wire it"
            raise ValueError(f"{role}: node {self.name!r} {given}, so the node would not use "
                             f"the {role} passed here")
        a = np.asarray(value)
        if role == "sequence_lens":
            if a.shape != (B,) or a.dtype.kind not in "iu":
                raise ValueError(f"sequence_lens: expected integers of shape ({B},), got "
                                 f"{a.dtype} {a.shape}")
            if a.size and (a.min() < 1 or a.max() > T):
                raise ValueError(f"sequence_lens: expected values in [1, {T}] (T = {T} steps), "
                                 f"got min {a.min()}, max {a.max()}")
            return a.astype(np.int64)
        shape = (B, D, H) if self.layout else (D, B, H)
        if a.shape != shape:
            raise ValueError(f"{role}: expected shape {shape} (layout={self.layout}), got "
                             f"{a.shape}")
        return np.ascontiguousarray(a.swapaxes(0, 1)) if self.layout else a

    def run(self, X, sequence_lens=None, initial_h=None, initial_c=None):
        """The node's outputs (Y, Y_h) or, for an LSTM, (Y, Y_h, Y_c); see the class."""
        X = np.asarray(X)
        if X.ndim != 3:
            raise ValueError(f"X: expected 3 dimensions ({'B, T' if self.layout else 'T, B'}, "
                             f"input_size), got shape {X.shape}")
        x = X.swapaxes(0, 1) if self.layout else X  # (T, B, I) from here on
        T, B = x.shape[:2]
        lengths = self._feed("sequence_lens", sequence_lens, B, T)
        h0 = self._feed("initial_h", initial_h, B, T)
        c0 = self._feed("initial_c", initial_c, B, T) if self.op_type == "LSTM" else None
        if self.op_type == "LSTM" and (h0 is not None or c0 is not None):
            zeros = np.zeros((h0 if h0 is not None else c0).shape, self._layer.dtype)
            hx = (zeros if h0 is None else h0, zeros if c0 is None else c0)
        else:
            hx = h0
        if self.direction == "reverse":
            # step t of sequence b <-> its step len_b - 1 - t (its own inverse)
            L = np.full(B, T) if lengths is None else lengths
            t = np.arange(T)[:, None]
            rows = np.where(t < L[None, :], L[None, :] - 1 - t, t)
            x = x[rows, np.arange(B)[None, :]]
        xin = np.ascontiguousarray(x.swapaxes(0, 1)) if self.layout else x
        y, state, _ = self._layer.forward(xin, hx, lengths=lengths, train=False)
        y = y.swapaxes(0, 1) if self.layout else y  # (T, B, D*H)
        if self.direction == "reverse":
            y = y[rows, np.arange(B)[None, :]]
        y = y.reshape(T, B, -1, self._layer.hidden_size)  # (T, B, D, H)
        Y = y.transpose(1, 0, 2, 3) if self.layout else y.transpose(0, 2, 1, 3)
        states = state if isinstance(state, tuple) else (state,)
        out = [np.ascontiguousarray(s.swapaxes(0, 1)) if self.layout else s for s in states]
        return (np.ascontiguousarray(Y), *out)


def _constants(onnx, graph) -> dict:
    """name -> array for the graph's initializers and Constant nodes' tensors."""
    out = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            for a in node.attribute:
                if a.name == "value":
                    out[node.output[0]] = onnx.numpy_helper.to_array(a.t)
    return out


def _import_node(node, index, consts) -> OnnxRNN:
    op = node.op_type
    name = node.name or f"{op}_{index}"
    where = f"node {name!r}"
    settings = check_attributes(op, node, where)
    wired = dict(zip(ROLES[op], list(node.input)))
    if len(node.input) > len(ROLES[op]):
        raise ValueError(f"{where}: {len(node.input)} inputs; an ONNX {op} takes at most "
                         f"{len(ROLES[op])} ({', '.join(ROLES[op])})")
    w = {}
    for role in WEIGHTS:
        tensor = wired.get(role, "")
        if not tensor:
            continue
        if tensor not in consts:
            raise ValueError(f"{where}: input {role} comes from {tensor!r}, which is not an "
                             "initializer (nor a Constant); fusedrnn needs the weights W, R, "
                             "B and P as constants of the model")
        w[role] = consts[tensor]
    for role in ("W", "R"):
        if role not in w:
            raise ValueError(f"{where}: has no input {role}; an ONNX {op} requires it")
    W, R = w["W"], w["R"]
    if W.dtype not in (np.float32, np.float64):
        raise ValueError(f"{where}: W has dtype {W.dtype}; fusedrnn computes in float32 or "
                         "float64 only")
    if W.ndim != 3 or R.ndim != 3:
        raise ValueError(f"{where}: W and R must have 3 dimensions, got shapes {W.shape} and "
                         f"{R.shape}")
    D, H, I = W.shape[0], R.shape[2], W.shape[2]  # noqa: E741
    if D != settings.num_directions:
        raise ValueError(f"{where}: direction={settings.direction!r} takes "
                         f"{settings.num_directions} direction(s), but W has {D} (its first "
                         "axis)")
    if settings.hidden_size is not None and settings.hidden_size != H:
        raise ValueError(f"{where}: hidden_size={settings.hidden_size}, but R has shape "
                         f"{R.shape} (hidden size {H})")
    if "P" in w and np.any(w["P"] != 0):
        raise ValueError(f"{where}: input P (peepholes) is not all zero: fusedrnn's LSTM has "
                         "no peepholes, so no fusedrnn layer computes this node")
    kw = {"bias": "B" in w, "batch_first": settings.layout == 1,
          "bidirectional": settings.direction == "bidirectional", "dtype": W.dtype}
    if op == "LSTM":
        layer = LSTM(I, H, **kw)
    elif op == "GRU":
        layer = GRU(I, H, reset_after=bool(settings.linear_before_reset), **kw)
    else:
        layer = RNN(I, H, nonlinearity=settings.nonlinearity, **kw)
    entry = {k: v for k, v in w.items() if k != "P" or op == "LSTM"}
    if op == "GRU":
        entry["linear_before_reset"] = settings.linear_before_reset
    try:
        from_onnx(layer, [entry])
    except (TypeError, ValueError) as e:
        raise type(e)(f"{where}: {e}") from e
    inputs = {"X": wired["X"]}
    constants = {}
    for role in FED:
        tensor = wired.get(role, "")
        if tensor in consts:
            constants[role] = consts[tensor]
        elif tensor:
            inputs[role] = tensor
    outs = dict(zip(("Y", "Y_h", "Y_c"), node.output))
    outputs = {k: v for k, v in outs.items() if v}
    return OnnxRNN(name, op, settings.direction, settings.layout, layer, inputs, constants,
                   outputs)


def from_onnx_model(model_or_path, name=None):
    """The LSTM / GRU / RNN nodes of an ONNX model as fusedrnn layers.

    `model_or_path`: an ``onnx.ModelProto`` or the path of a .onnx file (needs the
    ``onnx`` package).  Returns an ``OnnxRNN`` for every LSTM, GRU and RNN node of the
    main graph, in graph order (a list), or for the node called `name` (one).  Each has
    ``.module`` (the fusedrnn layer), ``.inputs`` (what to feed: "X" and whichever of
    "sequence_lens", "initial_h", "initial_c" the node takes), ``.constants`` and
    ``.run()`` (the node's outputs, exactly, in ONNX's shapes); see ``OnnxRNN``.

    The weights W, R, B and P must be initializers (or Constant nodes): a ValueError
    names the input otherwise.  Every attribute is honoured (hidden_size, direction,
    layout, linear_before_reset, activations Sigmoid/Tanh and, for an RNN, Tanh or Relu)
    or refused with a ValueError that names it and its value (clip, input_forget=1,
    other activations, activation_alpha / activation_beta, unknown attributes), as are
    non-zero peepholes P and weights other than float32 / float64.
    """
    try:
        import onnx  # noqa: PLC0415 - an optional dependency, needed here only
        import onnx.numpy_helper  # noqa: PLC0415
    except ImportError as e:
        raise ImportError(f"from_onnx_model needs the onnx package (pip install onnx): {e}") \
            from e
    if isinstance(model_or_path, (str, os.PathLike)):
        model = onnx.load(os.fspath(model_or_path))
    elif isinstance(model_or_path, onnx.ModelProto):
        model = model_or_path
    else:
        raise TypeError(f"model_or_path: expected an onnx.ModelProto or a file path, got "
                        f"{type(model_or_path).__name__}")
    graph = model.graph
    nodes = [(i, n) for i, n in enumerate(graph.node)
             if n.op_type in OPS and n.domain in ("", "ai.onnx")]
    names = [n.name or f"{n.op_type}_{i}" for i, n in nodes]
    if name is not None:
        if name not in names:
            raise ValueError(f"name: the model has no LSTM, GRU or RNN node called {name!r}; "
                             f"its nodes: {names}")
        nodes = [nodes[names.index(name)]]
    elif not nodes:
        raise ValueError("model_or_path: the model's graph has no LSTM, GRU or RNN node")
    consts = _constants(onnx, graph)
    out = [_import_node(n, i, consts) for i, n in nodes]
    return out[0] if name is not None else out
