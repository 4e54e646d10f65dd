"""Self-validation of the NumPy reference (``fusedrnn.reference``), the oracle of the
other tests.  Nothing here depends on the compiled extension.

* every gradient of ``*_backward`` against central finite differences in float64,
  for every input (x, h0, c0, weights, biases) and every element; likewise with the
  options ``lengths`` (unsorted, with a length 1 and a length T), ``reverse``, both,
  and the LSTM projection ``weight_hr``; and for ``stack_backward`` (every kind, two
  layers, one or two directions, lengths, no biases, dropout masks, projection);
* the sequence forwards against the one-step cells applied in a loop, and against the
  formulas of the module docstring written out here with PyTorch's gate layout;
* lengths and reverse against each row run alone (over x[:len_b], time-flipped for
  reverse), zeros at padded positions, padded dy ignored; the stack against the
  single-layer functions (one layer; and two layers composed by hand, with masks);
* the stack against torch.nn.LSTM/GRU/RNN in float64 (outputs and every gradient,
  two layers, bidirectional, projection, packed sequences), when torch is installed;
* defaults of ``dh_n`` / ``dc_n``, dtype preservation in float32, no mutation of inputs,
  bad arguments rejected;
* ``sigmoid`` over [-1000, 1000] without floating-point warnings.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from fusedrnn import reference as ref

EPS = 1e-6  # finite-difference step (float64)
FD_RTOL = 1e-6  # bound on norm(num - ana) / norm(num)
RELU_MARGIN = 1e-3  # minimum |pre-activation| for the relu gradient checks
TINY = np.finfo(np.float64).tiny

# ----------------------------------------------------------------------------- cases
# name -> (kind, number of gates, extra keyword arguments of the forward)
KINDS = {
    "lstm": ("lstm", 4, {}),
    "gru_reset_after": ("gru", 3, {"reset_after": True}),
    "gru_reset_before": ("gru", 3, {"reset_after": False}),
    "rnn_tanh": ("rnn", 1, {"nonlinearity": "tanh"}),
    "rnn_relu": ("rnn", 1, {"nonlinearity": "relu"}),
}
# name -> (T, B, I, H)
SHAPES = {
    "T3B2I3H4": (3, 2, 3, 4),
    "T1B1I3H4": (1, 1, 3, 4),
    "T4B3I5H2": (4, 3, 5, 2),
}
BIAS = {"bias": True, "nobias": False}

kind_param = pytest.mark.parametrize("kind", list(KINDS), ids=list(KINDS))
shape_param = pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
bias_param = pytest.mark.parametrize("bias", list(BIAS.values()), ids=list(BIAS))


def input_names(kind, bias, proj=False):
    names = ["x", "h0"]
    if KINDS[kind][0] == "lstm":
        names.append("c0")
    names += ["weight_ih", "weight_hh"]
    if proj:
        names.append("weight_hr")
    if bias:
        names += ["bias_ih", "bias_hh"]
    return names


def make_inputs(kind, shape, bias, seed, dtype=np.float64, scale=0.5, proj=0):
    """Random inputs as a dict keyed by argument name (biases None when bias=False).
    proj=P > 0 (LSTM only): with a projection weight_hr (P, H); h0 is then (B, P)."""
    T, B, I, H = shape
    G = KINDS[kind][1]
    H_out = proj or H
    rng = np.random.default_rng(seed)

    def r(*s):
        return (scale * rng.standard_normal(s)).astype(dtype)

    inp = {"x": r(T, B, I), "h0": r(B, H_out)}
    if KINDS[kind][0] == "lstm":
        inp["c0"] = r(B, H)
    inp["weight_ih"] = r(G * H, I)
    inp["weight_hh"] = r(G * H, H_out)
    inp["bias_ih"] = r(G * H) if bias else None
    inp["bias_hh"] = r(G * H) if bias else None
    if proj:
        inp["weight_hr"] = r(proj, H)
    return inp


def forward(kind, inp, **opts):
    """Returns (outputs tuple, cache); outputs are (y, h_n) or (y, h_n, c_n).
    opts: the forwards' keyword-only options (lengths, reverse); weight_hr from inp."""
    base, _, kw = KINDS[kind]
    w = (inp["weight_ih"], inp["weight_hh"], inp["bias_ih"], inp["bias_hh"])
    if base == "lstm":
        if inp.get("weight_hr") is not None:
            opts = dict(opts, weight_hr=inp["weight_hr"])
        y, h, c, cache = ref.lstm_forward(inp["x"], inp["h0"], inp["c0"], *w, **opts)
        return (y, h, c), cache
    fwd = ref.gru_forward if base == "gru" else ref.rnn_forward
    y, h, cache = fwd(inp["x"], inp["h0"], *w, **kw, **opts)
    return (y, h), cache


def backward(kind, cache, douts):
    if KINDS[kind][0] == "lstm":
        return ref.lstm_backward(cache, *douts)
    bwd = ref.gru_backward if KINDS[kind][0] == "gru" else ref.rnn_backward
    return bwd(cache, *douts)


GRAD_KEY = {"x": "dx", "h0": "dh0", "c0": "dc0"}  # other inputs: their own name


