"""The ONNX Runtime peer of a Case (``ort``, inference only).

The model is one ONNX ``LSTM`` / ``GRU`` / ``RNN`` operator per layer (opset 14), built in
memory with ``onnx.helper`` from the weights that ``fusedrnn.convert.to_onnx`` gives for
the case's module (W, R, B in ONNX's gate order, and a GRU's ``linear_before_reset``).
Between layers, and after a bidirectional last one, a Transpose and a Reshape turn Y
(T, D, B, H) into torch's (T, B, D*H).  The cell row runs the operator for one step with
the state as ``initial_h`` (``initial_c``); a ragged row feeds its lengths as
``sequence_lens``.

Only :func:`layer_weights` talks to the converter: when ``fusedrnn.convert`` can build the
whole model itself, :func:`build_model` becomes that one call.
"""

from __future__ import annotations

import numpy as np

import fusedrnn as fr
from fusedrnn import convert

from .machine import ort_or_none, ort_threads


def attach(case, threads=None) -> None:
    """Add the ``ort`` peer to ``case.peers`` when onnx and onnxruntime import and the
    case is an inference line.  threads: intra-op threads (default: the last
    set_threads, else ORT's default)."""
    mods = ort_or_none()
    if mods is None or case.mode != "inference":
        return
    threads = threads if threads is not None else ort_threads()
    peer = OrtPeer(case, session(mods[1], build_model(case), threads))
    case.peers["ort"] = peer


def as_layer(module):
    """The module itself, or for a cell the one-layer module with its weights (the
    converter takes layers; one step of the layer is one call of the cell)."""
    if not isinstance(module, (fr.LSTMCell, fr.GRUCell, fr.RNNCell)):
        return module
    layer = getattr(fr, type(module).__name__[:-4])(module.input_size, module.hidden_size)
    layer.load_state_dict({f"{n}_l0": a for n, a in module.state_dict().items()})
    return layer


def layer_weights(module) -> list:
    """Per layer, the ONNX operator's inputs and attributes (fusedrnn.convert.to_onnx)."""
    return convert.to_onnx(as_layer(module))


def build_model(case):
    """The case's ONNX model: its module's weights, its inputs (X; seq_lens in a ragged
    row; initial_h/c in the cell row) and outputs (Y unless the cell row, then Y_h (and
    Y_c) of each layer)."""
    s, cell = case.shape, case.shape.is_cell
    return onnx_model(case.kind.layer, s.I, s.H, layer_weights(case.module),
                      with_state=cell, with_y=not cell, D=s.D,
                      with_lengths=case.lengths is not None)


def session(ort, model, threads):
    """An ORT CPU session of `model`: `threads` intra-op threads (None: ORT's default),
    one inter-op thread, sequential execution."""
    so = ort.SessionOptions()
    if threads is not None:
        so.intra_op_num_threads = threads
    if threads is None or threads > 1:
        # ORT's idle workers otherwise busy-wait between runs for longer than the
        # benchmark's pause between peers, taking a core from whoever runs next.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3  # errors only
    return ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])


class OrtPeer:
    """Calling it runs the session on the case's inputs; results as the other peers'.
    The inputs are fed by position (X, then sequence_lens in a ragged row, then the
    initial states in the cell row), whatever the model calls them."""

    def __init__(self, case, sess):
        self.case, self.session = case, sess
        cell = case.shape.is_cell
        arrays = [case.x[None] if cell else case.x]
        if case.lengths is not None:
            arrays.append(case.lengths.astype(np.int32))
        if cell:
            arrays += [a[None] for a in case.states0]
        names = [i.name for i in sess.get_inputs()]
        if len(names) != len(arrays):
            raise ValueError(f"the ONNX model takes {names}; {len(arrays)} inputs expected")
        self.feed = dict(zip(names, arrays))

    def __call__(self) -> dict:
        case, s = self.case, self.case.shape
        out = self.session.run(None, self.feed)
        if s.is_cell:
            return case.named_state(out)
        n = 2 if case.kind.has_c else 1  # Y_h (, Y_c) per layer, layer by layer
        states = [np.concatenate(out[1 + i::n]) for i in range(n)]
        return {"y": out[0].reshape(s.T, s.B, s.D * s.H), **case.named_state(states)}


