"""The NumPy reference of quantized layers (fusedrnn.quantized.reference) on its own.

- Wiring: with the weights' dequantized values and unquantized activations
  (``dequantized=True``) it equals the float64 reference ``fusedrnn.reference`` on
  those weights, for every kind and option.
- Error: the int8 arithmetic stays within the bound derived in docs/quantization.md of
  the float64 model with the original weights, for one product and for one step (and
  the bound is not vacuous: it is attained within a factor).
- 16-bit weights: the error is that of the weights' rounding alone.
"""

from __future__ import annotations

import numpy as np
import pytest
from _qbounds import assert_within, product_bounds, step_bounds
from _qutil import KINDS, dequantized_params, float_params, quantized_params

from fusedrnn import reference as ref
from fusedrnn.quantized import reference as qref

OPTIONS = [
    dict(),
    dict(num_layers=2, bidirectional=True, lengths=[5, 2, 4]),
    dict(bias=False, lengths=[3, 5, 1]),
    dict(num_layers=3),
]


def _hx(kind, rng, L, B, Hr, H):
    h0 = rng.uniform(-1, 1, (L, B, Hr))
    return (h0, rng.uniform(-2, 2, (L, B, H))) if kind == "lstm" else h0


@pytest.mark.parametrize("opts", OPTIONS)
@pytest.mark.parametrize("mode", ["int8", "float16", "bfloat16"])
@pytest.mark.parametrize("kind", KINDS + ["lstm_proj"])
def test_dequantized_wiring_equals_float_reference(kind, mode, opts):
    P = 3 if kind == "lstm_proj" else 0
    kind = kind.replace("_proj", "")
    opts = dict(opts)
    L, bi = opts.pop("num_layers", 1), opts.pop("bidirectional", False)
    lengths = opts.pop("lengths", None)
    T, B, I, H = 5, 3, 4, 6
    fp = float_params(kind, I, H, num_layers=L, bidirectional=bi, proj_size=P, **opts)
    qp = quantized_params(fp, mode)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(T, B, I))
    D = 2 if bi else 1
    hx = _hx(kind, rng, L * D, B, P or H, H)
    lens = None if lengths is None else np.array(lengths)
    y, h_n, c_n = qref.quantized_forward(kind, x, hx, qp, num_layers=L, bidirectional=bi,
                                         lengths=lens, dequantized=True)
    y2, h2, c2, _ = ref.stack_forward(kind, x, hx, dequantized_params(qp), num_layers=L,
                                      bidirectional=bi, lengths=lens)
    np.testing.assert_allclose(y, y2, rtol=0, atol=1e-12)
    np.testing.assert_allclose(h_n, h2, rtol=0, atol=1e-12)
    if kind == "lstm":
        np.testing.assert_allclose(c_n, c2, rtol=0, atol=1e-12)
    # the exact scheme runs the same wiring: float32 results near the dequantized model
    yq, hq, _ = qref.quantized_forward(kind, x, hx, qp, num_layers=L, bidirectional=bi,
                                       lengths=lens)
    assert yq.dtype == np.float32 and hq.dtype == np.float32 and yq.shape == y.shape
    assert np.abs(yq - y).max() < 0.05


@pytest.mark.parametrize("kind", KINDS)
def test_cell_step_is_a_one_step_layer(kind):
    I, H, B = 5, 7, 4
    fp = {k.replace("_l0", ""): v for k, v in float_params(kind, I, H).items()}
    qp = quantized_params(fp)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(B, I)).astype(np.float32)
    h = rng.uniform(-1, 1, (B, H)).astype(np.float32)
    hx = (h, rng.uniform(-1, 1, (B, H)).astype(np.float32)) if kind == "lstm" else h
    dq = dequantized_params(qp)
    got = qref.quantized_cell(kind, x, hx, qp, dequantized=True)
    if kind == "lstm":
        want = ref.lstm_cell(x.astype(np.float64), *(a.astype(np.float64) for a in hx),
                             dq["weight_ih"], dq["weight_hh"], dq["bias_ih"], dq["bias_hh"])
    elif kind.startswith("gru"):
        want = ref.gru_cell(x.astype(np.float64), h.astype(np.float64), dq["weight_ih"],
                            dq["weight_hh"], dq["bias_ih"], dq["bias_hh"],
                            reset_after=kind == "gru")
    else:
        want = ref.rnn_cell(x.astype(np.float64), h.astype(np.float64), dq["weight_ih"],
                            dq["weight_hh"], dq["bias_ih"], dq["bias_hh"],
                            nonlinearity=kind[4:])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    q1 = qref.quantized_cell(kind, x, hx, qp)
    for a, b in zip(q1 if kind == "lstm" else [q1], want if kind == "lstm" else [want]):
        assert a.dtype == np.float32 and np.abs(a - b).max() < 0.05


