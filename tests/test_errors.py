"""Bad input gets a Python exception that names the argument (docs/api.md): never a
crash, never a silent wrong answer.  The public classes, then the private compiled
module ``fusedrnn._core`` called directly (its checks are the last line of defence).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import fusedrnn as fr
from fusedrnn import _core

I, H, T, B = 4, 6, 5, 3

LAYERS = {
    "LSTM": (fr.LSTM, {}, True),
    "GRU": (fr.GRU, {}, False),
    "GRU_reset_before": (fr.GRU, {"reset_after": False}, False),
    "RNN": (fr.RNN, {}, False),
    "RNN_relu": (fr.RNN, {"nonlinearity": "relu"}, False),
}
CELLS = {
    "LSTMCell": (fr.LSTMCell, {}, True),
    "GRUCell": (fr.GRUCell, {}, False),
    "RNNCell": (fr.RNNCell, {}, False),
}
ALL = {**LAYERS, **CELLS}


def make(name, dtype=np.float32, **kw):
    cls, extra, _ = ALL[name]
    return cls(I, H, dtype=dtype, seed=0, **extra, **kw)


def is_lstm(name):
    return ALL[name][2]


def state(name, shape, dtype=np.float32):
    z = np.zeros(shape, dtype)
    return (z, z.copy()) if is_lstm(name) else z


def arg(name):
    """A pattern that finds the argument's name as a word at the start of a message."""
    return r"^" + re.escape(name) + r"\b"


layer_param = pytest.mark.parametrize("name", list(LAYERS))
cell_param = pytest.mark.parametrize("name", list(CELLS))


# ----------------------------------------------------------------------- layers: x
@layer_param
@pytest.mark.parametrize("shape", [(I,), (2, T, B, I), ()], ids=["1d", "4d", "0d"])
def test_layer_x_ndim(name, shape):
    m = make(name)
    with pytest.raises(ValueError, match=arg("x")):
        m(np.zeros(shape, np.float32))
    with pytest.raises(ValueError, match=arg("x")):
        m.forward(np.zeros(shape, np.float32), train=True)


@layer_param
def test_layer_x_input_size(name):
    m = make(name)
    with pytest.raises(ValueError, match=r"^x\b.*input_size"):
        m(np.zeros((T, B, I + 1), np.float32))
    with pytest.raises(ValueError, match=r"^x\b.*input_size"):
        m(np.zeros((T, I - 1), np.float32))  # unbatched
    with pytest.raises(ValueError, match=r"^x\b.*input_size"):
        make(name, batch_first=True)(np.zeros((B, T, 0), np.float32))


@layer_param
@pytest.mark.parametrize("shape", [(0, B, I), (0, I)], ids=["T0", "unbatched_T0"])
def test_layer_x_empty(name, shape):
    # No time step (an empty batch, B = 0, is valid: tests/test_empty_batch.py).
    bf_shape = shape if len(shape) == 2 else (shape[1], shape[0], shape[2])
    for m, s in ((make(name), shape), (make(name, batch_first=True), bf_shape)):
        with pytest.raises(ValueError, match=arg("x")):
            m.forward(np.zeros(s, np.float32), train=True)
        with pytest.raises(ValueError, match=arg("x")):
            m(np.zeros(s, np.float32))


BAD_X_DTYPES = {
    "int32": np.int32,
    "int64": np.int64,
    "uint8": np.uint8,
    "bool": np.bool_,
    "complex64": np.complex64,
    "complex128": np.complex128,
    "object": object,
    "str": np.str_,
}


@pytest.mark.parametrize("dt", list(BAD_X_DTYPES.values()), ids=list(BAD_X_DTYPES))
@pytest.mark.parametrize("name", ["LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell"])
def test_x_bad_dtype(name, dt):
    m = make(name, dtype=np.float64)
    shape = (B, I) if name in CELLS else (T, B, I)
    x = np.zeros(shape, dtype=dt) if dt is not np.str_ else np.full(shape, "a")
    with pytest.raises(TypeError, match=arg("x")):
        m(x)
    with pytest.raises(TypeError, match=arg("x")):
        m.forward(x, train=True)


