"""The drop-ins on PyTorch's own module test inputs.

``torch.testing._internal.common_modules.module_db`` holds, for each torch.nn module,
the constructor and forward arguments its test suite runs (and inputs that must
raise).  For nn.LSTM / GRU / RNN / LSTMCell / GRUCell / RNNCell, every sample, in
float32 and float64, training and eval: fusedrnn.torch's module (made from the same
torch.nn module, weights shared by a deep copy) gives torch.nn's outputs and
gradients (inputs and parameters); its error inputs raise; and
``torch.autograd.gradcheck`` over the inputs and the module's own parameters passes
within ``fusedrnn.torch.weight_cache(False)``, as PyTorch's module tests run it
(gradcheck perturbs the parameters through ``.data``; see docs/pytorch.md).
"""

import copy

import pytest

TYPES = ["LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell"]


def _infos(torch):
    from torch.testing._internal.common_modules import module_db  # needs expecttest

    want = {getattr(torch.nn, t): t for t in TYPES}
    return {want[m.module_cls]: m for m in module_db if m.module_cls in want}


def _tensors(obj):
    """The tensors in a (nested) output, in order."""
    if isinstance(obj, (tuple, list)):
        return [t for o in obj for t in _tensors(o)]
    if hasattr(obj, "data") and hasattr(obj, "batch_sizes"):  # PackedSequence
        return [obj.data]
    return [obj]


def _clone(torch, obj):
    """Inputs cloned (leaf tensors that keep requires_grad), structure kept."""
    if isinstance(obj, torch.Tensor):
        c = obj.detach().clone()
        return c.requires_grad_(obj.requires_grad)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*[_clone(torch, o) for o in obj])
    if isinstance(obj, (tuple, list)):
        return type(obj)(_clone(torch, o) for o in obj)
    return obj


def _leaves(torch, obj):
    if isinstance(obj, torch.Tensor):
        return [obj] if obj.requires_grad else []
    if isinstance(obj, (tuple, list)):
        return [t for o in obj for t in _leaves(torch, o)]
    return []


def _run(torch, m, fin):
    args, kwargs = _clone(torch, fin.args), _clone(torch, fin.kwargs)
    m.zero_grad(set_to_none=True)
    outs = _tensors(m(*args, **kwargs))
    loss = sum((o * (1.0 + torch.arange(o.numel(), dtype=o.dtype).reshape(o.shape) / 7)).sum()
               for o in outs if o.requires_grad)
    if torch.is_tensor(loss):
        loss.backward()
    grads = [t.grad for t in _leaves(torch, (args, kwargs))]
    return outs, grads, [p.grad for p in m.parameters()]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", TYPES)
def test_module_db_samples(torch, frt, kind, dtype, training):
    info = _infos(torch)[kind]
    dt = getattr(torch, dtype)
    tol = dict(rtol=1e-4, atol=1e-5) if dt == torch.float32 else dict(rtol=1e-9, atol=1e-11)
    samples = info.module_inputs_func(info, device="cpu", dtype=dt, requires_grad=True,
                                      training=training)
    assert samples
    for i, s in enumerate(samples):
        c = s.constructor_input
        torch.manual_seed(i)
        ref = getattr(torch.nn, kind)(*c.args, **c.kwargs).to(dt).train(training)
        ours = frt.from_torch(copy.deepcopy(ref))
        assert not (training and getattr(ref, "dropout", 0)), "dropout: not comparable"
        want, want_dx, want_dp = _run(torch, ref, s.forward_input)
        got, got_dx, got_dp = _run(torch, ours, s.forward_input)
        where = f"sample {i}: {c.args} {c.kwargs}"
        assert len(got) == len(want), where
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, **tol, msg=lambda m: f"{where}: {m}")
        for a, b in zip(got_dx + got_dp, want_dx + want_dp):
            assert (a is None) == (b is None), where
            if b is not None:
                torch.testing.assert_close(a, b, **tol, msg=lambda m: f"{where}: {m}")
        with torch.no_grad():  # inference: the same outputs
            args, kwargs = _clone(torch, s.forward_input.args), _clone(torch, s.forward_input.kwargs)
            for a, b in zip(_tensors(ours(*args, **kwargs)), want):
                torch.testing.assert_close(a, b.detach(), **tol)


@pytest.mark.parametrize("kind", TYPES)
def test_module_db_error_inputs(torch, frt, kind):
    info = _infos(torch)[kind]
    errs = info.module_error_inputs_func(info, device="cpu", dtype=torch.float32,
                                         requires_grad=False, training=True)
    assert errs
    for e in errs:
        mi = e.module_error_input
        c, f = mi.constructor_input, mi.forward_input
        try:
            ref = getattr(torch.nn, kind)(*c.args, **c.kwargs)
        except Exception:  # noqa: BLE001 -- a constructor error: ours is torch.nn's constructor
            continue
        with pytest.raises(e.error_type):  # torch.nn raises it too (checked below)
            ref(*f.args, **f.kwargs)
        with pytest.raises((TypeError, ValueError, RuntimeError)):
            frt.from_torch(ref)(*f.args, **f.kwargs)


@pytest.mark.parametrize("kind", TYPES)
def test_module_db_gradcheck_own_parameters(torch, frt, kind):
    """What PyTorch's module tests run: gradcheck over the inputs and the module's own
    parameters (perturbed through .data), float64."""
    info = _infos(torch)[kind]
    samples = info.module_inputs_func(info, device="cpu", dtype=torch.float64,
                                      requires_grad=True, training=True)
    for i, s in enumerate(samples[::3] if len(samples) > 8 else samples):
        c = s.constructor_input
        torch.manual_seed(i)
        m = frt.from_torch(getattr(torch.nn, kind)(*c.args, **c.kwargs).double())
        args = _clone(torch, s.forward_input.args)
        inputs = _leaves(torch, args)
        params = list(m.parameters())
        n_in = len(inputs)

        def fn(*flat, args=args, inputs=inputs, m=m, n_in=n_in):
            swap = {id(t): f for t, f in zip(inputs, flat[:n_in])}
            call = _replace(torch, args, swap)
            return tuple(_tensors(m(*call)))

        with frt.weight_cache(False):
            assert torch.autograd.gradcheck(fn, tuple(inputs + params), eps=1e-6,
                                            atol=1e-5, rtol=1e-3), f"sample {i}"


def _replace(torch, obj, swap):
    if isinstance(obj, torch.Tensor):
        return swap.get(id(obj), obj)
    if isinstance(obj, (tuple, list)):
        return type(obj)(_replace(torch, o, swap) for o in obj)
    return obj