@pytest.mark.parametrize("K", [1, 7, 64, 300])
def test_one_product_within_the_derived_bound(K):
    rng = np.random.default_rng(K)
    a = np.concatenate([rng.normal(size=(6, K)), rng.uniform(-1, 1, (2, K)),
                        np.zeros((1, K))]).astype(np.float32)
    a[0, 0] = 40.0  # one outlier: a coarse row scale
    w = rng.uniform(-1, 1, (9, K)) * rng.uniform(0.01, 1, (9, 1))
    w[3] = 0.0  # a zero row: scale 1, q 0
    qw, sw = qref.quantize_weight(w)
    qa, sa = qref.quantize_rows(a)
    got = qref.quant_matmul(qa, qw).astype(np.float32) * (sa[:, None] * sw[None, :])
    exact = a.astype(np.float64) @ w.T
    lo, hi = product_bounds(a, a, w, sw)
    assert_within(exact, (lo, hi), "the exact product")
    assert_within(got, (lo, hi), "the int8 product")
    # not vacuous: somewhere the error reaches 1/30 of its bound (with K = 1 every
    # row's one value is its own amax, quantized to +-127 exactly: no error to speak of)
    ratio = np.abs(got - exact) / np.maximum((hi - lo) / 2, 1e-300)
    if K > 1:
        assert ratio.max() >= 1 / 30, ratio.max()


@pytest.mark.parametrize("kind", KINDS + ["lstm_proj"])
def test_one_step_within_the_derived_bound(kind):
    P = 4 if kind == "lstm_proj" else 0
    kind = kind.replace("_proj", "")
    I, H, B = 24, 16, 5
    fp = {k.replace("_l0", ""): v for k, v in float_params(kind, I, H, proj_size=P).items()}
    qp = quantized_params(fp)
    p = {n: fp[n].astype(np.float64) for n in fp}
    p.update({n: qp[n] for n in qp if n.endswith("_scale")})
    p.setdefault("weight_hr", None)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(B, I)).astype(np.float32)
    h = rng.uniform(-1, 1, (B, P or H)).astype(np.float32)
    c = rng.uniform(-2, 2, (B, H)).astype(np.float32)
    cbox = (c.astype(np.float64),) * 2 if kind == "lstm" else None
    hbox, cbox = step_bounds(kind, (x, x), (h, h), cbox, p)
    hx = (h, c) if kind == "lstm" else h
    q = qref.quantized_cell(kind, x, hx, qp)
    f = qref.quantized_cell(kind, x, hx, quantized_params(fp, "float16"), dequantized=True)
    exact = (ref.lstm_cell if kind == "lstm" else None)
    if kind == "lstm" and not P:
        exact = ref.lstm_cell(x.astype(np.float64), h.astype(np.float64), c.astype(np.float64),
                              *(p[n] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")))
        assert_within(exact[0], hbox, "float64 h'")
        assert_within(exact[1], cbox, "float64 c'")
    q_h = q[0] if kind == "lstm" else q
    assert_within(q_h, hbox, "int8 h'")
    if kind == "lstm":
        assert_within(q[1], cbox, "int8 c'")
    # the bound is not vacuous: its half-width stays well below the states' range
    assert (hbox[1] - hbox[0]).max() / 2 < 0.25
    f_h = f[0] if kind == "lstm" else f
    assert np.abs(q_h - f_h).max() > 0  # int8 differs from (near-exact) float16


@pytest.mark.parametrize("mode,rel", [("float16", 2.0**-11), ("bfloat16", 2.0**-8)])
@pytest.mark.parametrize("kind", KINDS)
def test_16bit_error_is_the_weights_rounding(kind, mode, rel):
    T, B, I, H = 4, 3, 8, 16
    fp = float_params(kind, I, H)
    qp = quantized_params(fp, mode)
    dq = dequantized_params(qp)
    for n, a in fp.items():  # the stored weights: the float weights rounded once
        assert np.all(np.abs(dq[n] - a) <= rel * np.abs(a) + 1e-30), n
    x = np.random.default_rng(4).normal(size=(T, B, I)).astype(np.float32)
    y, _, _ = qref.quantized_forward(kind, x, None, qp)
    y_dq, _, _, _ = ref.stack_forward(kind, x.astype(np.float64), None, dq)
    np.testing.assert_allclose(y, y_dq, rtol=0, atol=1e-5)  # float32 arithmetic only


def test_weight_mode_and_errors():
    assert qref.weight_mode(np.zeros(2, np.int8)) == "int8"
    assert qref.weight_mode(np.zeros(2, np.float16)) == "float16"
    assert qref.weight_mode(np.zeros(2, np.uint16)) == "bfloat16"
    with pytest.raises(TypeError, match="weight"):
        qref.weight_mode(np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="kind"):
        qref.quantized_forward("lstmx", np.zeros((1, 1, 1)), None, {})
