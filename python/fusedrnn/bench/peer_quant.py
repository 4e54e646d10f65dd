"""The peers of the quantized rows (``python -m fusedrnn bench --quant``).

- ``torch_int8`` / ``torch_float16``: ``torch.ao.quantization.quantize_dynamic`` of the
  ``torch.nn`` module that holds the case's float32 weights, ``dtype=torch.qint8`` /
  ``torch.float16`` (fbgemm on x86), called under ``torch.inference_mode``.  torch swaps
  ``nn.LSTM``, ``nn.GRU`` and the three cells for its dynamic quantized modules but leaves
  ``nn.RNN`` in float32: a module that comes back unswapped is no peer (its cell shows
  ``—``), so a float32 time is never passed off as a quantized one.
- ``ort_int8`` (LSTM only): ONNX Runtime's ``DynamicQuantizeLSTM`` operator (domain
  ``com.microsoft``), built here with ``onnx.helper`` from the weights that
  ``fusedrnn.convert.to_onnx`` gives (ONNX gate order), quantized per output row with
  ``fusedrnn.quantized.reference.quantize_weight`` -- the same int8 weights as ours --
  and stored as the operator wants them: W int8 (1, I, 4H), R int8 (1, H, 4H) (the
  transposes), per-channel scales (1, 4H) float32 and zero points (1, 4H) int8 zeros.
  ORT quantizes the activations itself (uint8, per tensor, at every step).
  ``onnxruntime.quantization.quantize_dynamic`` of the float ``LSTM`` model emits the same
  operator (per-tensor weight scales unless ``per_channel=True``).

Every peer returns the outputs under the keys of the case (``y``, ``h_n``, ``c_n``; the
cell rows ``h_n`` (and ``c_n``)), so that one function measures every error.
"""

from __future__ import annotations

import warnings

import numpy as np

from . import peer_ort
from .machine import ort_or_none, ort_threads, torch_or_none
from .peer_torch import as_numpy

#: torch's dtype of each torch peer.
TORCH_DTYPES = {"torch_int8": "qint8", "torch_float16": "float16"}


def attach(case, threads=None) -> None:
    """Add the peers that import here and apply to the case to ``case.peers``; a peer
    that imports but cannot be built (an ONNX Runtime without the operator) is noted in
    ``case.unavailable`` with the reason."""
    torch = torch_or_none()
    if torch is not None:
        for peer, dtype in TORCH_DTYPES.items():
            module = torch_quantized(case, torch, getattr(torch, dtype))
            if module is not None:
                case.peers[peer] = TorchQuantPeer(case, torch, module)
    if ort_or_none() is not None and case.kind.name == "lstm":
        try:
            case.peers["ort_int8"] = OrtQuantPeer(case, threads)
        except Exception as e:  # an onnxruntime built without the contrib operators
            case.unavailable["ort_int8"] = f"{type(e).__name__}: {e}"


def torch_quantized(case, torch, dtype):
    """torch's dynamic quantized module of the case's weights, or None when torch leaves
    the module in float32 (nn.RNN)."""
    nn, s = torch.nn, case.shape
    cls = getattr(nn, case.kind.cell if s.is_cell else case.kind.layer)
    m = cls(s.I, s.H)
    m.load_state_dict({n: torch.from_numpy(np.ascontiguousarray(a))
                       for n, a in case.module.state_dict().items()})
    # quantize_dynamic swaps the children of the model it is given, not the model itself
    holder = nn.ModuleDict({"m": m})
    with warnings.catch_warnings():  # torch.ao.quantization's deprecation notice
        warnings.simplefilter("ignore")
        q = torch.ao.quantization.quantize_dynamic(holder, {cls}, dtype=dtype)["m"]
    return None if type(q) is cls else q


