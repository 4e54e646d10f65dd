"""fusedrnn.convert.to_onnx_model / from_onnx_model, by numbers.

- module -> to_onnx_model -> ONNX Runtime, against the module's own forward, over
  kinds, stacks, directions, batch_first, lengths and initial states; layout=1 nodes
  (which ONNX Runtime does not run) against ONNX's reference evaluator;
- ONNX nodes built here with onnx.helper from random weights -> from_onnx_model ->
  run() (and .module), against ONNX Runtime running the same model, over directions
  (reverse included), linear_before_reset, RNN activations, lengths and initial states.
  ONNX's reference evaluator ignores sequence_lens, so ONNX Runtime is the reference
  wherever lengths are involved; layout=1 nodes are checked against the reference
  evaluator without lengths and, with lengths, against the same node in layout 0;
- module -> model -> modules: the weights come back unchanged; models exported by
  torch.onnx import with torch's weights and numbers.
"""

from __future__ import annotations

import numpy as np
import pytest
from _util import assert_close

import fusedrnn as fr
from fusedrnn import convert

I, H, T, B = 4, 3, 6, 3
TOL = 1e-5  # float32, norm-wise relative
LENGTHS = np.array([T - 2, T, 1], np.int32)  # unsorted, one full, one of a single step
# name -> (class, keywords, ONNX op, ONNX attributes)
KINDS = {
    "LSTM": (fr.LSTM, {}, "LSTM", {}),
    "GRU": (fr.GRU, {}, "GRU", {"linear_before_reset": 1}),
    "GRU_reset_before": (fr.GRU, {"reset_after": False}, "GRU", {"linear_before_reset": 0}),
    "RNN_tanh": (fr.RNN, {}, "RNN", {}),
    "RNN_relu": (fr.RNN, {"nonlinearity": "relu"}, "RNN", {"activations": ["Relu"]}),
}
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def session(ort, model):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def module_outputs(m, x, hx, lengths):
    y, state, _ = m.forward(x, hx, lengths=lengths, train=False)
    return [y, *(state if isinstance(state, tuple) else (state,))]


def module_feed(m, rng, lengths, states):
    """(feed for the exported model, the module's hx, its lengths)."""
    D = 2 if m.bidirectional else 1
    x = rng.standard_normal((B, T, I) if m.batch_first else (T, B, I)).astype(np.float32)
    feed, hx = {"X": x}, None
    if lengths:
        feed["sequence_lens"] = LENGTHS
    if states:
        shape = (m.num_layers * D, B, H)
        hx = feed["initial_h"] = rng.standard_normal(shape).astype(np.float32)
        if isinstance(m, fr.LSTM):
            feed["initial_c"] = rng.standard_normal(shape).astype(np.float32)
            hx = (hx, feed["initial_c"])
    return feed, hx, (LENGTHS if lengths else None)


# (num_layers, bidirectional, batch_first, lengths, initial states, bias)
EXPORT_CONFIGS = [(1, False, False, False, True, True), (1, True, True, True, True, True),
                  (2, False, True, True, False, True), (2, True, False, True, True, False),
                  (1, False, False, True, False, False), (2, True, True, False, True, True)]


@pytest.mark.parametrize("config", EXPORT_CONFIGS, ids=lambda c: "L{}-bidir{:d}-bf{:d}-len{:d}"
                         "-h0{:d}-bias{:d}".format(*c))
@pytest.mark.parametrize("name", list(KINDS))
def test_to_onnx_model_matches_onnxruntime(onnxruntime, name, config):
    L, bidirectional, batch_first, lengths, states, bias = config
    cls, kw = KINDS[name][:2]
    m = cls(I, H, num_layers=L, bidirectional=bidirectional, batch_first=batch_first,
            bias=bias, seed=3, **kw)
    model = convert.to_onnx_model(m, sequence_lens=lengths, initial_states=states)
    assert sum(n.op_type == KINDS[name][2] for n in model.graph.node) == L
    feed, hx, lens = module_feed(m, np.random.default_rng(0), lengths, states)
    assert [i.name for i in model.graph.input] == list(feed)
    got = session(onnxruntime, model).run(None, feed)
    want = module_outputs(m, feed["X"], hx, lens)
    assert [o.name for o in model.graph.output] == ["Y", "Y_h", "Y_c"][:len(want)]
    for part, g, w in zip(("Y", "Y_h", "Y_c"), got, want):
        assert g.shape == w.shape, part
        assert_close(g, w, TOL, f"{name} {config}: {part}")


