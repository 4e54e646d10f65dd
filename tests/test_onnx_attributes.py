"""Every attribute of the ONNX LSTM / GRU / RNN nodes is honoured or refused by name.

- the operators' schemas (from the installed onnx) list no attribute this file does not
  cover: the honoured ones are checked by numbers in test_onnx_model.py and
  test_onnx_cases.py, the refused ones here, through ``from_onnx_model`` and through
  ``from_onnx(..., attributes=)`` (dict and NodeProto);
- ``from_onnx(attributes=)`` checks them against the module; the errors of
  ``from_onnx_model``, ``OnnxRNN.run`` and ``to_onnx_model``;
- the python example of docs/onnx.md runs.
"""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest

import fusedrnn as fr
from fusedrnn import convert

H = 3
HONOURED = {"hidden_size", "direction", "layout", "linear_before_reset", "activations"}
# (op, attribute, value, what the error says besides "attribute=value")
REFUSED = [
    ("LSTM", "clip", 3.0, "clips"), ("GRU", "clip", 1.0, "clips"), ("RNN", "clip", 0.5, "clips"),
    ("LSTM", "input_forget", 1, "couples the input and forget gates"),
    ("LSTM", "activations", ["HardSigmoid", "Tanh", "Tanh"], "only the defaults"),
    ("LSTM", "activations", ["Sigmoid", "Tanh", "Relu"], "only the defaults"),
    ("GRU", "activations", ["Sigmoid", "LeakyRelu"], "only the defaults"),
    ("RNN", "activations", ["Sigmoid"], "Tanh or Relu only"),
    ("RNN", "activations", ["Tanh", "Tanh"], "takes 1 activations"),
    ("LSTM", "activation_alpha", [0.1], "parameters of activations"),
    ("LSTM", "activation_beta", [0.2], "parameters of activations"),
    ("GRU", "activation_alpha", [0.1, 0.2], "parameters of activations"),
    ("GRU", "activation_beta", [1.5], "parameters of activations"),
    ("RNN", "activation_alpha", [0.3], "parameters of activations"),
    ("RNN", "activation_beta", [0.2], "parameters of activations"),
    ("GRU", "input_forget", 1, r"not an attribute of the ONNX GRU \(an attribute of the ONNX "
                               r"\['LSTM'\]\)"),
    ("RNN", "linear_before_reset", 1, "not an attribute of the ONNX RNN"),
    ("LSTM", "output_sequence", 1, "not an attribute of the ONNX LSTM"),
    ("GRU", "direction", "sideways", "expected one of"),
    ("LSTM", "layout", 2, r"expected one of \[0, 1\]"),
    ("GRU", "linear_before_reset", 2, r"expected one of \[0, 1\]"),
]
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
MODULES = {"LSTM": lambda: fr.LSTM(2, H), "GRU": lambda: fr.GRU(2, H, reset_after=False),
           "RNN": lambda: fr.RNN(2, H)}


def weights(op, D=1, seed=0):
    rng = np.random.default_rng(seed)
    G = GATES[op]
    return {"W": rng.standard_normal((D, G * H, 2)).astype(np.float32),
            "R": rng.standard_normal((D, G * H, H)).astype(np.float32)}


def model_with(op, w, **attrs):
    from onnx import TensorProto, helper, numpy_helper  # noqa: PLC0415

    node = helper.make_node(op, ["X", "W", "R"], ["Y"], name="n", hidden_size=H, **attrs)
    inits = [numpy_helper.from_array(a, k) for k, a in w.items()]
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", 2])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)
    return helper.make_model(helper.make_graph([node], "g", [x], [y], inits)), node


def test_every_schema_attribute_is_covered(onnxruntime):
    import onnx  # noqa: PLC0415

    refused = {(op, a) for op, a, _, _ in REFUSED}
    for op in GATES:
        schema = set(onnx.defs.get_schema(op).attributes)
        uncovered = {a for a in schema if a not in HONOURED and (op, a) not in refused}
        assert not uncovered, f"ONNX {op} attributes neither honoured nor tested as refused"


@pytest.mark.parametrize(("op", "attribute", "value", "why"), REFUSED,
                         ids=[f"{r[0]}-{r[1]}-{i}" for i, r in enumerate(REFUSED)])
