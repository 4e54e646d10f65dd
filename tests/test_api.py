"""The public API's behaviour (docs/api.md): constructor arguments and attributes,
parameter names / shapes / order, initialisation, state_dict semantics, the training
tape, dtypes, unbatched shapes, reprs, cpu_info, the not-yet-implemented options and
the import's independence from torch.

Torch is used only by the tests that take the ``torch`` fixture (skipped without it,
failed under FUSEDRNN_REQUIRE_TORCH=1); the rest checks torch's rules hard-coded.
"""

from __future__ import annotations

import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _util import rel_err

import fusedrnn as fr
from fusedrnn import reference as ref

# name -> (class, constructor keywords, gates, is_lstm, is a cell, torch class name)
MODULES = {
    "LSTM": (fr.LSTM, {}, 4, True, False, "LSTM"),
    "GRU": (fr.GRU, {}, 3, False, False, "GRU"),
    "GRU_reset_before": (fr.GRU, {"reset_after": False}, 3, False, False, None),
    "RNN_tanh": (fr.RNN, {"nonlinearity": "tanh"}, 1, False, False, "RNN"),
    "RNN_relu": (fr.RNN, {"nonlinearity": "relu"}, 1, False, False, "RNN"),
    "LSTMCell": (fr.LSTMCell, {}, 4, True, True, "LSTMCell"),
    "GRUCell": (fr.GRUCell, {}, 3, False, True, "GRUCell"),
    "GRUCell_reset_before": (fr.GRUCell, {"reset_after": False}, 3, False, True, None),
    "RNNCell_tanh": (fr.RNNCell, {"nonlinearity": "tanh"}, 1, False, True, "RNNCell"),
    "RNNCell_relu": (fr.RNNCell, {"nonlinearity": "relu"}, 1, False, True, "RNNCell"),
}
LAYER_NAMES = [n for n, m in MODULES.items() if not m[4]]
CELL_NAMES = [n for n, m in MODULES.items() if m[4]]
TORCH_NAMES = [n for n, m in MODULES.items() if m[5] is not None]
I, H, T, B = 4, 6, 5, 3


def make(name, *, dtype=np.float64, seed=0, **kw):
    cls, extra, *_ = MODULES[name]
    return cls(I, H, dtype=dtype, seed=seed, **extra, **kw)


def inputs(name, *, dtype=np.float64, seed=1, batch_first=False):
    """x and hx of the module's batched layout."""
    _, _, _, is_lstm, is_cell, _ = MODULES[name]
    rng = np.random.default_rng(seed)
    if is_cell:
        x_shape, s_shape = (B, I), (B, H)
    else:
        x_shape, s_shape = ((B, T, I) if batch_first else (T, B, I)), (1, B, H)
    x = rng.standard_normal(x_shape).astype(dtype)
    h0 = (0.5 * rng.standard_normal(s_shape)).astype(dtype)
    c0 = (0.5 * rng.standard_normal(s_shape)).astype(dtype)
    return x, ((h0, c0) if is_lstm else h0)


def run_train(m, x, hx, seed=2):
    """forward(train=True) + backward with random dy / dstate; returns everything."""
    if isinstance(m, (fr.LSTMCell, fr.GRUCell, fr.RNNCell)):
        state, tape = m.forward(x, hx, train=True)
        y = None
    else:
        y, state, tape = m.forward(x, hx, train=True)
    dx, d0, g = random_backward(m, tape, y, state, seed)
    return y, state, tape, dx, d0, g


def random_backward(m, tape, y, state, seed=2):
    """m.backward(tape, ...) with random dstate (and dy for layers) drawn from `seed`;
    y is None for a cell.  The same seed gives the same call."""
    is_lstm = isinstance(m, (fr.LSTM, fr.LSTMCell))
    rng = np.random.default_rng(seed)
    st = state if is_lstm else (state,)
    ds = tuple(rng.standard_normal(s.shape).astype(s.dtype) for s in st)
    ds = ds if is_lstm else ds[0]
    if y is None:
        return m.backward(tape, ds)
    dy = rng.standard_normal(y.shape).astype(y.dtype)
    return m.backward(tape, dy, ds)


def flat(*objs):
    """Flatten nested tuples / dicts of arrays into a list of arrays."""
    out = []
    for o in objs:
        if o is None:
            continue
        if isinstance(o, dict):
            out += [o[k] for k in o]
        elif isinstance(o, (tuple, list)):
            out += flat(*o)
        else:
            out.append(o)
    return out