def loss_weights(outs, seed):
    rng = np.random.default_rng(seed + 1000)
    return tuple(rng.standard_normal(o.shape) for o in outs)


def loss(kind, inp, wts, **opts):
    outs, _ = forward(kind, inp, **opts)
    return sum(float(np.sum(o * w)) for o, w in zip(outs, wts))


def relu_preactivations(cache, bias_ih, bias_hh):
    """The pre-activations of a single-layer RNN (relu) at the steps where a row runs,
    recomputed from its cache (the input and state each step read)."""
    b = 0.0 if bias_ih is None else bias_ih + bias_hh
    W_ih, W_hh = cache["weight_ih"], cache["weight_hh"]
    pre = np.stack([x_s @ W_ih.T + h @ W_hh.T + b for x_s, h in zip(cache["xs"], cache["hs"])])
    return pre[cache["on"]]


def relu_ok(pre):
    """All pre-activations at least RELU_MARGIN away from the kink, both signs present
    (so that both branches of the derivative are exercised)."""
    return np.abs(pre).min() > RELU_MARGIN and (pre > 0).any() and (pre < 0).any()


def first_good_seed(make, preactivations):
    """make(seed) for the first seed whose relu pre-activations pass relu_ok; fail if none."""
    for seed in range(500):
        case = make(seed)
        if relu_ok(preactivations(case)):
            return case
    pytest.fail("no seed gives relu pre-activations away from 0 with both signs")


def pick_inputs(kind, shape, bias, proj=0, **opts):
    """Inputs for the gradient check.  For relu, the first seed whose pre-activations all
    stay away from the kink (relu_ok)."""
    if kind != "rnn_relu":
        return make_inputs(kind, shape, bias, seed=0, proj=proj)
    return first_good_seed(
        lambda seed: make_inputs(kind, shape, bias, seed),
        lambda inp: relu_preactivations(forward(kind, inp, **opts)[1],
                                        inp["bias_ih"], inp["bias_hh"]))


def rel_err(num, ana):
    return np.linalg.norm(num - ana) / max(np.linalg.norm(num), TINY)


def assert_fd(f, inp, names, grads, key=lambda n: GRAD_KEY.get(n, n)):
    """grads[key(name)] against central differences of the scalar f() in every element
    of inp[name], for every name (perturbing the arrays of inp in place)."""
    for name in names:
        p = inp[name]
        ana = grads[key(name)]
        assert ana.shape == p.shape and ana.dtype == np.float64, name
        num = np.empty_like(p)
        for k in range(p.size):
            orig = p.flat[k]
            p.flat[k] = orig + EPS
            lp = f()
            p.flat[k] = orig - EPS
            lm = f()
            p.flat[k] = orig
            num.flat[k] = (lp - lm) / (2 * EPS)
        assert np.linalg.norm(num) > 0, f"{name}: zero gradient, the check is vacuous"
        err = rel_err(num, ana)
        assert err <= FD_RTOL, f"{name}: relative error {err:.3e}\nnum={num}\nana={ana}"


# ----------------------------------------------------------------------------- gradients
@kind_param
@bias_param
@shape_param
def test_gradients_finite_differences(kind, bias, shape):
    inp = pick_inputs(kind, shape, bias)
    outs, cache = forward(kind, inp)
    if kind == "rnn_relu":  # guard, independent of the seed search above
        pre = relu_preactivations(cache, inp["bias_ih"], inp["bias_hh"])
        assert np.abs(pre).min() > RELU_MARGIN
    wts = loss_weights(outs, seed=0)
    grads = backward(kind, cache, wts)

    names = input_names(kind, bias)
    assert set(grads) == {GRAD_KEY.get(n, n) for n in names}
    assert_fd(lambda: loss(kind, inp, wts), inp, names, grads)


@kind_param
@bias_param
def test_default_output_gradients_are_zeros(kind, bias):
    inp = make_inputs(kind, SHAPES["T3B2I3H4"], bias, seed=1)
    outs, cache = forward(kind, inp)
    dy = loss_weights(outs, seed=1)[0]
    zeros = [np.zeros_like(o) for o in outs[1:]]
    default = backward(kind, cache, (dy,))
    explicit = backward(kind, cache, (dy, *zeros))
    assert set(default) == set(explicit)
    for k in default:
        np.testing.assert_array_equal(default[k], explicit[k], err_msg=k)
    if KINDS[kind][0] == "lstm":  # one of the two given, the other defaulted
        dh_n = loss_weights(outs, seed=2)[1]
        a = ref.lstm_backward(cache, dy, dh_n)
        b = ref.lstm_backward(cache, dy, dh_n, np.zeros_like(outs[2]))
        c = ref.lstm_backward(cache, dy, None, np.zeros_like(outs[2]))
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
            np.testing.assert_array_equal(c[k], default[k], err_msg=k)
    # the defaults must not hide the gradient of h_n: a nonzero dh_n changes dh0
    dh_n = loss_weights(outs, seed=3)[1]
    with_h = backward(kind, cache, (dy, dh_n))
    assert not np.array_equal(with_h["dh0"], default["dh0"])


