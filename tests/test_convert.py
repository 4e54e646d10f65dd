"""fusedrnn.convert: the layers' weights in Keras' and in the ONNX operators' layouts.

- round trips (module -> format -> a fresh module) for every kind, with and without
  biases; the layouts themselves checked block by block, written out here by hand;
- by numbers against ONNX Runtime: models of the ONNX LSTM / GRU / RNN operators built
  with onnx.helper from ``to_onnx`` weights, and ONNX-layout random weights loaded with
  ``from_onnx`` (the ``onnxruntime`` fixture: skipped without it, failed in CI);
- by numbers against Keras' cell equations, written out in NumPy below (Keras itself is
  not a dependency);
- the errors.

Stacked (num_layers > 1) and bidirectional layers and ``lengths`` are tested here too,
but skipped while this build's layers raise NotImplementedError for them; the skips
lift by themselves when the layers support them.
"""

from __future__ import annotations

import numpy as np
import pytest
from _util import assert_close

import fusedrnn as fr
from fusedrnn import convert
from fusedrnn.reference import sigmoid

# name -> (class, constructor keywords, gates, ONNX operator)
KINDS = {
    "LSTM": (fr.LSTM, {}, 4, "LSTM"),
    "GRU": (fr.GRU, {}, 3, "GRU"),
    "GRU_reset_before": (fr.GRU, {"reset_after": False}, 3, "GRU"),
    "RNN_tanh": (fr.RNN, {"nonlinearity": "tanh"}, 1, "RNN"),
    "RNN_relu": (fr.RNN, {"nonlinearity": "relu"}, 1, "RNN"),
}
I, H, T, B = 5, 4, 6, 3
TOL = 1e-5  # float32, norm-wise relative


def _raises_not_implemented(make) -> bool:
    try:
        make()
    except NotImplementedError:
        return True
    return False


STACKS = not _raises_not_implemented(lambda: fr.LSTM(2, 3, num_layers=2, bidirectional=True))
LENGTHS = not _raises_not_implemented(lambda: fr.RNN(2, 3).forward(
    np.zeros((2, 1, 2), np.float32), None, lengths=np.array([1]), train=False))
needs_stacks = pytest.mark.skipif(
    not STACKS, reason="this build's layers do not support num_layers > 1 / bidirectional yet")
needs_lengths = pytest.mark.skipif(
    not LENGTHS, reason="this build's layers do not support lengths= yet")

# (num_layers, bidirectional)
STACK_CONFIGS = [pytest.param(2, False, id="2layers"), pytest.param(1, True, id="bidir"),
                 pytest.param(2, True, id="2layers-bidir")]


def make(name, num_layers=1, bidirectional=False, bias=True, seed=0, dtype=np.float32,
         input_size=I):
    cls, kw, _, _ = KINDS[name]
    extra = {}
    if num_layers != 1 or bidirectional:
        extra = {"num_layers": num_layers, "bidirectional": bidirectional}
    return cls(input_size, H, bias=bias, dtype=dtype, seed=seed, **extra, **kw)


def is_lstm(name):
    return name == "LSTM"


