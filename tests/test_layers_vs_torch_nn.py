"""The NumPy layers and cells (fusedrnn.LSTM, ..., fusedrnn.LSTMCell, ...) against
torch.nn.LSTM / GRU / RNN (tanh, relu) and the *Cell classes.  (The drop-in modules of
fusedrnn.torch have their own tests: test_torch_*.py.)

Same weights in both (ours -> torch through ``torch.from_numpy``; torch -> ours through
``load_state_dict`` with torch tensors, Parameters with requires_grad=True included),
then forward outputs and final states, and every gradient: dx, dh0, dc0 and every
parameter, of a loss that uses the outputs and the final states with random weights.

Tolerances, norm-wise relative ``||ours - torch|| / ||torch||``: float32 1e-5 for
outputs and states, 1e-4 for gradients (docs/numerics.md); float64 1e-12 (both sides are
float64, only their summation orders differ).

GRU ``reset_after=False`` has no torch counterpart; it is tested against the NumPy
reference elsewhere.  Skipped without torch, failed under FUSEDRNN_REQUIRE_TORCH=1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from _util import rel_err

import fusedrnn as fr

TOL = {
    np.float32: {"out": 1e-5, "grad": 1e-4},
    np.float64: {"out": 1e-12, "grad": 1e-12},
}
DTYPES = {"f32": np.float32, "f64": np.float64}

# name -> (our class, torch class name, constructor keywords, has a cell state)
LAYERS = {
    "lstm": (fr.LSTM, "LSTM", {}, True),
    "gru": (fr.GRU, "GRU", {}, False),
    "rnn_tanh": (fr.RNN, "RNN", {"nonlinearity": "tanh"}, False),
    "rnn_relu": (fr.RNN, "RNN", {"nonlinearity": "relu"}, False),
}
CELLS = {
    "lstm_cell": (fr.LSTMCell, "LSTMCell", {}, True),
    "gru_cell": (fr.GRUCell, "GRUCell", {}, False),
    "rnn_tanh_cell": (fr.RNNCell, "RNNCell", {"nonlinearity": "tanh"}, False),
    "rnn_relu_cell": (fr.RNNCell, "RNNCell", {"nonlinearity": "relu"}, False),
}


@dataclass(frozen=True)
class Case:
    T: int
    B: int
    I: int
    H: int
    bias: bool = True
    batch_first: bool = False
    unbatched: bool = False  # layers: x (T, I); cells: x (I,)
    hx: bool = True  # give the initial state (else None: zeros)
    load: str = "ours2torch"  # or "torch_params" (requires_grad=True), "torch_state_dict"


LAYER_CASES = {
    "base": Case(5, 3, 4, 6),
    "nobias_bf_nohx": Case(5, 3, 4, 6, bias=False, batch_first=True, hx=False,
                           load="torch_params"),
    "bf_hx_sd": Case(5, 3, 4, 6, batch_first=True, load="torch_state_dict"),
    "nohx": Case(5, 3, 4, 6, hx=False),
    "unbatched_hx": Case(5, 1, 4, 6, unbatched=True, load="torch_params"),
    "unbatched_nohx_bf": Case(5, 1, 4, 6, unbatched=True, batch_first=True, hx=False,
                              bias=False),
    "B1": Case(4, 1, 3, 5, load="torch_state_dict"),
    "H33_T17": Case(17, 3, 4, 33, batch_first=True, load="torch_params"),
}
CELL_CASES = {
    "base": Case(1, 3, 4, 6),
    "nobias_nohx": Case(1, 3, 4, 6, bias=False, hx=False, load="torch_params"),
    "unbatched_hx": Case(1, 1, 4, 6, unbatched=True, load="torch_state_dict"),
    "unbatched_nohx": Case(1, 1, 4, 6, unbatched=True, hx=False, load="torch_params"),
    "H33": Case(1, 5, 7, 33, load="torch_params"),
}


def _tdtype(torch, dtype):
    return torch.float32 if dtype == np.float32 else torch.float64


def _share_weights(torch, ours, theirs, load, seed):
    """Give both modules the same weights, in the direction the case asks for."""
    if load == "ours2torch":
        sd = {k: torch.from_numpy(v) for k, v in ours.state_dict().items()}
        theirs.load_state_dict(sd)
    else:
        with torch.no_grad():  # weights of our own choosing, not torch's default init
            g = torch.Generator().manual_seed(seed)
            for p in theirs.parameters():
                p.copy_(torch.rand(p.shape, generator=g, dtype=p.dtype) - 0.5)
        if load == "torch_params":
            sd = dict(theirs.named_parameters())
            assert all(p.requires_grad for p in sd.values())
        else:
            sd = theirs.state_dict()
        res = ours.load_state_dict(sd)
        assert list(res.missing_keys) == [] and list(res.unexpected_keys) == []
    # Both hold exactly the same numbers now.
    theirs_sd = theirs.state_dict()
    assert list(theirs_sd) == list(ours.state_dict())
    for k, v in ours.state_dict().items():
        np.testing.assert_array_equal(v, theirs_sd[k].detach().numpy(), err_msg=k)


def _check(what, ours, theirs, tol):
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else theirs
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != torch {theirs.shape}"
    assert ours.dtype == theirs.dtype, f"{what}: dtype {ours.dtype} != torch {theirs.dtype}"
    e = rel_err(ours, theirs)
    assert e <= tol, f"{what}: relative error to torch {e:.3e} > {tol:.1e}"


def _layer_parity(torch, name, case, dtype, seed):
    cls, tname, kw, is_lstm = LAYERS[name]
    tol = TOL[dtype]
    T, B, I, H = case.T, case.B, case.I, case.H
    ours = cls(I, H, bias=case.bias, batch_first=case.batch_first, dtype=dtype, seed=seed, **kw)
    theirs = getattr(torch.nn, tname)(I, H, bias=case.bias, batch_first=case.batch_first,
                                      dtype=_tdtype(torch, dtype), **kw)
    _share_weights(torch, ours, theirs, case.load, seed)

    rng = np.random.default_rng(seed + 1)
    if case.unbatched:
        x_shape, s_shape = (T, I), (1, H)
    else:
        x_shape = (B, T, I) if case.batch_first else (T, B, I)
        s_shape = (1, B, H)
    y_shape = x_shape[:-1] + (H,)
    x, h0, c0 = _random_inputs(rng, x_shape, s_shape, dtype, case.hx)
    # The loss: sum(y * wy) + sum(h_n * wh) (+ sum(c_n * wc)).
    wy = rng.standard_normal(y_shape).astype(dtype)
    wh = rng.standard_normal(s_shape).astype(dtype)
    wc = rng.standard_normal(s_shape).astype(dtype)

    # ours
    hx = ((h0, c0) if is_lstm else h0) if case.hx else None
    y, state, tape = ours.forward(x, hx, train=True)
    dstate = (wh, wc) if is_lstm else wh
    dx, dstate0, grads = ours.backward(tape, wy, dstate)
    h_n, c_n = state if is_lstm else (state, None)
    dh0, dc0 = dstate0 if is_lstm else (dstate0, None)

    # torch; with hx None we still give it zeros (with grad) to compare dh0 / dc0.
    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0, requires_grad=True)
    c0t = torch.tensor(c0, requires_grad=True)
    yt, st = theirs(xt, (h0t, c0t) if is_lstm else h0t)
    h_nt, c_nt = st if is_lstm else (st, None)
    loss = (yt * torch.from_numpy(wy)).sum() + (h_nt * torch.from_numpy(wh)).sum()
    if is_lstm:
        loss = loss + (c_nt * torch.from_numpy(wc)).sum()
    loss.backward()

    outputs = [("y", y, yt), ("h_n", h_n, h_nt)] + ([("c_n", c_n, c_nt)] if is_lstm else [])
    input_grads = [("dx", dx, xt.grad), ("dh0", dh0, h0t.grad)]
    if is_lstm:
        input_grads.append(("dc0", dc0, c0t.grad))
    _check_all(tol, outputs, input_grads, grads, theirs)


def _random_inputs(rng, x_shape, s_shape, dtype, given_state):
    """x, h0, c0 drawn from rng; the states are zeros when the case passes hx=None
    (torch still gets them, with grad, to compare dh0 / dc0)."""
    x = rng.standard_normal(x_shape).astype(dtype)
    h0 = (0.5 * rng.standard_normal(s_shape)).astype(dtype)
    c0 = (0.5 * rng.standard_normal(s_shape)).astype(dtype)
    if not given_state:
        h0[...] = 0
        c0[...] = 0
    return x, h0, c0


def _check_all(tol, outputs, input_grads, grads, theirs):
    """Compare (name, ours, torch) outputs and input gradients, then every parameter
    gradient of the torch module against ours (same names, same order)."""
    for name, a, t in outputs:
        _check(name, a, t, tol["out"])
    for name, a, t in input_grads:
        _check(name, a, t, tol["grad"])
    tgrads = {k: p.grad for k, p in theirs.named_parameters()}
    assert list(grads) == list(tgrads)
    for k, g in tgrads.items():
        _check(f"grad {k}", grads[k], g, tol["grad"])


def _cell_parity(torch, name, case, dtype, seed):
    cls, tname, kw, is_lstm = CELLS[name]
    tol = TOL[dtype]
    B, I, H = case.B, case.I, case.H
    ours = cls(I, H, bias=case.bias, dtype=dtype, seed=seed, **kw)
    theirs = getattr(torch.nn, tname)(I, H, bias=case.bias, dtype=_tdtype(torch, dtype), **kw)
    _share_weights(torch, ours, theirs, case.load, seed)

    rng = np.random.default_rng(seed + 1)
    x_shape, s_shape = ((I,), (H,)) if case.unbatched else ((B, I), (B, H))
    x, h0, c0 = _random_inputs(rng, x_shape, s_shape, dtype, case.hx)
    wh = rng.standard_normal(s_shape).astype(dtype)
    wc = rng.standard_normal(s_shape).astype(dtype)

    hx = ((h0, c0) if is_lstm else h0) if case.hx else None
    state, tape = ours.forward(x, hx, train=True)
    dx, dstate0, grads = ours.backward(tape, (wh, wc) if is_lstm else wh)
    h1, c1 = state if is_lstm else (state, None)
    dh0, dc0 = dstate0 if is_lstm else (dstate0, None)
    # the inference call (the one-step kernel) gives the same state up to rounding order
    st_inf = ours(x, hx)
    np.testing.assert_allclose(st_inf[0] if is_lstm else st_inf, h1,
                               rtol=1e-5 if dtype == np.float32 else 1e-13,
                               atol=1e-6 if dtype == np.float32 else 1e-14)

    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0, requires_grad=True)
    c0t = torch.tensor(c0, requires_grad=True)
    st = theirs(xt, (h0t, c0t) if is_lstm else h0t)
    h1t, c1t = st if is_lstm else (st, None)
    loss = (h1t * torch.from_numpy(wh)).sum()
    if is_lstm:
        loss = loss + (c1t * torch.from_numpy(wc)).sum()
    loss.backward()

    outputs = [("h'", h1, h1t)] + ([("c'", c1, c1t)] if is_lstm else [])
    input_grads = [("dx", dx, xt.grad), ("dh", dh0, h0t.grad)]
    if is_lstm:
        input_grads.append(("dc", dc0, c0t.grad))
    _check_all(tol, outputs, input_grads, grads, theirs)


@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
@pytest.mark.parametrize("case", list(LAYER_CASES.values()), ids=list(LAYER_CASES))
@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_parity(torch, name, case, dtype):
    seed = 1000 + 17 * list(LAYERS).index(name) + 3 * list(LAYER_CASES.values()).index(case)
    _layer_parity(torch, name, case, dtype, seed)


@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
@pytest.mark.parametrize("case", list(CELL_CASES.values()), ids=list(CELL_CASES))
@pytest.mark.parametrize("name", list(CELLS))
def test_cell_parity(torch, name, case, dtype):
    seed = 2000 + 17 * list(CELLS).index(name) + 3 * list(CELL_CASES.values()).index(case)
    _cell_parity(torch, name, case, dtype, seed)


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_accepts_torch_tensors_as_inputs(torch, name):
    """x and hx given as torch tensors (one with requires_grad) give the numbers of arrays."""
    cls, _, kw, is_lstm = LAYERS[name]
    layer = cls(4, 6, dtype=np.float64, seed=3, **kw)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 3, 4))
    h0 = rng.standard_normal((1, 3, 6))
    c0 = rng.standard_normal((1, 3, 6))
    hx = (h0, c0) if is_lstm else h0
    thx = (torch.tensor(h0), torch.tensor(c0)) if is_lstm else torch.tensor(h0)
    y, st = layer(x, hx)
    yt, stt = layer(torch.tensor(x, requires_grad=True), thx)
    np.testing.assert_array_equal(y, yt)
    for a, b in zip(st if is_lstm else (st,), stt if is_lstm else (stt,)):
        np.testing.assert_array_equal(a, b)


def test_float64_torch_weights_into_float32_layer(torch):
    """load_state_dict casts floating values to the module's dtype, like torch's copy_."""
    theirs = torch.nn.GRU(4, 6, dtype=torch.float64)
    ours = fr.GRU(4, 6, dtype=np.float32)
    ours.load_state_dict(theirs.state_dict())
    for k, v in theirs.state_dict().items():
        assert ours.state_dict()[k].dtype == np.float32
        np.testing.assert_array_equal(ours.state_dict()[k], v.numpy().astype(np.float32))
