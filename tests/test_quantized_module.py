"""The quantized modules' API: state_dict, load_state_dict, dequantize, repr,
construction, inference-only, and the errors of bad input."""

from __future__ import annotations

import numpy as np
import pytest
from _util import make_layer

import fusedrnn as fr
from fusedrnn import quantized as frq
from fusedrnn.quantized import reference as qref


def test_state_dict_names_dtypes_and_values():
    m = fr.LSTM(4, 6, num_layers=2, bidirectional=True, proj_size=3, seed=0)
    q = fr.quantize_dynamic(m)
    sd = q.state_dict()
    want = []
    for sfx in ("_l0", "_l0_reverse", "_l1", "_l1_reverse"):
        want += [f"weight_ih{sfx}", f"weight_ih{sfx}_scale", f"weight_hh{sfx}",
                 f"weight_hh{sfx}_scale", f"bias_ih{sfx}", f"bias_hh{sfx}",
                 f"weight_hr{sfx}", f"weight_hr{sfx}_scale"]
    assert list(sd) == want
    fsd = m.state_dict()
    for n, a in fsd.items():
        if n.startswith("weight"):
            q8, s = qref.quantize_weight(a)
            assert sd[n].dtype == np.int8 and np.array_equal(sd[n], q8)
            assert sd[n + "_scale"].dtype == np.float32 and np.array_equal(sd[n + "_scale"], s)
        else:
            assert sd[n].dtype == np.float32 and np.array_equal(sd[n], a)
    sd16 = fr.quantize_dynamic(m, "float16").state_dict()
    assert not any(k.endswith("_scale") for k in sd16)
    assert sd16["weight_hh_l1"].dtype == np.float16
    bf = fr.quantize_dynamic(m, "bfloat16").state_dict()
    assert bf["weight_hr_l0"].dtype == np.uint16
    assert np.array_equal(bf["weight_hr_l0"], qref.to_bfloat16_bits(fsd["weight_hr_l0"]))
    # copies, and read-only attributes
    sd["weight_ih_l0"][:] = 0
    assert q.weight_ih_l0.any() and not q.weight_ih_l0.flags.writeable
    with pytest.raises(AttributeError, match="load_state_dict"):
        q.weight_ih_l0 = sd["weight_ih_l0"]


@pytest.mark.parametrize("mode", ["int8", "float16", "bfloat16"])
def test_state_dict_round_trip(mode):
    a = fr.quantize_dynamic(fr.GRU(5, 8, num_layers=2, seed=1), mode)
    b = fr.quantize_dynamic(fr.GRU(5, 8, num_layers=2, seed=2), mode)
    x = np.random.default_rng(0).normal(size=(6, 2, 5)).astype(np.float32)
    assert not np.array_equal(a(x)[0], b(x)[0])
    assert b.load_state_dict(a.state_dict()) == ([], [])
    assert np.array_equal(a(x)[0], b(x)[0])


def test_load_state_dict_errors_change_nothing():
    q = fr.quantize_dynamic(fr.RNN(3, 4, seed=0))
    x = np.ones((2, 1, 3), np.float32)
    y0 = q(x)[0]
    good = q.state_dict()
    bad_cases = [
        ({"weight_ih_l0": good["weight_ih_l0"].astype(np.float32)}, TypeError, "integers"),
        ({"weight_ih_l0": np.full((4, 3), -128, np.int16)}, ValueError, r"\[-127, 127\]"),
        ({"weight_ih_l0": np.zeros((4, 2), np.int8)}, ValueError, "shape"),
        ({"weight_ih_l0_scale": np.zeros(4, np.float32)}, ValueError, "> 0"),
        ({"bias_hh_l0": np.full(4, np.nan, np.float32)}, ValueError, "finite"),
    ]
    for change, exc, match in bad_cases:
        with pytest.raises(exc, match=match):
            q.load_state_dict({**good, **change})
    with pytest.raises(ValueError, match="missing keys"):
        q.load_state_dict({k: v for k, v in good.items() if k != "bias_ih_l0"})
    with pytest.raises(ValueError, match="unexpected keys"):
        q.load_state_dict({**good, "weight_hr_l0": good["weight_ih_l0"]})
    assert np.array_equal(q(x)[0], y0)
    r = q.load_state_dict({"bias_ih_l0": np.zeros(4)}, strict=False)
    assert "weight_ih_l0" in r.missing_keys and not q.bias_ih_l0.any()