class TorchQuantPeer:
    """Calling it runs torch's quantized module on the case's inputs."""

    def __init__(self, case, torch, module):
        self.case, self.t, self.module = case, torch, module
        self.x = torch.from_numpy(case.x)
        self.states = tuple(torch.from_numpy(a) for a in case.states0)
        with warnings.catch_warnings():  # the first call's deprecation notices, once
            warnings.simplefilter("ignore")
            self()

    def __call__(self) -> dict:
        case = self.case
        with self.t.inference_mode():
            if case.shape.is_cell:
                return case.named_state(self.module(self.x, case.hx(self.states)))
            y, state = self.module(self.x)
        return {"y": as_numpy(y), **case.named_state(state)}


def quantized_lstm_inputs(module):
    """The DynamicQuantizeLSTM initializers of a one-layer, one-direction LSTM (or an
    LSTMCell): W, R (int8, transposed to (1, I, 4H) and (1, H, 4H)), B (float32 (1, 8H)),
    W_scale, R_scale ((1, 4H) float32) and the zero points ((1, 4H) int8 zeros)."""
    from fusedrnn.quantized.reference import quantize_weight  # noqa: PLC0415

    (w,) = peer_ort.layer_weights(module)
    out = {"B": np.asarray(w["B"], np.float32)}
    for key in ("W", "R"):
        q, scale = quantize_weight(np.asarray(w[key][0], np.float32))
        out[key] = np.ascontiguousarray(q.T[None])
        out[key + "_scale"] = scale[None]
        out[key + "_zero_point"] = np.zeros((1, q.shape[0]), np.int8)
    return out


def ort_model(I: int, H: int, inputs: dict, with_state: bool):  # noqa: E741
    """An in-memory ONNX model of one DynamicQuantizeLSTM (forward, one layer).  Inputs X
    (T, B, I) and, with_state, initial_h and initial_c (1, B, H); outputs Y (T, 1, B, H),
    Y_h and Y_c (1, B, H)."""
    onnx, _ = ort_or_none()
    helper, TP = onnx.helper, onnx.TensorProto
    inits = [onnx.numpy_helper.from_array(a, name) for name, a in inputs.items()]
    value = lambda name, dims: helper.make_tensor_value_info(name, TP.FLOAT, dims)  # noqa: E731
    graph_inputs = [value("X", ["T", "B", I])]
    states = ["initial_h", "initial_c"] if with_state else ["", ""]
    if with_state:
        graph_inputs += [value(n, [1, "B", H]) for n in states]
    node = helper.make_node(
        "DynamicQuantizeLSTM",
        ["X", "W", "R", "B", "", *states, "", "W_scale", "W_zero_point", "R_scale",
         "R_zero_point"],
        ["Y", "Y_h", "Y_c"], name="lstm_int8", domain="com.microsoft", hidden_size=H)
    outputs = [value("Y", ["T", 1, "B", H]), value("Y_h", [1, "B", H]),
               value("Y_c", [1, "B", H])]
    graph = helper.make_graph([node], "fusedrnn_bench_lstm_int8", graph_inputs, outputs,
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    return model


class OrtQuantPeer:
    """Calling it runs the DynamicQuantizeLSTM session on the case's inputs."""

    def __init__(self, case, threads=None):
        s, self.case = case.shape, case
        _, ort = ort_or_none()
        model = ort_model(s.I, s.H, quantized_lstm_inputs(peer_ort.as_layer(case.module)),
                          with_state=s.is_cell)
        threads = threads if threads is not None else ort_threads()
        self.session = peer_ort.session(ort, model, threads)
        arrays = [case.x[None]] if s.is_cell else [case.x]
        if s.is_cell:
            arrays += [a[None] for a in case.states0]
        self.feed = dict(zip([i.name for i in self.session.get_inputs()], arrays))

    def __call__(self) -> dict:
        case, s = self.case, self.case.shape
        y, h_n, c_n = self.session.run(None, self.feed)
        out = case.named_state((h_n, c_n))
        return out if s.is_cell else {"y": y.reshape(s.T, s.B, s.H), **out}
