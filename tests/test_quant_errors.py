"""Bad input to the compiled quantized kernels: every argument of _core.QuantWeights and
_core.quant_forward checked with an error naming it (TypeError for a dtype, ValueError
otherwise), non-finite activations refused in int8 mode, and the probes' checks."""

import numpy as np
import pytest

import fusedrnn
from fusedrnn import _core

from _quant import F32, F64, MODES, kernel, make_weights  # noqa: F401 (fixture)


# ---- bad input ------------------------------------------------------------------------


def _good(cell="lstm", mode="int8", I=4, H=3, P=0):
    kw, _ = make_weights(cell, mode, I, H, P=P, seed=1)
    return kw


@pytest.mark.parametrize("change,err,match", [
    (dict(cell="lsmt"), ValueError, "cell: expected one of"),
    (dict(mode="int4"), ValueError, "mode: expected one of"),
    (dict(weight_ih=np.zeros((12, 4), np.float32)), TypeError, "weight_ih: expected dtype int8"),
    (dict(weight_hh=np.zeros((12, 3), np.int16)), TypeError, "weight_hh: expected dtype int8"),
    (dict(weight_ih=np.zeros((12,), np.int8)), ValueError, "weight_ih: expected a 2-D array"),
    (dict(weight_ih=np.zeros((10, 4), np.int8)), ValueError, r"weight_ih: expected \(4 \* hidden"),
    (dict(weight_hh=np.zeros((12, 4), np.int8)), ValueError, r"weight_hh: expected shape \(12, 3"),
    (dict(weight_ih=np.zeros((4, 12), np.int8).T), ValueError, "weight_ih: expected a C-contig"),
    (dict(weight_ih=np.full((12, 4), -128, np.int8)), ValueError, "weight_ih: int8 weights must"),
    (dict(weight_ih=np.zeros((12, 0), np.int8)), ValueError, "weight_ih: expected at least one"),
    (dict(weight_ih=np.zeros((4, 133001), np.int8)), ValueError, "weight_ih: at most 133000"),
    (dict(scale_ih=None), ValueError, "scale_ih: required in int8 mode"),
    (dict(scale_hh=np.ones(11, np.float32)), ValueError, r"scale_hh: expected shape \(12,\)"),
    (dict(scale_hh=np.ones(12, np.float64)), TypeError, "scale_hh: expected dtype float32"),
    (dict(scale_ih=np.zeros(12, np.float32)), ValueError, "scale_ih: expected finite, positive"),
    (dict(scale_ih=np.full(12, -1, np.float32)), ValueError, "scale_ih: expected finite, pos"),
    (dict(scale_hh=np.full(12, np.nan, np.float32)), ValueError, "scale_hh: expected finite"),
    (dict(scale_hh=np.full(12, np.inf, np.float32)), ValueError, "scale_hh: expected finite"),
    (dict(bias_ih=None), ValueError, "bias_ih, bias_hh: give both or neither"),
    (dict(bias_hh=np.zeros(12, np.float64)), TypeError, "bias_hh: expected dtype float32"),
    (dict(bias_ih=np.zeros(11, np.float32)), ValueError, r"bias_ih: expected shape \(12,\)"),
    (dict(scale_hr=np.ones(2, np.float32)), ValueError, "scale_hr: given without weight_hr"),
])
def test_quant_weights_bad_arguments(change, err, match):
    kw = _good()
    cell = change.pop("cell", "lstm")
    mode = change.pop("mode", "int8")
    kw.update(change)
    with pytest.raises(err, match=match):
        _core.QuantWeights(cell, mode, **kw)


def test_quant_weights_bad_16bit_and_projection_arguments():
    kw = _good(mode="float16")
    with pytest.raises(ValueError, match="scale_ih: only int8 weights have scales"):
        _core.QuantWeights("lstm", "float16", scale_ih=np.ones(12, np.float32), **kw)
    bad = dict(kw, weight_ih=kw["weight_ih"].astype(">f2"))
    with pytest.raises(TypeError, match="weight_ih: expected dtype float16"):
        _core.QuantWeights("lstm", "float16", **bad)
    with pytest.raises(TypeError, match=r"weight_ih: expected dtype uint16 \(bfloat16 bits\)"):
        _core.QuantWeights("lstm", "bfloat16", **kw)
    kw = _good(P=2)
    with pytest.raises(ValueError, match="scale_hr: required in int8 mode"):
        _core.QuantWeights("lstm", "int8", **dict(kw, scale_hr=None))
    with pytest.raises(ValueError, match=r"weight_hr: expected shape \(proj_size, 3\)"):
        _core.QuantWeights("lstm", "int8", **dict(kw, weight_hr=np.zeros((2, 4), np.int8)))
    kw = _good(cell="gru")
    with pytest.raises(ValueError, match="weight_hr: only an LSTM has a projection"):
        _core.QuantWeights("gru", "int8", weight_hr=np.zeros((2, 3), np.int8),
                           scale_hr=np.ones(2, np.float32), **kw)