def inputs(name, num_layers=1, D=1, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    h0 = (0.5 * rng.standard_normal((num_layers * D, B, H))).astype(np.float32)
    c0 = (0.5 * rng.standard_normal((num_layers * D, B, H))).astype(np.float32)
    return x, h0, (c0 if is_lstm(name) else None)


def run_module(m, x, h0, c0, lengths=None):
    """(y, h_n, c_n) of the module's forward (c_n None unless LSTM)."""
    hx = (h0, c0) if c0 is not None else h0
    if lengths is None:
        y, state = m(x, hx)
    else:
        y, state, _ = m.forward(x, hx, lengths=lengths, train=False)
    return (y, *state) if c0 is not None else (y, state, None)


def state_dicts_equal(a, b):
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def randomize(m, seed=7):
    """Random weights (torch's init range) in every parameter, so nothing is zero."""
    rng = np.random.default_rng(seed)
    k = 1 / np.sqrt(H)
    m.load_state_dict({n: rng.uniform(-k, k, a.shape) for n, a in m.state_dict().items()})
    return m


# --------------------------------------------------------------------------- layouts
def test_keras_layout_by_hand():
    lstm = make("LSTM")
    sd = lstm.state_dict()
    ((kernel, rec, bias),) = convert.to_keras(lstm)
    assert kernel.shape == (I, 4 * H) and rec.shape == (H, 4 * H) and bias.shape == (4 * H,)
    for g in range(4):  # Keras i, f, c, o = torch i, f, g, o
        s = slice(g * H, (g + 1) * H)
        np.testing.assert_array_equal(kernel[:, s], sd["weight_ih_l0"][s].T)
        np.testing.assert_array_equal(rec[:, s], sd["weight_hh_l0"][s].T)
        np.testing.assert_array_equal(bias[s], sd["bias_ih_l0"][s] + sd["bias_hh_l0"][s])
    assert kernel.flags.c_contiguous and kernel.dtype == np.float32

    gru = make("GRU")
    sd = gru.state_dict()
    ((kernel, rec, bias),) = convert.to_keras(gru)
    assert bias.shape == (2, 3 * H)
    z, r, n = slice(H, 2 * H), slice(0, H), slice(2 * H, 3 * H)  # torch rows of Keras z, r, h
    for keras_block, rows in enumerate((z, r, n)):
        s = slice(keras_block * H, (keras_block + 1) * H)
        np.testing.assert_array_equal(kernel[:, s], sd["weight_ih_l0"][rows].T)
        np.testing.assert_array_equal(rec[:, s], sd["weight_hh_l0"][rows].T)
        np.testing.assert_array_equal(bias[0, s], sd["bias_ih_l0"][rows])
        np.testing.assert_array_equal(bias[1, s], sd["bias_hh_l0"][rows])

    ((kernel, rec, bias),) = convert.to_keras(make("GRU_reset_before"))
    assert bias.shape == (3 * H,)
    ((kernel, rec, bias),) = convert.to_keras(make("RNN_relu"))
    assert (kernel.shape, rec.shape, bias.shape) == ((I, H), (H, H), (H,))
    ((kernel, rec),) = convert.to_keras(make("GRU", bias=False))


def test_onnx_layout_by_hand():
    lstm = make("LSTM")
    sd = lstm.state_dict()
    (w,) = convert.to_onnx(lstm)
    assert set(w) == {"W", "R", "B"}
    assert w["W"].shape == (1, 4 * H, I) and w["R"].shape == (1, 4 * H, H)
    assert w["B"].shape == (1, 8 * H)
    i, f, g, o = (slice(k * H, (k + 1) * H) for k in range(4))
    for onnx_block, rows in enumerate((i, o, f, g)):  # ONNX i, o, f, c
        s = slice(onnx_block * H, (onnx_block + 1) * H)
        np.testing.assert_array_equal(w["W"][0, s], sd["weight_ih_l0"][rows])
        np.testing.assert_array_equal(w["R"][0, s], sd["weight_hh_l0"][rows])
        np.testing.assert_array_equal(w["B"][0, s], sd["bias_ih_l0"][rows])
        np.testing.assert_array_equal(w["B"][0, 4 * H:][s], sd["bias_hh_l0"][rows])

    gru = make("GRU_reset_before")
    sd = gru.state_dict()
    (w,) = convert.to_onnx(gru)
    assert w["linear_before_reset"] == 0
    np.testing.assert_array_equal(w["W"][0, :H], sd["weight_ih_l0"][H:2 * H])  # z
    np.testing.assert_array_equal(w["R"][0, H:2 * H], sd["weight_hh_l0"][:H])  # r
    np.testing.assert_array_equal(w["B"][0, 3 * H + 2 * H:], sd["bias_hh_l0"][2 * H:])  # Rbh
    assert convert.to_onnx(make("GRU"))[0]["linear_before_reset"] == 1
    assert set(convert.to_onnx(make("RNN_tanh", bias=False))[0]) == {"W", "R"}
    w64 = convert.to_onnx(make("RNN_tanh", dtype=np.float64))[0]
    assert w64["W"].dtype == np.float64


# ----------------------------------------------------------------------- round trips
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("name", list(KINDS))
def test_keras_round_trip(name, bias):
    a = make(name, bias=bias, seed=0)
    b = make(name, bias=bias, seed=1)
    assert convert.from_keras(b, convert.to_keras(a)) is b
    sa, sb = a.state_dict(), b.state_dict()
    if not bias or name == "GRU":  # nothing folded: identical
        state_dicts_equal(sa, sb)
    else:  # one Keras bias = bias_ih + bias_hh; imported as (sum, 0)
        for k in ("weight_ih_l0", "weight_hh_l0"):
            np.testing.assert_array_equal(sa[k], sb[k])
        np.testing.assert_array_equal(sb["bias_ih_l0"], sa["bias_ih_l0"] + sa["bias_hh_l0"])
        np.testing.assert_array_equal(sb["bias_hh_l0"], np.zeros_like(sa["bias_hh_l0"]))
    x, h0, c0 = inputs(name)
    for ya, yb in zip(run_module(a, x, h0, c0), run_module(b, x, h0, c0)):
        if ya is not None:
            assert_close(yb, ya, 1e-6, "outputs after the round trip")
    # exporting the imported module gives the same Keras weights
    for wa, wb in zip(convert.to_keras(a)[0], convert.to_keras(b)[0]):
        np.testing.assert_array_equal(wa, wb)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("name", list(KINDS))
def test_onnx_round_trip(name, bias):
    a = make(name, bias=bias, seed=0)
    b = make(name, bias=bias, seed=1)
    assert convert.from_onnx(b, convert.to_onnx(a)) is b
    state_dicts_equal(a.state_dict(), b.state_dict())


@needs_stacks
@pytest.mark.parametrize(("num_layers", "bidirectional"), STACK_CONFIGS)
@pytest.mark.parametrize("name", list(KINDS))
def test_round_trips_stacked(name, num_layers, bidirectional):
    a = make(name, num_layers, bidirectional, seed=0)
    D = 2 if bidirectional else 1
    w = convert.to_onnx(a)
    assert len(w) == num_layers
    assert w[0]["W"].shape == (D, KINDS[name][2] * H, I)
    if num_layers > 1:
        assert w[1]["W"].shape == (D, KINDS[name][2] * H, D * H)
    b = make(name, num_layers, bidirectional, seed=1)
    convert.from_onnx(b, w)
    state_dicts_equal(a.state_dict(), b.state_dict())

    k = convert.to_keras(a)
    assert len(k) == num_layers
    assert isinstance(k[0], tuple) == bidirectional
    c = make(name, num_layers, bidirectional, seed=2)
    convert.from_keras(c, k)
    if bidirectional:  # Keras' Bidirectional.get_weights(): one flat list, forward first
        d = make(name, num_layers, bidirectional, seed=3)
        convert.from_keras(d, [[*fw, *bw] for fw, bw in k])
        state_dicts_equal(c.state_dict(), d.state_dict())
    x, h0, c0 = inputs(name, num_layers, D)
    for ya, yc in zip(run_module(a, x, h0, c0), run_module(c, x, h0, c0)):
        if ya is not None:
            assert_close(yc, ya, 1e-6, "outputs after the Keras round trip")


def test_dtypes():
    a = make("LSTM", dtype=np.float64)
    w = convert.to_keras(a)
    assert all(v.dtype == np.float64 for v in w[0])
    b = convert.from_keras(make("LSTM"), w)  # float64 weights into a float32 module: cast
    assert b.weight_ih_l0.dtype == np.float32
    np.testing.assert_array_equal(b.weight_ih_l0, a.weight_ih_l0.astype(np.float32))
    c = convert.from_onnx(make("GRU", dtype=np.float64), convert.to_onnx(make("GRU")))
    assert c.weight_hh_l0.dtype == np.float64


# --------------------------------------------------------------------- ONNX Runtime
def ort_model(op, weights, hidden, input_size, D, *, nonlinearity="tanh", lengths=False):
    """An ONNX model: one LSTM / GRU / RNN operator per layer (weights: to_onnx's list),
    each layer's Y (T, D, B, H) reshaped to (T, B, D*H) for the next.  Inputs X (T, B, I),
    h0_k (D, B, H) (and c0_k for an LSTM) per layer k, seq_lens (B,) int32 if `lengths`.
    Outputs: Y of the last layer and Y_h_k (and Y_c_k) of every layer."""
    import onnx  # noqa: PLC0415 - the onnxruntime fixture has checked it imports
    from onnx import TensorProto as TP  # noqa: PLC0415
    from onnx import helper, numpy_helper  # noqa: PLC0415

    vi = helper.make_tensor_value_info
    lstm = op == "LSTM"
    direction = "bidirectional" if D == 2 else "forward"
    inputs_ = [vi("X", TP.FLOAT, ["T", "B", input_size])]
    if lengths:
        inputs_.append(vi("seq_lens", TP.INT32, ["B"]))
    outputs, nodes, inits = [], [], []
    x_name = "X"
    for k, w in enumerate(weights):
        names = {key: f"{key}_{k}" for key in ("W", "R", "B", "P") if w.get(key) is not None}
        inits += [numpy_helper.from_array(np.asarray(w[key], np.float32), n)
                  for key, n in names.items()]
        states = [f"h0_{k}"] + ([f"c0_{k}"] if lstm else [])
        inputs_ += [vi(s, TP.FLOAT, [D, "B", hidden]) for s in states]
        node_in = [x_name, names["W"], names["R"], names.get("B", ""),
                   "seq_lens" if lengths else "", *states]
        if lstm and "P" in names:
            node_in.append(names["P"])
        node_out = [f"Y_{k}", f"Y_h_{k}"] + ([f"Y_c_{k}"] if lstm else [])
        attrs = {"hidden_size": hidden, "direction": direction}
        if op == "GRU":
            attrs["linear_before_reset"] = int(w["linear_before_reset"])
        if op == "RNN" and nonlinearity == "relu":
            attrs["activations"] = ["Relu"] * D
        nodes.append(helper.make_node(op, node_in, node_out, name=f"layer{k}", **attrs))
        outputs += [vi(n, TP.FLOAT, [D, "B", hidden]) for n in node_out[1:]]
        if k + 1 < len(weights):  # (T, D, B, H) -> (T, B, D*H): the next layer's input
            nodes.append(helper.make_node("Transpose", [f"Y_{k}"], [f"Yt_{k}"],
                                          perm=[0, 2, 1, 3]))
            inits.append(numpy_helper.from_array(np.array([0, 0, -1], np.int64), f"shape_{k}"))
            nodes.append(helper.make_node("Reshape", [f"Yt_{k}", f"shape_{k}"], [f"X_{k + 1}"]))
            x_name = f"X_{k + 1}"
    outputs.insert(0, vi(f"Y_{len(weights) - 1}", TP.FLOAT, ["T", D, "B", hidden]))
    graph = helper.make_graph(nodes, f"fusedrnn_convert_{op}", inputs_, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def ort_run(ort, model, x, h0, c0, D, lengths=None):
    """(y (T, B, D*H), h_n (L*D, B, H), c_n or None) in the module's layouts."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    L = h0.shape[0] // D
    feed = {"X": x}
    for k in range(L):
        feed[f"h0_{k}"] = h0[k * D:(k + 1) * D]
        if c0 is not None:
            feed[f"c0_{k}"] = c0[k * D:(k + 1) * D]
    if lengths is not None:
        feed["seq_lens"] = np.asarray(lengths, np.int32)
    out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed)))
    y = out[f"Y_{L - 1}"]
    y = y.transpose(0, 2, 1, 3).reshape(y.shape[0], y.shape[2], D * y.shape[3])
    h_n = np.concatenate([out[f"Y_h_{k}"] for k in range(L)])
    c_n = np.concatenate([out[f"Y_c_{k}"] for k in range(L)]) if c0 is not None else None
    return y, h_n, c_n


def compare(got, want, what):
    for part, g, w in zip(("y", "h_n", "c_n"), got, want):
        if w is not None:
            assert_close(g, w, TOL, f"{what}: {part}")


def nonlinearity(name):
    return "relu" if name == "RNN_relu" else "tanh"


def check_against_ort(ort, name, m, num_layers=1, D=1, lengths=None):
    """to_onnx(m) in ONNX Runtime vs m's forward."""
    op = KINDS[name][3]
    x, h0, c0 = inputs(name, num_layers, D)
    model = ort_model(op, convert.to_onnx(m), H, I, D, nonlinearity=nonlinearity(name),
                      lengths=lengths is not None)
    want = ort_run(ort, model, x, h0, c0, D, lengths)
    compare(run_module(m, x, h0, c0, lengths), want, f"{name} to_onnx vs ONNX Runtime")


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("name", list(KINDS))
def test_to_onnx_matches_onnxruntime(onnxruntime, name, bias):
    check_against_ort(onnxruntime, name, make(name, bias=bias))


def random_onnx_weights(name, num_layers=1, D=1, seed=3, bias=True):
    """ONNX-layout weights drawn directly (not from a module)."""
    rng = np.random.default_rng(seed)
    G = KINDS[name][2]
    k = 1 / np.sqrt(H)
    out = []
    for layer in range(num_layers):
        i_k = I if layer == 0 else D * H
        w = {"W": rng.uniform(-k, k, (D, G * H, i_k)).astype(np.float32),
             "R": rng.uniform(-k, k, (D, G * H, H)).astype(np.float32)}
        if bias:
            w["B"] = rng.uniform(-k, k, (D, 2 * G * H)).astype(np.float32)
        if KINDS[name][3] == "GRU":
            w["linear_before_reset"] = 0 if name == "GRU_reset_before" else 1
        out.append(w)
    return out


@pytest.mark.parametrize("name", list(KINDS))
def test_from_onnx_matches_onnxruntime(onnxruntime, name):
    w = random_onnx_weights(name)
    m = convert.from_onnx(make(name, seed=9), w)
    x, h0, c0 = inputs(name)
    model = ort_model(KINDS[name][3], w, H, I, 1, nonlinearity=nonlinearity(name))
    want = ort_run(onnxruntime, model, x, h0, c0, 1)
    compare(run_module(m, x, h0, c0), want, f"{name} from_onnx vs ONNX Runtime")


def test_from_onnx_zero_peepholes_and_missing_bias_match_onnxruntime(onnxruntime):
    w = random_onnx_weights("LSTM", bias=False)
    w[0]["P"] = np.zeros((1, 3 * H), np.float32)
    m = randomize(make("LSTM"))
    convert.from_onnx(m, w)
    np.testing.assert_array_equal(m.bias_ih_l0, 0)
    np.testing.assert_array_equal(m.bias_hh_l0, 0)
    x, h0, c0 = inputs("LSTM")
    want = ort_run(onnxruntime, ort_model("LSTM", w, H, I, 1), x, h0, c0, 1)
    compare(run_module(m, x, h0, c0), want, "LSTM with P = 0 and no B vs ONNX Runtime")


@needs_stacks
@pytest.mark.parametrize(("num_layers", "bidirectional"), STACK_CONFIGS)
@pytest.mark.parametrize("name", list(KINDS))
def test_stacked_matches_onnxruntime(onnxruntime, name, num_layers, bidirectional):
    D = 2 if bidirectional else 1
    check_against_ort(onnxruntime, name, make(name, num_layers, bidirectional), num_layers, D)
    # and ONNX-layout weights imported
    w = random_onnx_weights(name, num_layers, D)
    m = convert.from_onnx(make(name, num_layers, bidirectional, seed=5), w)
    x, h0, c0 = inputs(name, num_layers, D)
    model = ort_model(KINDS[name][3], w, H, I, D, nonlinearity=nonlinearity(name))
    want = ort_run(onnxruntime, model, x, h0, c0, D)
    compare(run_module(m, x, h0, c0), want, f"{name} stacked from_onnx vs ONNX Runtime")


LENGTH_CONFIGS = [pytest.param(1, False, id="1layer"),
                  pytest.param(1, True, id="bidir", marks=needs_stacks),
                  pytest.param(2, True, id="2layers-bidir", marks=needs_stacks)]


@needs_lengths
@pytest.mark.parametrize(("num_layers", "bidirectional"), LENGTH_CONFIGS)
@pytest.mark.parametrize("name", list(KINDS))
def test_lengths_match_onnxruntime(onnxruntime, name, num_layers, bidirectional):
    D = 2 if bidirectional else 1
    lengths = np.array([T - 2, T, 1], np.int64)  # unsorted, one full, one of a single step
    m = make(name, num_layers, bidirectional)
    check_against_ort(onnxruntime, name, m, num_layers, D, lengths)


# ----------------------------------------------------------------- Keras, by numbers
# Keras' cells (keras.layers.LSTMCell / GRUCell / SimpleRNNCell, default activations:
# tanh, recurrent sigmoid), one time step on (B, I) rows with kernel (I, G*H),
# recurrent_kernel (H, G*H) and bias as Keras holds them.
def keras_lstm_step(x, h, c, kernel, rec, bias):
    z = x @ kernel + h @ rec + (0 if bias is None else bias)
    z0, z1, z2, z3 = np.split(z, 4, axis=-1)
    i, f, o = sigmoid(z0), sigmoid(z1), sigmoid(z3)
    c = f * c + i * np.tanh(z2)
    return o * np.tanh(c), c


def keras_gru_step(x, h, kernel, rec, bias, reset_after):
    if bias is None:
        input_bias = recurrent_bias = 0
    elif reset_after:
        input_bias, recurrent_bias = bias[0], bias[1]
    else:
        input_bias, recurrent_bias = bias, 0
    x_z, x_r, x_h = np.split(x @ kernel + input_bias, 3, axis=-1)
    rec_z, rec_r, rec_h = np.split(rec, 3, axis=-1)
    if reset_after:
        m_z, m_r, m_h = np.split(h @ rec + recurrent_bias, 3, axis=-1)
    else:
        m_z, m_r = h @ rec_z, h @ rec_r
    z = sigmoid(x_z + m_z)
    r = sigmoid(x_r + m_r)
    hh = np.tanh(x_h + (r * m_h if reset_after else (r * h) @ rec_h))
    return z * h + (1 - z) * hh


def keras_simple_rnn_step(x, h, kernel, rec, bias, activation):
    out = x @ kernel + (0 if bias is None else bias) + h @ rec
    return np.tanh(out) if activation == "tanh" else np.maximum(out, 0)


def keras_layer(name, weights, x, h, c):
    """One Keras layer (one direction, return_sequences=True, return_state=True) over
    x (T, B, I) from h (and c): returns (y (T, B, H), h_n, c_n)."""
    kernel, rec = weights[:2]
    bias = weights[2] if len(weights) == 3 else None
    ys = []
    for x_t in x:
        if name == "LSTM":
            h, c = keras_lstm_step(x_t, h, c, kernel, rec, bias)
        elif name.startswith("GRU"):
            h = keras_gru_step(x_t, h, kernel, rec, bias, reset_after=(name == "GRU"))
        else:
            h = keras_simple_rnn_step(x_t, h, kernel, rec, bias, nonlinearity(name))
        ys.append(h)
    return np.stack(ys), h, c


def keras_stack(name, weights, x, h0, c0):
    """Keras layers stacked as to_keras' list says (Bidirectional: the backward layer
    runs on the reversed sequence and its outputs are reversed back, merge "concat")."""
    x = x.astype(np.float64)
    hs, cs = [], []
    for layer in weights:
        dirs = layer if isinstance(layer, tuple) else (layer,)
        outs = []
        for d, w in enumerate(dirs):
            s = len(hs)
            c = None if c0 is None else c0[s].astype(np.float64)
            xd = x if d == 0 else x[::-1]
            y, h, c = keras_layer(name, [np.asarray(a, np.float64) for a in w], xd,
                                  h0[s].astype(np.float64), c)
            outs.append(y if d == 0 else y[::-1])
            hs.append(h)
            cs.append(c)
        x = np.concatenate(outs, axis=-1)
    return x, np.stack(hs), (np.stack(cs) if c0 is not None else None)


def check_against_keras(name, m, num_layers=1, D=1):
    x, h0, c0 = inputs(name, num_layers, D)
    want = keras_stack(name, convert.to_keras(m), x, h0, c0)
    compare(run_module(m, x, h0, c0), want, f"{name} vs Keras' equations")
    # and Keras-layout weights imported: perturb them, load, compare again
    rng = np.random.default_rng(11)
    w = convert.to_keras(m)
    w2 = [tuple([a + 0.1 * rng.standard_normal(a.shape) for a in d] for d in e)
          if isinstance(e, tuple) else [a + 0.1 * rng.standard_normal(a.shape) for a in e]
          for e in w]
    convert.from_keras(m, w2)
    want = keras_stack(name, w2, x, h0, c0)
    compare(run_module(m, x, h0, c0), want, f"{name} from_keras vs Keras' equations")


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("name", list(KINDS))
def test_keras_equations(name, bias):
    check_against_keras(name, make(name, bias=bias))


@needs_stacks
@pytest.mark.parametrize(("num_layers", "bidirectional"), STACK_CONFIGS)
@pytest.mark.parametrize("name", list(KINDS))
def test_keras_equations_stacked(name, num_layers, bidirectional):
    check_against_keras(name, make(name, num_layers, bidirectional), num_layers,
                        2 if bidirectional else 1)


# --------------------------------------------------------------------------- errors
def test_module_type_errors():
    for fn in (convert.to_keras, convert.to_onnx):
        with pytest.raises(TypeError, match="module: expected a fusedrnn.LSTM"):
            fn(object())
        with pytest.raises(TypeError, match="not the cell LSTMCell"):
            fn(fr.LSTMCell(I, H))
    with pytest.raises(TypeError, match="module"):
        convert.from_keras(fr.GRUCell(I, H), [])
    with pytest.raises(TypeError, match="module"):
        convert.from_onnx({}, [])


def lstm_with_projection():
    """An LSTM with proj_size=2: a real one when the layers support it, else one that
    says so (the converters read only the attribute)."""
    try:
        return fr.LSTM(I, H, proj_size=2)
    except NotImplementedError:
        m = fr.LSTM(I, H)
        m.proj_size = 2
        return m


def test_proj_size_refused():
    m = lstm_with_projection()
    for fn in (convert.to_keras, convert.to_onnx):
        with pytest.raises(ValueError, match="proj_size=2"):
            fn(m)
    with pytest.raises(ValueError, match="proj_size=2"):
        convert.from_keras(m, [[]])
    with pytest.raises(ValueError, match="proj_size=2"):
        convert.from_onnx(m, [{}])


def test_from_keras_errors():
    m = make("LSTM")
    before = m.state_dict()
    good = convert.to_keras(make("LSTM", seed=4))
    kernel, rec, bias = good[0]
    with pytest.raises(TypeError, match="weights: expected a list"):
        convert.from_keras(m, {"kernel": kernel})
    with pytest.raises(ValueError, match=r"expected 1 entries .*\[layer.get_weights\(\)\]"):
        convert.from_keras(m, good[0])  # the bare Keras list, not wrapped per layer
    with pytest.raises(ValueError, match="weights: expected 1 entries"):
        convert.from_keras(m, [good[0], good[0]])
    with pytest.raises(ValueError, match=r"weights\[0\] \(layer 0\): expected 3 arrays"):
        convert.from_keras(m, [[kernel, rec]])
    with pytest.raises(ValueError, match=r"expected 2 arrays .*bias=False"):
        convert.from_keras(make("LSTM", bias=False), good)
    with pytest.raises(ValueError, match=r"weights\[0\]\[0\] \(kernel\) \(layer 0\): expected "
                                         r"shape \(5, 16\), got \(16, 5\)"):
        convert.from_keras(m, [[kernel.T, rec, bias]])
    with pytest.raises(ValueError, match=r"weights\[0\]\[1\] \(recurrent_kernel\)"):
        convert.from_keras(m, [[kernel, rec[:, :8], bias]])
    with pytest.raises(ValueError, match=r"weights\[0\]\[2\] \(bias\) \(layer 0\): expected "
                                         r"shape \(16,\)"):
        convert.from_keras(m, [[kernel, rec, np.stack([bias, bias])]])
    with pytest.raises(TypeError, match=r"weights\[0\]\[0\] \(kernel\).*floating"):
        convert.from_keras(m, [[kernel.astype(np.int32), rec, bias]])
    with pytest.raises(TypeError, match=r"weights\[0\] \(layer 0\): expected a list"):
        convert.from_keras(m, [kernel])
    with pytest.raises(ValueError, match="bidirectional=False"):
        convert.from_keras(m, [(good[0], good[0])])
    with pytest.raises(ValueError, match="reset_after: only a GRU"):
        convert.from_keras(m, good, reset_after=True)
    state_dicts_equal(m.state_dict(), before)  # nothing changed by the failed calls


def test_keras_reset_after_mismatch():
    gru, cho = make("GRU"), make("GRU_reset_before")
    w_gru, w_cho = convert.to_keras(gru), convert.to_keras(cho)
    with pytest.raises(ValueError, match=r"reset_after: .*GRU\(reset_after=False\).*module has "
                                         r"reset_after=True"):
        convert.from_keras(gru, w_cho)
    with pytest.raises(ValueError, match=r"reset_after: .*GRU\(reset_after=True\)"):
        convert.from_keras(cho, w_gru)
    with pytest.raises(ValueError, match=r"reset_after: Keras' GRU\(reset_after=False\)"):
        convert.to_keras(gru, reset_after=False)
    with pytest.raises(ValueError, match="reset_after"):
        convert.from_keras(make("GRU", bias=False), convert.to_keras(make("GRU", bias=False)),
                           reset_after=False)
    assert len(convert.to_keras(cho, reset_after=False)[0]) == 3
    convert.from_keras(gru, w_gru, reset_after=True)


def test_from_onnx_errors():
    m = make("LSTM")
    before = m.state_dict()
    (w,) = convert.to_onnx(make("LSTM", seed=4))
    with pytest.raises(TypeError, match="weights: expected a list"):
        convert.from_onnx(m, w)
    with pytest.raises(ValueError, match="weights: expected 1 entries"):
        convert.from_onnx(m, [w, w])
    with pytest.raises(TypeError, match=r"weights\[0\] \(layer 0\): expected a dict"):
        convert.from_onnx(m, [[w["W"], w["R"]]])
    with pytest.raises(ValueError, match=r"missing keys \['R'\]"):
        convert.from_onnx(m, [{"W": w["W"]}])
    with pytest.raises(ValueError, match=r"unexpected keys \['linear_before_reset'\]"):
        convert.from_onnx(m, [{**w, "linear_before_reset": 1}])
    with pytest.raises(ValueError, match=r"weights\[0\]\['W'\] \(layer 0\): expected shape "
                                         r"\(1, 16, 5\), got \(1, 16, 4\)"):
        convert.from_onnx(m, [{**w, "W": w["W"][:, :, :4]}])
    with pytest.raises(ValueError, match=r"weights\[0\]\['R'\] \(layer 0\): expected shape"):
        convert.from_onnx(m, [{**w, "R": w["R"][0]}])
    with pytest.raises(ValueError, match=r"weights\[0\]\['B'\] \(layer 0\): expected shape "
                                         r"\(1, 32\)"):
        convert.from_onnx(m, [{**w, "B": w["B"][:, :16]}])
    # direction: a bidirectional ONNX layer into a one-direction module
    w2 = {key: np.concatenate([v, v]) for key, v in w.items()}
    with pytest.raises(ValueError, match=r"has 2 directions .*bidirectional.* the module has "
                                         r"bidirectional=False"):
        convert.from_onnx(m, [w2])
    # peepholes
    with pytest.raises(ValueError, match=r"\['P'\] \(layer 0\): peepholes are unsupported"):
        convert.from_onnx(m, [{**w, "P": np.full((1, 3 * H), 0.1, np.float32)}])
    with pytest.raises(ValueError, match=r"\['P'\] \(layer 0\): expected shape \(1, 12\)"):
        convert.from_onnx(m, [{**w, "P": np.zeros((1, 4 * H), np.float32)}])
    with pytest.raises(ValueError, match="unexpected keys"):
        convert.from_onnx(make("GRU"), [{**convert.to_onnx(make("GRU"))[0], "P": w["B"]}])
    state_dicts_equal(m.state_dict(), before)
    # biases into a module without them: only zeros
    nb = make("LSTM", bias=False)
    with pytest.raises(ValueError, match=r"\['B'\] \(layer 0\): the module has bias=False"):
        convert.from_onnx(nb, [w])
    convert.from_onnx(nb, [{**w, "B": np.zeros_like(w["B"])}])
    np.testing.assert_array_equal(nb.weight_hh_l0,
                                  convert.from_onnx(make("LSTM"), [w]).weight_hh_l0)


def test_from_onnx_linear_before_reset():
    gru, cho = make("GRU"), make("GRU_reset_before")
    (w,) = convert.to_onnx(gru)
    with pytest.raises(ValueError, match=r"linear_before_reset=1 is the GRU with reset_after="
                                         r"True, but the module has reset_after=False"):
        convert.from_onnx(cho, [w])
    with pytest.raises(ValueError, match=r"linear_before_reset=0 .*module has reset_after=True"):
        convert.from_onnx(gru, [{**w, "linear_before_reset": 0}])
    with pytest.raises(ValueError, match=r"missing keys \['linear_before_reset'\]"):
        convert.from_onnx(gru, [{"W": w["W"], "R": w["R"]}])
    with pytest.raises(ValueError, match=r"\['linear_before_reset'\] \(layer 0\): expected 0 or "
                                         "1, got 2"):
        convert.from_onnx(gru, [{**w, "linear_before_reset": 2}])
    convert.from_onnx(gru, [{**w, "linear_before_reset": np.int64(1)}])
    convert.from_onnx(gru, [{**w, "linear_before_reset": np.array([1])}])


@needs_stacks
def test_direction_mismatch_into_bidirectional():
    m = make("RNN_tanh", 1, True)
    with pytest.raises(ValueError, match=r"has 1 directions .*forward.*bidirectional=True"):
        convert.from_onnx(m, convert.to_onnx(make("RNN_tanh")))
    with pytest.raises(ValueError, match=r"bidirectional: expected a pair"):
        convert.from_keras(m, convert.to_keras(make("RNN_tanh")))
    with pytest.raises(ValueError, match=r"\(backward weights\): expected 3 arrays"):
        fw, bw = convert.to_keras(m)[0]
        convert.from_keras(m, [(fw, bw[:2])])
    # layer 1 of a stack takes D*H inputs
    s = make("GRU", 2, True)
    w = convert.to_onnx(s)
    w[1]["W"] = w[1]["W"][:, :, :H]
    with pytest.raises(ValueError, match=r"weights\[1\]\['W'\] \(layer 1\): expected shape "
                                         r"\(2, 12, 8\)"):
        convert.from_onnx(s, w)
