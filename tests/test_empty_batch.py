"""An empty batch (B = 0) works as in torch.nn: empty outputs and states of torch.nn's
shapes, zero gradients; in the NumPy API and the drop-ins (shapes and gradients are
compared with torch.nn's own, not written down here)."""

import numpy as np
import pytest

import fusedrnn as fr

LAYERS = [("LSTM", {}), ("GRU", {}), ("RNN", {"nonlinearity": "relu"}),
          ("LSTM", {"proj_size": 2, "num_layers": 2}),
          ("GRU", {"bidirectional": True, "num_layers": 2, "batch_first": True}),
          ("LSTM", {"bidirectional": True, "dropout": 0.5, "num_layers": 2})]
CELLS = ["LSTMCell", "GRUCell", "RNNCell"]
T, I, H = 3, 2, 4


def _flat(out):
    if out is None:
        return []
    if isinstance(out, (tuple, list)):
        return [a for o in out for a in _flat(o)]
    return [out]


def _torch_run(torch, m, x, hx):
    x = x.clone().requires_grad_()
    out = m(x) if hx is None else m(x, hx)
    outs = _flat(out)
    sum(o.sum() for o in outs).backward()
    grads = {n: p.grad for n, p in m.named_parameters()}
    return outs, grads, x.grad


def _x_shape(kw):
    return (0, T, I) if kw.get("batch_first") else (T, 0, I)


@pytest.mark.parametrize("hx", [False, True], ids=["zeros", "hx"])
@pytest.mark.parametrize("kind,kw", LAYERS, ids=[f"{k}{sorted(v.items())}" for k, v in LAYERS])
def test_layer_empty_batch(torch, frt, kind, kw, hx):
    torch.manual_seed(0)
    ref = getattr(torch.nn, kind)(I, H, **kw)
    ours = frt.from_torch(getattr(torch.nn, kind)(I, H, **kw))
    x = torch.randn(_x_shape(kw))
    state = None
    if hx:
        D = 2 if kw.get("bidirectional") else 1
        LD = D * kw.get("num_layers", 1)
        h = torch.zeros(LD, 0, kw.get("proj_size") or H)
        state = (h, torch.zeros(LD, 0, H)) if kind == "LSTM" else h
    want, want_g, want_dx = _torch_run(torch, ref, x, state)
    got, got_g, got_dx = _torch_run(torch, ours, x, state)
    assert [o.shape for o in got] == [o.shape for o in want]
    assert got_dx.shape == want_dx.shape
    for n, g in want_g.items():
        torch.testing.assert_close(got_g[n], g)  # zeros of the parameter's shape
    with torch.no_grad():
        assert [o.shape for o in _flat(ours(x))] == [o.shape for o in want]
    # The NumPy API: the same shapes; a backward gives torch.nn's zero gradients.
    npm = getattr(fr, kind)(I, H, **kw)
    nstate = None if state is None else tuple(s.numpy() for s in _flat(state))
    if nstate is not None and kind != "LSTM":
        nstate = nstate[0]
    y, st, tape = npm.forward(x.numpy(), nstate)
    assert [a.shape for a in _flat((y, st))] == [tuple(o.shape) for o in want]
    dx, dst, grads = npm.backward(tape, np.ones_like(y), None)
    assert dx.shape == tuple(want_dx.shape)
    assert {n: g.shape for n, g in grads.items()} == {n: tuple(g.shape)
                                                      for n, g in want_g.items()}
    assert all(not g.any() for g in grads.values())
    assert [a.shape for a in _flat(npm(x.numpy(), nstate))] == [tuple(o.shape) for o in want]


@pytest.mark.parametrize("hx", [False, True], ids=["zeros", "hx"])
@pytest.mark.parametrize("kind", CELLS)
def test_cell_empty_batch(torch, frt, kind, hx):
    torch.manual_seed(0)
    ref = getattr(torch.nn, kind)(I, H)
    ours = frt.from_torch(getattr(torch.nn, kind)(I, H))
    x = torch.randn(0, I)
    state = None
    if hx:
        state = (torch.zeros(0, H), torch.zeros(0, H)) if kind == "LSTMCell" else torch.zeros(0, H)
    want, want_g, want_dx = _torch_run(torch, ref, x, state)
    got, got_g, got_dx = _torch_run(torch, ours, x, state)
    assert [o.shape for o in got] == [o.shape for o in want]
    assert got_dx.shape == want_dx.shape
    for n, g in want_g.items():
        torch.testing.assert_close(got_g[n], g)
    npc = getattr(fr, kind)(I, H)
    nstate = None if state is None else (
        tuple(s.numpy() for s in state) if kind == "LSTMCell" else state.numpy())
    st, tape = npc.forward(x.numpy(), nstate)
    assert [a.shape for a in _flat(st)] == [tuple(o.shape) for o in want]
    dx, _, grads = npc.backward(tape, None)
    assert dx.shape == (0, I)
    assert {n: g.shape for n, g in grads.items()} == {n: tuple(g.shape)
                                                      for n, g in want_g.items()}
    assert all(not g.any() for g in grads.values())
    assert [a.shape for a in _flat(npc(x.numpy(), nstate))] == [tuple(o.shape) for o in want]