class _Graph:
    """The nodes, initializers, inputs and outputs of the model being built."""

    def __init__(self, onnx):
        self.onnx, self.helper, self.TP = onnx, onnx.helper, onnx.TensorProto
        self.inputs, self.outputs, self.nodes, self.inits = [], [], [], []

    def value(self, name, dims):
        return self.helper.make_tensor_value_info(name, self.TP.FLOAT, dims)

    def init(self, array, name):
        self.inits.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def to_batch_major(self, y, y_next, sfx):
        """Y (T, D, B, H) -> (T, B, D*H): Transpose + Reshape."""
        make = self.helper.make_node
        self.nodes.append(make("Transpose", [y], [f"Yt{sfx}"], perm=[0, 2, 1, 3]))
        shape = self.init(np.array([0, 0, -1], np.int64), f"shape{sfx}")
        self.nodes.append(make("Reshape", [f"Yt{sfx}", shape], [y_next]))


def onnx_model(op: str, I: int, H: int, layers: list, with_state: bool,  # noqa: E741
               with_y: bool = True, D: int = 1, with_lengths: bool = False):
    """An in-memory ONNX model of one `op` (LSTM, GRU or RNN) operator per layer.

    layers: per-layer dicts W (D, G*H, I_k), R (D, G*H, H), B (D, 2*G*H) (and a GRU's
    linear_before_reset), as ``fusedrnn.convert.to_onnx`` gives them.  Inputs: X (T, B, I);
    with_lengths: seq_lens (B,) int32; with_state (one layer only): initial_h (D, B, H)
    (LSTM also initial_c).  Outputs: Y if with_y ((T, B, D*H) if D == 2, else (T, 1, B,
    H)), then Y_h (D, B, H) (LSTM also Y_c) of each layer; one layer: Y, Y_h, Y_c."""
    onnx, _ = ort_or_none()
    if with_state and len(layers) > 1:
        raise ValueError("with_state: one layer only")
    g = _Graph(onnx)
    g.inputs.append(g.value("X", ["T", "B", I]))
    if with_lengths:
        g.inputs.append(g.helper.make_tensor_value_info("seq_lens", g.TP.INT32, ["B"]))
    states = ["initial_h", "initial_c"] if op == "LSTM" else ["initial_h"]
    if with_state:
        g.inputs += [g.value(s, [D, "B", H]) for s in states]
    x_name = "X"
    for k, w in enumerate(layers):
        last = k == len(layers) - 1
        x_name = _layer(g, op, H, D, k, w, x_name, last=last, sfx=f"_{k}" if len(layers) > 1
                        else "", inputs=(["seq_lens" if with_lengths else ""]
                                         + (states if with_state else [])),
                        emit_y=with_y or not last)
    if with_y:
        g.outputs.insert(0, g.value("Y", ["T", "B", D * H] if D == 2 else ["T", 1, "B", H]))
    graph = g.helper.make_graph(g.nodes, f"fusedrnn_bench_{op}", g.inputs, g.outputs,
                                g.inits)
    model = g.helper.make_model(graph, opset_imports=[g.helper.make_opsetid("", 14)])
    model.ir_version = 8  # opset 14 needs no more; older onnxruntime builds accept it
    onnx.checker.check_model(model)
    return model


def _layer(g, op, H, D, k, w, x_name, *, last, sfx, inputs, emit_y):
    """Add layer k's operator (and its Transpose + Reshape); return the next X's name."""
    names = {key: g.init(np.asarray(w[key], np.float32), key + sfx)
             for key in ("W", "R", "B") if w.get(key) is not None}
    # Operator inputs: X, W, R, B, sequence_lens, initial_h, initial_c ("" = omitted).
    node_in = [x_name, names["W"], names["R"], names.get("B", ""), *inputs]
    y_k = ("Y" if D == 1 else "Y_raw") if last else f"Y_raw{sfx}"
    out_names = [n + sfx for n in (["Y_h", "Y_c"] if op == "LSTM" else ["Y_h"])]
    g.outputs += [g.value(n, [D, "B", H]) for n in out_names]
    attrs = {"hidden_size": H, "direction": "bidirectional" if D == 2 else "forward"}
    if "linear_before_reset" in w:
        attrs["linear_before_reset"] = int(w["linear_before_reset"])
    g.nodes.append(g.helper.make_node(op, node_in, [y_k if emit_y else ""] + out_names,
                                      name=f"layer{k}", **attrs))
    if emit_y and (D == 2 or not last):
        y_next = "Y" if last else f"X_{k + 1}"
        g.to_batch_major(y_k, y_next, sfx)
        return y_next
    return x_name