@pytest.mark.parametrize("name", list(ALL))
def test_float64_x_into_float32_layer(name):
    m = make(name, dtype=np.float32)
    shape = (B, I) if name in CELLS else (T, B, I)
    with pytest.raises(TypeError, match=r"^x\b.*float32.*float64"):
        m(np.zeros(shape, np.float64))
    with pytest.raises(TypeError, match=r"^x\b.*float32.*" + np.dtype(np.longdouble).name):
        m(np.zeros(shape, np.longdouble))


@pytest.mark.parametrize("name", ["LSTM", "GRUCell"])
def test_x_not_an_array(name):
    m = make(name)
    for bad in (None, "abc", [[1.0, 2.0], [3.0]], {"a": 1}, object()):
        with pytest.raises(TypeError, match=arg("x")):
            m(bad)


# ------------------------------------------------------------------------ layers: hx
def test_lstm_hx_not_a_tuple():
    m = make("LSTM")
    x = np.zeros((T, B, I), np.float32)
    h = np.zeros((1, B, H), np.float32)
    for bad in (h, (h,), (h, h, h), np.stack([h, h])):
        with pytest.raises(TypeError, match=arg("hx")):
            m(x, bad)


def test_lstm_cell_hx_not_a_tuple():
    m = make("LSTMCell")
    x = np.zeros((B, I), np.float32)
    h = np.zeros((B, H), np.float32)
    for bad in (h, (h,), (h, h, h)):
        with pytest.raises(TypeError, match=arg("hx")):
            m(x, bad)


def test_lstm_hx_element_none_or_wrong_dtype():
    m = make("LSTM")
    x = np.zeros((T, B, I), np.float32)
    h = np.zeros((1, B, H), np.float32)
    with pytest.raises(TypeError, match=r"^hx\[1\]"):
        m(x, (h, None))
    with pytest.raises(TypeError, match=r"^hx\[0\]"):
        m(x, (h.astype(np.float64), h))
    with pytest.raises(TypeError, match=r"^hx\[1\]"):
        m(x, (h, h.astype(np.int32)))


@pytest.mark.parametrize("name", ["GRU", "RNN", "GRUCell", "RNNCell"])
def test_non_lstm_hx_given_as_tuple(name):
    m = make(name)
    if name in CELLS:
        x, h = np.zeros((B, I), np.float32), np.zeros((B, H), np.float32)
    else:
        x, h = np.zeros((T, B, I), np.float32), np.zeros((1, B, H), np.float32)
    for bad in ((h, h), (h,), [h]):
        with pytest.raises(TypeError, match=arg("hx")):
            m(x, bad)


@layer_param
def test_layer_state_shape(name):
    m = make(name)
    x = np.zeros((T, B, I), np.float32)
    pat = r"^hx\b.*\(1, 3, 6\)" if not is_lstm(name) else r"^hx\[0\].*\(1, 3, 6\)"
    for bad in ((B, H), (1, B + 1, H), (1, B, H + 1), (2, B, H), (1, 1, H), (H,)):
        with pytest.raises(ValueError, match=pat):
            m(x, state(name, bad))
    if is_lstm(name):  # c_0 alone wrong
        with pytest.raises(ValueError, match=r"^hx\[1\]"):
            m(x, (np.zeros((1, B, H), np.float32), np.zeros((B, H), np.float32)))
    # unbatched: state (1, H)
    xu = np.zeros((T, I), np.float32)
    for bad in ((1, 1, H), (H,), (1, H + 1)):
        with pytest.raises(ValueError, match=r"^hx"):
            m(xu, state(name, bad))
    # batch_first does not change the state layout (1, B, H)
    mb = make(name, batch_first=True)
    with pytest.raises(ValueError, match=r"^hx"):
        mb(np.zeros((B, T, I), np.float32), state(name, (1, T, H)))


@cell_param
def test_cell_state_shape(name):
    m = make(name)
    x = np.zeros((B, I), np.float32)
    for bad in ((1, B, H), (B + 1, H), (B, H + 1), (H,)):
        with pytest.raises(ValueError, match=r"^hx"):
            m(x, state(name, bad))
    for bad in ((1, H), (H + 1,)):
        with pytest.raises(ValueError, match=r"^hx"):
            m(np.zeros(I, np.float32), state(name, bad))