@pytest.mark.parametrize("mode", ["int8", "float16", "bfloat16"])
def test_dequantize(mode):
    m = fr.LSTM(4, 6, num_layers=2, batch_first=True, bidirectional=True, proj_size=2, seed=3)
    q = fr.quantize_dynamic(m, mode)
    d = q.dequantize()
    assert type(d) is fr.LSTM and repr(d) == repr(m)
    sd, qsd = d.state_dict(), q.state_dict()
    for n, a in sd.items():
        assert a.dtype == np.float32
        if n.startswith("weight") and mode == "int8":
            assert np.array_equal(a, qsd[n].astype(np.float32) * qsd[n + "_scale"][:, None])
        elif n.startswith("weight") and mode == "bfloat16":
            assert np.array_equal(a, qref.from_bfloat16_bits(qsd[n]))
        else:
            assert np.array_equal(a, qsd[n].astype(np.float32))
    # the dequantized module trains; requantizing it gives the same stored weights
    x = np.random.default_rng(1).normal(size=(2, 5, 4)).astype(np.float32)
    _, _, tape = d.forward(x)
    assert tape is not None
    q2 = fr.quantize_dynamic(d, mode)
    for n, a in q2.state_dict().items():
        assert np.array_equal(a, qsd[n]), n
    c = fr.quantize_dynamic(fr.GRUCell(3, 5, reset_after=False, seed=0), mode).dequantize()
    assert type(c) is fr.GRUCell and c.reset_after is False


def test_repr():
    assert repr(fr.quantize_dynamic(fr.LSTM(10, 20, num_layers=2, seed=0))) == (
        "QuantizedLSTM(10, 20, num_layers=2, dtype=int8)")
    assert repr(fr.quantize_dynamic(fr.GRU(3, 4, reset_after=False, bias=False,
                                           bidirectional=True, seed=0), "float16")) == (
        "QuantizedGRU(3, 4, reset_after=False, bias=False, bidirectional=True, dtype=float16)")
    assert repr(fr.quantize_dynamic(fr.RNNCell(3, 4, nonlinearity="relu", seed=0),
                                    np.float16)) == (
        "QuantizedRNNCell(3, 4, nonlinearity=relu, dtype=float16)")
    assert repr(frq.LSTMCell(2, 3, dtype="bfloat16", seed=0)) == (
        "QuantizedLSTMCell(2, 3, dtype=bfloat16)")


def test_constructors_and_float64_modules():
    q = frq.LSTM(4, 5, num_layers=2, proj_size=2, dtype=np.int8, seed=4)
    ref_q = fr.quantize_dynamic(fr.LSTM(4, 5, num_layers=2, proj_size=2, seed=4))
    for n, a in q.state_dict().items():
        assert np.array_equal(a, ref_q.state_dict()[n])
    assert frq.GRU(3, 4).dtype == "int8" and frq.RNN(3, 4, nonlinearity="relu").dtype == "int8"
    # a float64 module quantizes from its float64 weights; the copy computes in float32
    m64 = fr.GRU(4, 6, dtype=np.float64, seed=5)
    q64 = fr.quantize_dynamic(m64)
    w = m64.state_dict()["weight_hh_l0"]
    assert np.array_equal(q64.weight_hh_l0, qref.quantize_weight(w)[0])
    x = np.random.default_rng(0).normal(size=(3, 2, 4))
    y64, h64 = q64(x)  # float64 input: rounded to float32
    y32, h32 = q64(x.astype(np.float32))
    assert y64.dtype == np.float32 and np.array_equal(y64, y32) and np.array_equal(h64, h32)
    assert np.abs(y64 - m64(x)[0]).max() < 0.05
    # an empty batch, as the float layers
    y, h = q64(np.zeros((3, 0, 4), np.float32))
    assert y.shape == (3, 0, 6) and h.shape == (1, 0, 6)


def test_inference_only():
    q = fr.quantize_dynamic(fr.LSTM(3, 4, seed=0))
    x = np.zeros((2, 1, 3), np.float32)
    with pytest.raises(RuntimeError, match=r"inference-only.*dequantize\(\)"):
        q.forward(x)  # the float layers' default is train=True: here it must be asked for
    with pytest.raises(RuntimeError, match="inference-only"):
        q.forward(x, train=True)
    with pytest.raises(RuntimeError, match="inference-only"):
        q.backward(None, x)
    c = fr.quantize_dynamic(fr.GRUCell(3, 4, seed=0))
    with pytest.raises(RuntimeError, match="inference-only"):
        c.forward(x[0], train=True)
    with pytest.raises(RuntimeError, match="inference-only"):
        c.backward(None, None)


def test_bad_arguments():
    m = fr.LSTM(3, 4, seed=0)
    for bad in ("int4", "qint8", np.float32, "float32"):
        with pytest.raises(ValueError, match="dtype"):
            fr.quantize_dynamic(m, bad)
    with pytest.raises(TypeError, match="dtype"):
        fr.quantize_dynamic(m, object())
    for bad in (np.zeros(3), "lstm", None):
        with pytest.raises(TypeError, match="module: expected a fusedrnn.LSTM"):
            fr.quantize_dynamic(bad)
    with pytest.raises(TypeError, match="already quantized"):
        fr.quantize_dynamic(fr.quantize_dynamic(m))
    nan = fr.LSTM(3, 4, seed=0)
    sd = nan.state_dict()
    sd["weight_hh_l0"][0, 0] = np.inf
    nan.load_state_dict(sd)
    with pytest.raises(ValueError, match="weight_hh_l0: non-finite"):
        fr.quantize_dynamic(nan)