def assert_all_equal(a, b):
    fa, fb = flat(a), flat(b)
    assert len(fa) == len(fb)
    for u, v in zip(fa, fb):
        np.testing.assert_array_equal(u, v)


def expected_names(name, bias=True):
    """torch's parameter naming rule, hard-coded."""
    is_cell = MODULES[name][4]
    suffix = "" if is_cell else "_l0"
    roles = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if bias else [])
    return [r + suffix for r in roles]


def expected_shapes(name, bias=True):
    G = MODULES[name][2]
    shapes = [(G * H, I), (G * H, H)] + ([(G * H,), (G * H,)] if bias else [])
    return dict(zip(expected_names(name, bias), shapes))


# --------------------------------------------------------------------- constructor
def test_layer_defaults():
    for cls in (fr.LSTM, fr.GRU, fr.RNN):
        m = cls(4, 6)
        assert m.input_size == 4 and m.hidden_size == 6
        assert m.num_layers == 1
        assert m.bias is True
        assert m.batch_first is False
        assert m.dropout == 0.0
        assert m.bidirectional is False
        assert m.proj_size == 0
        assert m.dtype == np.float32
    assert fr.GRU(4, 6).reset_after is True
    assert fr.RNN(4, 6).nonlinearity == "tanh"


def test_cell_defaults():
    for cls in (fr.LSTMCell, fr.GRUCell, fr.RNNCell):
        m = cls(4, 6)
        assert m.input_size == 4 and m.hidden_size == 6
        assert m.bias is True
        assert m.dtype == np.float32
    assert fr.GRUCell(4, 6).reset_after is True
    assert fr.RNNCell(4, 6).nonlinearity == "tanh"


def test_positional_arguments_follow_torch():
    # torch.nn.RNN(input_size, hidden_size, num_layers, nonlinearity, bias, batch_first, ...)
    r = fr.RNN(4, 6, 1, "relu", False, True)
    assert (r.num_layers, r.nonlinearity, r.bias, r.batch_first) == (1, "relu", False, True)
    # torch.nn.LSTM / GRU(input_size, hidden_size, num_layers, bias, batch_first, ...)
    for cls in (fr.LSTM, fr.GRU):
        m = cls(4, 6, 1, False, True)
        assert (m.num_layers, m.bias, m.batch_first) == (1, False, True)
    # torch.nn.RNNCell(input_size, hidden_size, bias, nonlinearity)
    c = fr.RNNCell(4, 6, False, "relu")
    assert (c.bias, c.nonlinearity) == (False, "relu")
    for cls in (fr.LSTMCell, fr.GRUCell):
        assert cls(4, 6, False).bias is False


def test_dtype_spellings():
    for spelling in (np.float64, "float64", np.dtype("f8"), "f8", float):
        assert fr.LSTM(4, 6, dtype=spelling).dtype == np.float64
    for spelling in (np.float32, "float32", np.dtype("f4"), "f4"):
        assert fr.GRUCell(4, 6, dtype=spelling).dtype == np.float32


@pytest.mark.parametrize("name", [n for n in TORCH_NAMES if not MODULES[n][4]])
def test_layer_attributes_match_torch(torch, name):
    cls, extra, *_ , tname = MODULES[name]
    for kw in ({}, {"bias": False, "batch_first": True}):
        ours = cls(4, 6, **extra, **kw)
        theirs = getattr(torch.nn, tname)(4, 6, **extra, **kw)
        attrs = ["input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
                 "bidirectional", "proj_size"]
        if tname == "RNN":
            attrs.append("nonlinearity")
        for a in attrs:
            assert getattr(ours, a) == getattr(theirs, a), a
            assert type(getattr(ours, a)) is type(getattr(theirs, a)), a


@pytest.mark.parametrize("name", [n for n in TORCH_NAMES if MODULES[n][4]])
def test_cell_attributes_match_torch(torch, name):
    cls, extra, *_ , tname = MODULES[name]
    for kw in ({}, {"bias": False}):
        ours = cls(4, 6, **extra, **kw)
        theirs = getattr(torch.nn, tname)(4, 6, **extra, **kw)
        attrs = ["input_size", "hidden_size", "bias"]
        if tname == "RNNCell":
            attrs.append("nonlinearity")
        for a in attrs:
            assert getattr(ours, a) == getattr(theirs, a), a