# ------------------------------------------------------------------------ cells: x
@cell_param
def test_cell_x(name):
    m = make(name)
    for shape in ((), (1, B, I)):
        with pytest.raises(ValueError, match=arg("x")):
            m(np.zeros(shape, np.float32))
    for shape in ((B, I + 1), (I - 1,)):
        with pytest.raises(ValueError, match=r"^x\b.*input_size"):
            m(np.zeros(shape, np.float32))
    # (an empty batch, x (0, I), is valid: tests/test_empty_batch.py)


# ----------------------------------------------------------------------- backward
@pytest.mark.parametrize("name", list(ALL))
def test_backward_tape_from_another_module(name):
    a, b = make(name), make(name)
    x = np.zeros((B, I) if name in CELLS else (T, B, I), np.float32)
    out = a.forward(x, train=True)
    tape = out[-1]
    ds = state(name, (B, H) if name in CELLS else (1, B, H))
    with pytest.raises(ValueError, match=arg("tape")):
        if name in CELLS:
            b.backward(tape, ds)
        else:
            b.backward(tape, None, ds)


@pytest.mark.parametrize("name", list(ALL))
def test_backward_not_a_tape(name):
    m = make(name)
    x = np.zeros((B, I) if name in CELLS else (T, B, I), np.float32)
    out = m.forward(x, train=False)
    for bad in (None, out[-1], "tape", object(), {"x": x}):
        with pytest.raises(TypeError, match=arg("tape")):
            if name in CELLS:
                m.backward(bad, None)
            else:
                m.backward(bad)


def test_backward_tape_of_an_lstm_into_a_gru():
    lstm, gru = make("LSTM"), make("GRU")
    _, _, tape = lstm.forward(np.zeros((T, B, I), np.float32), train=True)
    with pytest.raises(ValueError, match=arg("tape")):
        gru.backward(tape)


@layer_param
@pytest.mark.parametrize("batch_first", [False, True], ids=["seq", "bf"])
def test_backward_dy_shape_and_dtype(name, batch_first):
    m = make(name, batch_first=batch_first)
    x_shape = (B, T, I) if batch_first else (T, B, I)
    y, _, tape = m.forward(np.zeros(x_shape, np.float32), train=True)
    bad_shapes = [y.shape[:-1] + (H + 1,), y.shape[::-1], (T * B, H), y.shape + (1,),
                  (y.shape[1], y.shape[0], H)]
    for bad in bad_shapes:
        with pytest.raises(ValueError, match=arg("dy")):
            m.backward(tape, np.zeros(bad, np.float32))
    with pytest.raises(TypeError, match=arg("dy")):
        m.backward(tape, np.zeros(y.shape, np.float64))
    with pytest.raises(TypeError, match=arg("dy")):
        m.backward(tape, np.zeros(y.shape, np.int32))
    # unbatched tape: dy must be (T, H)
    yu, _, tu = m.forward(np.zeros((T, I), np.float32), train=True)
    with pytest.raises(ValueError, match=arg("dy")):
        m.backward(tu, np.zeros((T, 1, H), np.float32))


@layer_param
def test_backward_dstate_shape(name):
    m = make(name)
    _, _, tape = m.forward(np.zeros((T, B, I), np.float32), train=True)
    for bad in ((B, H), (1, B + 1, H), (1, B, H + 1)):
        with pytest.raises(ValueError, match=arg("dstate")):
            m.backward(tape, None, state(name, bad))
    if is_lstm(name):
        with pytest.raises(TypeError, match=arg("dstate")):
            m.backward(tape, None, np.zeros((1, B, H), np.float32))
        with pytest.raises(TypeError, match=arg("dstate")):
            m.backward(tape, None, (np.zeros((1, B, H), np.float32),))
        with pytest.raises(ValueError, match=r"^dstate\[1\]"):
            m.backward(tape, None, (None, np.zeros((B, H), np.float32)))
        with pytest.raises(TypeError, match=r"^dstate\[0\]"):
            m.backward(tape, None, (np.zeros((1, B, H)), None))  # float64 into float32
    else:
        z = np.zeros((1, B, H), np.float32)
        with pytest.raises(TypeError, match=arg("dstate")):
            m.backward(tape, None, (z, z))
        with pytest.raises(TypeError, match=arg("dstate")):
            m.backward(tape, None, z.astype(np.int64))


