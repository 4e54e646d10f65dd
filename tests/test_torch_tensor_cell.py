"""The drop-in cells' compiled repeat call (fusedrnn._core.tensor_cell): it runs only
calls that match the cell's plan, gives what the checked path gives bit for bit, and
hands everything else (each bad argument) back to the checked path, whose worded errors
are the ones users see."""

import numpy as np
import pytest

from fusedrnn import _core

CELLS = ["LSTMCell", "GRUCell", "RNNCell"]


def _cell(torch, frt, kind, dtype, I=6, H=9):  # noqa: E741
    torch.manual_seed(1)
    return frt.from_torch(getattr(torch.nn, kind)(I, H).to(dtype))


def _state(torch, kind, B, H, dtype):
    h = torch.randn(B, H, dtype=dtype)
    return (h, torch.randn(B, H, dtype=dtype)) if kind == "LSTMCell" else h


def _equal(a, b):
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.dtype == v.dtype and u.shape == v.shape
        assert np.array_equal(u.numpy(), v.numpy())


@pytest.mark.parametrize("kind", CELLS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("form", ["batched", "unbatched", "no state"])
def test_fast_call_is_the_checked_call_bit_for_bit(torch, frt, kind, dtype, form):
    dtype = getattr(torch, dtype)
    cell = _cell(torch, frt, kind, dtype)
    B = 1 if form == "unbatched" else 3
    x = torch.randn(B, 6, dtype=dtype)
    hx = _state(torch, kind, B, 9, dtype)
    if form == "unbatched":
        x = x[0]
        hx = tuple(t[0] for t in hx) if isinstance(hx, tuple) else hx[0]
    elif form == "no state":
        hx = None
    with torch.no_grad():
        first = cell(x, hx)  # checked: leaves the plan
        fast = _core.tensor_cell(cell, x, hx)
        assert fast is not None and fast is not False  # the compiled path ran
        with frt.weight_cache(False):  # checked again, weights packed anew
            checked = cell(x, hx)
    _equal(fast, first)
    _equal(fast, checked)
    # The NumPy cell on the same weights, the same kernels.
    import fusedrnn as fr  # noqa: PLC0415

    np_cell = getattr(fr, kind)(6, 9, dtype=np.float32 if dtype == torch.float32 else np.float64)
    np_cell.load_state_dict({k: v.detach().numpy() for k, v in cell.state_dict().items()})
    if form == "no state":
        hn = np.zeros((B, 9), np_cell.dtype)
        hxn = (hn, hn) if kind == "LSTMCell" else hn
    else:
        hxn = tuple(t.numpy() for t in hx) if isinstance(hx, tuple) else hx.numpy()
    want = np_cell(x.numpy(), hxn)
    got = fast if isinstance(fast, tuple) else (fast,)
    want = want if isinstance(want, tuple) else (want,)
    for g, w in zip(got, want):
        assert np.array_equal(g.numpy(), w)


def _planned(torch, frt, kind, dtype=None):
    dtype = dtype or torch.float32
    cell = _cell(torch, frt, kind, dtype)
    x = torch.randn(2, 6, dtype=dtype)
    hx = _state(torch, kind, 2, 9, dtype)
    with torch.no_grad():
        cell(x, hx)
    return cell, x, hx


@pytest.mark.parametrize("kind", CELLS)
def test_every_bad_argument_goes_to_the_checked_path(torch, frt, kind):
    """tensor_cell returns None (the checked path) for anything its plan does not cover;
    the call then raises the checked path's worded error, or gives torch.nn's result."""
    cell, x, hx = _planned(torch, frt, kind)
    lstm = kind == "LSTMCell"
    h = hx[0] if lstm else hx

    def with_h(t):
        return (t, hx[1]) if lstm else t

    def cases():
        yield "x float64", x.double(), hx, TypeError, "input is torch.float64 but the parameters"
        yield "x int64", x.long(), hx, TypeError, "input is torch.int64; fusedrnn"
        yield "x meta", x.to("meta"), hx, TypeError, "input is on meta"
        yield "x shape", torch.randn(2, 5), hx, ValueError, "input: expected shape (B, 6)"
        yield "x 3-d", torch.randn(1, 2, 6), hx, ValueError, "input: expected shape"
        yield "x not a tensor", x.numpy(), hx, TypeError, "input: expected a torch.Tensor"
        yield "x sparse", x.to_sparse(), hx, TypeError, "input: expected a dense"
        yield "h float64", x, with_h(h.double()), TypeError, "is torch.float64 but"
        yield "h shape", x, with_h(torch.randn(3, 9)), ValueError, "expected shape (2, 9)"
        if lstm:
            yield "hx list", x, list(hx), None, None
            yield "hx one tensor", x, h, TypeError, "hx: expected a tuple"
        else:
            yield "hx tuple", x, (h,), TypeError, "hx: expected a tensor"
        yield "x non-contiguous", torch.randn(6, 2).t(), hx, None, None
        yield "h non-contiguous", x, with_h(torch.randn(9, 2).t()), None, None
        yield "x negative view", torch._neg_view(x), hx, None, None
        yield "x subclass", torch.nn.Parameter(x.clone()), hx, None, None

    for name, xa, hxa, err, msg in cases():
        with torch.no_grad():
            assert _core.tensor_cell(cell, xa, hxa) is None, name
            if err is not None:
                with pytest.raises(err, match=msg.replace("(", r"\(").replace(")", r"\)")):
                    cell(xa, hxa)
                continue
            ref = getattr(torch.nn, kind)(6, 9)
            ref.load_state_dict(cell.state_dict())
            hxc = (tuple(t.contiguous() for t in hxa) if isinstance(hxa, (tuple, list))
                   else hxa.contiguous())
            want = ref(xa.resolve_neg().contiguous(), hxc)
            got = cell(xa, hxa)
            want = want if isinstance(want, tuple) else (want,)
            got = got if isinstance(got, tuple) else (got,)
            for g, w in zip(got, want):
                torch.testing.assert_close(g, w.detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", CELLS)
def test_what_the_plan_keys_on_is_seen(torch, frt, kind):
    cell, x, hx = _planned(torch, frt, kind)
    with torch.no_grad():
        assert _core.tensor_cell(cell, x, None) is None  # hx None after a plan with hx
        assert _core.tensor_cell(cell, x[:1], hx) is None  # another batch
        cell.weight_hh.mul_(0.5)  # a new version
        assert _core.tensor_cell(cell, x, hx) is None
        cell(x, hx)  # checked again: a new plan
        assert _core.tensor_cell(cell, x, hx) is not None
        cell.weight_ih.data = cell.weight_ih.data * 2  # a new address
        assert _core.tensor_cell(cell, x, hx) is None
        cell(x, hx)
        with frt.weight_cache(False):
            assert _core.tensor_cell(cell, x, hx) is None
        assert _core.tensor_cell(cell, x, hx) is None  # the block retired the plan
        cell(x, hx)
        cell.weight_hh = torch.nn.Parameter(cell.weight_hh.detach().clone())  # a new object
        assert _core.tensor_cell(cell, x, hx) is None
        cell(x, hx)
        cell.flatten_parameters()
        assert _core.tensor_cell(cell, x, hx) is None
        cell(x, hx)
        if kind == "RNNCell":
            cell.nonlinearity = "relu"
            assert _core.tensor_cell(cell, x, hx) is None
            torch.testing.assert_close(cell(x, hx), torch.relu(
                x @ cell.weight_ih.T + cell.bias_ih + hx @ cell.weight_hh.T + cell.bias_hh))


@pytest.mark.parametrize("kind", CELLS)
def test_requires_grad_interplay(torch, frt, kind):
    """A matching call that autograd must record returns False (the autograd path);
    under no_grad, or with nothing requiring a gradient, the compiled call runs."""
    cell, x, hx = _planned(torch, frt, kind)
    assert _core.tensor_cell(cell, x, hx) is False  # the parameters require gradients
    xg = x.clone().requires_grad_()
    assert _core.tensor_cell(cell, xg, hx) is False
    with torch.no_grad():
        out = _core.tensor_cell(cell, xg, hx)
        assert out is not None and out is not False
        assert not any(t.requires_grad for t in (out if isinstance(out, tuple) else (out,)))
    with torch.inference_mode():
        out = _core.tensor_cell(cell, x, hx)
        assert out is not None and out is not False
    for p in cell.parameters():
        p.requires_grad_(False)
    out = _core.tensor_cell(cell, x, hx)  # grad mode on, nothing requires a gradient
    assert out is not None and out is not False
    h = hx[0] if isinstance(hx, tuple) else hx
    hg = h.clone().requires_grad_()
    assert _core.tensor_cell(cell, x, (hg, hx[1]) if isinstance(hx, tuple) else hg) is False
    # ... and the autograd path it leads to gives h's gradient.
    out = cell(x, (hg, hx[1]) if isinstance(hx, tuple) else hg)
    (out[0] if isinstance(out, tuple) else out).sum().backward()
    assert hg.grad is not None and hg.grad.shape == h.shape


def test_tensor_cell_arguments(torch, frt):
    with pytest.raises(TypeError, match="expected \\(module, x, hx\\)"):
        _core.tensor_cell(1, 2)
    assert _core.tensor_cell(object(), 1, None) is None  # no plan: the checked path
    m = torch.nn.Linear(2, 2)
    assert _core.tensor_cell(m, torch.zeros(2), None) is None
    with pytest.raises(TypeError, match="tensor_setup: expected"):
        _core.tensor_setup(1, 2, 3, 4)


@pytest.mark.parametrize("kind", CELLS)
def test_call_skips_module_call_only_when_it_would_do_nothing(torch, frt, kind):
    """The cells' __call__ (_core.tensor_call) runs the compiled step only where
    torch.nn.Module.__call__ would just call forward; hooks (the module's and global)
    and an instance or subclass forward go through Module.__call__."""
    cell, x, hx = _planned(torch, frt, kind)
    with torch.no_grad():
        assert _core.tensor_call(cell, x, hx) is not None
        seen = []
        handles = [
            cell.register_forward_hook(lambda m, a, o: seen.append("hook")),
            cell.register_forward_pre_hook(lambda m, a: seen.append("pre")),
            torch.nn.modules.module.register_module_forward_hook(
                lambda m, a, o: seen.append("global")),
        ]
        for h in handles:
            assert _core.tensor_call(cell, x, hx) is None
            n = len(seen)
            cell(x, hx)
            assert len(seen) > n  # the hooks ran
            h.remove()
        assert _core.tensor_call(cell, x, hx) is not None
        cell.forward = lambda *a: "instance forward"
        assert _core.tensor_call(cell, x, hx) is None
        assert cell(x, hx) == "instance forward"
        del cell.forward
        assert _core.tensor_call(cell, x, hx) is not None

        class Sub(type(cell)):
            def forward(self, input, hx=None):  # noqa: A002
                return "subclass forward"

        sub = Sub(6, 9)
        sub(x, hx)
        assert _core.tensor_call(sub, x, hx) is None
        assert sub(x, hx) == "subclass forward"
    # A backward hook: Module.__call__ wraps the call for it.
    h = cell.register_full_backward_hook(lambda m, gi, go: seen.append("backward"))
    assert _core.tensor_call(cell, x, hx) is None
    xg = x.clone().requires_grad_()
    out = cell(xg, hx)
    (out[0] if isinstance(out, tuple) else out).sum().backward()
    assert seen[-1] == "backward"
    h.remove()
    # Keyword arguments and three positional ones: Module.__call__ (and its errors).
    with torch.no_grad():
        _equal(cell(x, hx=hx), cell(x, hx))
        with pytest.raises(TypeError):
            cell(x, hx, 1)


def test_tensor_call_setup_arguments():
    with pytest.raises(TypeError, match="expected \\(module, x, hx\\)"):
        _core.tensor_call(1, 2)
    with pytest.raises(TypeError):
        _core.tensor_call_setup([], None, None)
    with pytest.raises(TypeError, match="tuple of dicts"):
        _core.tensor_call_setup((1,), None, None)