# ---------------------------------------------------------------- parameter naming
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("name", list(MODULES))
def test_state_dict_names_shapes_order(name, bias):
    m = make(name, bias=bias)
    sd = m.state_dict()
    assert list(sd) == expected_names(name, bias)
    assert {k: v.shape for k, v in sd.items()} == expected_shapes(name, bias)
    for k, v in sd.items():
        assert v.dtype == np.float64
        # torch-like attribute access, same numbers
        np.testing.assert_array_equal(getattr(m, k), v)
    # the gradients use the same keys in the same order
    x, hx = inputs(name)
    *_, grads = run_train(m, x, hx)
    assert list(grads) == list(sd)
    assert {k: g.shape for k, g in grads.items()} == expected_shapes(name, bias)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("name", TORCH_NAMES)
def test_state_dict_matches_torch(torch, name, bias):
    cls, extra, *_ , tname = MODULES[name]
    ours = cls(I, H, bias=bias, **extra)
    theirs = getattr(torch.nn, tname)(I, H, bias=bias, **extra)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [
        (k, tuple(v.shape)) for k, v in theirs.state_dict().items()
    ]
    assert [k for k, _ in theirs.named_parameters()] == list(ours.state_dict())


def test_missing_attribute_raises_attribute_error():
    m = fr.LSTM(4, 6)
    with pytest.raises(AttributeError, match="weight_hr_l0"):
        m.weight_hr_l0  # noqa: B018
    with pytest.raises(AttributeError, match="weight_ih"):
        fr.LSTM(4, 6).weight_ih  # a cell's name, not a layer's  # noqa: B018
    with pytest.raises(AttributeError, match="bias_ih_l0"):
        fr.GRU(4, 6, bias=False).bias_ih_l0  # noqa: B018


# --------------------------------------------------------------------- initialisation
@pytest.mark.parametrize("name", list(MODULES))
def test_seed_reproducible_and_init_range(name):
    a, b, c = make(name, seed=7), make(name, seed=7), make(name, seed=8)
    k = 1.0 / math.sqrt(H)
    for key in a.state_dict():
        wa, wb, wc = a.state_dict()[key], b.state_dict()[key], c.state_dict()[key]
        np.testing.assert_array_equal(wa, wb)
        assert not np.array_equal(wa, wc), key
        assert np.all(np.abs(wa) <= k), key
        if wa.size >= 18:  # uniform over the whole range, not a corner of it
            assert wa.max() > 0.5 * k and wa.min() < -0.5 * k, key


def test_init_range_scales_with_hidden_size():
    for h in (1, 16, 100):
        m = fr.LSTM(3, h, seed=0)
        k = 1.0 / math.sqrt(h)
        for key, w in m.state_dict().items():
            assert np.all(np.abs(w) <= np.float32(k)), key
            if w.size >= 64:  # enough draws to come near the bound
                assert np.abs(w).max() > 0.9 * k, key


def test_seed_none_gives_different_weights():
    a, b = fr.GRU(4, 6), fr.GRU(4, 6)
    assert not np.array_equal(a.state_dict()["weight_hh_l0"], b.state_dict()["weight_hh_l0"])


# ------------------------------------------------------------- state_dict semantics
@pytest.mark.parametrize("name", ["LSTM", "GRUCell"])
def test_state_dict_returns_copies(name):
    m = make(name)
    x, hx = inputs(name)
    before = m(x, hx)
    sd = m.state_dict()
    for v in sd.values():
        assert v.flags.writeable
        v[...] = 123.0
    for k, v in m.state_dict().items():
        assert not np.any(v == 123.0), k
    assert_all_equal(m(x, hx), before)


@pytest.mark.parametrize("name", ["LSTM", "GRU", "RNNCell_relu", "LSTMCell"])
def test_parameter_attributes_are_read_only(name):
    m = make(name)
    x, hx = inputs(name)
    before = m(x, hx)
    for key in m.state_dict():
        w = getattr(m, key)
        with pytest.raises(ValueError):
            w[...] = 0.0
        with pytest.raises(ValueError):
            w.flags.writeable = True
        with pytest.raises(ValueError):
            np.copyto(w, 1.0)
        with pytest.raises(ValueError):
            w += 1.0
    assert_all_equal(m(x, hx), before)


def test_parameter_base_chain_cannot_be_made_writeable():
    """No array reachable from a parameter attribute (through .base) can be made
    writeable: otherwise the weights could change behind the packed copy's back."""
    m = fr.LSTM(4, 6, dtype=np.float64, seed=0)
    x, hx = inputs("LSTM")
    before = m(x, hx)
    a = m.weight_hh_l0
    made_writeable = []  # depths along the .base chain
    depth = 0
    while isinstance(a, np.ndarray):
        try:
            a.flags.writeable = True
        except ValueError:
            pass
        else:
            made_writeable.append(depth)
        a, depth = a.base, depth + 1
    assert made_writeable == [], (
        "a parameter's base array can be made writeable again "
        "(m.weight_hh_l0.base.flags.writeable = True succeeds)"
    )
    assert_all_equal(m(x, hx), before)


