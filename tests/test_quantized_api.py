"""fusedrnn.quantize_dynamic and fusedrnn.quantized's layers and cells on the kernels.

Every kind and option against the exact NumPy reference (fusedrnn.quantized.reference)
on every ISA this CPU runs (AVX-512 with and without its VNNI tiles), on inputs that keep every computed activation away from a
rounding tie (see _qutil.no_ties), so that the float32 epilogue's rounding (the kernels'
vector exp/tanh) cannot change a quantized value; the end-to-end error against the
float64 model within the bound of docs/quantization.md; and the API around them.
"""

from __future__ import annotations

import numpy as np
import pytest
from _qbounds import assert_within, layer_bounds, stack_bounds, step_bounds
from _quant import kernel  # noqa: F401 - the fixture: every ISA, AVX-512 with and without VNNI
from _qutil import KINDS, no_ties
from _util import make_layer

import fusedrnn as fr
from fusedrnn import reference as ref
from fusedrnn.quantized import reference as qref

pytestmark = pytest.mark.usefixtures("kernel")

MODES = ["int8", "float16", "bfloat16"]
ATOL = 3e-5  # float32 epilogue (and, 16-bit, the float32 products' order)

LAYER_OPTIONS = {
    "plain": (dict(), dict()),
    "stacked_bidirectional_lengths_hx": (dict(num_layers=2, bidirectional=True),
                                         dict(lengths=[4, 1, 3], hx=True)),
    "batch_first_nobias_hx": (dict(batch_first=True, bias=False), dict(hx=True)),
    "unbatched_hx": (dict(num_layers=2), dict(unbatched=True, hx=True)),
}


def _inputs(q, T, B, seed, lengths=None, hx=False, unbatched=False):
    rng = np.random.default_rng(seed)
    D = 2 if q.bidirectional else 1
    LD, Hr, H = q.num_layers * D, q.proj_size or q.hidden_size, q.hidden_size
    x = rng.normal(size=(T, B, q.input_size)).astype(np.float32)
    h0 = rng.uniform(-1, 1, (LD, B, Hr)).astype(np.float32) if hx else None
    c0 = rng.uniform(-1, 1, (LD, B, H)).astype(np.float32) if hx else None
    return x, h0, c0


def _check_layer(q, kind, T, B, lengths=None, hx=False, unbatched=False):
    """q's outputs against the reference, on inputs found by no_ties."""
    lens = None if lengths is None else np.array(lengths)
    sd = q.state_dict()

    def run(seed, ties):
        x, h0, c0 = _inputs(q, T, B, seed, lengths, hx, unbatched)
        hx_ref = None if h0 is None else ((h0, c0) if kind == "lstm" else h0)
        return (x, h0, c0), qref.quantized_forward(
            kind, x, hx_ref, sd, num_layers=q.num_layers, bidirectional=q.bidirectional,
            lengths=lens, ties=ties)

    _, ((x, h0, c0), (y_r, h_r, c_r)) = no_ties(run)
    if unbatched:
        x, h0, c0, y_r, h_r, c_r = (None if a is None else a[:, 0]
                                    for a in (x, h0, c0, y_r, h_r, c_r))
    elif q.batch_first:
        x, y_r = x.transpose(1, 0, 2).copy(), y_r.transpose(1, 0, 2)
    hx_in = None if h0 is None else ((h0, c0) if kind == "lstm" else h0)
    y, state = q(x, hx_in, lengths=lengths)
    h_n, c_n = state if kind == "lstm" else (state, None)
    assert y.dtype == np.float32 and y.shape == y_r.shape
    np.testing.assert_allclose(y, y_r, rtol=ATOL, atol=ATOL)
    np.testing.assert_allclose(h_n, h_r, rtol=ATOL, atol=ATOL)
    if kind == "lstm":
        np.testing.assert_allclose(c_n, c_r, rtol=ATOL, atol=ATOL)
    # forward(train=False) returns the same, with no tape
    y2, state2, tape = q.forward(x, hx_in, lengths=lengths, train=False)
    assert tape is None and np.array_equal(y2, y)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("opts", list(LAYER_OPTIONS))