@kind_param
@bias_param
def test_inputs_not_mutated(kind, bias):
    inp = make_inputs(kind, SHAPES["T3B2I3H4"], bias, seed=4)
    saved = {k: None if v is None else v.copy() for k, v in inp.items()}
    outs, cache = forward(kind, inp)
    douts = loss_weights(outs, seed=4)
    saved_d = [d.copy() for d in douts]
    backward(kind, cache, douts)
    backward(kind, cache, douts)  # a second call on the same cache gives the same
    for k, v in inp.items():
        if v is not None:
            np.testing.assert_array_equal(v, saved[k], err_msg=k)
    for d, s in zip(douts, saved_d):
        np.testing.assert_array_equal(d, s)
    g1 = backward(kind, cache, douts)
    g2 = backward(kind, cache, douts)
    for k in g1:
        np.testing.assert_array_equal(g1[k], g2[k], err_msg=k)


# ----------------------------------------------------------------------------- float32
@kind_param
@bias_param
def test_float32_preserves_dtype_and_matches_float64(kind, bias):
    inp32 = make_inputs(kind, (5, 3, 4, 6), bias, seed=5, dtype=np.float32)
    inp64 = {k: None if v is None else v.astype(np.float64) for k, v in inp32.items()}
    outs32, cache32 = forward(kind, inp32)
    outs64, cache64 = forward(kind, inp64)
    d64 = loss_weights(outs64, seed=5)
    d32 = tuple(d.astype(np.float32) for d in d64)
    d64 = tuple(d.astype(np.float64) for d in d32)  # the same values in both dtypes
    g32 = backward(kind, cache32, d32)
    g64 = backward(kind, cache64, d64)

    for i, (o32, o64) in enumerate(zip(outs32, outs64)):
        assert o32.dtype == np.float32, f"output {i}: {o32.dtype}"
        assert o32.shape == o64.shape
        err = rel_err(o64, o32.astype(np.float64))
        assert err <= 1e-5, f"output {i}: relative error {err:.3e}"
    assert set(g32) == set(g64)
    for k in g64:
        assert g32[k].dtype == np.float32, f"{k}: {g32[k].dtype}"
        err = rel_err(g64[k], g32[k].astype(np.float64))
        assert err <= 1e-5, f"{k}: relative error {err:.3e}"


# ----------------------------------------------------------------------------- cells
@kind_param
@bias_param
@shape_param
def test_forward_matches_cell_loop(kind, bias, shape):
    base, _, kw = KINDS[kind]
    inp = make_inputs(kind, shape, bias, seed=6)
    outs, _ = forward(kind, inp)
    w = (inp["weight_ih"], inp["weight_hh"], inp["bias_ih"], inp["bias_hh"])
    h, c = inp["h0"], inp.get("c0")
    ys = []
    for t in range(shape[0]):
        if base == "lstm":
            h, c = ref.lstm_cell(inp["x"][t], h, c, *w)
        elif base == "gru":
            h = ref.gru_cell(inp["x"][t], h, *w, **kw)
        else:
            h = ref.rnn_cell(inp["x"][t], h, *w, **kw)
        ys.append(h)
    expected = [np.stack(ys), h] + ([c] if base == "lstm" else [])
    assert len(outs) == len(expected)
    for i, (o, e) in enumerate(zip(outs, expected)):
        np.testing.assert_allclose(o, e, rtol=1e-12, atol=1e-14, err_msg=f"output {i}")


def _sig(v):  # inputs here are moderate: no overflow
    return 1.0 / (1.0 + np.exp(-v))


def _docstring_step(kind, x, h, c, Wi, Wh, bi, bh):
    """One step written from the module docstring, gate by gate, PyTorch row layout."""
    base, G, kw = KINDS[kind]
    H = h.shape[-1]
    bi = np.zeros(G * H) if bi is None else bi
    bh = np.zeros(G * H) if bh is None else bh

    def rows(k):
        s = slice(k * H, (k + 1) * H)
        return Wi[s], Wh[s], bi[s], bh[s]

    def full(k, hh=h):
        wi, wh, b1, b2 = rows(k)
        return x @ wi.T + b1 + hh @ wh.T + b2

    if base == "lstm":
        i, f, g, o = _sig(full(0)), _sig(full(1)), np.tanh(full(2)), _sig(full(3))
        c2 = f * c + i * g
        return o * np.tanh(c2), c2
    if base == "gru":
        r, z = _sig(full(0)), _sig(full(1))
        wi, wh, b1, b2 = rows(2)
        if kw["reset_after"]:
            n = np.tanh(x @ wi.T + b1 + r * (h @ wh.T + b2))
        else:
            n = np.tanh(x @ wi.T + b1 + (r * h) @ wh.T + b2)
        return (1 - z) * n + z * h, None
    pre = full(0)
    return (np.tanh(pre) if kw["nonlinearity"] == "tanh" else np.maximum(pre, 0)), None