@pytest.mark.parametrize("name", list(MODULES))
def test_load_state_dict_changes_outputs_and_old_tape_keeps_old_weights(name):
    m = make(name, seed=0)
    other = make(name, seed=99)
    x, hx = inputs(name)
    _, _, tape, dx0, d00, g0 = run_train(m, x, hx)
    out_old = m(x, hx)
    res = m.load_state_dict(other.state_dict())
    assert isinstance(res, fr.IncompatibleKeys)
    assert res.missing_keys == [] and res.unexpected_keys == []
    assert_all_equal(m.state_dict(), other.state_dict())
    out_new = m(x, hx)
    # the repack was noticed: outputs are those of the new weights ...
    assert_all_equal(out_new, other(x, hx))
    assert not np.array_equal(flat(out_new)[0], flat(out_old)[0])
    # ... and the old tape still gives the gradients of the old weights
    is_cell = MODULES[name][4]
    y_old, state_old = (None, out_old) if is_cell else out_old
    again = random_backward(m, tape, y_old, state_old)
    assert_all_equal(again, (dx0, d00, g0))


def test_old_tape_gradients_match_reference_of_old_weights():
    """Stronger form for one case: the tape's gradients are those of the reference
    evaluated at the weights of the forward, not the weights loaded afterwards."""
    m = fr.LSTM(I, H, dtype=np.float64, seed=0)
    w_old = m.state_dict()
    rng = np.random.default_rng(5)
    x = rng.standard_normal((T, B, I))
    h0, c0 = rng.standard_normal((2, B, H))
    y, _, tape = m.forward(x, (h0[None], c0[None]), train=True)
    m.load_state_dict(fr.LSTM(I, H, dtype=np.float64, seed=1).state_dict())
    dy = rng.standard_normal(y.shape)
    dx, (dh0, dc0), g = m.backward(tape, dy)
    ry, _, _, cache = ref.lstm_forward(x, h0, c0, *(w_old[k] for k in w_old))
    rg = ref.lstm_backward(cache, dy)
    assert rel_err(y, ry) <= 1e-12
    assert rel_err(dx, rg["dx"]) <= 1e-12
    assert rel_err(dh0[0], rg["dh0"]) <= 1e-12
    assert rel_err(dc0[0], rg["dc0"]) <= 1e-12
    for k in g:
        assert rel_err(g[k], rg[k[: -len("_l0")]]) <= 1e-12, k


def test_load_state_dict_non_strict():
    m = fr.GRU(4, 6, dtype=np.float64, seed=0)
    before = m.state_dict()
    new_hh = np.full((18, 6), 0.25)
    res = m.load_state_dict({"weight_hh_l0": new_hh, "junk": np.zeros(3)}, strict=False)
    assert res.missing_keys == ["weight_ih_l0", "bias_ih_l0", "bias_hh_l0"]
    assert res.unexpected_keys == ["junk"]
    assert res == (res.missing_keys, res.unexpected_keys)  # a NamedTuple like torch's
    after = m.state_dict()
    np.testing.assert_array_equal(after["weight_hh_l0"], new_hh)
    for k in ("weight_ih_l0", "bias_ih_l0", "bias_hh_l0"):
        np.testing.assert_array_equal(after[k], before[k])
    x = np.random.default_rng(0).standard_normal((T, B, 4))
    ref_layer = fr.GRU(4, 6, dtype=np.float64)
    ref_layer.load_state_dict(after)
    assert_all_equal(m(x), ref_layer(x))


def test_load_state_dict_accepts_lists_and_keeps_no_reference():
    m = fr.RNNCell(2, 1, dtype=np.float64)
    sd = {"weight_ih": [[0.5, -0.5]], "weight_hh": [[0.25]], "bias_ih": [0.1], "bias_hh": [0.2]}
    m.load_state_dict(sd)
    np.testing.assert_array_equal(m.weight_ih, [[0.5, -0.5]])
    arr = {k: np.array(v, dtype=np.float64) for k, v in sd.items()}
    m.load_state_dict(arr)
    arr["weight_hh"][0, 0] = 9.0  # the module copied, so this changes nothing
    assert m.weight_hh[0, 0] == 0.25
    assert float(m(np.array([1.0, 1.0]))[0]) == pytest.approx(math.tanh(0.0 + 0.1 + 0.2))