@pytest.mark.parametrize(("L", "bidirectional"), [(1, True), (2, False)])
@pytest.mark.parametrize("name", ["LSTM", "GRU", "GRU_reset_before", "RNN_tanh"])
def test_to_onnx_model_layout1_matches_reference_evaluator(onnxruntime, name, L,
                                                           bidirectional):
    from onnx.reference import ReferenceEvaluator  # noqa: PLC0415

    cls, kw = KINDS[name][:2]
    m = cls(I, H, num_layers=L, bidirectional=bidirectional, batch_first=True, seed=4, **kw)
    model = convert.to_onnx_model(m, layout=1)
    assert all(a.i == 1 for n in model.graph.node if n.op_type == KINDS[name][2]
               for a in n.attribute if a.name == "layout")
    feed, hx, _ = module_feed(m, np.random.default_rng(1), False, True)
    got = ReferenceEvaluator(model).run(None, feed)
    for part, g, w in zip(("Y", "Y_h", "Y_c"), got, module_outputs(m, feed["X"], hx, None)):
        assert_close(g, w, TOL, f"{name} layout=1: {part}")


@pytest.mark.parametrize("name", list(KINDS))
def test_module_model_module_round_trip(name):
    cls, kw = KINDS[name][:2]
    m = cls(I, H, num_layers=2, bidirectional=True, seed=5, **kw)
    layers = convert.from_onnx_model(convert.to_onnx_model(m))
    assert [r.name for r in layers] == [f"{KINDS[name][2].lower()}_l0",
                                        f"{KINDS[name][2].lower()}_l1"]
    sd = m.state_dict()
    for k, r in enumerate(layers):
        assert r.direction == "bidirectional" and r.layout == 0
        assert r.inputs["initial_h"] == f"initial_h_l{k}"
        assert type(r.module) is cls and r.module.hidden_size == H
        for key, a in r.module.state_dict().items():
            np.testing.assert_array_equal(a, sd[key.replace("_l0", f"_l{k}")], err_msg=key)
    assert layers[1].module.input_size == 2 * H
    if name == "RNN_relu":
        assert layers[0].module.nonlinearity == "relu"
    if name.startswith("GRU"):
        assert layers[0].module.reset_after == (name == "GRU")