@cell_param
def test_cell_backward_dstate_shape(name):
    m = make(name)
    _, tape = m.forward(np.zeros((B, I), np.float32), train=True)
    for bad in ((1, B, H), (B + 1, H), (H,)):
        with pytest.raises(ValueError, match=arg("dstate")):
            m.backward(tape, state(name, bad))
    if not is_lstm(name):
        z = np.zeros((B, H), np.float32)
        with pytest.raises(TypeError, match=arg("dstate")):
            m.backward(tape, (z, z))
    else:
        with pytest.raises(TypeError, match=arg("dstate")):
            m.backward(tape, np.zeros((B, H), np.float32))


# ---------------------------------------------------------------------- state_dict
@pytest.mark.parametrize("name", ["LSTM", "GRU", "RNNCell", "LSTMCell"])
def test_state_dict_missing_and_unknown_keys(name):
    m = make(name)
    before = m.state_dict()
    sd = m.state_dict()
    first = next(iter(sd))
    del sd[first]
    with pytest.raises(ValueError, match=r"^state_dict\b.*missing.*" + re.escape(first)):
        m.load_state_dict(sd)
    sd = m.state_dict()
    sd["weight_hr_l0"] = np.zeros((H, H), np.float32)
    with pytest.raises(ValueError, match=r"^state_dict\b.*unexpected.*weight_hr_l0"):
        m.load_state_dict(sd)
    with pytest.raises(ValueError, match=r"^state_dict\b"):
        m.load_state_dict({})
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_state_dict_bias_keys_for_a_module_without_bias():
    m = fr.GRU(I, H, bias=False)
    sd = fr.GRU(I, H).state_dict()
    with pytest.raises(ValueError, match=r"unexpected.*bias_ih_l0"):
        m.load_state_dict(sd)