def test_failed_load_changes_nothing():
    m = fr.LSTM(4, 6, dtype=np.float64, seed=0)
    before = m.state_dict()
    bad = m.state_dict()
    bad["weight_ih_l0"] = np.zeros((24, 4))
    bad["bias_hh_l0"] = np.zeros(5)  # wrong shape, comes after a valid value
    with pytest.raises(ValueError):
        m.load_state_dict(bad)
    assert_all_equal(m.state_dict(), before)


# ------------------------------------------------------------------- forward / tape
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", LAYER_NAMES)
def test_call_equals_forward_inference_and_training(name, dtype):
    m = make(name, dtype=dtype)
    x, hx = inputs(name, dtype=dtype)
    out_call = m(x, hx)
    y_inf, s_inf, tape_inf = m.forward(x, hx, train=False)
    y_tr, s_tr, tape_tr = m.forward(x, hx, train=True)
    assert tape_inf is None and isinstance(tape_tr, fr.Tape)
    assert_all_equal(out_call, (y_inf, s_inf))
    assert_all_equal(out_call, (y_tr, s_tr))
    # default train is True, as documented
    assert m.forward(x, hx)[2] is not None


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", CELL_NAMES)
def test_cell_call_equals_forward(name, dtype):
    m = make(name, dtype=dtype)
    x, hx = inputs(name, dtype=dtype)
    out_call = m(x, hx)
    s_inf, tape_inf = m.forward(x, hx, train=False)
    s_tr, tape_tr = m.forward(x, hx, train=True)
    assert tape_inf is None and isinstance(tape_tr, fr.Tape)
    assert_all_equal(out_call, s_inf)
    # Training runs the sequence kernel (input projection first), inference a cell's
    # one-step kernel (both products on one tile): equal up to rounding order.
    for u, v in zip(flat(out_call), flat(s_tr)):
        np.testing.assert_allclose(u, v, rtol=1e-5 if dtype == np.float32 else 1e-13,
                                   atol=1e-6 if dtype == np.float32 else 1e-14)


@pytest.mark.parametrize("name", list(MODULES))
def test_deterministic_and_backward_twice(name):
    m = make(name, dtype=np.float32)
    x, hx = inputs(name, dtype=np.float32)
    r1 = run_train(m, x, hx)
    r2 = run_train(m, x, hx)
    for a, b in zip(r1, r2):
        if isinstance(a, fr.Tape):
            continue
        assert_all_equal(a, b)
    # the same tape, backward twice more
    y, state, tape, dx, d0, g = r1
    again = random_backward(m, tape, y, state)
    assert_all_equal(again, (dx, d0, g))
    assert_all_equal(again, random_backward(m, tape, y, state))


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_dy_none_equals_zeros(name):
    m = make(name)
    x, hx = inputs(name)
    y, state, tape = m.forward(x, hx, train=True)
    is_lstm = MODULES[name][3]
    ds = (np.ones_like(state[0]), np.ones_like(state[1])) if is_lstm else np.ones_like(state)
    assert_all_equal(m.backward(tape, None, ds), m.backward(tape, np.zeros_like(y), ds))
    assert_all_equal(m.backward(tape, dstate=ds), m.backward(tape, np.zeros_like(y), ds))
    # dstate None equals zeros; for an LSTM either half may be None
    dy = np.ones_like(y)
    zeros = (np.zeros_like(state[0]), np.zeros_like(state[1])) if is_lstm else np.zeros_like(state)
    assert_all_equal(m.backward(tape, dy), m.backward(tape, dy, zeros))
    if is_lstm:
        assert_all_equal(m.backward(tape, dy, (None, ds[1])),
                         m.backward(tape, dy, (zeros[0], ds[1])))
        assert_all_equal(m.backward(tape, dy, (ds[0], None)),
                         m.backward(tape, dy, (ds[0], zeros[1])))
    # everything None: all gradients zero
    dx, d0, g = m.backward(tape)
    for a in flat(dx, d0, g):
        assert not np.any(a)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_cell_dstate_none_equals_zeros(name):
    m = make(name)
    x, hx = inputs(name)
    state, tape = m.forward(x, hx, train=True)
    is_lstm = MODULES[name][3]
    if is_lstm:
        z = np.zeros_like(state[0])
        o = np.ones_like(state[0])
        assert_all_equal(m.backward(tape, (None, o)), m.backward(tape, (z, o)))
        assert_all_equal(m.backward(tape, (o, None)), m.backward(tape, (o, z)))
        assert_all_equal(m.backward(tape, None), m.backward(tape, (z, z)))
    else:
        assert_all_equal(m.backward(tape, None), m.backward(tape, np.zeros_like(state)))