@pytest.mark.parametrize("mode", ["int8", "float16"])
def test_bad_inputs(mode):
    q = fr.quantize_dynamic(fr.LSTM(3, 4, num_layers=2, seed=0), mode)
    x = np.zeros((5, 2, 3), np.float32)
    h = np.zeros((2, 2, 4), np.float32)
    cases = [
        (dict(x=np.zeros((5, 2, 2), np.float32)), ValueError, "x: expected input_size 3"),
        (dict(x=np.zeros((5, 3), np.int64)), TypeError, "x: expected a floating"),
        (dict(x=np.zeros((5, 2, 3, 1), np.float32)), ValueError, "x: expected 3 dimensions"),
        (dict(hx=h), TypeError, r"hx: expected a tuple \(h_0, c_0\)"),
        (dict(hx=(h, h[:1])), ValueError, r"hx\[1\] \(c_0\): expected shape \(2, 2, 4\)"),
        (dict(lengths=[6, 1]), ValueError, "lengths"),
    ]
    if mode == "int8":
        bad_x = x.copy()
        bad_x[1, 1, 2] = np.nan
        bad_h = h.copy()
        bad_h[0, 0, 0] = np.inf
        cases += [(dict(x=bad_x), ValueError, "x: non-finite"),
                  (dict(hx=(h, bad_h)), ValueError, r"hx\[1\] \(c_0\): non-finite")]
    for kw, exc, match in cases:
        args = dict(x=x, hx=None, lengths=None)
        args.update(kw)
        with pytest.raises(exc, match=match):
            q(args["x"], args["hx"], lengths=args["lengths"])
    cell = fr.quantize_dynamic(fr.GRUCell(3, 4, seed=0), mode)
    xc = np.zeros((2, 3), np.float32)
    cell_cases = [
        ((np.zeros((2, 5), np.float32), None), ValueError, "x: expected input_size 3"),
        ((xc, np.zeros((3, 4), np.float32)), ValueError, r"hx: expected shape \(2, 4\)"),
        ((xc, (np.zeros((2, 4)), np.zeros((2, 4)))), TypeError, "hx: expected an array"),
        ((np.zeros((2, 3), np.int32), None), TypeError, "x: expected a floating"),
    ]
    if mode == "int8":
        bad = xc.copy()
        bad[0, 0] = np.inf
        bad_h = np.zeros((2, 4), np.float32)
        bad_h[1, 1] = np.nan
        cell_cases += [((bad, None), ValueError, "x: non-finite"),
                       ((xc, bad_h), ValueError, "hx: non-finite")]
    for args, exc, match in cell_cases:
        with pytest.raises(exc, match=match):
            cell(*args)


def test_16bit_modes_propagate_nan_as_the_float_path():
    q = fr.quantize_dynamic(fr.RNN(2, 3, seed=0), "float16")
    x = np.zeros((2, 1, 2), np.float32)
    x[0, 0, 0] = np.nan
    y, _ = q(x)
    assert np.isnan(y).all()


def test_int8_error_against_float32_is_small():
    """The int8 layer's outputs against the float32 layer's on the same weights: an
    error there is (the scheme quantizes), and it is small (docs/quantization.md)."""
    x = np.random.default_rng(0).normal(size=(20, 4, 32)).astype(np.float32)
    for kind in ("lstm", "gru", "rnn_tanh"):
        m = make_layer(kind, 32, 64, seed=9)
        err = np.abs(fr.quantize_dynamic(m)(x)[0] - m(x)[0]).max()
        assert 1e-4 < err < 0.05, (kind, err)


def test_pickle_and_deepcopy():
    import copy  # noqa: PLC0415
    import pickle  # noqa: PLC0415

    x = np.random.default_rng(0).normal(size=(4, 2, 3)).astype(np.float32)
    for mode in ("int8", "bfloat16"):
        q = fr.quantize_dynamic(fr.LSTM(3, 5, num_layers=2, proj_size=2, seed=0), mode)
        for other in (copy.deepcopy(q), pickle.loads(pickle.dumps(q))):
            assert repr(other) == repr(q) and not other.weight_hh_l1.flags.writeable
            assert np.array_equal(other(x)[0], q(x)[0])
    c = fr.quantize_dynamic(fr.GRUCell(3, 4, seed=0))
    assert np.array_equal(pickle.loads(pickle.dumps(c))(x[0]), c(x[0]))