@kind_param
@bias_param
def test_forward_matches_docstring_formulas(kind, bias):
    inp = make_inputs(kind, (3, 2, 3, 4), bias, seed=7, scale=0.8)
    outs, _ = forward(kind, inp)
    w = (inp["weight_ih"], inp["weight_hh"], inp["bias_ih"], inp["bias_hh"])
    h, c = inp["h0"], inp.get("c0")
    ys = []
    for t in range(3):
        h, c = _docstring_step(kind, inp["x"][t], h, c, *w)
        ys.append(h)
    np.testing.assert_allclose(outs[0], np.stack(ys), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(outs[1], h, rtol=1e-12, atol=1e-14)
    if KINDS[kind][0] == "lstm":
        np.testing.assert_allclose(outs[2], c, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("bias", list(BIAS.values()), ids=list(BIAS))
def test_variants_differ(bias):
    """The flags must matter (a forward that ignored them would pass the other tests)."""
    shape = (3, 2, 3, 4)
    a, _ = forward("gru_reset_after", make_inputs("gru_reset_after", shape, bias, seed=8))
    b, _ = forward("gru_reset_before", make_inputs("gru_reset_before", shape, bias, seed=8))
    assert np.abs(a[0] - b[0]).max() > 1e-3
    a, _ = forward("rnn_tanh", make_inputs("rnn_tanh", shape, bias, seed=8))
    b, _ = forward("rnn_relu", make_inputs("rnn_relu", shape, bias, seed=8))
    assert np.abs(a[0] - b[0]).max() > 1e-3


def test_bad_nonlinearity_rejected():
    inp = make_inputs("rnn_tanh", (2, 1, 2, 3), True, seed=9)
    with pytest.raises(ValueError):
        ref.rnn_forward(inp["x"], inp["h0"], inp["weight_ih"], inp["weight_hh"],
                        nonlinearity="sigmoid")


# ----------------------------------------------------------------------------- lengths, reverse, projection
OPT_SHAPE = (4, 4, 2, 2)  # (T, B, I, H)
OPT_LENGTHS = np.array([3, 1, 4, 2])  # unsorted, with a length 1 and a length T
PROJ_SHAPE, PROJ = (4, 4, 2, 3), 2  # LSTM with projection: P = 2 < H = 3
OPTIONS = {
    "lengths": {"lengths": OPT_LENGTHS},
    "reverse": {"reverse": True},
    "reverse_lengths": {"reverse": True, "lengths": OPT_LENGTHS},
}
option_param = pytest.mark.parametrize("opts", list(OPTIONS.values()), ids=list(OPTIONS))
# the single-layer cases of the row-by-row checks: every kind, and the LSTM with projection
CASES = list(KINDS) + ["lstm_proj"]
case_param = pytest.mark.parametrize("case", CASES)


def case_kind(case):
    """The KINDS name of a CASES entry."""
    return "lstm" if case == "lstm_proj" else case


def case_inputs(case, seed, bias=True, dtype=np.float64):
    """(kind, inputs) of a CASES entry at OPT_SHAPE (PROJ_SHAPE with projection)."""
    if case == "lstm_proj":
        return "lstm", make_inputs("lstm", PROJ_SHAPE, bias, seed, dtype, proj=PROJ)
    return case, make_inputs(case, OPT_SHAPE, bias, seed, dtype)


@kind_param
@option_param
def test_option_gradients_finite_differences(kind, opts):
    inp = pick_inputs(kind, OPT_SHAPE, True, **opts)
    outs, cache = forward(kind, inp, **opts)
    wts = loss_weights(outs, seed=1)  # nonzero at padded positions too: they must not count
    grads = backward(kind, cache, wts)
    names = input_names(kind, True)
    assert set(grads) == {GRAD_KEY.get(n, n) for n in names}
    assert_fd(lambda: loss(kind, inp, wts, **opts), inp, names, grads)


@pytest.mark.parametrize(
    "opts, bias", [({}, True), ({}, False)] + [(o, True) for o in OPTIONS.values()],
    ids=["plain-bias", "plain-nobias"] + [f"{o}-bias" for o in OPTIONS])
def test_projection_gradients_finite_differences(opts, bias):
    inp = make_inputs("lstm", PROJ_SHAPE, bias, seed=2, proj=PROJ)
    outs, cache = forward("lstm", inp, **opts)
    T, B, _, H = PROJ_SHAPE
    assert [o.shape for o in outs] == [(T, B, PROJ), (B, PROJ), (B, H)]
    wts = loss_weights(outs, seed=2)
    grads = backward("lstm", cache, wts)
    names = input_names("lstm", bias, proj=True)
    assert set(grads) == {GRAD_KEY.get(n, n) for n in names}
    assert_fd(lambda: loss("lstm", inp, wts, **opts), inp, names, grads)


def one_row(kind, inp, b, n, reverse):
    """Row b alone, over x[:n] (time-flipped when reverse), by the plain forward."""
    row = dict(inp, x=inp["x"][:n, b : b + 1], h0=inp["h0"][b : b + 1])
    if reverse:
        row["x"] = row["x"][::-1]
    if "c0" in inp:
        row["c0"] = inp["c0"][b : b + 1]
    outs, _ = forward(kind, row)
    y = outs[0][::-1] if reverse else outs[0]  # flipped back: aligned with x again
    return (y[:, 0], *(o[0] for o in outs[1:]))


@case_param
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("lengths", [None, OPT_LENGTHS], ids=["full", "lengths"])
def test_rows_run_alone(case, reverse, lengths):
    """Row b of a batch with lengths (and/or reverse) is row b run alone over x[:len_b],
    time-flipped for reverse; y past len_b is exactly 0."""
    kind, inp = case_inputs(case, seed=3)
    outs, _ = forward(kind, inp, lengths=lengths, reverse=reverse)
    T, B = inp["x"].shape[:2]
    for b, n in enumerate(OPT_LENGTHS if lengths is not None else [T] * B):
        alone = one_row(kind, inp, b, n, reverse)
        np.testing.assert_allclose(outs[0][:n, b], alone[0], rtol=1e-12, atol=1e-14)
        assert np.all(outs[0][n:, b] == 0), f"row {b}: y past its length is not 0"
        for i in range(1, len(outs)):
            np.testing.assert_allclose(outs[i][b], alone[i], rtol=1e-12, atol=1e-14,
                                       err_msg=f"row {b}, final state {i}")
    if reverse:  # the flag matters
        plain, _ = forward(kind, inp, lengths=lengths)
        assert np.abs(plain[1] - outs[1]).max() > 1e-3


@case_param
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_lengths_backward_ignores_padding(case, reverse):
    """dy past a row's length changes nothing, and dx there is exactly 0."""
    kind, inp = case_inputs(case, seed=4)
    outs, cache = forward(kind, inp, lengths=OPT_LENGTHS, reverse=reverse)
    douts = loss_weights(outs, seed=4)
    pad = np.arange(inp["x"].shape[0])[:, None] >= OPT_LENGTHS[None, :]  # (T, B)
    assert pad.any()
    dy_zero_pad = douts[0].copy()
    dy_zero_pad[pad] = 0
    g = backward(kind, cache, douts)
    g0 = backward(kind, cache, (dy_zero_pad, *douts[1:]))
    for k in g:
        np.testing.assert_array_equal(g[k], g0[k], err_msg=k)
    assert np.all(g["dx"][pad] == 0) and np.abs(g["dx"][~pad]).max() > 0


@case_param
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_full_lengths_equal_no_lengths(case, reverse):
    kind, inp = case_inputs(case, seed=5)
    T, B = inp["x"].shape[:2]
    a, ca = forward(kind, inp, reverse=reverse)
    b, cb = forward(kind, inp, lengths=np.full(B, T), reverse=reverse)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    d = loss_weights(a, seed=5)
    ga, gb = backward(kind, ca, d), backward(kind, cb, d)
    for k in ga:
        np.testing.assert_array_equal(ga[k], gb[k], err_msg=k)


@pytest.mark.parametrize(
    "lengths", [[3, 0, 4, 2], [3, 1, 5, 2], [3, 1, 4], [[3, 1, 4, 2]], [3.0, 1.0, 4.0, 2.0]],
    ids=["zero", "over_T", "short", "2d", "float"])
@kind_param
def test_bad_lengths_rejected(kind, lengths):
    inp = make_inputs(kind, OPT_SHAPE, True, seed=6)
    with pytest.raises(ValueError, match="lengths"):
        forward(kind, inp, lengths=np.array(lengths))


@case_param
@option_param
def test_options_float32(case, opts):
    kind, inp32 = case_inputs(case, seed=7, dtype=np.float32)
    inp64 = {k: None if v is None else v.astype(np.float64) for k, v in inp32.items()}
    outs32, c32 = forward(kind, inp32, **opts)
    outs64, c64 = forward(kind, inp64, **opts)
    d = loss_weights(outs64, seed=7)
    g32 = backward(kind, c32, tuple(a.astype(np.float32) for a in d))
    g64 = backward(kind, c64, tuple(a.astype(np.float32).astype(np.float64) for a in d))
    for o32, o64 in zip(outs32, outs64):
        assert o32.dtype == np.float32 and rel_err(o64, o32) <= 1e-5
    for k in g64:
        assert g32[k].dtype == np.float32 and rel_err(g64[k], g32[k]) <= 1e-5, k


# ----------------------------------------------------------------------------- stacks
# test kind -> stack_forward's kind
STACK_KIND = {"lstm": "lstm", "gru_reset_after": "gru", "gru_reset_before": "gru_reset_before",
              "rnn_tanh": "rnn_tanh", "rnn_relu": "rnn_relu"}
STACK_SHAPE = (3, 3, 2, 2)  # (T, B, I, H)
STACK_PROJ_SHAPE, STACK_PROJ = (3, 3, 2, 3), 2  # LSTM with projection: P = 2 < H = 3
STACK_LENGTHS = np.array([2, 3, 1])  # unsorted, with a length 1 and a length T
# name -> stack options: num_layers is 2 throughout
STACK_CONFIGS = {
    "bi_lengths_dropout": dict(bidirectional=True, bias=True, lengths=True, dropout=True),
    "uni_nobias": dict(bidirectional=False, bias=False, lengths=False, dropout=False),
}


def make_stack(case, seed, num_layers=2, bidirectional=True, bias=True, lengths=False,
               dropout=False, dtype=np.float64):
    """Random (kind, x, hx, params, options) for stack_forward; case is a KINDS name or
    'lstm_proj'.  The names and shapes of params are torch's (checked against torch in
    test_stack_matches_torch)."""
    kind = case_kind(case)
    T, B, I, H = STACK_PROJ_SHAPE if case == "lstm_proj" else STACK_SHAPE
    G = KINDS[kind][1]
    H_out = STACK_PROJ if case == "lstm_proj" else H
    L, D = num_layers, 2 if bidirectional else 1
    rng = np.random.default_rng(seed)

    def r(*s):
        return (0.5 * rng.standard_normal(s)).astype(dtype)

    x = r(T, B, I)
    h0 = r(L * D, B, H_out)
    hx = (h0, r(L * D, B, H)) if kind == "lstm" else h0
    params = {}
    for l in range(L):
        for d in range(D):
            sfx = f"_l{l}" + ("_reverse" if d else "")
            params["weight_ih" + sfx] = r(G * H, I if l == 0 else D * H_out)
            params["weight_hh" + sfx] = r(G * H, H_out)
            if bias:
                params["bias_ih" + sfx] = r(G * H)
                params["bias_hh" + sfx] = r(G * H)
            if case == "lstm_proj":
                params["weight_hr" + sfx] = r(H_out, H)
    opts = dict(num_layers=L, bidirectional=bidirectional)
    if lengths:
        opts["lengths"] = STACK_LENGTHS
    if dropout:  # fixed masks of 0 and 2 (dropout p = 0.5, already scaled)
        opts["dropout_masks"] = [rng.choice([0.0, 2.0], size=(T, B, D * H_out)).astype(dtype)
                                 for _ in range(L - 1)]
    return STACK_KIND[kind], x, hx, params, opts


def stack_relu_preactivations(params, cache):
    pres = []
    for l, caches_l in enumerate(cache["caches"]):
        for d, c in enumerate(caches_l):
            sfx = f"_l{l}" + ("_reverse" if d else "")
            pres.append(relu_preactivations(c, params.get("bias_ih" + sfx),
                                            params.get("bias_hh" + sfx)))
    return np.concatenate(pres)


stack_case_param = pytest.mark.parametrize("case", CASES)
stack_config_param = pytest.mark.parametrize("config", list(STACK_CONFIGS.values()),
                                             ids=list(STACK_CONFIGS))


@stack_case_param
@stack_config_param
def test_stack_gradients_finite_differences(case, config):
    def make(seed):
        return make_stack(case, seed, **config)

    if case == "rnn_relu":
        kind, x, hx, params, opts = first_good_seed(
            make, lambda c: stack_relu_preactivations(c[3], ref.stack_forward(*c[:4], **c[4])[3]))
    else:
        kind, x, hx, params, opts = make(0)
    lstm = kind == "lstm"
    inp = {"x": x, "h0": hx[0], "c0": hx[1]} if lstm else {"x": x, "h0": hx}
    inp.update(params)

    def run():
        state = (inp["h0"], inp["c0"]) if lstm else inp["h0"]
        return ref.stack_forward(kind, inp["x"], state, params, **opts)

    y, h_n, c_n, cache = run()
    outs = (y, h_n, c_n) if lstm else (y, h_n)
    wts = loss_weights(outs, seed=8)
    grads = ref.stack_backward(cache, *wts)
    assert set(grads) == {GRAD_KEY.get(n, n) for n in inp}

    def f():
        return sum(float(np.sum(o * w)) for o, w in zip(run()[:len(wts)], wts))

    assert_fd(f, inp, list(inp), grads)


@stack_case_param
@pytest.mark.parametrize("lengths", [False, True], ids=["full", "lengths"])
@bias_param
def test_stack_one_layer_is_the_single_layer_function(case, lengths, bias):
    kind, x, hx, params, opts = make_stack(case, 9, num_layers=1, bidirectional=False,
                                           bias=bias, lengths=lengths)
    lstm = kind == "lstm"
    inp = {n: params.get(n + "_l0") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh",
                                               "weight_hr")}
    if lstm:
        inp.update(x=x, h0=hx[0][0], c0=hx[1][0])
    else:
        inp.update(x=x, h0=hx[0])
    outs1, cache1 = forward(case_kind(case), inp, lengths=opts.get("lengths"))
    y, h_n, c_n, cache = ref.stack_forward(kind, x, hx, params, **opts)
    assert (c_n is None) == (not lstm)
    outs = (y, h_n[0], c_n[0]) if lstm else (y, h_n[0])
    for a, b in zip(outs, outs1):
        np.testing.assert_array_equal(a, b)
    d = loss_weights(outs, seed=9)
    g1 = backward(case_kind(case), cache1, d)
    g = ref.stack_backward(cache, d[0], *(a[None] for a in d[1:]))  # (1, B, ...) states
    assert set(g) == {"dx", "dh0"} | ({"dc0"} if lstm else set()) | set(params)
    for k, v in g1.items():
        if k == "dx":
            got = g["dx"]
        elif k in ("dh0", "dc0"):
            got = g[k][0]
        else:
            got = g[k + "_l0"]
        np.testing.assert_array_equal(got, v, err_msg=k)


@stack_case_param
def test_stack_is_its_layers_composed(case):
    """Two bidirectional layers with lengths and a dropout mask, written out by hand from
    the single-layer functions: torch's state and output layout, the mask's place."""
    kind, x, hx, params, opts = make_stack(case, 10, lengths=True, dropout=True)
    y, h_n, c_n, _ = ref.stack_forward(kind, x, hx, params, **opts)
    lstm = kind == "lstm"
    h0, c0 = hx if lstm else (hx, None)
    layer_in, k = x, 0
    for l in range(2):
        if l == 1:
            layer_in = layer_in * opts["dropout_masks"][0]
        ys = []
        for d, sfx in enumerate([f"_l{l}", f"_l{l}_reverse"]):
            inp = {n: params.get(n + sfx) for n in
                   ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")}
            inp.update(x=layer_in, h0=h0[k], c0=None if c0 is None else c0[k])
            outs, _ = forward(case_kind(case), inp, lengths=STACK_LENGTHS, reverse=(d == 1))
            np.testing.assert_allclose(h_n[k], outs[1], rtol=1e-13, atol=1e-15)
            if lstm:
                np.testing.assert_allclose(c_n[k], outs[2], rtol=1e-13, atol=1e-15)
            ys.append(outs[0])
            k += 1
        layer_in = np.concatenate(ys, axis=-1)
    np.testing.assert_allclose(y, layer_in, rtol=1e-13, atol=1e-15)
    # the mask matters
    y2, *_ = ref.stack_forward(kind, x, hx, params, **dict(opts, dropout_masks=None))
    assert np.abs(y2 - y).max() > 1e-3


@stack_case_param
def test_stack_defaults_float32_no_mutation(case):
    kind, x, hx, params, opts = make_stack(case, 11, lengths=True, dropout=True,
                                           dtype=np.float32)
    lstm = kind == "lstm"
    arrays = [x, *(hx if lstm else (hx,)), *params.values(), *opts["dropout_masks"]]
    saved = [a.copy() for a in arrays]
    y, h_n, c_n, cache = ref.stack_forward(kind, x, hx, params, **opts)
    dy = loss_weights((y,), seed=11)[0].astype(np.float32)
    g = ref.stack_backward(cache, dy)
    zeros = [np.zeros_like(h_n)] + ([np.zeros_like(c_n)] if lstm else [])
    g0 = ref.stack_backward(cache, dy, *zeros)
    for k in g:
        assert g[k].dtype == np.float32, k
        np.testing.assert_array_equal(g[k], g0[k], err_msg=k)
    assert y.dtype == h_n.dtype == np.float32 and (c_n is None or c_n.dtype == np.float32)
    for a, s in zip(arrays, saved):
        np.testing.assert_array_equal(a, s)
    # hx=None is zeros
    zero_hx = tuple(np.zeros_like(a) for a in hx) if lstm else np.zeros_like(hx)
    for a, b in zip(ref.stack_forward(kind, x, None, params, **opts)[:3],
                    ref.stack_forward(kind, x, zero_hx, params, **opts)[:3]):
        np.testing.assert_array_equal(a, b)
    # float32 against float64
    p64 = {n: v.astype(np.float64) for n, v in params.items()}
    o64 = dict(opts, dropout_masks=[m.astype(np.float64) for m in opts["dropout_masks"]])
    hx64 = tuple(a.astype(np.float64) for a in hx) if lstm else hx.astype(np.float64)
    y64, h64, _, cache64 = ref.stack_forward(kind, x.astype(np.float64), hx64, p64, **o64)
    g64 = ref.stack_backward(cache64, dy.astype(np.float64))
    assert rel_err(y64, y) <= 1e-5 and rel_err(h64, h_n) <= 1e-5
    for k in g64:
        assert rel_err(g64[k], g[k]) <= 1e-5, k


def test_stack_bad_arguments_rejected():
    kind, x, hx, params, opts = make_stack("gru_reset_after", 12, lengths=True, dropout=True)
    with pytest.raises(ValueError, match="kind"):
        ref.stack_forward("gru_reset_sometimes", x, hx, params, **opts)
    with pytest.raises(ValueError, match="dropout_masks"):
        ref.stack_forward(kind, x, hx, params, **dict(opts, dropout_masks=[]))
    with pytest.raises(ValueError, match="params"):  # a third layer's weights
        ref.stack_forward(kind, x, hx, dict(params, weight_ih_l2=params["weight_ih_l1"]), **opts)
    with pytest.raises(ValueError, match="params"):  # reverse weights, one direction
        ref.stack_forward(kind, x, hx[::2], params, **dict(opts, bidirectional=False))
    with pytest.raises(ValueError, match="h0"):
        ref.stack_forward(kind, x, hx[:2], params, **opts)
    with pytest.raises(ValueError, match="lengths"):
        ref.stack_forward(kind, x, hx, params, **dict(opts, lengths=np.array([2, 0, 1])))


# ----------------------------------------------------------------------------- torch parity
TORCH_CASES = ["lstm", "lstm_proj", "gru_reset_after", "rnn_tanh", "rnn_relu"]


@pytest.mark.parametrize("case", TORCH_CASES)
@pytest.mark.parametrize("lengths", [False, True], ids=["full", "packed"])
def test_stack_matches_torch(torch, case, lengths):
    """stack_forward / stack_backward against torch.nn.LSTM/GRU/RNN in float64: two
    bidirectional layers, the same state_dict; with lengths through
    pack_padded_sequence(enforce_sorted=False) and pad_packed_sequence(total_length=T)."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    kind, x, hx, params, opts = make_stack(case, 13, lengths=lengths)
    T, _, I, H = STACK_PROJ_SHAPE if case == "lstm_proj" else STACK_SHAPE
    lstm = kind == "lstm"
    common = dict(num_layers=2, bidirectional=True, dtype=torch.float64)
    if lstm:
        m = torch.nn.LSTM(I, H, proj_size=STACK_PROJ if case == "lstm_proj" else 0, **common)
    elif kind == "gru":
        m = torch.nn.GRU(I, H, **common)
    else:
        m = torch.nn.RNN(I, H, nonlinearity=kind[4:], **common)
    sd = m.state_dict()
    assert {n: tuple(v.shape) for n, v in sd.items()} == {n: v.shape for n, v in params.items()}
    m.load_state_dict({n: torch.from_numpy(v) for n, v in params.items()})

    y, h_n, c_n, cache = ref.stack_forward(kind, x, hx, params, **opts)
    outs = (y, h_n, c_n) if lstm else (y, h_n)
    wts = loss_weights(outs, seed=13)
    grads = ref.stack_backward(cache, *wts)

    tx = torch.from_numpy(x.copy()).requires_grad_()
    states = [torch.from_numpy(a.copy()).requires_grad_() for a in (hx if lstm else (hx,))]
    t_in = pack_padded_sequence(tx, torch.from_numpy(STACK_LENGTHS), enforce_sorted=False) \
        if lengths else tx
    t_out, t_state = m(t_in, tuple(states) if lstm else states[0])
    if lengths:
        t_out, _ = pad_packed_sequence(t_out, total_length=T)
    t_outs = (t_out, *t_state) if lstm else (t_out, t_state)
    sum((o * torch.from_numpy(w)).sum() for o, w in zip(t_outs, wts)).backward()

    for i, (a, b) in enumerate(zip(outs, t_outs)):
        assert rel_err(b.detach().numpy(), a) <= 1e-12, f"output {i}"
    expected = {"dx": tx.grad, "dh0": states[0].grad}
    if lstm:
        expected["dc0"] = states[1].grad
    expected.update((n, p.grad) for n, p in m.named_parameters())
    assert set(grads) == set(expected)
    for k, v in expected.items():
        assert rel_err(v.numpy(), grads[k]) <= 1e-12, k


# ----------------------------------------------------------------------------- sigmoid
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_sigmoid(dtype):
    x = np.concatenate([np.linspace(-1000, 1000, 200001), [-1000.0, 0.0, 1000.0, -0.0]])
    x = x.astype(dtype)
    # Underflow of exp(-|x|) to 0 for large |x| is the correct rounding of the result, so
    # it is allowed; overflow, invalid and division by zero are errors, as is any warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
            s = ref.sigmoid(x)
            s2 = ref.sigmoid(x.reshape(-1, 5))
    assert s.dtype == dtype and s.shape == x.shape
    np.testing.assert_array_equal(s2.reshape(-1), s)
    assert np.all(np.isfinite(s))
    assert np.all((s >= 0) & (s <= 1))
    assert np.all(np.diff(s[:200001]) >= 0), "not monotonic"
    assert (x == 0).sum() >= 2 and np.all(s[x == 0] == 0.5)  # +0.0 and -0.0

    xd = x.astype(np.float64)
    tol = 1e-13 if dtype == np.float64 else 5e-7
    mid = np.abs(xd) <= 30
    expect = 0.5 * (1.0 + np.tanh(xd[mid] / 2))  # identity, no overflow
    np.testing.assert_allclose(s[mid], expect, rtol=tol, atol=tol * 1e-3)
    # symmetry s(-x) = 1 - s(x)
    np.testing.assert_allclose(ref.sigmoid(-x[mid]), 1 - s[mid], rtol=0, atol=2 * tol)
    # tails: s(x) = exp(x) (1 - exp(x) + ...) for x << 0 (relative accuracy while the
    # result is a normal number, absolute accuracy of a few subnormal steps below that),
    # and exactly 1 after rounding for x >> 0
    fi = np.finfo(dtype)
    lo = xd < -40
    with np.errstate(under="ignore"):
        truth = np.exp(xd[lo])
    got = s[lo].astype(np.float64)
    normal = truth >= fi.tiny
    assert normal.any() and (~normal).any()
    np.testing.assert_allclose(got[normal], truth[normal], rtol=tol, atol=0)
    assert np.abs(got[~normal] - truth[~normal]).max() <= 4 * fi.smallest_subnormal
    assert np.all(s[xd > 40] == 1)
    assert s[xd == -1000].max() == 0  # exp(-1000) is below the smallest subnormal