@pytest.mark.parametrize(
    "name, batch_first",
    [(n, False) for n in MODULES] + [(n, True) for n in LAYER_NAMES],
    ids=[n for n in MODULES] + [n + "-bf" for n in LAYER_NAMES],
)
def test_in_place_changes_after_forward_do_not_change_backward(name, batch_first):
    is_cell = MODULES[name][4]
    m = make(name, batch_first=batch_first) if not is_cell else make(name)
    x, hx = inputs(name, batch_first=batch_first)
    x_keep = x.copy()
    hx_keep = tuple(h.copy() for h in hx) if isinstance(hx, tuple) else hx.copy()
    _, state, tape, dx, d0, g = run_train(m, x, hx)
    # change the caller's arrays in place, then backward again on the same tape
    x[...] = 7.0
    for h in (hx if isinstance(hx, tuple) else (hx,)):
        h[...] = -3.0
    rng = np.random.default_rng(2)
    is_lstm = MODULES[name][3]
    st = state if is_lstm else (state,)
    ds = tuple(rng.standard_normal(s.shape).astype(s.dtype) for s in st)
    ds = ds if is_lstm else ds[0]
    if is_cell:
        again = m.backward(tape, ds)
    else:
        y_shape = x.shape[:-1] + (H,)
        again = m.backward(tape, rng.standard_normal(y_shape), ds)
    assert_all_equal(again, (dx, d0, g))
    # and they equal a fresh run on the original values
    fresh = run_train(m, x_keep, hx_keep)
    assert_all_equal(again, fresh[3:])


def test_in_place_change_of_torch_tensor_input_after_forward(torch):
    m = fr.GRU(4, 6, dtype=np.float32, seed=0)
    x = torch.randn(5, 3, 4)
    y, _, tape = m.forward(x, train=True)
    dy = np.ones_like(y)
    before = m.backward(tape, dy)
    x.mul_(3.0)
    assert_all_equal(m.backward(tape, dy), before)


@pytest.mark.parametrize("name", list(MODULES))
def test_each_layer_returns_its_dtype(name):
    for dtype in (np.float32, np.float64):
        m = make(name, dtype=dtype)
        x, hx = inputs(name, dtype=dtype)
        y, state, tape, dx, d0, g = run_train(m, x, hx)
        for a in flat(y, state, dx, d0, g, m.state_dict(), m(x, hx)):
            assert a.dtype == dtype
        for k in m.state_dict():
            assert getattr(m, k).dtype == dtype


@pytest.mark.parametrize("name", list(MODULES))
def test_exact_conversions_are_accepted(name):
    """float16 into a float32 layer, float16 / float32 into a float64 layer: exact."""
    for layer_dt, in_dt in ((np.float32, np.float16), (np.float64, np.float16),
                            (np.float64, np.float32)):
        m = make(name, dtype=layer_dt)
        x, hx = inputs(name, dtype=in_dt)
        x_up = x.astype(layer_dt)
        hx_up = tuple(h.astype(layer_dt) for h in hx) if isinstance(hx, tuple) else \
            hx.astype(layer_dt)
        out = m(x, hx)
        assert_all_equal(out, m(x_up, hx_up))
        for a in flat(out):
            assert a.dtype == layer_dt
        r = run_train(m, x, hx)
        r_up = run_train(m, x_up, hx_up)
        for a, b in zip(r, r_up):
            if not isinstance(a, fr.Tape):
                assert_all_equal(a, b)


@pytest.mark.parametrize("name", ["LSTM", "GRUCell"])
def test_non_contiguous_and_non_native_inputs(name):
    """Strided, Fortran-ordered, byte-swapped and unpickled arrays give the same numbers."""
    m = make(name, dtype=np.float64)
    x, hx = inputs(name)
    expected = m(x, hx)
    big = np.zeros(x.shape + (2,))
    big[..., 0] = x
    variants = [big[..., 0], np.asfortranarray(x), x.astype(">f8"),
                pickle.loads(pickle.dumps(x)), x.astype(np.dtype("f8", metadata={"a": 1}))]
    for xv in variants:
        np.testing.assert_array_equal(xv, x)
        assert_all_equal(m(xv, hx), expected)
    hxp = pickle.loads(pickle.dumps(hx))
    assert_all_equal(m(x, hxp), expected)


