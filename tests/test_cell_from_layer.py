"""Weights moved between layers and cells: ``*Cell.from_layer`` and ``layer.load_cell``.

A cell taken from (layer, direction) of a layer, stepped T times, gives that
layer-direction's outputs and final state (the reverse direction on the reversed
sequence); ``load_cell`` puts a cell's weights back into a slot.
"""

from __future__ import annotations

import numpy as np
import pytest

import fusedrnn

T, B, I, H = 6, 3, 4, 5

KINDS = [
    ("LSTM", {}),
    ("GRU", {}),
    ("GRU", {"reset_after": False}),
    ("RNN", {"nonlinearity": "tanh"}),
    ("RNN", {"nonlinearity": "relu"}),
]


def _ids(case):
    kind, opts = case
    return kind + "".join(f"-{k}={v}" for k, v in opts.items())


def _layer(kind, opts, seed=0, **kw):
    return getattr(fusedrnn, kind)(I, H, dtype=np.float64, seed=seed, **opts, **kw)


def _close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", KINDS, ids=_ids)
def test_cells_from_layer_step_like_the_layer(case, bias):
    kind, opts = case
    rnn = _layer(kind, opts, num_layers=2, bidirectional=True, bias=bias)
    cell_cls = getattr(fusedrnn, kind + "Cell")
    lstm = kind == "LSTM"
    rng = np.random.default_rng(1)
    x = rng.standard_normal((T, B, I))
    h0 = 0.5 * rng.standard_normal((4, B, H))
    c0 = 0.5 * rng.standard_normal((4, B, H))
    y, state = rnn(x, (h0, c0) if lstm else h0)
    h_n, c_n = state if lstm else (state, None)
    inp = x
    for layer in range(2):
        outs = []
        for d in range(2):
            cell = cell_cls.from_layer(rnn, layer=layer, direction=d)
            assert type(cell) is cell_cls and cell.dtype == np.float64 and cell.bias == bias
            for k, v in opts.items():
                assert getattr(cell, k) == v
            k = 2 * layer + d
            s = (h0[k], c0[k]) if lstm else h0[k]
            steps = range(T) if d == 0 else reversed(range(T))
            out = np.empty((T, B, H))
            for t in steps:
                s = cell(inp[t], s)
                out[t] = s[0] if lstm else s
            outs.append(out)
            _close(s[0] if lstm else s, h_n[k])
            if lstm:
                _close(s[1], c_n[k])
        inp = np.concatenate(outs, axis=2)
    _close(inp, y)  # the top layer's outputs, both directions


def test_direction_one_is_the_reversed_sequence():
    rnn = _layer("GRU", {}, bidirectional=True)
    x = np.random.default_rng(2).standard_normal((T, B, I))
    y, h_n = rnn(x)
    cell = fusedrnn.GRUCell.from_layer(rnn, direction=1)
    h = None
    for t, xt in enumerate(x[::-1]):
        h = cell(xt, h)
        _close(h, y[T - 1 - t, :, H:])
    _close(h, h_n[1])


def test_cell_holds_copies_and_keys():
    rnn = _layer("LSTM", {}, num_layers=2)
    cell = fusedrnn.LSTMCell.from_layer(rnn, layer=1)
    assert cell.input_size == H and cell.hidden_size == H
    sd = rnn.state_dict()
    for role, a in cell.state_dict().items():
        np.testing.assert_array_equal(a, sd[role + "_l1"])
    rnn.load_state_dict({k: v + 1.0 for k, v in sd.items()})
    np.testing.assert_array_equal(cell.weight_ih, sd["weight_ih_l1"])  # unchanged
    f32 = fusedrnn.RNNCell.from_layer(fusedrnn.RNN(I, H, bias=False, seed=0))
    assert f32.dtype == np.float32 and not f32.bias and f32.nonlinearity == "tanh"
    assert list(f32.state_dict()) == ["weight_ih", "weight_hh"]


