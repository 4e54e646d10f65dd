"""What fusedrnn.torch's modules hand to the kernels, recorded at the kernels' Python
entry points (memory addresses and call counts, not timings):

- contiguous tensors reach the kernels without a copy, and the kernels' arrays come back
  as tensors without a copy (issue 5: "without copying contiguous data");
- an input that needs no gradient gets none computed (need_dx=False);
- weights are packed once per parameter version, and per call for parameters made
  under inference_mode (which have no version counter);
- torch.func transforms, which hand over tensors without memory, get a clear error.
"""

from __future__ import annotations

import numpy as np
import pytest


def _addr(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


@pytest.fixture
def spy(frt, monkeypatch):
    """Records every (args, results) of the kernels' forward/backward/pack calls (made
    by the layer path shared with the NumPy layers, fusedrnn._stack, and by the
    drop-ins' weight cache)."""
    import fusedrnn._stack

    calls = {"forward": [], "backward": [], "pack": []}

    def wrap(name):
        mod = frt._fused if name == "pack" else fusedrnn._stack
        real = getattr(mod, name)

        def f(*args, **kw):
            out = real(*args, **kw)
            calls[{"sequence_forward": "forward", "sequence_backward": "backward",
                   "pack": "pack"}[name]].append((args, kw, out))
            return out

        monkeypatch.setattr(mod, name, f)

    for name in ("sequence_forward", "sequence_backward", "pack"):
        wrap(name)
    return calls


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("grad", [False, True])
def test_contiguous_input_states_and_weights_are_not_copied(torch, frt, spy, dtype, grad):
    dt = getattr(torch, dtype)
    lstm = frt.LSTM(5, 7).to(dt)
    x = torch.randn(4, 3, 5, dtype=dt, requires_grad=grad)
    h0 = torch.randn(1, 3, 7, dtype=dt)
    c0 = torch.randn(1, 3, 7, dtype=dt)
    with torch.set_grad_enabled(grad):  # without grad: the kernels' inference call
        y, (h, c) = lstm(x, (h0, c0))
    (args, kw, out), = spy["forward"]
    packed, xk, hk, ck = args
    assert _addr(xk) == x.data_ptr()
    assert _addr(hk) == h0.data_ptr() and _addr(ck) == c0.data_ptr()
    assert kw["train"] is grad
    # outputs: tensors over the arrays the kernel returned
    assert y.data_ptr() == _addr(out[0])
    assert h.data_ptr() == _addr(out[1]) and c.data_ptr() == _addr(out[2])
    # weights: packed from the parameters' own memory
    (pargs, pkw, _), = spy["pack"]
    assert _addr(pargs[1]) == lstm.weight_ih_l0.data_ptr()
    assert _addr(pargs[2]) == lstm.weight_hh_l0.data_ptr()
    if grad:
        dy = torch.randn(4, 3, 7, dtype=dt)
        y.backward(dy)
        (bargs, bkw, bout), = spy["backward"]
        assert _addr(bargs[1]) == x.data_ptr()  # the saved x itself
        assert _addr(bargs[3]) == dy.data_ptr()  # dy as autograd passed it
        assert x.grad.data_ptr() == _addr(bout["dx"])
        assert lstm.weight_ih_l0.grad.data_ptr() == _addr(bout["weight_ih"])


def test_packed_sequence_data_is_not_copied(torch, frt, spy):
    gru = frt.GRU(5, 7)
    seqs = [torch.randn(n, 5) for n in (4, 2, 3)]
    p = torch.nn.utils.rnn.pack_sequence(seqs, enforce_sorted=False)
    out, _ = gru(p)
    (args, kw, res), = spy["forward"]
    assert _addr(args[1]) == p.data.data_ptr()
    assert out.data.data_ptr() == _addr(res[0])
    np.testing.assert_array_equal(kw["batch_sizes"], p.batch_sizes.numpy())


def test_weights_packed_once_per_version(torch, frt, spy):
    """The cache: repeated calls reuse the packed weights; an optimizer step repacks."""
    rnn = frt.RNN(5, 7, num_layers=2)
    opt = torch.optim.SGD(rnn.parameters(), lr=0.1)
    x = torch.randn(3, 2, 5)
    for _ in range(3):
        rnn(x)
    assert len(spy["pack"]) == 2  # one per layer, once
    y, _ = rnn(x)
    y.sum().backward()
    opt.step()
    assert len(spy["pack"]) == 2
    rnn(x)
    assert len(spy["pack"]) == 4  # the step changed every parameter's version


def test_input_without_grad_skips_dx(torch, frt, spy):
    """A first layer whose input needs no gradient: the kernels skip dx's product; the
    second layer's input (the first's output) still gets its gradient."""
    lstm = frt.LSTM(5, 7, num_layers=2)
    x = torch.randn(4, 3, 5)
    y, _ = lstm(x)
    y.sum().backward()
    need = {call[0][1].shape[-1]: call[1]["need_dx"] for call in spy["backward"]}
    assert need == {5: False, 7: True}
    assert x.grad is None and lstm.weight_ih_l0.grad is not None


def test_module_made_under_inference_mode(torch, frt, spy):
    """Parameters made under inference_mode have no version counter: packed per call
    (never a stale copy), and the results equal torch.nn's."""
    with torch.inference_mode():
        ours = frt.GRU(3, 4)
        ref = torch.nn.GRU(3, 4)
        ref.load_state_dict(ours.state_dict())
        x = torch.randn(5, 2, 3)
        for _ in range(2):
            torch.testing.assert_close(ours(x)[0], ref(x)[0], rtol=1e-5, atol=1e-6)
        ours.weight_hh_l0.mul_(2.0)  # in place, inside inference mode: no version to see
        ref.weight_hh_l0.mul_(2.0)
        torch.testing.assert_close(ours(x)[0], ref(x)[0], rtol=1e-5, atol=1e-6)
    assert len(spy["pack"]) == 3


def test_torch_func_transforms_raise_clearly(torch, frt):
    """torch.func's grad wraps tensors without storage: a RuntimeError that says what is
    unsupported and what to use, not torch's bare 'data pointer' message."""
    m = frt.RNN(4, 5).double()
    x = torch.randn(3, 2, 4, dtype=torch.float64)
    with pytest.raises(RuntimeError, match=r"torch\.func transforms .* not supported"):
        torch.func.grad(lambda x: m(x)[0].sum())(x)