@pytest.mark.parametrize("kind", KINDS + ["lstm_proj"])
def test_layers_match_reference(kind, opts, mode):
    ctor, call = LAYER_OPTIONS[opts]
    ctor = dict(ctor)
    if kind == "lstm_proj":
        kind, ctor["proj_size"] = "lstm", 3
    m = make_layer(kind, 5, 7, seed=11, **ctor)
    q = fr.quantize_dynamic(m, mode)
    _check_layer(q, kind, T=4, B=1 if call.get("unbatched") else 3, **call)


@pytest.mark.parametrize("H", [1, 7, 8, 9, 16, 17, 31, 32, 33])
def test_tile_edges_match_reference(H):
    """Sizes around the SIMD tiles (B 1, 3 and 8; I = 70, past a 64-wide block)."""
    B = [1, 3, 8][H % 3]
    for i, kind in enumerate(KINDS):
        mode = MODES[(H + i) % 3] if i % 2 else "int8"
        q = fr.quantize_dynamic(make_layer(kind, 70, H, seed=H), mode)
        _check_layer(q, kind, T=3, B=B, hx=True)


CELLS = {"lstm": fr.LSTMCell, "gru": fr.GRUCell, "gru_reset_before": fr.GRUCell,
         "rnn_tanh": fr.RNNCell, "rnn_relu": fr.RNNCell}


def _cell(kind, I, H, seed=0, **kw):
    if kind.startswith("gru"):
        kw["reset_after"] = kind == "gru"
    if kind.startswith("rnn"):
        kw["nonlinearity"] = kind[4:]
    return CELLS[kind](I, H, seed=seed, **kw)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_cells_match_reference(kind, mode):
    I, H, B = 9, 17, 3
    q = fr.quantize_dynamic(_cell(kind, I, H, bias=kind != "rnn_relu"), mode)
    sd = q.state_dict()
    rng = np.random.default_rng(5)
    x = rng.normal(size=(B, I)).astype(np.float32)
    h = rng.uniform(-1, 1, (B, H)).astype(np.float32)
    c = rng.uniform(-2, 2, (B, H)).astype(np.float32)
    for hx in (None, (h, c) if kind == "lstm" else h):
        want = qref.quantized_cell(kind, x, hx, sd)
        got = q(x, hx)
        checked, tape = q.forward(x.astype(np.float64), hx, train=False)  # the checked path
        assert tape is None
        for g, k, w in zip(*(v if kind == "lstm" else (v,) for v in (got, checked, want))):
            assert g.dtype == np.float32 and g.shape == (B, H)
            np.testing.assert_allclose(g, w, rtol=ATOL, atol=ATOL)
            assert np.array_equal(g, k)
        # unbatched: (I,) -> (H,)
        hx1 = None if hx is None else (tuple(a[1] for a in hx) if kind == "lstm" else hx[1])
        one = q(x[1], hx1)
        for a, b in zip(*(v if kind == "lstm" else (v,) for v in (one, got))):
            assert a.shape == (H,)
            np.testing.assert_allclose(a, b[1], rtol=ATOL, atol=ATOL)


@pytest.mark.parametrize("kind", KINDS)
def test_end_to_end_error_within_the_derived_bound(kind):
    """A layer's int8 outputs stay within the interval bound of the float64 model."""
    T, B, I, H = 4, 3, 12, 16
    m = make_layer(kind, I, H, seed=7)
    q = fr.quantize_dynamic(m)
    sd = q.state_dict()
    p = {n.replace("_l0", ""): a.astype(np.float64) for n, a in m.state_dict().items()}
    p.update({n.replace("_l0", ""): sd[n] for n in sd if n.endswith("_scale")})
    rng = np.random.default_rng(8)
    x = rng.normal(size=(T, B, I)).astype(np.float32)
    h0 = rng.uniform(-1, 1, (1, B, H)).astype(np.float32)
    c0 = rng.uniform(-1, 1, (1, B, H)).astype(np.float32)
    lstm = kind == "lstm"
    ybox, hbox, cbox = layer_bounds(kind, x.astype(np.float64), h0[0].astype(np.float64),
                                    c0[0].astype(np.float64) if lstm else None, p)
    y, state = q(x, (h0, c0) if lstm else h0)
    assert_within(y, ybox, "int8 y")
    y64, _, _, _ = ref.stack_forward(kind, x.astype(np.float64), (h0, c0) if lstm else h0,
                                     {n: a.astype(np.float64) for n, a in m.state_dict().items()})
    assert_within(y64, ybox, "float64 y")
    if lstm:
        assert_within(state[1][0], cbox, "int8 c_n")
    assert ((ybox[1] - ybox[0]) / 2).max() < 0.5  # a bound that says something


