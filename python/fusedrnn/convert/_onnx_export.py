"""A fusedrnn layer as a ready ONNX model: ``to_onnx_model``."""

from __future__ import annotations

import numpy as np

from ._common import _kind
from ._onnx_weights import to_onnx

OPSET = 14  # the first with the operators' `layout` attribute
IR_VERSION = 8  # what opset 14 needs; older onnxruntime builds accept it


def to_onnx_model(module, *, sequence_lens=False, initial_states=True, layout=0, name=None):
    """An ``onnx.ModelProto`` that computes what `module` computes (inference).

    One ONNX LSTM / GRU / RNN node per layer (``num_layers > 1``: stacked, each layer's
    Y reshaped into the next one's X), direction "bidirectional" for a bidirectional
    module, GRU ``linear_before_reset`` = the module's ``reset_after``, RNN activations
    Relu for ``nonlinearity="relu"``.  Opset 14; float32 or float64 as the module.

    `layout`: the nodes' ``layout`` attribute.  0 (the default) runs everywhere: a
    ``batch_first`` module's model transposes X to (T, B, I) before the first node and
    Y back after the last.  1, for a ``batch_first`` module only: the nodes take and give
    batch-major tensors themselves, the ONNX form of batch_first; ONNX Runtime (1.32)
    refuses to run such nodes ("Batchwise recurrent operations (layout == 1) are not
    supported"), ONNX's reference evaluator runs them.

    The model's inputs and outputs are the module's, in its shapes (D = 2 if
    bidirectional else 1, L = num_layers):

    - "X": (T, B, input_size), or (B, T, input_size) with batch_first
    - "sequence_lens": (B,) int32, only with ``sequence_lens=True``: each sequence's
      length, what the module's ``lengths=`` is
    - "initial_h" (L*D, B, H) and, for an LSTM, "initial_c" (L*D, B, H), only with
      ``initial_states=True`` (else the states start at zeros)
    - outputs "Y" (T, B, D*H) or (B, T, D*H), "Y_h" (L*D, B, H), LSTM "Y_c" (L*D, B, H)

    `name`: the graph's name (default "fusedrnn_<LSTM|GRU|RNN>").  Needs the ``onnx``
    package.  ValueError for an LSTM with ``proj_size > 0`` (ONNX's LSTM has no
    projection); TypeError for anything but a fusedrnn LSTM, GRU or RNN layer.
    """
    op = _kind(module, "to_onnx_model")
    if layout not in (0, 1) or isinstance(layout, bool):
        raise ValueError(f"layout: expected 0 or 1, got {layout!r}")
    if layout == 1 and not module.batch_first:
        raise ValueError("layout: layout=1 (batch-major nodes) is the ONNX form of "
                         "batch_first=True, but the module has batch_first=False")
    try:
        import onnx  # noqa: PLC0415 - an optional dependency, needed here only
        from onnx import TensorProto, helper, numpy_helper  # noqa: PLC0415
    except ImportError as e:
        raise ImportError(f"to_onnx_model needs the onnx package (pip install onnx): {e}") \
            from e
    dt = np.dtype(module.dtype)
    elem = TensorProto.DOUBLE if dt == np.float64 else TensorProto.FLOAT
    H = module.hidden_size
    bidirectional = getattr(module, "bidirectional", False)
    D = 2 if bidirectional else 1
    L = getattr(module, "num_layers", 1)
    bf = bool(module.batch_first)  # the model's X and Y are batch-major
    nbf = layout == 1  # and so are the nodes' tensors
    lstm = op == "LSTM"
    vi = helper.make_tensor_value_info
    tb = ["B", "T"] if bf else ["T", "B"]
    inputs = [vi("X", elem, [*tb, module.input_size])]
    if sequence_lens:
        inputs.append(vi("sequence_lens", TensorProto.INT32, ["B"]))
    states = (["initial_h", "initial_c"] if lstm else ["initial_h"]) if initial_states else []
    inputs += [vi(s, elem, [L * D, "B", H]) for s in states]
    nodes, inits = [], []

    def const(tensor_name, array):
        inits.append(numpy_helper.from_array(np.asarray(array), tensor_name))
        return tensor_name

    def add(op_type, ins, out, **attrs):
        nodes.append(helper.make_node(op_type, ins, [out], name=out, **attrs))
        return out

    const("flatten_directions", np.array([0, 0, -1], np.int64))
    x = add("Transpose", ["X"], "X_tbi", perm=[1, 0, 2]) if bf and not nbf else "X"
    finals = {"Y_h": [], "Y_c": []}
    for k, w in enumerate(to_onnx(module)):
        names = {key: const(f"{key}_l{k}", w[key].astype(dt)) for key in ("W", "R", "B")
                 if key in w}
        node_states = []
        for s in states:  # this layer's rows of the module's states, in the node's layout
            rows = add("Slice", [s, const(f"{s}_start_l{k}", np.array([k * D], np.int64)),
                                 const(f"{s}_end_l{k}", np.array([(k + 1) * D], np.int64)),
                                 const(f"{s}_axis_l{k}", np.array([0], np.int64))],
                       f"{s}_l{k}")
            node_states.append(add("Transpose", [rows], f"{s}_l{k}_bdh", perm=[1, 0, 2])
                               if nbf else rows)
        node_in = [x, names["W"], names["R"], names.get("B", ""),
                   "sequence_lens" if sequence_lens else "", *node_states]
        while node_in and not node_in[-1]:
            node_in.pop()
        outs = [f"Y_l{k}", f"Y_h_l{k}"] + ([f"Y_c_l{k}"] if lstm else [])
        attrs = {"hidden_size": H, "direction": "bidirectional" if bidirectional else "forward"}
        if nbf:
            attrs["layout"] = 1
        if op == "GRU":
            attrs["linear_before_reset"] = int(w["linear_before_reset"])
        if op == "RNN" and module.nonlinearity == "relu":
            attrs["activations"] = ["Relu"] * D
        nodes.append(helper.make_node(op, node_in, outs, name=f"{op.lower()}_l{k}", **attrs))
        # Y: (T, D, B, H) -> (T, B, D*H); layout 1: (B, T, D, H) -> (B, T, D*H)
        last = k == L - 1
        y = outs[0] if nbf else add("Transpose", [outs[0]], f"Y_l{k}_tbdh", perm=[0, 2, 1, 3])
        x = add("Reshape", [y, "flatten_directions"], "Y" if last and bf == nbf else
                f"Y_l{k}_flat" if last else f"X_l{k + 1}")
        if last and bf and not nbf:
            add("Transpose", [x], "Y", perm=[1, 0, 2])
        for key, out in zip(("Y_h", "Y_c"), outs[1:]):
            finals[key].append(add("Transpose", [out], f"{out}_dbh", perm=[1, 0, 2])
                               if nbf else out)
    outputs = [vi("Y", elem, [*tb, D * H])]
    for key in ("Y_h", "Y_c") if lstm else ("Y_h",):
        add("Concat", finals[key], key, axis=0)
        outputs.append(vi(key, elem, [L * D, "B", H]))
    graph = helper.make_graph(nodes, name or f"fusedrnn_{op}", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="fusedrnn")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model