@pytest.mark.parametrize("how", ["pickle", "metadata"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", ["LSTM", "GRUCell"])
def test_load_state_dict_with_equivalent_dtype_instances(name, dtype, how):
    """A state_dict whose arrays have the module's dtype, but as a different np.dtype
    instance (after pickle, e.g. from a checkpoint or multiprocessing; or with metadata),
    loads and runs like the original."""
    m = make(name, dtype=dtype)
    x, hx = inputs(name, dtype=dtype)
    expected = m(x, hx)
    if how == "pickle":
        sd = pickle.loads(pickle.dumps(m.state_dict()))
    else:
        sd = {k: v.astype(np.dtype(dtype, metadata={"a": 1})) for k, v in m.state_dict().items()}
    assert all(v.dtype == dtype for v in sd.values())
    m2 = make(name, dtype=dtype, seed=5)
    m2.load_state_dict(sd)
    assert_all_equal(m2(x, hx), expected)


def test_python_lists_are_accepted():
    m = fr.RNN(2, 3, dtype=np.float64, seed=0)
    x = [[[0.5, -1.0]], [[0.25, 2.0]]]  # (T=2, B=1, I=2)
    assert_all_equal(m(x), m(np.array(x)))


# ----------------------------------------------------------------- layouts / shapes
@pytest.mark.parametrize("name", LAYER_NAMES)
def test_batch_first_is_a_transpose(name):
    a = make(name, seed=3)
    b = make(name, seed=3, batch_first=True)
    x, hx = inputs(name)
    ya, sa, ta = a.forward(x, hx, train=True)
    yb, sb, tb = b.forward(x.transpose(1, 0, 2), hx, train=True)
    np.testing.assert_array_equal(yb, ya.transpose(1, 0, 2))
    assert_all_equal(sb, sa)
    dy = np.random.default_rng(0).standard_normal(ya.shape)
    ga = a.backward(ta, dy)
    gb = b.backward(tb, dy.transpose(1, 0, 2).copy())
    np.testing.assert_array_equal(gb[0], ga[0].transpose(1, 0, 2))
    assert_all_equal(gb[1:], ga[1:])


@pytest.mark.parametrize("batch_first", [False, True], ids=["seq", "bf"])
@pytest.mark.parametrize("name", LAYER_NAMES)
def test_unbatched_layer_shapes(name, batch_first):
    m = make(name, batch_first=batch_first)
    is_lstm = MODULES[name][3]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, I))
    h0, c0 = rng.standard_normal((2, 1, H))
    hx = (h0, c0) if is_lstm else h0
    y, state, tape = m.forward(x, hx, train=True)
    assert y.shape == (T, H)
    for s in (state if is_lstm else (state,)):
        assert s.shape == (1, H)
    dx, d0, g = m.backward(tape, np.ones((T, H)), (np.ones((1, H)),) * 2 if is_lstm
                           else np.ones((1, H)))
    assert dx.shape == (T, I)
    for s in (d0 if is_lstm else (d0,)):
        assert s.shape == (1, H)
    # same numbers as the batched call with B = 1 (batch_first does not apply)
    m_seq = make(name)
    hx_b = (h0[:, None], c0[:, None]) if is_lstm else h0[:, None]
    yb, sb, tb = m_seq.forward(x[:, None, :], hx_b, train=True)
    np.testing.assert_array_equal(y, yb[:, 0])
    gb = m_seq.backward(tb, np.ones((T, 1, H)), (np.ones((1, 1, H)),) * 2 if is_lstm
                        else np.ones((1, 1, H)))
    np.testing.assert_array_equal(dx, gb[0][:, 0])
    assert_all_equal(g, gb[2])
    # hx None unbatched
    y2, state2 = m(x)
    for s in (state2 if is_lstm else (state2,)):
        assert s.shape == (1, H)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_unbatched_cell_shapes(name):
    m = make(name)
    is_lstm = MODULES[name][3]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(I)
    h, c = rng.standard_normal((2, H))
    hx = (h, c) if is_lstm else h
    state, tape = m.forward(x, hx, train=True)
    for s in (state if is_lstm else (state,)):
        assert s.shape == (H,)
    dx, d0, g = m.backward(tape, (np.ones(H), np.ones(H)) if is_lstm else np.ones(H))
    assert dx.shape == (I,)
    for s in (d0 if is_lstm else (d0,)):
        assert s.shape == (H,)
    sb, tb = m.forward(x[None], (h[None], c[None]) if is_lstm else h[None], train=True)
    assert_all_equal(state, tuple(s[0] for s in sb) if is_lstm else sb[0])
    gb = m.backward(tb, (np.ones((1, H)), np.ones((1, H))) if is_lstm else np.ones((1, H)))
    np.testing.assert_array_equal(dx, gb[0][0])
    assert_all_equal(g, gb[2])
    for s in (m(x) if is_lstm else (m(x),)):
        assert s.shape == (H,)