@pytest.mark.parametrize("kind,kw", [("lstm", dict(num_layers=2, bidirectional=True, proj_size=5)),
                                     ("gru", dict(num_layers=2, bidirectional=True)),
                                     ("gru_reset_before", dict(num_layers=2))])
def test_stacked_error_within_the_derived_bound(kind, kw):
    T, B, I, H = 3, 2, 10, 12
    m = make_layer(kind, I, H, seed=6, **kw)
    q = fr.quantize_dynamic(m)
    params = {n: a.astype(np.float64) for n, a in m.state_dict().items()}
    params.update({n: a for n, a in q.state_dict().items() if n.endswith("_scale")})
    x = np.random.default_rng(9).normal(size=(T, B, I)).astype(np.float32)
    LD, Hr = (kw["num_layers"] * (2 if kw.get("bidirectional") else 1), kw.get("proj_size") or H)
    h0 = np.zeros((LD, B, Hr))
    c0 = np.zeros((LD, B, H)) if kind == "lstm" else None
    box = stack_bounds(kind, x, h0, c0, params, kw["num_layers"], kw.get("bidirectional", False))
    assert_within(q(x)[0], box, "int8 y")
    floats = {n: a for n, a in params.items() if not n.endswith("_scale")}
    y64, _, _, _ = ref.stack_forward(kind, x.astype(np.float64), None, floats,
                                     num_layers=kw["num_layers"],
                                     bidirectional=kw.get("bidirectional", False))
    assert_within(y64, box, "float64 y")
    assert ((box[1] - box[0]) / 2).max() < 0.5  # a bound that says something


@pytest.mark.parametrize("kind", KINDS + ["lstm_proj"])
def test_every_step_within_the_one_step_bound(kind):
    """Along a whole sequence, each step of the kernels from their own previous state
    lies within the one-step bound around the float64 step from that state (the states
    of step t: the layer's final states on the prefix x[:t])."""
    P = 4 if kind == "lstm_proj" else 0
    kind = kind.replace("_proj", "")
    T, B, I, H = 5, 3, 20, 16
    m = make_layer(kind, I, H, seed=4, **({"proj_size": P} if P else {}))
    q = fr.quantize_dynamic(m)
    p = {n.replace("_l0", ""): a.astype(np.float64) for n, a in m.state_dict().items()}
    p.update({n.replace("_l0", ""): a for n, a in q.state_dict().items() if n.endswith("_scale")})
    p.setdefault("weight_hr", None)
    x = np.random.default_rng(10).normal(size=(T, B, I)).astype(np.float32)
    lstm = kind == "lstm"
    h = np.zeros((B, P or H), np.float32)
    c = np.zeros((B, H), np.float32) if lstm else None
    for t in range(1, T + 1):
        _, state = q(x[:t])
        h1, c1 = (state[0][0], state[1][0]) if lstm else (state[0], None)
        hbox, cbox = step_bounds(kind, (x[t - 1],) * 2, (h.astype(np.float64),) * 2,
                                 None if c is None else (c.astype(np.float64),) * 2, p)
        assert_within(h1, hbox, f"int8 h at step {t}")
        if lstm:
            assert_within(c1, cbox, f"int8 c at step {t}")
        h, c = h1, c1
