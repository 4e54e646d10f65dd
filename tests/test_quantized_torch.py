"""fusedrnn.torch.quantize_dynamic and fusedrnn.torch.quantized's modules.

Parity with torch's own ``torch.ao.quantization.quantize_dynamic`` on the same weights
and inputs (ours at least as close to float32 as torch's int8), the same numbers as the
NumPy quantized modules, torch's conversion semantics (qconfig_spec, inplace), the
inference-only guard, state_dict, repr and bad input.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest

import fusedrnn as fr


def _torch_quantize(torch, model, spec, dtype):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation warnings
        return torch.ao.quantization.quantize_dynamic(model, spec, dtype=dtype)


@pytest.mark.parametrize("shape", [(20, 1, 32, 64), (10, 8, 64, 128), (6, 4, 16, 256)])
@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_at_least_as_close_to_float32_as_torch_int8(torch, frt, kind, shape):
    T, B, I, H = shape
    torch.manual_seed(sum(shape))
    nn = torch.nn
    model = nn.Sequential(getattr(nn, kind)(I, H, num_layers=2))
    x = torch.randn(T, B, I)
    ours = frt.quantize_dynamic(model)
    theirs = _torch_quantize(torch, model, {getattr(nn, kind)}, torch.qint8)
    with torch.no_grad():
        y32 = model(x)[0]
        e_ours = (ours(x)[0] - y32).abs().max().item()
        e_torch = (theirs(x)[0] - y32).abs().max().item()
    assert isinstance(ours[0], getattr(frt.quantized, kind))
    assert type(theirs[0]).__module__.startswith("torch.ao.nn.quantized")
    assert 0 < e_ours <= e_torch, (e_ours, e_torch)
    # float16 weights: the same rounding of the same weights as torch's float16 mode
    ours16 = frt.quantize_dynamic(model, dtype=torch.float16)
    theirs16 = _torch_quantize(torch, model, {getattr(nn, kind)}, torch.float16)
    with torch.no_grad():
        e16 = (ours16(x)[0] - y32).abs().max().item()
        e16_torch = (theirs16(x)[0] - y32).abs().max().item()
    assert 0 < e16 <= 1.01 * e16_torch + 1e-6, (e16, e16_torch)


@pytest.mark.parametrize("kind", ["LSTMCell", "GRUCell"])
def test_cells_at_least_as_close_to_float32_as_torch_int8(torch, frt, kind):
    torch.manual_seed(0)
    cell = getattr(torch.nn, kind)(48, 96)
    x = torch.randn(4, 48)
    ours = frt.quantize_dynamic(cell)
    holder = _torch_quantize(torch, torch.nn.Sequential(cell), {type(cell)}, torch.qint8)
    with torch.no_grad():
        ref = cell(x)
        got, tq = ours(x), holder[0](x)
    if kind == "LSTMCell":
        ref, got, tq = ref[0], got[0], tq[0]
    e_ours, e_torch = (got - ref).abs().max().item(), (tq - ref).abs().max().item()
    assert 0 < e_ours <= e_torch, (e_ours, e_torch)


LAYERS = [
    ("LSTM", dict(num_layers=2, bidirectional=True, proj_size=3)),
    ("GRU", dict(batch_first=True, bias=False)),
    ("RNN", dict(nonlinearity="relu", num_layers=2)),
]


@pytest.mark.parametrize("mode", ["qint8", "float16", "bfloat16"])
@pytest.mark.parametrize("kind,kw", LAYERS)
def test_layers_equal_the_numpy_quantized_modules(torch, frt, kind, kw, mode):
    torch.manual_seed(1)
    m = getattr(torch.nn, kind)(5, 6, **kw)
    q = frt.quantize_dynamic(m, dtype=getattr(torch, mode))
    np_float = getattr(fr, kind)(5, 6, **kw)
    np_float.load_state_dict({k: v.detach().numpy() for k, v in m.state_dict().items()})
    nq = fr.quantize_dynamic(np_float, {"qint8": "int8"}.get(mode, mode))
    bf = kw.get("batch_first", False)
    x = torch.randn(3, 4, 5) if bf else torch.randn(4, 3, 5)
    D = 2 if kw.get("bidirectional") else 1
    L = kw.get("num_layers", 1)
    h0 = torch.rand(L * D, 3, kw.get("proj_size") or 6) - 0.5
    c0 = torch.rand(L * D, 3, 6) - 0.5
    hx = (h0, c0) if kind == "LSTM" else h0
    hx_np = (h0.numpy(), c0.numpy()) if kind == "LSTM" else h0.numpy()
    for args, np_args in (((x,), (x.numpy(),)), ((x, hx), (x.numpy(), hx_np))):
        y, state = q(*args)
        y_np, state_np = nq(*np_args)
        assert isinstance(y, torch.Tensor) and np.array_equal(y.numpy(), y_np)
        for a, b in zip(*(s if kind == "LSTM" else (s,) for s in (state, state_np))):
            assert np.array_equal(a.numpy(), b)
    # unbatched
    y1, _ = q(x[:, 0] if not bf else x[0])
    assert y1.shape[-1] == D * (kw.get("proj_size") or 6) and y1.dim() == 2
    # PackedSequence, unsorted lengths: as the NumPy module's lengths
    if not bf:
        lengths = torch.tensor([4, 2, 3])
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
        out, state = q(packed)
        assert isinstance(out, torch.nn.utils.rnn.PackedSequence)
        y_pad, _ = torch.nn.utils.rnn.pad_packed_sequence(out)
        y_np, state_np = nq(x.numpy(), lengths=lengths.numpy())
        assert np.array_equal(y_pad.numpy(), y_np)
        h = state[0] if kind == "LSTM" else state
        h_np = state_np[0] if kind == "LSTM" else state_np
        assert np.array_equal(h.numpy(), h_np)


@pytest.mark.parametrize("kind", ["LSTMCell", "GRUCell", "RNNCell"])
def test_cells_equal_the_numpy_quantized_cells(torch, frt, kind):
    torch.manual_seed(2)
    m = getattr(torch.nn, kind)(5, 7)
    q = frt.quantize_dynamic(m)
    nf = getattr(fr, kind)(5, 7)
    nf.load_state_dict({k: v.detach().numpy() for k, v in m.state_dict().items()})
    nq = fr.quantize_dynamic(nf)
    x = torch.randn(3, 5)
    h = torch.rand(3, 7) - 0.5
    hx = (h, h * 2) if kind == "LSTMCell" else h
    for args in ((x,), (x, hx), (x[0], (h[0], h[0] * 2) if kind == "LSTMCell" else h[0])):
        got = q(*args)
        want = nq(*(tuple(a.numpy() for a in v) if isinstance(v, tuple) else v.numpy()
                    for v in args))
        for a, b in zip(*(v if kind == "LSTMCell" else (v,) for v in (got, want))):
            assert isinstance(a, torch.Tensor) and np.array_equal(a.numpy(), b)


def test_conversion_follows_torch(torch, frt):
    nn = torch.nn
    torch.manual_seed(3)
    lstm, cell, lin, rnn = nn.LSTM(4, 5), nn.GRUCell(5, 5), nn.Linear(5, 2), nn.RNN(4, 3)
    model = nn.Sequential(lstm, nn.Sequential(cell, lin), rnn, frt.GRU(3, 3))
    q = frt.quantize_dynamic(model)
    assert q is not model and type(model[0]) is nn.LSTM  # inplace=False: a copy
    assert [type(m).__name__ for m in (q[0], q[1][0], q[1][1], q[2], q[3])] == [
        "LSTM", "GRUCell", "Linear", "RNN", "GRU"]
    assert isinstance(q[0], frt.quantized.LSTM) and isinstance(q[3], frt.quantized.GRU)
    assert isinstance(q[2], frt.quantized.RNN)  # torch leaves nn.RNN float; we do it
    assert type(q[1][1]) is nn.Linear  # not ours to quantize
    only_cells = frt.quantize_dynamic(model, {nn.GRUCell})
    assert type(only_cells[0]) is nn.LSTM and isinstance(only_cells[1][0], frt.quantized.GRUCell)
    by_name = frt.quantize_dynamic(model, {"1"})  # a name: the submodule and its children
    assert type(by_name[0]) is nn.LSTM and isinstance(by_name[1][0], frt.quantized.GRUCell)
    spec = {nn.LSTM: torch.ao.quantization.float16_dynamic_qconfig, nn.GRUCell: None}
    mixed = frt.quantize_dynamic(model, spec)
    assert mixed[0].dtype == torch.float16 and type(mixed[1][0]) is nn.GRUCell
    same = frt.quantize_dynamic(model, dtype=torch.bfloat16, inplace=True)
    assert same is model and model[0].dtype == torch.bfloat16
    root = frt.quantize_dynamic(nn.GRU(2, 3))  # the model itself
    assert isinstance(root, frt.quantized.GRU)
    shared = nn.LSTM(2, 2)
    twice = frt.quantize_dynamic(nn.Sequential(shared, nn.Sequential(shared)))
    assert twice[0] is twice[1][0]


def test_inference_only(torch, frt):
    q = frt.quantize_dynamic(torch.nn.LSTM(3, 4))
    x = torch.randn(2, 1, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match="inference-only"):
        q(x)
    h = torch.zeros(1, 1, 4, requires_grad=True)
    with pytest.raises(RuntimeError, match="inference-only"):
        q(x.detach(), (h, h))
    with torch.no_grad():
        y, _ = q(x)
    assert not y.requires_grad
    c = frt.quantize_dynamic(torch.nn.RNNCell(3, 4))
    with pytest.raises(RuntimeError, match="inference-only"):
        c(x[0])
    with torch.inference_mode():
        assert c(x[0]).shape == (1, 4)


def test_state_dict_repr_dequantize(torch, frt):
    nn = torch.nn
    torch.manual_seed(4)
    model = nn.Sequential(nn.LSTM(3, 4, num_layers=2, proj_size=2), nn.GRUCell(3, 4))
    q = frt.quantize_dynamic(model)
    sd = q.state_dict()
    assert sd["0.weight_ih_l0"].dtype == torch.int8
    assert sd["0.weight_ih_l0_scale"].dtype == torch.float32
    assert sd["0.weight_hr_l1"].shape == (2, 4) and sd["1.bias_hh"].dtype == torch.float32
    other = frt.quantize_dynamic(nn.Sequential(nn.LSTM(3, 4, num_layers=2, proj_size=2),
                                               nn.GRUCell(3, 4)))
    x = torch.randn(5, 1, 3)
    assert not torch.equal(other[0](x)[0], q[0](x)[0])
    assert other.load_state_dict(sd) is not None
    assert torch.equal(other[0](x)[0], q[0](x)[0])
    bad = dict(sd)
    bad["0.weight_ih_l0"] = torch.zeros(16, 3)  # float where int8 is stored
    with pytest.raises(RuntimeError, match="integers"):
        other.load_state_dict(bad)
    missing = {k: v for k, v in sd.items() if k != "1.bias_ih"}
    with pytest.raises(RuntimeError, match="Missing key"):
        other.load_state_dict(missing)
    bf = frt.quantize_dynamic(model, dtype=torch.bfloat16)
    bsd = bf.state_dict()
    assert bsd["1.weight_hh"].dtype == torch.bfloat16
    assert torch.equal(bsd["1.weight_hh"], model[1].weight_hh.detach().bfloat16())
    bf2 = frt.quantize_dynamic(copy.deepcopy(model), dtype=torch.bfloat16)
    bf2.load_state_dict(bsd)
    assert repr(q) == (
        "Sequential(\n  (0): QuantizedLSTM(3, 4, num_layers=2, proj_size=2, dtype=torch.qint8)"
        "\n  (1): QuantizedGRUCell(3, 4, dtype=torch.qint8)\n)")
    d = q[0].dequantize()
    assert isinstance(d, frt.LSTM) and d.proj_size == 2
    with torch.no_grad():
        assert (d(x)[0] - model[0](x)[0]).abs().max() < 0.05
        assert torch.equal(d.weight_ih_l0, sd["0.weight_ih_l0"].float()
                           * sd["0.weight_ih_l0_scale"][:, None])


def test_bad_input(torch, frt):
    nn = torch.nn
    with pytest.raises(ValueError, match="dtype: expected torch.qint8"):
        frt.quantize_dynamic(nn.LSTM(2, 3), dtype=torch.quint8)
    with pytest.raises(TypeError, match="model: expected a torch.nn.Module"):
        frt.quantize_dynamic(fr.LSTM(2, 3))
    with pytest.raises(TypeError, match="qconfig_spec"):
        frt.quantize_dynamic(nn.LSTM(2, 3), "LSTM")
    q = frt.quantize_dynamic(nn.GRU(2, 3))
    with pytest.raises(TypeError, match="input is torch.float64"):
        q(torch.zeros(4, 1, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="input: expected input_size 2"):
        q(torch.zeros(4, 1, 5))
    with pytest.raises(ValueError, match="hx: expected shape"):
        q(torch.zeros(4, 1, 2), torch.zeros(2, 1, 3))
    with pytest.raises(ValueError, match="input: non-finite"):
        q(torch.full((4, 1, 2), float("nan")))
    c = frt.quantize_dynamic(nn.LSTMCell(2, 3))
    with pytest.raises(ValueError, match="QuantizedLSTMCell: input: non-finite"):
        c(torch.full((1, 2), float("inf")))
    with pytest.raises(ValueError, match=r"input: expected shape \(B, 2\)"):
        c(torch.zeros(1, 4))
    with pytest.raises(TypeError, match=r"hx: expected a tuple"):
        c(torch.zeros(1, 2), torch.zeros(1, 3))


def test_constructors_copies_and_save(torch, frt):
    import io  # noqa: PLC0415

    torch.manual_seed(5)
    q = frt.quantized.GRU(3, 4, num_layers=2, dtype=torch.float16)
    assert repr(q) == "QuantizedGRU(3, 4, num_layers=2, dtype=torch.float16)"
    m = torch.nn.RNNCell(3, 4, nonlinearity="relu")
    c = frt.quantized.RNNCell.from_float(m)
    assert repr(c) == "QuantizedRNNCell(3, 4, nonlinearity=relu, dtype=torch.qint8)"
    with pytest.raises(TypeError, match="module: expected a torch.nn.LSTM"):
        frt.quantized.LSTM.from_float(torch.nn.Linear(2, 2))
    x = torch.randn(5, 2, 3)
    model = torch.nn.Sequential(q)
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    for other in (copy.deepcopy(model), torch.load(buf, weights_only=False)):
        assert torch.equal(other(x)[0], model(x)[0])
    assert torch.equal(c(x[0]), torch.relu(c(x[0])))