@pytest.mark.parametrize("case", KINDS, ids=_ids)
def test_load_cell_is_the_reverse(case):
    kind, opts = case
    src = _layer(kind, opts, seed=0, num_layers=2, bidirectional=True)
    dst = _layer(kind, opts, seed=1, num_layers=2, bidirectional=True)
    cell_cls = getattr(fusedrnn, kind + "Cell")
    x = np.random.default_rng(3).standard_normal((T, B, I))
    dst(x)  # packs dst's first weights: load_cell must renew them
    before = dst.state_dict()
    dst.load_cell(cell_cls.from_layer(src, 1, 0), layer=1, direction=0)
    after, ref = dst.state_dict(), src.state_dict()
    for k in after:
        np.testing.assert_array_equal(after[k], ref[k] if k.endswith("_l1") else before[k])
    for layer, d in ((0, 0), (0, 1), (1, 1)):
        dst.load_cell(cell_cls.from_layer(src, layer, d), layer, d)
    for k, v in src.state_dict().items():
        np.testing.assert_array_equal(dst.state_dict()[k], v)
    ya, yb = src(x)[0], dst(x)[0]
    np.testing.assert_array_equal(ya, yb)
    # A cell built on its own (the usual training-by-cell case) goes in too.
    cell = cell_cls(I, H, dtype=np.float64, seed=5, **opts)
    dst.load_cell(cell)
    np.testing.assert_array_equal(dst.weight_hh_l0, cell.weight_hh)


def test_errors():
    lstm = _layer("LSTM", {}, num_layers=2)
    gru = _layer("GRU", {})
    cases = [
        (lambda: fusedrnn.LSTMCell.from_layer(gru), TypeError, "rnn.*LSTM.*got GRU"),
        (lambda: fusedrnn.GRUCell.from_layer(np.zeros(3)), TypeError, "rnn"),
        (lambda: fusedrnn.LSTMCell.from_layer(lstm, layer=2), ValueError,
         r"layer.*\[0, 1\].*got 2"),
        (lambda: fusedrnn.LSTMCell.from_layer(lstm, layer=-1), ValueError, "layer"),
        (lambda: fusedrnn.LSTMCell.from_layer(lstm, layer=True), TypeError, "layer"),
        (lambda: fusedrnn.LSTMCell.from_layer(lstm, layer=0.0), TypeError, "layer"),
        (lambda: fusedrnn.LSTMCell.from_layer(lstm, direction=1), ValueError,
         "direction.*not bidirectional"),
        (lambda: fusedrnn.LSTMCell.from_layer(fusedrnn.LSTM(I, H, proj_size=2)), ValueError,
         "proj_size"),
        (lambda: lstm.load_cell(fusedrnn.GRUCell(I, H, dtype=np.float64)), TypeError,
         "cell.*LSTMCell.*got GRUCell"),
        (lambda: lstm.load_cell(fusedrnn.LSTMCell(I, H, dtype=np.float64), layer=1),
         ValueError, "input_size 4.*input size 5"),
        (lambda: lstm.load_cell(fusedrnn.LSTMCell(I, H + 1, dtype=np.float64)), ValueError,
         "hidden_size"),
        (lambda: lstm.load_cell(fusedrnn.LSTMCell(I, H, bias=False, dtype=np.float64)),
         ValueError, "bias"),
        (lambda: lstm.load_cell(fusedrnn.LSTMCell(I, H)), TypeError, "dtype"),
        (lambda: lstm.load_cell(fusedrnn.LSTMCell(I, H, dtype=np.float64), direction=1),
         ValueError, "direction"),
        (lambda: fusedrnn.LSTM(I, H, proj_size=2).load_cell(fusedrnn.LSTMCell(I, H)),
         ValueError, "proj_size"),
        (lambda: gru.load_cell(fusedrnn.GRUCell(I, H, reset_after=False, dtype=np.float64)),
         ValueError, "reset_after"),
        (lambda: _layer("RNN", {}).load_cell(fusedrnn.RNNCell(I, H, nonlinearity="relu",
                                                              dtype=np.float64)),
         ValueError, "nonlinearity"),
        (lambda: gru.load_cell(None), TypeError, "cell"),
    ]
    before = lstm.state_dict()
    for make, exc, match in cases:
        with pytest.raises(exc, match=match):
            make()
    for k, v in lstm.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
