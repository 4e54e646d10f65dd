"""The drop-ins' call plans (fusedrnn.torch._plan): a repeat call skips the checks, and
anything that changed since the checked call is seen (compared with torch.nn)."""

import pytest


def _pair(torch, frt, kind, H=5, I=3, **kw):
    torch.manual_seed(0)
    ref = getattr(torch.nn, kind)(I, H, **kw).double()
    ours = frt.from_torch(getattr(torch.nn, kind)(I, H, **kw).double())
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def _same(torch, a, b):
    if isinstance(a, tuple):
        for u, v in zip(a, b):
            _same(torch, u, v)
        return
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


CELLS = ["LSTMCell", "GRUCell", "RNNCell"]


@pytest.mark.parametrize("kind", CELLS)
def test_cell_plan_sees_changes(torch, frt, kind):
    ref, ours = _pair(torch, frt, kind)
    lstm = kind == "LSTMCell"
    x = torch.randn(2, 3, dtype=torch.float64)
    hx = ((torch.randn(2, 5, dtype=torch.float64),) * 2) if lstm else torch.randn(
        2, 5, dtype=torch.float64)
    with torch.no_grad():
        for _ in range(2):  # the second call runs the plan of the first
            _same(torch, ours(x, hx), ref(x, hx))
        for p, q in zip(ref.parameters(), ours.parameters()):  # in place, through torch
            p.mul_(0.5)
            q.mul_(0.5)
        _same(torch, ours(x, hx), ref(x, hx))
        _same(torch, ours(x), ref(x))  # hx None after a plan with hx
        _same(torch, ours(x[0]), ref(x[0]))  # unbatched
        _same(torch, ours(x[:1]), ref(x[:1]))  # another batch size
    new = torch.nn.Parameter(torch.randn_like(ours.weight_hh))
    ours.weight_hh = new  # a new parameter object
    ref.weight_hh = torch.nn.Parameter(new.detach().clone())
    with torch.no_grad():
        _same(torch, ours(x, hx), ref(x, hx))
    ours.weight_ih.data = ours.weight_ih.data * 2  # new storage: a new address
    ref.weight_ih.data = ref.weight_ih.data * 2
    with torch.no_grad():
        _same(torch, ours(x, hx), ref(x, hx))
    # Training after inference plans: the gradients are torch.nn's.
    for m in (ours, ref):
        m.zero_grad()
        out = m(x, hx)
        (out[0] if lstm else out).sum().backward()
    for p, q in zip(ref.parameters(), ours.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-10, atol=1e-12)
    # requires_grad off: the same call, no graph.
    for p in ours.parameters():
        p.requires_grad_(False)
    out = ours(x, hx)
    assert not (out[0] if lstm else out).requires_grad


def test_cell_plan_errors_still_raise(torch, frt):
    cell = frt.LSTMCell(3, 4)
    x = torch.randn(2, 3)
    with torch.no_grad():
        cell(x, (torch.zeros(2, 4), torch.zeros(2, 4)))
        with pytest.raises(TypeError, match=r"^LSTMCell: input is torch.float64"):
            cell(x.double())
        with pytest.raises(ValueError, match=r"^LSTMCell: hx\[1\] \(c_0\): expected shape"):
            cell(x, (torch.zeros(2, 4), torch.zeros(3, 4)))
        with pytest.raises(TypeError, match=r"^LSTMCell: hx: expected a tuple"):
            cell(x, torch.zeros(2, 4))
        cell.double()  # parameters converted: the plan's addresses no longer match
        with pytest.raises(TypeError, match=r"^LSTMCell: input is torch.float32 but the "
                                            r"parameters are torch.float64"):
            cell(x)


def test_weight_cache_off_reads_data_writes(torch, frt):
    ref, ours = _pair(torch, frt, "GRUCell")
    x = torch.randn(2, 3, dtype=torch.float64)
    with torch.no_grad():
        ours(x)
        ours.weight_ih.data.mul_(3)  # no version counter sees it
        ref.weight_ih.data.mul_(3)
        with frt.weight_cache(False):
            _same(torch, ours(x), ref(x))
            ours.weight_hh.data.add_(1)  # unseen, inside the block ...
            ref.weight_hh.data.add_(1)
        _same(torch, ours(x), ref(x))  # ... and read after it: the block retired the plans
    with pytest.raises(TypeError, match="enabled: expected a bool"):
        with frt.weight_cache(0):
            pass


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_layer_plan_sees_changes(torch, frt, kind):
    kw = dict(num_layers=2, bidirectional=True, batch_first=True)
    ref, ours = _pair(torch, frt, kind, **kw)
    lstm = kind == "LSTM"
    x = torch.randn(2, 4, 3, dtype=torch.float64)  # (B, T, I)
    h = torch.randn(4, 2, 5, dtype=torch.float64)
    hx = (h, h.clone()) if lstm else h
    with torch.no_grad():
        for _ in range(2):
            _same(torch, ours(x, hx), ref(x, hx))
        for p, q in zip(ref.parameters(), ours.parameters()):
            p.add_(0.1)
            q.add_(0.1)
        _same(torch, ours(x, hx), ref(x, hx))
        _same(torch, ours(x), ref(x))
        _same(torch, ours(x[0]), ref(x[0]))  # unbatched (T, I)
        _same(torch, ours(x[0]), ref(x[0]))
    ours.batch_first = ref.batch_first = False  # the same tensor read as (T, B, I)
    with torch.no_grad():
        _same(torch, ours(x), ref(x))
    ours.batch_first = ref.batch_first = True
    for m in (ours, ref):
        m.zero_grad()
        for _ in range(2):  # a plan made by a training call, then used
            out, _ = m(x, hx)
            out.sum().backward()
    for p, q in zip(ref.parameters(), ours.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-10, atol=1e-12)