# ------------------------------------------------------------------------ reprs
def test_reprs():
    cases = {
        fr.LSTM(4, 6): "LSTM(4, 6)",
        fr.LSTM(4, 6, bias=False, batch_first=True): "LSTM(4, 6, bias=False, batch_first=True)",
        fr.GRU(4, 6): "GRU(4, 6)",
        fr.GRU(4, 6, batch_first=True): "GRU(4, 6, batch_first=True)",
        fr.RNN(4, 6): "RNN(4, 6)",
        fr.LSTMCell(3, 5): "LSTMCell(3, 5)",
        fr.LSTMCell(3, 5, bias=False): "LSTMCell(3, 5, bias=False)",
        fr.GRUCell(3, 5): "GRUCell(3, 5)",
        fr.RNNCell(3, 5): "RNNCell(3, 5)",
    }
    for m, s in cases.items():
        assert repr(m) == s
    # fusedrnn's own options show up
    assert "reset_after=False" in repr(fr.GRU(4, 6, reset_after=False))
    assert "reset_after=False" in repr(fr.GRUCell(4, 6, reset_after=False))
    assert "float64" in repr(fr.LSTM(4, 6, dtype=np.float64))
    assert "float64" in repr(fr.RNNCell(4, 6, dtype=np.float64))
    assert "relu" in repr(fr.RNN(4, 6, nonlinearity="relu"))
    assert "relu" in repr(fr.RNNCell(4, 6, nonlinearity="relu"))
    x = np.zeros((5, 2, 4), np.float32)
    _, _, tape = fr.GRU(4, 6).forward(x)
    r = repr(tape)
    assert "Tape" in r and "GRU" in r and "(5, 2, 6)" in r


def test_reprs_match_torch(torch):
    pairs = [
        ((fr.LSTM, torch.nn.LSTM), (4, 6), {}),
        ((fr.LSTM, torch.nn.LSTM), (4, 6), {"bias": False, "batch_first": True}),
        ((fr.GRU, torch.nn.GRU), (4, 6), {"batch_first": True}),
        ((fr.RNN, torch.nn.RNN), (4, 6), {"bias": False}),
        ((fr.LSTMCell, torch.nn.LSTMCell), (3, 5), {}),
        ((fr.GRUCell, torch.nn.GRUCell), (3, 5), {"bias": False}),
        ((fr.RNNCell, torch.nn.RNNCell), (3, 5), {}),
    ]
    for (ours, theirs), args, kw in pairs:
        assert repr(ours(*args, **kw)) == repr(theirs(*args, **kw))


# -------------------------------------------------------------------- cpu_info etc.
def test_cpu_info():
    info = fr.cpu_info()
    assert set(info) >= {"isa", "available", "compiled"}
    assert isinstance(info["isa"], str)
    assert isinstance(info["available"], list) and isinstance(info["compiled"], list)
    assert "generic" in info["compiled"] and "generic" in info["available"]
    assert info["isa"] in info["available"]
    assert set(info["available"]) <= set(info["compiled"])
    assert fr.cpu_info() == info  # chosen once
    # the packed weights were made for the selected ISA
    assert fr.functional.pack("lstm", np.zeros((8, 3), np.float32),
                              np.zeros((8, 2), np.float32)).isa == info["isa"]


def test_version_and_exports():
    assert isinstance(fr.__version__, str) and fr.__version__
    for n in fr.__all__:
        assert hasattr(fr, n), n


def test_import_does_not_import_torch():
    pkg = Path(fr.__file__).resolve().parent.parent
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(pkg), env.get("PYTHONPATH", "")])
    code = ("import fusedrnn, sys, numpy as np\n"
            "fusedrnn.LSTM(3, 4)(np.zeros((2, 1, 3), np.float32))\n"
            "fusedrnn.GRU(3, 4).load_state_dict(fusedrnn.GRU(3, 4).state_dict())\n"
            "assert 'torch' not in sys.modules, 'fusedrnn imported torch'\n")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