def test_refused_attribute_raises_with_its_name(onnxruntime, op, attribute, value, why):
    w = weights(op)
    model, node = model_with(op, w, **{attribute: value})
    named = re.escape(f"{attribute}={value!r}") + ".*" + why
    with pytest.raises(ValueError, match=r"node 'n': " + named):
        convert.from_onnx_model(model)
    m = MODULES[op]()
    before = {k: a.copy() for k, a in m.state_dict().items()}
    entry = {**w, **({"linear_before_reset": 0} if op == "GRU" else {})}
    with pytest.raises(ValueError, match=r"attributes: " + named):
        convert.from_onnx(m, [entry], attributes={attribute: value})
    with pytest.raises(ValueError, match=r"attributes: " + named):
        convert.from_onnx(m, [entry], attributes=node)
    for k, a in m.state_dict().items():
        np.testing.assert_array_equal(a, before[k], err_msg=k)


def test_from_onnx_attributes_honoured():
    m = fr.GRU(2, H, num_layers=2, bidirectional=True, batch_first=True, seed=1)
    model = convert.to_onnx_model(m, layout=1)
    nodes = [n for n in model.graph.node if n.op_type == "GRU"]
    w = [{k: v for k, v in d.items() if k != "linear_before_reset"} for d in convert.to_onnx(m)]
    b = fr.GRU(2, H, num_layers=2, bidirectional=True, batch_first=True, seed=2)
    assert convert.from_onnx(b, w, attributes=nodes) is b
    for k, a in m.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[k], a, err_msg=k)
    attrs = {"hidden_size": H, "direction": "bidirectional", "layout": 1,
             "linear_before_reset": 1, "activations": ["sigmoid", "tanh"] * 2}
    convert.from_onnx(b, convert.to_onnx(m), attributes=attrs)  # one dict for every layer
    relu = fr.RNN(2, H, nonlinearity="relu")
    convert.from_onnx(relu, convert.to_onnx(relu), attributes={"activations": [b"Relu"]})
    cho = fr.GRU(2, H, reset_after=False)  # linear_before_reset absent: ONNX's default 0
    convert.from_onnx(cho, [weights("GRU")], attributes={"hidden_size": H})


def test_from_onnx_attributes_against_the_module():
    lstm, gru, rnn = fr.LSTM(2, H), fr.GRU(2, H), fr.RNN(2, H)
    w_l, w_g, w_r = convert.to_onnx(lstm), convert.to_onnx(gru), convert.to_onnx(rnn)
    cases = [
        (lstm, w_l, {"direction": "reverse"}, r"direction='reverse': no fusedrnn layer runs "
                                              r"one direction backwards.*from_onnx_model"),
        (lstm, w_l, {"direction": "bidirectional"}, r"direction='bidirectional', but the "
                                                    r"module has bidirectional=False"),
        (lstm, w_l, {"layout": 1}, r"layout=1 .*module has batch_first=False"),
        (lstm, w_l, {"hidden_size": 5}, r"hidden_size=5, but the module has hidden_size=3"),
        (gru, w_g, {}, r"linear_before_reset=0 is the GRU with reset_after=False, but the "
                       r"module has reset_after=True"),
        (gru, w_g, {"linear_before_reset": 1, "clip": 2.0}, r"clip=2.0"),
        (rnn, w_r, {"activations": ["Relu"]}, r"activations=\['Relu'\] computes relu, but the "
                                              r"module has nonlinearity='tanh'"),
        (lstm, w_l, [{}, {}], r"a list of 1 \(num_layers=1\), got a list of 2"),
    ]
    for m, w, attrs, match in cases:
        with pytest.raises(ValueError, match=match):
            convert.from_onnx(m, w, attributes=attrs)
    cho = fr.GRU(2, H, reset_after=False)
    w_cho = convert.to_onnx(cho)
    with pytest.raises(ValueError, match=r"\['linear_before_reset'\] \(layer 0\): "
                                         r"linear_before_reset=0 .*module has reset_after=True"):
        convert.from_onnx(gru, [{**w_g[0], "linear_before_reset": 0}],
                          attributes={"linear_before_reset": 1})
    with pytest.raises(ValueError, match="reset_after"):
        convert.from_onnx(cho, w_cho, attributes={"linear_before_reset": 1})
    with pytest.raises(TypeError, match="attributes: expected a dict"):
        convert.from_onnx(lstm, w_l, attributes=5)