@pytest.mark.parametrize("mode", MODES)
def test_quant_forward_bad_arguments(mode):
    qw = _core.QuantWeights("lstm", mode, **_good(mode=mode))
    x = np.zeros((2, 3, 4), F32)
    h0 = np.zeros((3, 3), F32)
    with pytest.raises(TypeError, match="x: expected dtype float32"):
        _core.quant_forward(qw, x.astype(F64), h0, h0)
    with pytest.raises(ValueError, match="x: expected 4 input features"):
        _core.quant_forward(qw, np.zeros((2, 3, 5), F32), h0, h0)
    with pytest.raises(ValueError, match=r"x: expected 3 dimensions"):
        _core.quant_forward(qw, np.zeros((3, 4), F32), h0, h0)
    with pytest.raises(ValueError, match=r"h0: expected shape \(3, 3\)"):
        _core.quant_forward(qw, x, np.zeros((2, 3), F32), h0)
    with pytest.raises(TypeError, match="h0: expected dtype float32"):
        _core.quant_forward(qw, x, h0.astype(F64), h0)
    with pytest.raises(ValueError, match="c0: required for an LSTM"):
        _core.quant_forward(qw, x, h0)
    with pytest.raises(ValueError, match="batch_sizes: expected non-increasing"):
        _core.quant_forward(qw, np.zeros((4, 4), F32), h0, h0,
                            batch_sizes=np.array([1, 3], np.int64))
    with pytest.raises(ValueError, match=r"x: expected 6 rows \(the sum of batch_sizes\)"):
        _core.quant_forward(qw, np.zeros((5, 4), F32), h0, h0,
                            batch_sizes=np.array([3, 3], np.int64))
    g = _core.QuantWeights("gru", mode, **_good(cell="gru", mode=mode))
    with pytest.raises(ValueError, match="c0: only an LSTM has a cell state"):
        _core.quant_forward(g, x, h0, h0)


@pytest.mark.parametrize("where", ["x", "h0", "c0"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_quant_forward_refuses_non_finite_in_int8(kernel, where, bad):
    qw = _core.QuantWeights("lstm", "int8", **_good())
    args = {"x": np.zeros((2, 3, 4), F32), "h0": np.zeros((3, 3), F32),
            "c0": np.zeros((3, 3), F32)}
    args[where][-1, -1] = bad
    with pytest.raises(ValueError, match="x, h0 or c0: non-finite values"):
        _core.quant_forward(qw, args["x"], args["h0"], args["c0"])


def test_relu_overflow_is_reported_not_garbage(kernel):
    # A relu RNN whose state overflows to inf cannot quantize it at the next step.
    H = 4
    kw = dict(weight_ih=np.full((H, 1), 127, np.int8), weight_hh=np.full((H, H), 127, np.int8),
              scale_ih=np.full(H, 1e30, np.float32), scale_hh=np.full(H, 1e30, np.float32))
    qw = _core.QuantWeights("rnn_relu", "int8", **kw)
    with pytest.raises(ValueError, match="non-finite"):
        _core.quant_forward(qw, np.ones((3, 1, 1), F32), np.zeros((1, H), F32))


def test_weights_keep_the_isa_that_packed_them():
    isas = fusedrnn.cpu_info()["available"]
    before = fusedrnn.cpu_info()["isa"]
    try:
        _core._use_isa(isas[-1])
        qw = _core.QuantWeights("gru", "int8", **_good(cell="gru"))
        _core._use_isa(isas[0])
        assert qw.isa == isas[-1]
        y, _, _ = _core.quant_forward(qw, np.ones((2, 1, 4), F32), np.zeros((1, 3), F32))
        assert np.all(np.isfinite(y))
    finally:
        _core._use_isa(before)