@pytest.mark.parametrize("name", ["LSTM", "GRUCell"])
def test_state_dict_misshaped_values(name):
    m = make(name)
    for key, v in m.state_dict().items():
        for bad_shape in (v.shape[::-1] if v.ndim == 2 else (v.shape[0] + 1,),
                          (1,) + v.shape, v.shape[:1] + (v.size // v.shape[0] + 1,)):
            if bad_shape == v.shape:
                continue
            sd = m.state_dict()
            sd[key] = np.zeros(bad_shape, np.float32)
            with pytest.raises(ValueError, match=r"^state_dict\['" + key + r"'\].*shape"):
                m.load_state_dict(sd)
        sd = m.state_dict()
        sd[key] = v.ravel()  # the right size, the wrong shape
        if v.ndim == 2:
            with pytest.raises(ValueError, match=re.escape(key)):
                m.load_state_dict(sd)


@pytest.mark.parametrize("dt", [np.int32, np.int64, np.bool_, np.complex64, object],
                         ids=["int32", "int64", "bool", "complex64", "object"])
def test_state_dict_non_floating_values(dt):
    m = make("LSTM")
    sd = m.state_dict()
    sd["weight_hh_l0"] = np.zeros(sd["weight_hh_l0"].shape, dt)
    with pytest.raises(TypeError, match=r"^state_dict\['weight_hh_l0'\]"):
        m.load_state_dict(sd)
    with pytest.raises(TypeError, match=r"^state_dict\['weight_hh_l0'\]"):
        m.load_state_dict(sd, strict=False)


def test_state_dict_not_a_mapping():
    m = make("GRU")
    for bad in (None, [("weight_ih_l0", np.zeros((3 * H, I)))], 3, "weight_ih_l0",
                list(m.state_dict().values())):
        with pytest.raises(TypeError, match=arg("state_dict")):
            m.load_state_dict(bad)


# --------------------------------------------------------------------- constructor
@pytest.mark.parametrize("cls", [fr.LSTM, fr.GRU, fr.RNN, fr.LSTMCell, fr.GRUCell, fr.RNNCell])
def test_constructor_sizes(cls):
    for bad in (0, -1, -10):
        with pytest.raises(ValueError, match=arg("input_size")):
            cls(bad, H)
        with pytest.raises(ValueError, match=arg("hidden_size")):
            cls(I, bad)
    for bad in (4.0, 4.5, True, False, "4", None, np.float64(4)):
        with pytest.raises(TypeError, match=arg("input_size")):
            cls(bad, H)
        with pytest.raises(TypeError, match=arg("hidden_size")):
            cls(I, bad)
    # numpy integers are integers
    m = cls(np.int64(I), np.int32(H))
    assert type(m.input_size) is int and type(m.hidden_size) is int


@pytest.mark.parametrize("cls", [fr.LSTM, fr.GRU, fr.RNN, fr.LSTMCell, fr.GRUCell, fr.RNNCell])
def test_constructor_dtype(cls):
    for bad in (np.int32, "int32", "float16", np.float16, np.complex64, "bogus", np.longdouble):
        with pytest.raises(TypeError, match=arg("dtype")):
            cls(I, H, dtype=bad)


@pytest.mark.parametrize("cls", [fr.LSTM, fr.GRU, fr.RNN, fr.LSTMCell, fr.GRUCell, fr.RNNCell])
def test_constructor_bias(cls):
    for bad in ("yes", 1, 0, None, 1.0):
        with pytest.raises(TypeError, match=arg("bias")):
            cls(I, H, bias=bad)


@pytest.mark.parametrize("cls", [fr.RNN, fr.RNNCell])
def test_constructor_nonlinearity(cls):
    for bad in ("sigmoid", "Tanh", "", None, np.tanh):
        with pytest.raises(ValueError, match=arg("nonlinearity")):
            cls(I, H, nonlinearity=bad)


@pytest.mark.parametrize("cls", [fr.LSTM, fr.GRU, fr.RNN])
def test_constructor_dropout(cls):
    for bad in (2.0, -0.1, 1.5, float("nan"), "0.5", None, True):
        with pytest.raises(ValueError, match=arg("dropout")):
            cls(I, H, dropout=bad)


def test_constructor_proj_size():
    for bad in (H, H + 1, 100):
        with pytest.raises(ValueError, match=arg("proj_size")):
            fr.LSTM(I, H, proj_size=bad)
    with pytest.raises(ValueError, match=arg("proj_size")):
        fr.LSTM(I, H, proj_size=-1)
    with pytest.raises(TypeError, match=arg("proj_size")):
        fr.LSTM(I, H, proj_size=1.0)


@pytest.mark.parametrize("cls", [fr.LSTM, fr.GRU, fr.RNN])
def test_constructor_num_layers(cls):
    for bad in (0, -1):
        with pytest.raises(ValueError, match=arg("num_layers")):
            cls(I, H, num_layers=bad)
    with pytest.raises(TypeError, match=arg("num_layers")):
        cls(I, H, num_layers=1.0)


# ================================================================= fusedrnn._core
def _w(cell, dtype=np.float32, I_=I, H_=H, bias=True):
    G = {"lstm": 4, "gru": 3, "gru_reset_before": 3, "rnn_tanh": 1, "rnn_relu": 1}[cell]
    rng = np.random.default_rng(0)
    w_ih = (0.3 * rng.standard_normal((G * H_, I_))).astype(dtype)
    w_hh = (0.3 * rng.standard_normal((G * H_, H_))).astype(dtype)
    b_ih = (0.1 * rng.standard_normal(G * H_)).astype(dtype) if bias else None
    b_hh = (0.1 * rng.standard_normal(G * H_)).astype(dtype) if bias else None
    return w_ih, w_hh, b_ih, b_hh


CORE_CELLS = ["lstm", "gru", "gru_reset_before", "rnn_tanh", "rnn_relu"]
core_cell_param = pytest.mark.parametrize("cell", CORE_CELLS)
core_dtype_param = pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])


def _args(cell, dtype):
    x = np.random.default_rng(1).standard_normal((T, B, I)).astype(dtype)
    h0 = np.zeros((B, H), dtype)
    c0 = np.zeros((B, H), dtype) if cell == "lstm" else None
    return x, h0, c0


@core_cell_param
@core_dtype_param
def test_core_happy_path_matches_reference(cell, dtype):
    """The direct calls below reach the checks they mean to: a valid call works."""
    w = _w(cell, dtype)
    pw = _core.Weights(cell, *w)
    assert pw.cell == cell and pw.input_size == I and pw.hidden_size == H
    assert pw.has_bias and np.dtype(pw.dtype) == dtype
    x, h0, c0 = _args(cell, dtype)
    y, h_n, c_n, ws = _core.forward(pw, x, h0, c0, True)
    assert ws.shape == (_core.workspace_size(cell, T, B, H),)
    assert y.shape == (T, B, H) and h_n.shape == (B, H) and y.dtype == dtype
    assert (c_n is None) == (cell != "lstm")
    y2, _, _, ws2 = _core.forward(pw, x, h0, c0)
    assert ws2 is None
    np.testing.assert_array_equal(y, y2)
    out = _core.backward(pw, x, ws, np.ones_like(y))
    assert len(out) == 8 and out[0].shape == x.shape and out[7] is None


