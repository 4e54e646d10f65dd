"""Self-validation of the NumPy reference (``fusedrnn.reference``), the oracle of the
other tests.  Nothing here depends on the compiled extension.

* every gradient of ``*_backward`` against central finite differences in float64,
  for every input (x, h0, c0, weights, biases) and every element;
* the sequence forwards against the one-step cells applied in a loop, and against the
  formulas of the module docstring written out here with PyTorch's gate layout;
* defaults of ``dh_n`` / ``dc_n``, dtype preservation in float32, no mutation of inputs;
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


def input_names(kind, bias):
    names = ["x", "h0"]
    if KINDS[kind][0] == "lstm":
        names.append("c0")
    names += ["weight_ih", "weight_hh"]
    if bias:
        names += ["bias_ih", "bias_hh"]
    return names


def make_inputs(kind, shape, bias, seed, dtype=np.float64, scale=0.5):
    """Random inputs as a dict keyed by argument name (biases None when bias=False)."""
    T, B, I, H = shape
    G = KINDS[kind][1]
    rng = np.random.default_rng(seed)

    def r(*s):
        return (scale * rng.standard_normal(s)).astype(dtype)

    inp = {"x": r(T, B, I), "h0": r(B, H)}
    if KINDS[kind][0] == "lstm":
        inp["c0"] = r(B, H)
    inp["weight_ih"] = r(G * H, I)
    inp["weight_hh"] = r(G * H, H)
    inp["bias_ih"] = r(G * H) if bias else None
    inp["bias_hh"] = r(G * H) if bias else None
    return inp


def forward(kind, inp):
    """Returns (outputs tuple, cache); outputs are (y, h_n) or (y, h_n, c_n)."""
    base, _, kw = KINDS[kind]
    w = (inp["weight_ih"], inp["weight_hh"], inp["bias_ih"], inp["bias_hh"])
    if base == "lstm":
        y, h, c, cache = ref.lstm_forward(inp["x"], inp["h0"], inp["c0"], *w)
        return (y, h, c), cache
    fwd = ref.gru_forward if base == "gru" else ref.rnn_forward
    y, h, cache = fwd(inp["x"], inp["h0"], *w, **kw)
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


def loss(kind, inp, wts):
    outs, _ = forward(kind, inp)
    return sum(float(np.sum(o * w)) for o, w in zip(outs, wts))


def relu_preactivations(inp, cache):
    """All pre-activations of an RNN (relu) sequence, recomputed from its cache."""
    b = 0.0
    if inp["bias_ih"] is not None:
        b = inp["bias_ih"] + inp["bias_hh"]
    hs = cache["hs"]
    return np.stack(
        [inp["x"][t] @ inp["weight_ih"].T + hs[t] @ inp["weight_hh"].T + b
         for t in range(inp["x"].shape[0])]
    )


def pick_inputs(kind, shape, bias):
    """Inputs for the gradient check.  For relu, the first seed whose pre-activations all
    stay at least RELU_MARGIN away from the kink, with both signs present (so that both
    branches of the derivative are exercised); fail if there is none."""
    if kind != "rnn_relu":
        return make_inputs(kind, shape, bias, seed=0)
    for seed in range(500):
        inp = make_inputs(kind, shape, bias, seed)
        pre = relu_preactivations(inp, forward(kind, inp)[1])
        if np.abs(pre).min() > RELU_MARGIN and (pre > 0).any() and (pre < 0).any():
            return inp
    pytest.fail("no seed gives relu pre-activations away from 0 with both signs")


def rel_err(num, ana):
    return np.linalg.norm(num - ana) / max(np.linalg.norm(num), TINY)


# ----------------------------------------------------------------------------- gradients
@kind_param
@bias_param
@shape_param
def test_gradients_finite_differences(kind, bias, shape):
    inp = pick_inputs(kind, shape, bias)
    outs, cache = forward(kind, inp)
    if kind == "rnn_relu":  # guard, independent of the seed search above
        pre = relu_preactivations(inp, cache)
        assert np.abs(pre).min() > RELU_MARGIN
    wts = loss_weights(outs, seed=0)
    grads = backward(kind, cache, wts)

    names = input_names(kind, bias)
    expected_keys = {GRAD_KEY.get(n, n) for n in names}
    assert set(grads) == expected_keys

    for name in names:
        p = inp[name]
        ana = grads[GRAD_KEY.get(name, name)]
        assert ana.shape == p.shape and ana.dtype == np.float64, name
        num = np.empty_like(p)
        for k in range(p.size):
            orig = p.flat[k]
            p.flat[k] = orig + EPS
            lp = loss(kind, inp, wts)
            p.flat[k] = orig - EPS
            lm = loss(kind, inp, wts)
            p.flat[k] = orig
            num.flat[k] = (lp - lm) / (2 * EPS)
        assert np.linalg.norm(num) > 0, f"{name}: zero gradient, the check is vacuous"
        err = rel_err(num, ana)
        assert err <= FD_RTOL, f"{name}: relative error {err:.3e}\nnum={num}\nana={ana}"


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