def test_to_onnx_model_errors(onnxruntime):
    m = fr.LSTM(2, H)
    try:
        p = fr.LSTM(2, H, proj_size=2)
    except NotImplementedError:
        p = fr.LSTM(2, H)
        p.proj_size = 2
    with pytest.raises(ValueError, match=r"proj_size=2.*no projection"):
        convert.to_onnx_model(p)
    with pytest.raises(TypeError, match="not the cell LSTMCell"):
        convert.to_onnx_model(fr.LSTMCell(2, H))
    with pytest.raises(ValueError, match=r"layout: layout=1 .*batch_first=False"):
        convert.to_onnx_model(m, layout=1)
    with pytest.raises(ValueError, match=r"layout: expected 0 or 1, got 2"):
        convert.to_onnx_model(m, layout=2)


def test_from_onnx_model_errors(onnxruntime):
    from onnx import helper, numpy_helper  # noqa: PLC0415

    w = weights("LSTM")
    with pytest.raises(TypeError, match="model_or_path: expected an onnx.ModelProto"):
        convert.from_onnx_model(b"bytes")
    empty = helper.make_model(helper.make_graph([], "g", [], []))
    with pytest.raises(ValueError, match="has no LSTM, GRU or RNN node"):
        convert.from_onnx_model(empty)
    half = {k: a.astype(np.float16) for k, a in w.items()}
    with pytest.raises(ValueError, match=r"W has dtype float16"):
        convert.from_onnx_model(model_with("LSTM", half)[0])
    with pytest.raises(ValueError, match=r"direction='bidirectional' takes 2 direction\(s\), "
                                         r"but W has 1"):
        convert.from_onnx_model(model_with("LSTM", w, direction="bidirectional")[0])
    model, _ = model_with("LSTM", {**w, "R": w["R"][:, :, :2]})
    with pytest.raises(ValueError, match=r"hidden_size=3, but R has shape \(1, 12, 2\)"):
        convert.from_onnx_model(model)
    model, _ = model_with("LSTM", w)
    node = model.graph.node[0]
    node.input.extend(["B_in"])  # a bias computed by the graph, not a constant
    with pytest.raises(ValueError, match=r"input B comes from 'B_in', which is not an "
                                         r"initializer"):
        convert.from_onnx_model(model)
    del node.input[3:]
    node.input.extend(["", "lens", "h0"])
    r = convert.from_onnx_model(model, name="n")
    assert r.inputs == {"X": "X", "sequence_lens": "lens", "initial_h": "h0"}
    x = np.zeros((4, 2, 2), np.float32)
    h0 = np.zeros((1, 2, H), np.float32)
    with pytest.raises(ValueError, match=r"sequence_lens: node 'n' takes it \(tensor 'lens'\)"):
        r.run(x, initial_h=h0)
    with pytest.raises(ValueError, match=r"sequence_lens: expected values in \[1, 4\]"):
        r.run(x, sequence_lens=np.array([0, 4]), initial_h=h0)
    with pytest.raises(ValueError, match=r"initial_h: expected shape \(1, 2, 3\)"):
        r.run(x, sequence_lens=np.array([1, 4]), initial_h=h0[0])
    with pytest.raises(ValueError, match=r"initial_c: node 'n' does not wire it"):
        r.run(x, sequence_lens=np.array([1, 4]), initial_h=h0, initial_c=h0)
    with pytest.raises(ValueError, match=r"X: expected 3 dimensions"):
        r.run(x[0], sequence_lens=np.array([1, 4]), initial_h=h0)
    model.graph.initializer.append(numpy_helper.from_array(np.ones((1, 3 * H), np.float32),
                                                           "P"))
    node.input.extend(["", "P"])
    with pytest.raises(ValueError, match=r"node 'n': input P \(peepholes\)"):
        convert.from_onnx_model(model)


def test_docs_example_runs(onnxruntime):
    text = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "onnx.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "docs/onnx.md has no python example"
    for block in blocks:
        exec(compile(block, "docs/onnx.md", "exec"), {})