@core_dtype_param
def test_core_weights_bad_arguments(dtype):
    w_ih, w_hh, b_ih, b_hh = _w("lstm", dtype)
    other = np.float64 if dtype == np.float32 else np.float32
    cases = [
        # (exception, pattern, args)
        (ValueError, "cell", ("lstmx", w_ih, w_hh, b_ih, b_hh)),
        (ValueError, "cell", ("", w_ih, w_hh, b_ih, b_hh)),
        (ValueError, "weight_ih", ("lstm", w_ih[0], w_hh, b_ih, b_hh)),  # 1-D
        (ValueError, "weight_ih", ("lstm", w_ih[None], w_hh, b_ih, b_hh)),  # 3-D
        (ValueError, "weight_ih", ("lstm", w_ih[:-1], w_hh, b_ih, b_hh)),  # rows not 4*H
        (ValueError, "weight_ih", ("lstm", w_ih[:0], w_hh[:0], b_ih[:0], b_hh[:0])),  # 0 rows
        (ValueError, "weight_ih", ("lstm", w_ih[:, :0], w_hh, b_ih, b_hh)),  # 0 columns
        (ValueError, "weight_hh", ("lstm", w_ih, w_hh[:, :-1], b_ih, b_hh)),
        (ValueError, "weight_hh", ("lstm", w_ih, w_hh[:-4], b_ih, b_hh)),
        (ValueError, "weight_hh", ("lstm", w_ih, w_hh[0], b_ih, b_hh)),
        (ValueError, "bias_ih", ("lstm", w_ih, w_hh, b_ih[:-1], b_hh)),
        (ValueError, "bias_hh", ("lstm", w_ih, w_hh, b_ih, b_hh[None])),
        (ValueError, "bias", ("lstm", w_ih, w_hh, b_ih, None)),
        (ValueError, "bias", ("lstm", w_ih, w_hh, None, b_hh)),
        # dtypes
        (TypeError, "weight_ih", ("lstm", w_ih.astype(np.int32), w_hh, b_ih, b_hh)),
        (TypeError, "weight_ih", ("lstm", w_ih.astype(np.float16), w_hh, b_ih, b_hh)),
        (TypeError, "weight_ih", ("lstm", w_ih.astype(np.complex64), w_hh, b_ih, b_hh)),
        (TypeError, "weight_hh", ("lstm", w_ih, w_hh.astype(other), b_ih, b_hh)),
        (TypeError, "bias_ih", ("lstm", w_ih, w_hh, b_ih.astype(other), b_hh)),
        (TypeError, "bias_hh", ("lstm", w_ih, w_hh, b_ih, b_hh.astype(np.int64))),
        # layout
        (ValueError, "weight_ih.*contiguous", ("lstm", np.asfortranarray(w_ih), w_hh, b_ih, b_hh)),
        (ValueError, "weight_hh.*contiguous", ("lstm", w_ih, np.asfortranarray(w_hh), b_ih,
                                               b_hh)),
        (ValueError, "bias_ih.*contiguous", ("lstm", w_ih, w_hh, np.repeat(b_ih, 2)[::2], b_hh)),
        (ValueError, "weight_ih.*contiguous", ("lstm", np.repeat(w_ih, 2, axis=1)[:, ::2], w_hh,
                                               b_ih, b_hh)),
        (ValueError, "weight_hh.*contiguous", ("lstm", w_ih, w_hh[::-1], b_ih, b_hh)),
    ]
    for exc, pat, args in cases:
        with pytest.raises(exc, match=pat):
            _core.Weights(*args)
    # not arrays at all
    for args in [("lstm", None, w_hh), ("lstm", "abc", w_hh), ("lstm", w_ih, [[1.0]]),
                 (3, w_ih, w_hh)]:
        with pytest.raises((TypeError, ValueError)):
            _core.Weights(*args)