# ------------------------------------------------------------ ONNX nodes -> fusedrnn
def node_model(op, weights, attrs, *, lengths=False, states=False, layout=0,
               const_states=None, node_name="rnn"):
    """A one-node model: X, [sequence_lens], [initial_h, initial_c] -> Y, Y_h[, Y_c]."""
    from onnx import TensorProto as TP  # noqa: PLC0415
    from onnx import helper, numpy_helper  # noqa: PLC0415

    vi = helper.make_tensor_value_info
    D = weights["W"].shape[0]
    lstm = op == "LSTM"
    tb, bd = (["B", "T"], ["B", D]) if layout else (["T", "B"], [D, "B"])
    inputs = [vi("X", TP.FLOAT, [*tb, weights["W"].shape[2]])]
    inits = [numpy_helper.from_array(a, k) for k, a in weights.items()]
    if lengths:
        inputs.append(vi("sequence_lens", TP.INT32, ["B"]))
    state_names = ["initial_h", "initial_c"] if lstm else ["initial_h"]
    if states:
        inputs += [vi(s, TP.FLOAT, [*bd, H]) for s in state_names]
    for s, a in (const_states or {}).items():
        inits.append(numpy_helper.from_array(a, s))
    wired = states or const_states
    node_in = ["X", "W", "R", "B" if "B" in weights else "",
               "sequence_lens" if lengths else "", *(state_names if wired else [])]
    outs = ["Y", "Y_h"] + (["Y_c"] if lstm else [])
    node = helper.make_node(op, node_in, outs, name=node_name, hidden_size=H, **attrs)
    if layout:
        node.attribute.append(helper.make_attribute("layout", 1))
    outputs = [vi("Y", TP.FLOAT, None)] + [vi(o, TP.FLOAT, None) for o in outs[1:]]
    graph = helper.make_graph([node], "node", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    return model


def random_weights(op, D, rng, bias=True):
    G = GATES[op]
    w = {"W": rng.uniform(-0.6, 0.6, (D, G * H, I)), "R": rng.uniform(-0.6, 0.6, (D, G * H, H))}
    if bias:
        w["B"] = rng.uniform(-0.6, 0.6, (D, 2 * G * H))
    return {k: a.astype(np.float32) for k, a in w.items()}


def node_feed(op, D, rng, lengths, states, layout=0):
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    feed = {"X": x.swapaxes(0, 1).copy() if layout else x}
    if lengths:
        feed["sequence_lens"] = LENGTHS
    if states:
        for s in ["initial_h", "initial_c"][:2 if op == "LSTM" else 1]:
            a = rng.standard_normal((D, B, H)).astype(np.float32)
            feed[s] = a.swapaxes(0, 1).copy() if layout else a
    return feed


DIRECTIONS = {"forward": 1, "reverse": 1, "bidirectional": 2}


@pytest.mark.parametrize("fed", ["lengths+states", "plain"])
@pytest.mark.parametrize("direction", list(DIRECTIONS))
@pytest.mark.parametrize("name", list(KINDS))
def test_from_onnx_model_matches_onnxruntime(onnxruntime, name, direction, fed):
    op, attrs = KINDS[name][2:]
    D = DIRECTIONS[direction]
    attrs = {k: (v * D if k == "activations" else v) for k, v in attrs.items()}
    rng = np.random.default_rng(len(name) + 10 * D)
    w = random_weights(op, D, rng, bias=fed != "plain")
    lengths = states = fed != "plain"
    model = node_model(op, w, {**attrs, "direction": direction}, lengths=lengths,
                       states=states)
    (r,) = convert.from_onnx_model(model)
    assert (r.name, r.op_type, r.direction, r.layout) == ("rnn", op, direction, 0)
    assert r.outputs == {"Y": "Y", "Y_h": "Y_h", **({"Y_c": "Y_c"} if op == "LSTM" else {})}
    feed = node_feed(op, D, rng, lengths, states)
    assert set(r.inputs) == set(feed)
    want = session(onnxruntime, model).run(None, feed)
    got = r.run(**feed)
    for part, g, wt in zip(("Y", "Y_h", "Y_c"), got, want):
        assert g.shape == wt.shape, part
        assert_close(g, wt, TOL, f"{name} {direction} {fed}: {part}")
    if direction == "reverse":
        assert r.reverse_layer is not None
        with pytest.raises(ValueError, match=r"direction='reverse': node 'rnn' runs backwards"):
            r.module  # noqa: B018
        return
    # the module itself, in torch's shapes
    m = r.module
    hx = None
    if states:
        hx = (feed["initial_h"], feed["initial_c"]) if op == "LSTM" else feed["initial_h"]
    y, *st = module_outputs(m, feed["X"], hx, feed.get("sequence_lens"))
    assert_close(y, want[0].transpose(0, 2, 1, 3).reshape(T, B, D * H), TOL, "module y")
    for part, g, wt in zip(("h_n", "c_n"), st, want[1:]):
        assert_close(g, wt, TOL, f"module {part}")


@pytest.mark.parametrize("direction", list(DIRECTIONS))
@pytest.mark.parametrize("name", ["LSTM", "GRU_reset_before", "RNN_tanh"])
def test_from_onnx_model_layout1(onnxruntime, name, direction):
    """layout=1 nodes: against ONNX's reference evaluator (no lengths), and with lengths
    against the same node in layout 0, itself checked against ONNX Runtime above."""
    from onnx.reference import ReferenceEvaluator  # noqa: PLC0415

    op, attrs = KINDS[name][2:]
    D = DIRECTIONS[direction]
    rng = np.random.default_rng(D)
    w = random_weights(op, D, rng)
    attrs = {**attrs, "direction": direction}
    model = node_model(op, w, attrs, states=True, layout=1)
    (r,) = convert.from_onnx_model(model)
    assert r.layout == 1
    assert (r.reverse_layer is not None) == (direction == "reverse")
    if direction != "reverse":
        assert r.module.batch_first
    feed = node_feed(op, D, rng, False, True, layout=1)
    want = ReferenceEvaluator(model).run(None, feed)
    for part, g, wt in zip(("Y", "Y_h", "Y_c"), r.run(**feed), want):
        assert_close(g, wt, TOL, f"{name} {direction} layout=1: {part}")
    (r1,) = convert.from_onnx_model(node_model(op, w, attrs, lengths=True, states=True,
                                               layout=1))
    (r0,) = convert.from_onnx_model(node_model(op, w, attrs, lengths=True, states=True))
    feed0 = node_feed(op, D, rng, True, True)
    feed1 = {k: (v if k == "sequence_lens" else v.swapaxes(0, 1)) for k, v in feed0.items()}
    got0, got1 = r0.run(**feed0), r1.run(**feed1)
    assert_close(got1[0], got0[0].transpose(2, 0, 1, 3), 1e-6, "Y, layout 1 vs 0")
    for g1, g0 in zip(got1[1:], got0[1:]):
        assert_close(g1, g0.swapaxes(0, 1), 1e-6, "states, layout 1 vs 0")


def test_constant_states_names_and_paths(onnxruntime, tmp_path):
    rng = np.random.default_rng(7)
    w = random_weights("LSTM", 1, rng)
    h0 = rng.standard_normal((1, B, H)).astype(np.float32)
    c0 = rng.standard_normal((1, B, H)).astype(np.float32)
    model = node_model("LSTM", w, {}, const_states={"initial_h": h0, "initial_c": c0},
                       node_name="enc")
    path = tmp_path / "lstm.onnx"
    path.write_bytes(model.SerializeToString())
    r = convert.from_onnx_model(str(path), name="enc")
    assert isinstance(r, convert.OnnxRNN) and r.inputs == {"X": "X"}
    assert sorted(r.constants) == ["initial_c", "initial_h"]
    assert "constants=['initial_c', 'initial_h']" in repr(r)
    feed = node_feed("LSTM", 1, rng, False, False)
    want = session(onnxruntime, model).run(None, feed)
    for part, g, wt in zip(("Y", "Y_h", "Y_c"), r.run(feed["X"]), want):
        assert_close(g, wt, TOL, f"constant states: {part}")
    with pytest.raises(ValueError, match=r"initial_h: node 'enc' fixes it to a constant"):
        r.run(feed["X"], initial_h=h0)
    with pytest.raises(ValueError, match=r"no LSTM, GRU or RNN node called 'dec'.*\['enc'\]"):
        convert.from_onnx_model(model, name="dec")
    assert convert.from_onnx_model(path)[0].name == "enc"  # a pathlib.Path works too


@pytest.mark.filterwarnings("ignore")  # torch.onnx's own deprecation and export notices
def test_models_exported_by_torch(torch, onnxruntime):
    """torch.onnx.export's LSTM / GRU / RNN nodes import with torch's own weights, and
    the imported layers chained give torch's outputs."""
    import io  # noqa: PLC0415

    import onnx  # noqa: PLC0415

    torch.manual_seed(0)
    nets = [torch.nn.LSTM(I, H, num_layers=2, bidirectional=True),
            torch.nn.GRU(I, H, bidirectional=True), torch.nn.RNN(I, H, nonlinearity="relu")]
    x = torch.randn(T, B, I)
    for net in nets:
        f = io.BytesIO()
        torch.onnx.export(net, (x,), f, dynamo=False, opset_version=14)
        layers = convert.from_onnx_model(onnx.load_from_string(f.getvalue()))
        assert len(layers) == net.num_layers
        sd = {k: v.detach().numpy() for k, v in net.state_dict().items()}
        y = x.numpy()
        for k, r in enumerate(layers):
            for key, a in r.module.state_dict().items():
                np.testing.assert_array_equal(a, sd[key.replace("_l0", f"_l{k}")], err_msg=key)
            y, _ = r.module(y)
        with torch.no_grad():
            want = net(x)[0].numpy()
        assert_close(y, want, TOL, f"{type(net).__name__} exported by torch")