@core_cell_param
@core_dtype_param
def test_core_forward_bad_arguments(cell, dtype):
    pw = _core.Weights(cell, *_w(cell, dtype))
    x, h0, c0 = _args(cell, dtype)
    other = np.float64 if dtype == np.float32 else np.float32
    big = np.zeros((T, B, 2 * I), dtype)
    big[:, :, ::2] = x
    cases = [
        (ValueError, r"^x\b", (x[0], h0, c0)),  # 2-D
        (ValueError, r"^x\b", (x[None], h0, c0)),  # 4-D
        (ValueError, r"^x\b", (x[:, :, :-1], h0, c0)),
        (ValueError, r"^x\b", (x[:0], h0, c0)),  # T = 0
        (ValueError, r"^x\b", (x[:, :0], h0[:0], None if c0 is None else c0[:0])),  # B = 0
        (TypeError, r"^x\b", (x.astype(other), h0, c0)),
        (TypeError, r"^x\b", (x.astype(np.int32), h0, c0)),
        (TypeError, r"^x\b", (x.astype(np.float16), h0, c0)),
        (ValueError, r"^x\b.*contiguous", (big[:, :, ::2], h0, c0)),
        (ValueError, r"^x\b.*contiguous", (np.asfortranarray(x), h0, c0)),
        (ValueError, r"^x\b.*contiguous", (x.transpose(1, 0, 2).copy().transpose(1, 0, 2), h0,
                                           c0)),
        (ValueError, r"^h0\b", (x, h0[:-1], c0)),
        (ValueError, r"^h0\b", (x, h0[None], c0)),
        (ValueError, r"^h0\b", (x, np.zeros((B, H + 1), dtype), c0)),
        (TypeError, r"^h0\b", (x, h0.astype(other), c0)),
        (ValueError, r"^h0\b.*contiguous", (x, np.zeros((H, B), dtype).T, c0)),
    ]
    if cell == "lstm":
        cases += [
            (ValueError, r"^c0\b", (x, h0, None)),
            (ValueError, r"^c0\b", (x, h0, c0[:-1])),
            (TypeError, r"^c0\b", (x, h0, c0.astype(other))),
            (ValueError, r"^c0\b.*contiguous", (x, h0, np.zeros((H, B), dtype).T)),
        ]
    else:
        cases += [(ValueError, r"^c0\b", (x, h0, np.zeros((B, H), dtype)))]
    for train in (False, True):
        for exc, pat, args in cases:
            with pytest.raises(exc, match=pat):
                _core.forward(pw, *args, train)
    for bad_w in (None, object(), "lstm", _w(cell, dtype)):
        with pytest.raises(TypeError):
            _core.forward(bad_w, x, h0, c0, True)


@core_cell_param
@core_dtype_param
def test_core_backward_bad_arguments(cell, dtype):
    pw = _core.Weights(cell, *_w(cell, dtype))
    x, h0, c0 = _args(cell, dtype)
    y, _, _, ws = _core.forward(pw, x, h0, c0, True)
    dy = np.ones_like(y)
    other = np.float64 if dtype == np.float32 else np.float32
    dh = np.ones((B, H), dtype)
    n = ws.size
    cases = [
        # workspace: size, dtype, ndim, layout
        (ValueError, "workspace", (x, ws[:-1], dy)),
        (ValueError, "workspace", (x, np.zeros(n + 1, dtype), dy)),
        (ValueError, "workspace", (x, np.zeros(0, dtype), dy)),
        (ValueError, "workspace", (x, ws.reshape(1, n), dy)),
        (TypeError, "workspace", (x, ws.astype(other), dy)),
        (TypeError, "workspace", (x, ws.astype(np.int64), dy)),
        (ValueError, "workspace.*contiguous", (x, np.repeat(ws, 2)[::2], dy)),
        # the workspace of another shape: x of one step less
        (ValueError, "workspace", (x[:-1], ws, dy[:-1])),
        # x
        (ValueError, r"^x\b", (x[:, :, :-1], ws, dy)),
        (ValueError, r"^x\b", (x[0], ws, dy)),
        (TypeError, r"^x\b", (x.astype(other), ws, dy)),
        (ValueError, r"^x\b.*contiguous", (np.asfortranarray(x), ws, dy)),
        # dy
        (ValueError, r"^dy\b", (x, ws, dy[:-1])),
        (ValueError, r"^dy\b", (x, ws, dy[:, :, :-1])),
        (ValueError, r"^dy\b", (x, ws, dy[0])),
        (TypeError, r"^dy\b", (x, ws, dy.astype(other))),
        (ValueError, r"^dy\b.*contiguous", (x, ws, np.asfortranarray(dy))),
        # dh_n
        (ValueError, r"^dh_n\b", (x, ws, dy, dh[:-1])),
        (ValueError, r"^dh_n\b", (x, ws, dy, dh[None])),
        (TypeError, r"^dh_n\b", (x, ws, dy, dh.astype(other))),
        (ValueError, r"^dh_n\b.*contiguous", (x, ws, dy, np.ones((H, B), dtype).T)),
    ]
    if cell == "lstm":
        cases += [
            (ValueError, r"^dc_n\b", (x, ws, dy, dh, dh[:, :-1])),
            (TypeError, r"^dc_n\b", (x, ws, dy, None, dh.astype(other))),
        ]
    else:
        cases += [(ValueError, r"^dc_n\b", (x, ws, dy, dh, dh))]
    for exc, pat, args in cases:
        with pytest.raises(exc, match=pat):
            _core.backward(pw, *args)
    for bad in ((None, x, ws, dy), (pw, x, None, dy), (pw, None, ws, dy), (pw, x, ws, None),
                (pw, x, ws.tolist(), dy)):
        with pytest.raises(TypeError):
            _core.backward(*bad)


def test_core_mismatched_dtypes_between_weights_and_arrays():
    for wdt, adt in ((np.float32, np.float64), (np.float64, np.float32)):
        pw = _core.Weights("gru", *_w("gru", wdt))
        x, h0, _ = _args("gru", adt)
        with pytest.raises(TypeError, match=r"^x\b"):
            _core.forward(pw, x, h0)
        x, h0, _ = _args("gru", wdt)
        with pytest.raises(TypeError, match=r"^h0\b"):
            _core.forward(pw, x, h0.astype(adt))
        y, _, _, ws = _core.forward(pw, x, h0, None, True)
        with pytest.raises(TypeError, match=r"^dy\b"):
            _core.backward(pw, x, ws, y.astype(adt))
        # weights of the other dtype than the forward's
        pw_other = _core.Weights("gru", *_w("gru", adt))
        with pytest.raises(TypeError):
            _core.backward(pw_other, x, ws, y)


def test_core_workspace_of_another_cell_kind():
    """A workspace from an LSTM forward (bigger) given to a GRU backward is refused."""
    pl = _core.Weights("lstm", *_w("lstm"))
    pg = _core.Weights("gru", *_w("gru"))
    x, h0, c0 = _args("lstm", np.float32)
    y, _, _, ws = _core.forward(pl, x, h0, c0, True)
    with pytest.raises(ValueError, match="workspace"):
        _core.backward(pg, x, ws, y)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_core_accepts_equivalent_dtype_instances(cell):
    """float32 arrays whose np.dtype is a different instance than np.dtype('float32')
    (unpickled, or with metadata) are float32: the checks must compare dtypes by
    equivalence, not by object identity."""
    import pickle

    w = _w(cell)
    x, h0, c0 = _args(cell, np.float32)
    pw = _core.Weights(cell, *w)
    expected = _core.forward(pw, x, h0, c0)
    variants = {
        "pickle": lambda a: pickle.loads(pickle.dumps(a)),
        "metadata": lambda a: a.astype(np.dtype(np.float32, metadata={"k": 1})),
    }
    for how, f in variants.items():
        assert f(x).dtype == np.float32
        got = _core.forward(pw, f(x), f(h0), None if c0 is None else f(c0))
        np.testing.assert_array_equal(got[0], expected[0], err_msg=how)
        pw2 = _core.Weights(cell, *(None if a is None else f(a) for a in w))
        np.testing.assert_array_equal(_core.forward(pw2, x, h0, c0)[0], expected[0],
                                      err_msg=how)


def test_core_workspace_size_bad_cell():
    with pytest.raises(ValueError, match="cell"):
        _core.workspace_size("lstmx", T, B, H)
