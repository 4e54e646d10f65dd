"""fusedrnn.torch inside PyTorch's machinery: optimizers, grad modes, clipping, state
dicts and serialisation, the packed-weight cache, replace_rnns/from_torch, the errors,
and torch staying optional.  (Threads, torch's beside ours: test_threads.py.)

Numerical parity of every constructor option is tested in test_torch_modules.py; here
each test compares with a ``torch.nn`` twin (same weights, float64 unless said) through
a workflow, with norm-wise relative tolerance ``TOL`` (both sides float64; only the
summation orders differ).  Skipped without torch, failed under FUSEDRNN_REQUIRE_TORCH=1
(the ``torch``/``frt`` fixtures); torch is never imported at module level.
"""

from __future__ import annotations

import copy
import io
import os
import pickle
import subprocess
import sys
import textwrap

import pytest

import fusedrnn

TOL = 1e-11  # float64 against float64
TOL32 = 2e-5  # float32 against float32

# name -> (class name in torch.nn and fusedrnn.torch, constructor keywords)
KINDS = {
    "lstm": ("LSTM", dict(input_size=4, hidden_size=5, num_layers=2, bidirectional=True,
                          proj_size=3)),
    "gru": ("GRU", dict(input_size=4, hidden_size=5, num_layers=2, bidirectional=True,
                        batch_first=True)),
    "rnn": ("RNN", dict(input_size=4, hidden_size=5, nonlinearity="relu", bias=False)),
    "lstm_cell": ("LSTMCell", dict(input_size=4, hidden_size=5)),
    "gru_cell": ("GRUCell", dict(input_size=4, hidden_size=5)),
    "rnn_cell": ("RNNCell", dict(input_size=4, hidden_size=5, nonlinearity="tanh",
                                 bias=False)),
}
T, B, I = 5, 3, 4

pytestmark = pytest.mark.filterwarnings(
    "ignore:LSTM with projections is not supported with oneDNN:UserWarning",
    "ignore:Using backward\\(\\) with create_graph=True:UserWarning",
)


# ---------------------------------------------------------------------------- helpers

@pytest.fixture(autouse=True, scope="module")
def _torch_one_thread():
    """torch's own ops on one thread here (the twins' backward is many tiny ops, slow
    with a contended team on a small machine).  Lazy: the tests that need no torch run
    without it."""
    try:
        import torch  # noqa: PLC0415
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _pair(torch, frt, kind, dtype=None, seed=0):
    """(ours, torch.nn twin): same weights, separate Parameters."""
    name, kw = KINDS[kind]
    torch.manual_seed(seed)
    ours = getattr(frt, name)(**kw).to(dtype or torch.float64)
    twin = getattr(torch.nn, name)(**kw).to(dtype or torch.float64)
    twin.load_state_dict(ours.state_dict())
    return ours, twin


def _x(torch, dtype=None, seed=1, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, I, generator=g, dtype=dtype or torch.float64)
    return x.requires_grad_(requires_grad)


def _outputs(m, x):
    """Everything m returns for x, flattened; a cell is stepped over x's first axis."""
    if type(m).__name__.endswith("Cell"):
        outs, h = [], None
        for t in range(x.shape[0]):
            h = m(x[t], h)
            outs.extend(h if isinstance(h, tuple) else [h])
        return outs
    y, hx = m(x)
    return [y] + list(hx if isinstance(hx, tuple) else [hx])


def _loss(outs):
    return sum(((o * (0.3 + 0.1 * k)).sin() * (k + 1)).sum() for k, o in enumerate(outs))


def _rel(a, b):
    a, b = a.detach().double(), b.detach().double()
    assert a.shape == b.shape, f"shape {tuple(a.shape)} != {tuple(b.shape)}"
    return float((a - b).norm() / max(float(b.norm()), 1e-300))


def _close(a, b, tol=TOL, what=""):
    e = _rel(a, b)
    assert e <= tol, f"{what}: relative error {e:.3e} > {tol:.1e}"


def _close_all(xs, ys, tol=TOL, what="output"):
    assert len(xs) == len(ys)
    for k, (a, b) in enumerate(zip(xs, ys)):
        _close(a, b, tol, f"{what} {k}")


def _equal_all(xs, ys):
    assert len(xs) == len(ys)
    for a, b in zip(xs, ys):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert bool((a == b).all()), "not bitwise equal"


def _close_grads(ours, twin, tol=TOL):
    no, nt = dict(ours.named_parameters()), dict(twin.named_parameters())
    assert list(no) == list(nt)
    for n in no:
        go, gt = no[n].grad, nt[n].grad
        assert (go is None) == (gt is None), f"{n}: grad {go is None=} {gt is None=}"
        if go is not None:
            _close(go, gt, tol, f"grad {n}")


def _check_train_step(torch, ours, twin, x, tol=TOL):
    """Forward, backward on both; outputs, dx and every parameter's grad match."""
    xo, xt = x.detach().clone().requires_grad_(), x.detach().clone().requires_grad_()
    for m in (ours, twin):
        for p in m.parameters():
            p.grad = None
    oo, ot = _outputs(ours, xo), _outputs(twin, xt)
    _close_all(oo, ot, tol)
    _loss(oo).backward()
    _loss(ot).backward()
    _close(xo.grad, xt.grad, tol, "dx")
    _close_grads(ours, twin, tol)
    return [o.detach() for o in oo]


def _eval(torch, m, x):
    with torch.no_grad():
        return _outputs(m, x)


# ----------------------------------------------------------------- 1. optimizers

def _optimizer(torch, which, params):
    if which == "sgd":
        return torch.optim.SGD(params, lr=0.1, momentum=0.9)
    return torch.optim.Adam(params, lr=0.05)


@pytest.mark.parametrize("which", ["sgd", "adam"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_optimizer_steps_match_torch(torch, frt, kind, which):
    """Each step changes the weights in place (version bump); the next forward must
    use them: outputs and grads track the torch.nn twin trained identically."""
    ours, twin = _pair(torch, frt, kind)
    oo, ot = _optimizer(torch, which, ours.parameters()), _optimizer(torch, which,
                                                                      twin.parameters())
    x = _x(torch)
    prev = None
    for _ in range(4):
        oo.zero_grad()
        ot.zero_grad()
        outs = _check_train_step(torch, ours, twin, x)
        if prev is not None:  # the step did change what the forward computes
            assert not torch.equal(outs[0], prev[0])
        prev = outs
        oo.step()
        ot.step()
    for p, q in zip(ours.parameters(), twin.parameters()):
        _close(p, q, TOL, "trained weights")
    _close_all(_eval(torch, ours, x), _eval(torch, twin, x))


@pytest.mark.parametrize("kind", ["lstm", "gru_cell"])
def test_gradient_accumulation_over_two_forwards(torch, frt, kind):
    ours, twin = _pair(torch, frt, kind)
    oo = torch.optim.SGD(ours.parameters(), lr=0.2)
    ot = torch.optim.SGD(twin.parameters(), lr=0.2)
    x1, x2 = _x(torch, seed=1), _x(torch, seed=2)
    # the separate gradients, for the sum below
    single = []
    for x in (x1, x2):
        oo.zero_grad()
        _loss(_outputs(ours, x)).backward()
        single.append({n: p.grad.clone() for n, p in ours.named_parameters()})
    oo.zero_grad()
    ot.zero_grad()
    for x in (x1, x2):  # no zero_grad in between: grads accumulate
        _loss(_outputs(ours, x)).backward()
        _loss(_outputs(twin, x)).backward()
    _close_grads(ours, twin)
    for n, p in ours.named_parameters():
        _close(p.grad, single[0][n] + single[1][n], TOL, f"accumulated {n}")
    oo.step()
    ot.step()
    _close_all(_eval(torch, ours, x1), _eval(torch, twin, x1))


def test_zero_grad(torch, frt):
    ours, twin = _pair(torch, frt, "lstm")
    opt = torch.optim.SGD(ours.parameters(), lr=0.1)
    x = _x(torch)
    _loss(_outputs(ours, x)).backward()
    assert all(p.grad is not None for p in ours.parameters())
    opt.zero_grad()  # set_to_none=True by default
    assert all(p.grad is None for p in ours.parameters())
    _loss(_outputs(ours, x)).backward()
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in ours.parameters())
    _loss(_outputs(ours, x)).backward()  # into the zeroed grads: one backward's worth
    _loss(_outputs(twin, x)).backward()
    _close_grads(ours, twin)


@pytest.mark.parametrize("kind", ["lstm", "lstm_cell"])
def test_frozen_parameters_get_no_grad(torch, frt, kind):
    ours, twin = _pair(torch, frt, kind)
    frozen = (["weight_hh_l0", "bias_ih_l1_reverse", "weight_hr_l0"] if kind == "lstm"
              else ["weight_ih"])
    for m in (ours, twin):
        for n in frozen:
            getattr(m, n).requires_grad_(False)
    before = {n: getattr(ours, n).detach().clone() for n in frozen}
    opt = torch.optim.SGD(ours.parameters(), lr=0.1)
    x = _x(torch)
    _check_train_step(torch, ours, twin, x)
    for n in frozen:
        assert getattr(ours, n).grad is None, n
    assert all(p.grad is not None for p in ours.parameters() if p.requires_grad)
    opt.step()
    for n in frozen:
        assert torch.equal(getattr(ours, n), before[n]), n


def test_all_parameters_frozen(torch, frt):
    ours, twin = _pair(torch, frt, "gru")
    for m in (ours, twin):
        m.requires_grad_(False)
    x = _x(torch)
    # no input grad either: plain tensors, no graph (as torch.nn)
    outs = _outputs(ours, x)
    assert all(not o.requires_grad and o.grad_fn is None for o in outs)
    # the input alone needs a grad: dx matches, parameters get none
    xo, xt = x.clone().requires_grad_(), x.clone().requires_grad_()
    _loss(_outputs(ours, xo)).backward()
    _loss(_outputs(twin, xt)).backward()
    _close(xo.grad, xt.grad, TOL, "dx")
    assert all(p.grad is None for p in ours.parameters())


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_truncated_bptt_carrying_state(torch, frt, kind):
    """The usual stateful loop: the final state of one chunk, detached, starts the next;
    the first chunk's initial state is a trainable leaf."""
    ours, twin = _pair(torch, frt, kind)
    oo = torch.optim.Adam(ours.parameters(), lr=0.02)
    ot = torch.optim.Adam(twin.parameters(), lr=0.02)
    _, kw = KINDS[kind]
    D, Hr = 2, kw.get("proj_size") or kw["hidden_size"]
    nb = T if kw.get("batch_first") else B  # _x is (T, B, I); batch_first reads (B, T, I)
    g = torch.Generator().manual_seed(4)
    h0 = torch.randn(kw["num_layers"] * D, nb, Hr, generator=g, dtype=torch.float64)
    c0 = torch.randn(kw["num_layers"] * D, nb, kw["hidden_size"], generator=g,
                     dtype=torch.float64)
    leaves = {m: (h0.clone().requires_grad_(), c0.clone().requires_grad_())
              for m in (ours, twin)}
    states = {m: leaves[m] if kind == "lstm" else leaves[m][0] for m in (ours, twin)}
    for chunk in range(3):
        x = _x(torch, seed=10 + chunk)
        outs = {}
        for m, opt in ((ours, oo), (twin, ot)):
            opt.zero_grad()
            y, hx = m(x, states[m])
            outs[m] = [y] + list(hx if isinstance(hx, tuple) else [hx])
            _loss(outs[m]).backward()
            states[m] = (tuple(s.detach() for s in hx) if isinstance(hx, tuple)
                         else hx.detach())
        _close_all(outs[ours], outs[twin])
        _close_grads(ours, twin)
        if chunk == 0:
            _close(leaves[ours][0].grad, leaves[twin][0].grad, TOL, "dh0")
            if kind == "lstm":
                _close(leaves[ours][1].grad, leaves[twin][1].grad, TOL, "dc0")
        oo.step()
        ot.step()


def test_concurrent_python_threads_on_one_module(torch, frt):
    """Python threads sharing one module (the kernels release the GIL), the cache
    filled by whichever gets there first: each result equals the serial one."""
    import threading

    ours, _ = _pair(torch, frt, "lstm")
    params = list(ours.parameters())

    def work(seed):
        x = _x(torch, seed=seed, requires_grad=True)
        outs = _outputs(ours, x)
        grads = torch.autograd.grad(_loss(outs), [x] + params)
        return [o.detach() for o in outs] + list(grads)

    results, errors = {}, []

    def thread(k):
        try:
            for rep in range(3):
                results[(k, rep)] = work(k % 2)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=thread, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not errors, errors
    assert len(results) == 12
    serial = {s: work(s) for s in (0, 1)}
    for (k, _), got in results.items():
        _equal_all(got, serial[k % 2])


@pytest.mark.parametrize("kind", list(KINDS))
def test_gradcheck_input(torch, frt, kind):
    """torch.autograd.gradcheck against finite differences (undefined output grads
    included: check_undefined_grad)."""
    name, kw = KINDS[kind]
    torch.manual_seed(0)
    m = getattr(frt, name)(**kw).double()
    x = torch.randn(3, 2, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: tuple(_outputs(m, x)), (x,))


@pytest.mark.parametrize("kind", ["rnn", "gru_cell"])
def test_gradcheck_weights_via_functional_call(torch, frt, kind):
    """gradcheck over the weights (torch.func.functional_call, the standard way): its
    finite differences perturb the weight tensors in place through ``.data`` (no
    version bump), so a packed-weight cache keyed by (address, version) keeps serving
    the unperturbed weights and the numerical Jacobian comes out zero.  torch.nn
    passes."""
    ours, twin = _pair(torch, frt, kind)
    x = torch.randn(3, 2, 4, dtype=torch.float64)
    inp = x[0] if kind.endswith("cell") else x
    for m in (twin, ours):
        names = [n for n, _ in m.named_parameters()]
        ps = tuple(p.detach().clone().requires_grad_() for p in m.parameters())

        def f(*ps, m=m, names=names):
            out = torch.func.functional_call(m, dict(zip(names, ps)), (inp,))
            return out if isinstance(out, torch.Tensor) else out[0]

        assert torch.autograd.gradcheck(f, ps), type(m)


def test_weight_norm_parametrization(torch, frt):
    """A parametrized weight is a new tensor every forward: used, and trained, as in
    torch.nn; replace_rnns leaves the Parametrized* subclass alone."""
    from torch.nn.utils import parametrizations

    ours, twin = _pair(torch, frt, "rnn")
    for m in (ours, twin):
        parametrizations.weight_norm(m, "weight_hh_l0")
    assert isinstance(ours, frt.RNN)
    oo = torch.optim.SGD(ours.parameters(), lr=0.5)
    ot = torch.optim.SGD(twin.parameters(), lr=0.5)
    x = _x(torch)
    for _ in range(2):
        _check_train_step(torch, ours, twin, x)
        oo.step()
        ot.step()
    _check_train_step(torch, ours, twin, x)
    assert frt.replace_rnns(twin) is twin  # a subclass (ParametrizedRNN): not swapped


# ------------------------------------------------- 2. no_grad and inference_mode

@pytest.mark.parametrize("kind", list(KINDS))
def test_no_grad(torch, frt, kind):
    ours, twin = _pair(torch, frt, kind)
    x = _x(torch, requires_grad=True)
    with torch.no_grad():
        oo, ot = _outputs(ours, x), _outputs(twin, x)
    _close_all(oo, ot)
    for o in oo:
        assert not o.requires_grad and o.grad_fn is None


@pytest.mark.parametrize("kind", list(KINDS))
def test_inference_mode(torch, frt, kind):
    ours, twin = _pair(torch, frt, kind)
    with torch.inference_mode():
        x = _x(torch)  # an inference tensor
        assert x.is_inference()
        oo, ot = _outputs(ours, x), _outputs(twin, x)
    _close_all(oo, ot)
    for a, b in zip(oo, ot):
        assert not a.requires_grad and a.grad_fn is None
        assert a.is_inference() == b.is_inference()
    # an inference tensor outside inference_mode, under no_grad: fine for both
    with torch.no_grad():
        _close_all(_outputs(ours, x), _outputs(twin, x))
    # the cache filled in inference mode serves training afterwards
    _check_train_step(torch, ours, twin, _x(torch, seed=3))


@pytest.mark.parametrize("kind", ["lstm", "gru_cell"])
def test_module_made_under_inference_mode(torch, frt, kind):
    """Parameters created under inference_mode are inference tensors (no version
    counter): in-place changes of them must still reach the kernels."""
    with torch.inference_mode():
        ours, twin = _pair(torch, frt, kind)
        assert all(p.is_inference() for p in ours.parameters())
        x = _x(torch)
        _close_all(_outputs(ours, x), _outputs(twin, x))
        for i, (p, q) in enumerate(zip(ours.parameters(), twin.parameters())):
            p.add_(0.02 * (i + 1))
            q.add_(0.02 * (i + 1))
        oo = _outputs(ours, x)
        _close_all(oo, _outputs(twin, x))
        assert all(o.is_inference() for o in oo)


@pytest.mark.parametrize("kind", ["lstm", "gru_cell"])
def test_inference_tensor_in_autograd_raises_like_torch(torch, frt, kind):
    ours, twin = _pair(torch, frt, kind)
    with torch.inference_mode():
        x = _x(torch)
    for m in (twin, ours):
        with pytest.raises(RuntimeError, match="Inference tensors cannot be saved for backward"):
            _outputs(m, x)


# ----------------------------------------------------------- 3. clip_grad_norm_

def _model(torch):
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.pre = torch.nn.Linear(4, 6)
            self.lstm = torch.nn.LSTM(6, 7, num_layers=2, bidirectional=True)
            self.head = torch.nn.Linear(14, 2)

        def forward(self, x):
            y, (h, c) = self.lstm(torch.tanh(self.pre(x)))
            return self.head(y).sum() + h.sum() + c.pow(2).sum()

    return Net


def test_clip_grad_norm(torch, frt):
    torch.manual_seed(0)
    twin = _model(torch)().double()
    ours = frt.replace_rnns(copy.deepcopy(twin))
    assert type(ours.lstm) is frt.LSTM
    x = _x(torch)
    for m in (ours, twin):
        (m(x) * 3).backward()
    max_norm = 0.05
    no = torch.nn.utils.clip_grad_norm_(ours.parameters(), max_norm)
    nt = torch.nn.utils.clip_grad_norm_(twin.parameters(), max_norm)
    assert float(nt) > 10 * max_norm  # the clipping did something
    _close(no, nt, TOL, "total norm")
    _close_grads(ours, twin)
    after = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in ours.parameters()]))
    assert abs(float(after) - max_norm) < 1e-6 * max_norm


# ----------------------------------------------------------------- 4. state_dict

STATE_KINDS = {
    **KINDS,
    "lstm_proj_bf_3l": ("LSTM", dict(input_size=4, hidden_size=6, num_layers=3,
                                     bidirectional=True, proj_size=2, batch_first=True)),
    "lstm_nobias": ("LSTM", dict(input_size=4, hidden_size=5, bias=False)),
    "gru_nobias_bi": ("GRU", dict(input_size=4, hidden_size=5, bias=False,
                                  bidirectional=True)),
    "rnn_tanh_2l_bi": ("RNN", dict(input_size=4, hidden_size=5, num_layers=2,
                                   bidirectional=True)),
}


@pytest.mark.parametrize("kind", list(STATE_KINDS))
def test_state_dict_both_ways(torch, frt, kind):
    name, kw = STATE_KINDS[kind]
    torch.manual_seed(0)
    ours = getattr(frt, name)(**kw).double()
    torch.manual_seed(1)
    twin = getattr(torch.nn, name)(**kw).double()
    so, st = ours.state_dict(), twin.state_dict()
    assert list(so) == list(st)
    assert {k: tuple(v.shape) for k, v in so.items()} == {k: tuple(v.shape)
                                                         for k, v in st.items()}
    x = _x(torch)
    # torch.nn -> ours
    _outputs(ours, x)  # fill the cache first: the load must invalidate it
    res = ours.load_state_dict(st, strict=True)
    assert not res.missing_keys and not res.unexpected_keys
    _close_all(_eval(torch, ours, x), _eval(torch, twin, x))
    # ours -> torch.nn
    torch.manual_seed(2)
    ours2 = getattr(frt, name)(**kw).double()
    twin.load_state_dict(ours2.state_dict(), strict=True)
    _close_all(_eval(torch, ours2, x), _eval(torch, twin, x))


def test_state_dict_torch_save_load(torch, frt):
    ours, twin = _pair(torch, frt, "lstm")
    buf = io.BytesIO()
    torch.save(ours.state_dict(), buf)
    buf.seek(0)
    sd = torch.load(buf)  # weights_only=True (the default): plain tensors only
    torch.manual_seed(5)
    fresh_ours = frt.LSTM(**KINDS["lstm"][1]).double()
    fresh_twin = torch.nn.LSTM(**KINDS["lstm"][1]).double()
    fresh_ours.load_state_dict(sd, strict=True)
    fresh_twin.load_state_dict(sd, strict=True)
    x = _x(torch)
    _equal_all(_eval(torch, fresh_ours, x), _eval(torch, ours, x))
    _close_all(_eval(torch, fresh_twin, x), _eval(torch, ours, x))


def _copy(torch, how, m):
    if how == "deepcopy":
        return copy.deepcopy(m)
    if how == "pickle":
        return pickle.loads(pickle.dumps(m))
    buf = io.BytesIO()
    torch.save(m, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


@pytest.mark.parametrize("when", ["before_forward", "after_forward"])
@pytest.mark.parametrize("how", ["deepcopy", "pickle", "torch_save"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_copies_equal_and_independent(torch, frt, kind, how, when):
    ours, _ = _pair(torch, frt, kind)
    x = _x(torch)
    if when == "after_forward":  # the packed cache is filled (grad and no-grad paths)
        _loss(_outputs(ours, x)).backward()
        assert ours.__dict__.get("_fr_cache")
    ref = _eval(torch, ours, x)
    cp = _copy(torch, how, ours)
    assert type(cp) is type(ours) and cp is not ours
    _equal_all(_eval(torch, cp, x), ref)
    for p, q in zip(ours.parameters(), cp.parameters()):
        assert p is not q and p.data_ptr() != q.data_ptr()
    # the copy's weights change: the original does not
    with torch.no_grad():
        for q in cp.parameters():
            q.mul_(0.5)
    _equal_all(_eval(torch, ours, x), ref)
    name, kw = KINDS[kind]
    twin = getattr(torch.nn, name)(**kw).double()
    twin.load_state_dict(cp.state_dict())
    _close_all(_eval(torch, cp, x), _eval(torch, twin, x))
    # and the other way round
    cp_ref = _eval(torch, cp, x)
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(0.1)
    _equal_all(_eval(torch, cp, x), cp_ref)
    _check_train_step(torch, cp, twin, x)  # the copy trains


# ------------------------------------------------------- 5. the weight cache

@pytest.mark.parametrize("kind", list(KINDS))
def test_cache_follows_weight_changes(torch, frt, kind):
    ours, twin = _pair(torch, frt, kind)
    x = _x(torch)
    pairs = lambda: list(zip(ours.parameters(), twin.parameters()))  # noqa: E731
    _check_train_step(torch, ours, twin, x)  # fills the cache

    # load_state_dict (copy_ under no_grad: versions advance)
    name, kw = KINDS[kind]
    torch.manual_seed(9)
    sd = getattr(torch.nn, name)(**kw).double().state_dict()
    old = _eval(torch, ours, x)
    ours.load_state_dict(sd)
    twin.load_state_dict(sd)
    new = _check_train_step(torch, ours, twin, x)
    assert not torch.equal(new[0], old[0])

    # in-place under no_grad, one parameter at a time
    for i, (p, q) in enumerate(pairs()):
        with torch.no_grad():
            p.add_(0.01 * (i + 1))
            q.add_(0.01 * (i + 1))
        _close_all(_eval(torch, ours, x), _eval(torch, twin, x))

    # dtype moves: new tensors (new addresses)
    ours.float()
    twin.float()
    _check_train_step(torch, ours, twin, x.float(), tol=TOL32)
    ours.double()
    twin.double()
    _check_train_step(torch, ours, twin, x)

    # p.data = a new tensor
    g = torch.Generator().manual_seed(11)
    for p, q in pairs():
        new = torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.4
        p.data = new.clone()
        q.data = new.clone()
    _check_train_step(torch, ours, twin, x)

    # an optimizer over the new data
    opt = torch.optim.SGD(ours.parameters(), lr=0.3)
    opt_t = torch.optim.SGD(twin.parameters(), lr=0.3)
    opt.step()
    opt_t.step()
    _check_train_step(torch, ours, twin, x)


@pytest.mark.parametrize("write", ["data_add", "numpy_write"])
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_cell", "lstm_cell"])
def test_writes_bypassing_the_version_counter_need_flatten_parameters(torch, frt, kind,
                                                                       write):
    """Documents the contract (module docstring, docs/pytorch.md): writes through ``p.data`` or
    through a NumPy view are invisible to the cache; ``flatten_parameters()`` is the
    required call after them."""
    ours, twin = _pair(torch, frt, kind)
    x = _x(torch)
    before = _eval(torch, ours, x)
    for i, (p, q) in enumerate(zip(ours.parameters(), twin.parameters())):
        v0 = p._version
        if write == "data_add":
            p.data.add_(0.05 * (i + 1))
        else:
            p.detach().numpy()[...] += 0.05 * (i + 1)
        assert p._version == v0  # indeed invisible to the counter
        with torch.no_grad():
            q.add_(0.05 * (i + 1))
    _equal_all(_eval(torch, ours, x), before)  # stale: the packed weights of before
    ours.flatten_parameters()
    after = _eval(torch, ours, x)
    _close_all(after, _eval(torch, twin, x))
    assert not torch.equal(after[0], before[0])
    _check_train_step(torch, ours, twin, x)


# ------------------------------------------------- 6. replace_rnns / from_torch

def _net(torch):
    nn = torch.nn

    class MyLSTM(nn.LSTM):  # a user's subclass: may override forward; left alone
        pass

    class Inner(nn.Module):
        def __init__(self):
            super().__init__()
            self.seq = nn.Sequential(nn.Linear(4, 5), nn.GRU(5, 5))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Inner()
            shared = nn.RNN(5, 5)
            self.mlist = nn.ModuleList([nn.LSTM(5, 5, num_layers=2), nn.GRUCell(5, 5),
                                        shared])
            self.shared = shared  # the same module in two places
            self.sub = MyLSTM(5, 5)
            self.head = nn.Linear(5, 2)

        def forward(self, x):
            y, _ = self.inner.seq[1](self.inner.seq[0](x))
            y, _ = self.mlist[0](y)
            hc = self.mlist[1](y[-1])
            y, _ = self.mlist[2](y)
            y, _ = self.shared(y)
            y, _ = self.sub(y)
            return self.head(y[-1] + hc).pow(2).sum()

    return Net, MyLSTM


def test_replace_rnns_nested_model(torch, frt):
    Net, MyLSTM = _net(torch)
    torch.manual_seed(0)
    model = Net().double()
    twin = copy.deepcopy(model)
    params_before = list(model.parameters())
    keys_before = list(model.state_dict())
    opt = torch.optim.SGD(model.parameters(), lr=0.05)  # made before the swap
    opt_t = torch.optim.SGD(twin.parameters(), lr=0.05)
    x = _x(torch)
    before = model(x).detach()

    out = frt.replace_rnns(model)
    assert out is model
    assert type(model.inner.seq[1]) is frt.GRU
    assert type(model.mlist[0]) is frt.LSTM
    assert type(model.mlist[1]) is frt.GRUCell
    assert type(model.mlist[2]) is frt.RNN
    assert model.shared is model.mlist[2]  # still one module
    assert type(model.sub) is MyLSTM  # a subclass is not ours to replace
    assert type(model.inner.seq[0]) is torch.nn.Linear
    assert isinstance(model.mlist[0], torch.nn.LSTM)
    assert isinstance(model.mlist[1], torch.nn.GRUCell)
    # the same Parameter objects, same state_dict keys
    after = list(model.parameters())
    assert len(after) == len(params_before)
    assert all(a is b for a, b in zip(after, params_before))
    assert list(model.state_dict()) == keys_before
    _close(model(x), before, TOL, "after replace_rnns")

    # the optimizer made before still trains it, as torch.nn's twin
    for _ in range(3):
        opt.zero_grad()
        opt_t.zero_grad()
        lo, lt = model(x), twin(x)
        _close(lo, lt, TOL, "loss")
        lo.backward()
        lt.backward()
        _close_grads(model, twin)
        opt.step()
        opt_t.step()
    _close(model(x), twin(x), TOL, "after training")
    assert not torch.equal(model(x).detach(), before)

    # twice: harmless, nothing changes
    mods = [model.inner.seq[1], model.mlist[0], model.mlist[1], model.mlist[2]]
    assert frt.replace_rnns(model) is model
    assert [model.inner.seq[1], model.mlist[0], model.mlist[1], model.mlist[2]] == mods
    assert all(a is b for a, b in zip(model.parameters(), params_before))


def test_replace_rnns_top_level_and_from_torch(torch, frt):
    torch.manual_seed(0)
    t = torch.nn.LSTM(4, 5, num_layers=2).double()
    ours = frt.replace_rnns(t)
    assert type(ours) is frt.LSTM and isinstance(ours, torch.nn.LSTM)
    assert all(a is b for a, b in zip(ours.parameters(), t.parameters()))
    x = _x(torch)
    _close_all(_eval(torch, ours, x), _eval(torch, t, x))
    assert frt.replace_rnns(ours) is ours
    assert frt.from_torch(ours) is ours
    for name in ("GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell"):
        m = getattr(torch.nn, name)(4, 5)
        assert type(frt.from_torch(m)) is getattr(frt, name)
    # shared Parameters: a change through one is seen by the other (version bump)
    with torch.no_grad():
        t.weight_hh_l1.mul_(2)
    _close_all(_eval(torch, ours, x), _eval(torch, t, x))


def test_from_torch_rejects_other_modules(torch, frt):
    _, MyLSTM = _net(torch)
    for bad in (torch.nn.Linear(2, 3), MyLSTM(2, 3), torch.nn.Sequential()):
        with pytest.raises(TypeError, match=r"^module: expected a torch\.nn\.LSTM"):
            frt.from_torch(bad)
    with pytest.raises(TypeError, match=r"^model: expected a torch\.nn\.Module"):
        frt.replace_rnns("lstm")


def test_from_torch_carries_training_flag(torch, frt):
    torch.manual_seed(0)
    t = torch.nn.LSTM(4, 5, num_layers=3, dropout=0.5).double().eval()
    ours = frt.from_torch(t)
    assert ours.training is False
    x = _x(torch)
    # eval: no dropout, deterministic and equal to torch.nn
    _close_all(_eval(torch, ours, x), _eval(torch, t, x))
    ours.train()
    assert ours.training is True
    a, b = _eval(torch, ours, x), _eval(torch, ours, x)
    assert not torch.equal(a[0], b[0])  # dropout between layers is on
    model = torch.nn.Sequential(torch.nn.GRU(4, 5)).eval()
    frt.replace_rnns(model)
    assert model[0].training is False


def test_from_torch_carries_hooks(torch, frt):
    t = torch.nn.GRU(4, 5).double()
    calls = []
    t.register_forward_pre_hook(lambda m, args: calls.append(("pre", type(m))))
    t.register_forward_hook(lambda m, args, out: calls.append(("post", type(m))))
    ours = frt.from_torch(t)
    ours(_x(torch))
    assert calls == [("pre", frt.GRU), ("post", frt.GRU)]
    # a hook that changes the output still does
    ours.register_forward_hook(lambda m, args, out: (out[0] * 0, out[1]))
    assert not ours(_x(torch))[0].any()


def test_hook_handles_still_remove_after_from_torch(torch, frt):
    """A handle from register_forward_hook on the torch.nn module, made before the swap
    (typical: hooks for feature extraction, then replace_rnns), must still remove the
    hook from the module that replaced it ("shares ... hooks", from_torch's docstring)."""
    model = torch.nn.Sequential(torch.nn.LSTM(4, 5))
    calls = []
    handle = model[0].register_forward_hook(lambda m, args, out: calls.append(1))
    frt.replace_rnns(model)
    model(torch.randn(T, B, I))
    assert calls == [1]
    handle.remove()
    model(torch.randn(T, B, I))
    assert calls == [1], "the removed hook still runs on the replacement"


# ----------------------------------------------------------------- 7. errors

def _bad_packed(torch, bs, data=None):
    from torch.nn.utils.rnn import PackedSequence

    good = PackedSequence(torch.randn(6, I), torch.tensor([3, 2, 1]))
    return good._replace(batch_sizes=bs, data=good.data if data is None else data)


# id -> (module kind and dtype, the call, exception, message pattern)
ERRORS = {
    "meta_input": ("LSTM", lambda t, m: m(t.empty(T, B, I, device="meta")), TypeError,
                   r"^LSTM: input is on meta; .*CPU only"),
    "meta_module": ("LSTM@meta", lambda t, m: m(t.empty(T, B, I, device="meta")),
                    TypeError, r"^LSTM: the parameters are on meta; .*CPU only"),
    "meta_cell_input": ("GRUCell", lambda t, m: m(t.empty(B, I, device="meta")), TypeError,
                        r"^GRUCell: input is on meta; .*CPU only"),
    "meta_cell_module": ("RNNCell@meta", lambda t, m: m(t.empty(B, I, device="meta")),
                         TypeError, r"^RNNCell: the parameters are on meta; .*CPU only"),
    "meta_hx": ("GRU", lambda t, m: m(t.randn(T, B, I), t.empty(1, B, 5, device="meta")),
                TypeError, r"^GRU: hx is on meta; .*CPU only"),
    "meta_c0": ("LSTM", lambda t, m: m(t.randn(T, B, I), (t.zeros(1, B, 5),
                                                         t.empty(1, B, 5, device="meta"))),
                TypeError, r"^LSTM: hx\[1\] \(c_0\) is on meta"),
    "half_module": ("LSTM@half", lambda t, m: m(t.randn(T, B, I).half()), TypeError,
                    r"^LSTM: the parameters are torch\.float16; .*float32 and "
                    r"torch\.float64 only"),
    "bf16_module": ("GRUCell@bf16", lambda t, m: m(t.randn(B, I).bfloat16()), TypeError,
                    r"^GRUCell: the parameters are torch\.bfloat16"),
    "half_input": ("GRU", lambda t, m: m(t.randn(T, B, I).half()), TypeError,
                   r"^GRU: input is torch\.float16; .*float32 and torch\.float64 only"),
    "bf16_input": ("LSTMCell", lambda t, m: m(t.randn(B, I).bfloat16()), TypeError,
                   r"^LSTMCell: input is torch\.bfloat16"),
    "int_input": ("RNN", lambda t, m: m(t.ones(T, B, I, dtype=t.int64)), TypeError,
                  r"^RNN: input is torch\.int64"),
    "f64_into_f32": ("LSTM", lambda t, m: m(t.randn(T, B, I, dtype=t.float64)), TypeError,
                     r"^LSTM: input is torch\.float64 but the parameters are torch\.float32"),
    "f64_hx_into_f32": ("GRU", lambda t, m: m(t.randn(T, B, I),
                                              t.zeros(1, B, 5, dtype=t.float64)),
                        TypeError, r"^GRU: hx is torch\.float64 but the parameters"),
    "not_a_tensor": ("RNN", lambda t, m: m([[0.0] * I] * T), TypeError,
                     r"^RNN: input: expected a torch\.Tensor, got list"),
    "input_4d": ("LSTM", lambda t, m: m(t.randn(2, T, B, I)), ValueError,
                 r"^LSTM: input: expected 3 dimensions \(T, B, input_size\)"),
    "input_1d": ("GRU", lambda t, m: m(t.randn(I)), ValueError,
                 r"^GRU: input: expected 3 dimensions"),
    "input_size": ("LSTM", lambda t, m: m(t.randn(T, B, I + 1)), ValueError,
                   r"^LSTM: input: expected input_size 4 on the last axis, got shape "
                   r"\(5, 3, 5\)"),
    "h0_shape": ("LSTM", lambda t, m: m(t.randn(T, B, I), (t.zeros(1, B + 1, 5),
                                                          t.zeros(1, B, 5))),
                 ValueError, r"^LSTM: hx\[0\] \(h_0\): expected shape \(1, 3, 5\), got "
                             r"\(1, 4, 5\)"),
    "c0_shape": ("LSTM", lambda t, m: m(t.randn(T, B, I), (t.zeros(1, B, 5),
                                                          t.zeros(2, B, 5))),
                 ValueError, r"^LSTM: hx\[1\] \(c_0\): expected shape \(1, 3, 5\)"),
    "gru_hx_shape": ("GRU", lambda t, m: m(t.randn(T, B, I), t.zeros(B, 5)), ValueError,
                     r"^GRU: hx: expected shape \(1, 3, 5\), got \(3, 5\)"),
    "lstm_hx_not_tuple": ("LSTM", lambda t, m: m(t.randn(T, B, I), t.zeros(1, B, 5)),
                          TypeError, r"^LSTM: hx: expected a tuple \(h_0, c_0\), got Tensor"),
    "lstm_hx_3_tuple": ("LSTM", lambda t, m: m(t.randn(T, B, I), (t.zeros(1, B, 5),) * 3),
                        TypeError, r"^LSTM: hx: expected a tuple \(h_0, c_0\)"),
    "gru_hx_tuple": ("GRU", lambda t, m: m(t.randn(T, B, I), (t.zeros(1, B, 5),)),
                     TypeError, r"^GRU: hx: expected a tensor h_0, got a tuple"),
    "lstmcell_hx_not_tuple": ("LSTMCell", lambda t, m: m(t.randn(B, I), t.zeros(B, 5)),
                              TypeError, r"^LSTMCell: hx: expected a tuple \(h_0, c_0\)"),
    "grucell_hx_tuple": ("GRUCell", lambda t, m: m(t.randn(B, I), (t.zeros(B, 5),)),
                         TypeError, r"^GRUCell: hx: expected a tensor, got a tuple"),
    "cell_input_size": ("RNNCell", lambda t, m: m(t.randn(B, I + 2)), ValueError,
                        r"^RNNCell: input: expected shape \(B, 4\) or \(4,\), got \(3, 6\)"),
    "cell_input_3d": ("GRUCell", lambda t, m: m(t.randn(T, B, I)), ValueError,
                      r"^GRUCell: input: expected shape \(B, 4\)"),
    "cell_hx_shape": ("GRUCell", lambda t, m: m(t.randn(B, I), t.zeros(B, 6)), ValueError,
                      r"^GRUCell: hx: expected shape \(3, 5\), got \(3, 6\)"),
    "packed_bs_int32": ("LSTM", lambda t, m: m(_bad_packed(t, t.tensor([3, 2, 1],
                                                                        dtype=t.int32))),
                        ValueError, r"^LSTM: input\.batch_sizes: expected a non-empty 1-D "
                                    r"CPU int64 tensor"),
    "packed_bs_list": ("GRU", lambda t, m: m(_bad_packed(t, [3, 2, 1])), ValueError,
                       r"^GRU: input\.batch_sizes: expected"),
    "packed_bs_2d": ("RNN", lambda t, m: m(_bad_packed(t, t.tensor([[3, 2, 1]]))),
                     ValueError, r"^RNN: input\.batch_sizes: expected"),
    "packed_bs_empty": ("LSTM", lambda t, m: m(_bad_packed(t, t.tensor([],
                                                                        dtype=t.int64))),
                        ValueError, r"^LSTM: input\.batch_sizes: expected a non-empty"),
    "packed_bs_float": ("LSTM", lambda t, m: m(_bad_packed(t, t.tensor([3.0, 2.0, 1.0]))),
                        ValueError, r"^LSTM: input\.batch_sizes: expected"),
    "packed_bs_increasing": ("GRU", lambda t, m: m(_bad_packed(t, t.tensor([2, 3, 1]))),
                             ValueError, r"batch_sizes: expected non-increasing values"),
    "packed_bs_zero": ("GRU", lambda t, m: m(_bad_packed(t, t.tensor([3, 3, 0]))),
                       ValueError, r"batch_sizes: expected non-increasing values >= 1"),
    "packed_bs_sum": ("LSTM", lambda t, m: m(_bad_packed(t, t.tensor([3, 2, 2]))),
                      ValueError, r"^LSTM: input\.batch_sizes: expected non-increasing values "
                      r">= 1 summing to input\.data's 6 rows, got \[3, 2, 2\]"),
    "packed_data_width": ("LSTM", lambda t, m: m(_bad_packed(t, t.tensor([3, 2, 1]),
                                                             t.randn(6, I + 1))),
                          ValueError, r"^LSTM: input\.data: expected shape \(N, 4\)"),
    "packed_data_dtype": ("LSTM", lambda t, m: m(_bad_packed(t, t.tensor([3, 2, 1]),
                                                             t.randn(6, I).double())),
                          TypeError, r"^LSTM: input\.data is torch\.float64 but"),
    "empty_T": ("LSTM", lambda t, m: m(t.randn(0, B, I)), ValueError,
                r"^LSTM: input: expected at least one time step \(as torch.nn\), got "
                r"shape \(0, 3, 4\)"),
    "empty_T_unbatched": ("LSTM", lambda t, m: m(t.randn(0, I)), ValueError,
                          r"^LSTM: input: expected at least one time step"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_errors(torch, frt, case):
    spec, call, exc, pattern = ERRORS[case]
    name, _, mod = spec.partition("@")
    kw = {"batch_first": True} if mod == "bf" else {}
    m = getattr(frt, name)(I, 5, **kw)
    if mod == "meta":
        m = m.to("meta")
    elif mod == "half":
        m = m.half()
    elif mod == "bf16":
        m = m.bfloat16()
    with pytest.raises(exc, match=pattern):
        call(torch, m)


@pytest.mark.parametrize("kind", ["lstm", "gru", "gru_cell", "lstm_cell"])
def test_double_backward_raises(torch, frt, kind):
    ours, twin = _pair(torch, frt, kind)
    x = _x(torch, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"double backward.*create_graph=True"):
        torch.autograd.grad(_loss(_outputs(ours, x)), x, create_graph=True)
    with pytest.raises(RuntimeError, match=r"double backward"):
        _loss(_outputs(ours, x)).backward(create_graph=True)
    for p in ours.parameters():
        p.grad = None
    # the same without create_graph works, and matches torch.nn
    (gx,) = torch.autograd.grad(_loss(_outputs(ours, x)), x)
    (gt,) = torch.autograd.grad(_loss(_outputs(twin, x)), x)
    _close(gx, gt, TOL, "dx")


@pytest.mark.parametrize("kind", ["lstm", "gru_time_major", "rnn", "lstm_cell", "gru_cell"])
def test_inplace_input_change_before_backward_raises(torch, frt, kind):
    """The kernels read a contiguous input where it lies; it is saved for backward, so
    autograd reports an in-place change of it, as torch.nn does."""
    if kind == "gru_time_major":
        torch.manual_seed(0)
        ours = frt.GRU(I, 5, num_layers=2, bidirectional=True).double()
        twin = torch.nn.GRU(I, 5, num_layers=2, bidirectional=True).double()
    else:
        ours, twin = _pair(torch, frt, kind)
    for m in (twin, ours):  # torch.nn's behaviour, then ours
        x0 = _x(torch, requires_grad=True)
        x = x0 * 1  # a non-leaf, so that it may be changed in place
        loss = _loss(_outputs(m, x))
        x.add_(1)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            loss.backward()


def test_inplace_input_change_batch_first_gives_forward_time_grads(torch, frt):
    """batch_first: the kernels get a time-major copy (saved instead of the input), so
    an in-place change of the input after forward is not reported (torch.nn raises),
    but the gradients are those of the values the forward used: never silently wrong."""
    ours, twin = _pair(torch, frt, "gru")  # batch_first=True
    x0 = _x(torch, requires_grad=True)
    x = x0 * 1
    loss = _loss(_outputs(ours, x))
    x.add_(1)
    loss.backward()
    xt = _x(torch, requires_grad=True)
    _loss(_outputs(twin, xt * 1)).backward()
    _close(x0.grad, xt.grad, TOL, "dx")
    _close_grads(ours, twin)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_cell"])
def test_optimizer_step_before_backward_raises(torch, frt, kind):
    ours, twin = _pair(torch, frt, kind)
    for m in (twin, ours):
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        _loss(_outputs(m, _x(torch))).backward()
        loss = _loss(_outputs(m, _x(torch)))
        opt.step()
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            loss.backward()


@pytest.mark.parametrize("kind", ["lstm", "lstm_1l", "gru", "rnn", "lstm_cell", "rnn_cell"])
def test_inplace_change_of_outputs_keeps_grads_right(torch, frt, kind):
    """Outputs come back over the kernels' arrays: changing them in place (which
    autograd allows on ours) must not corrupt what backward reads.  The twin makes the
    same change out of place (torch.nn's cells save their outputs and would raise).
    One layer-direction (lstm_1l, rnn) returns its states without a copy."""
    if kind == "lstm_1l":
        torch.manual_seed(0)
        ours, twin = frt.LSTM(I, 5).double(), torch.nn.LSTM(I, 5).double()
        twin.load_state_dict(ours.state_dict())
    else:
        ours, twin = _pair(torch, frt, kind)
    x = _x(torch)
    xo, xt = x.clone().requires_grad_(), x.clone().requires_grad_()
    oo, ot = _outputs(ours, xo), _outputs(twin, xt)
    oo[-1].mul_(3)
    oo[0].add_(0.5)
    ot[-1] = ot[-1] * 3
    ot[0] = ot[0] + 0.5
    _loss(oo).backward()
    _loss(ot).backward()
    _close(xo.grad, xt.grad, TOL, "dx")
    _close_grads(ours, twin)


# ------------------------------------------------------- 8. torch stays optional

def _subprocess(code):
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(fusedrnn.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "")
                                                  .split(os.pathsep) if p])
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode == 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r.stdout


def test_import_fusedrnn_does_not_import_torch():
    out = _subprocess("""
        import sys
        import numpy as np
        import fusedrnn
        m = fusedrnn.LSTM(3, 4, seed=0)
        y, state = m(np.ones((2, 1, 3), np.float32))
        assert y.shape == (2, 1, 4), y.shape
        g = fusedrnn.GRUCell(3, 4, seed=0)
        g(np.ones((1, 3), np.float32))
        assert "torch" not in sys.modules, sorted(k for k in sys.modules if "torch" in k)
        print("ok")
    """)
    assert out.strip() == "ok"


BLOCKERS = {
    "sys_modules_none": "sys.modules['torch'] = None\n",
    "meta_path_finder": """
        class _NoTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError(f"No module named {name!r} (blocked by the test)")
                return None
        sys.meta_path.insert(0, _NoTorch())
    """,
}


@pytest.mark.parametrize("fusedrnn_first", [False, True])
@pytest.mark.parametrize("blocker", list(BLOCKERS))
def test_fusedrnn_torch_without_torch(blocker, fusedrnn_first):
    out = _subprocess("import sys\n" + textwrap.dedent(BLOCKERS[blocker]) + textwrap.dedent(f"""
        if {fusedrnn_first}:
            import fusedrnn
        try:
            import fusedrnn.torch
        except ImportError as e:
            msg = str(e)
        else:
            raise SystemExit("import fusedrnn.torch succeeded without torch")
        assert "pip install torch==2.13.0" in msg, msg
        assert "fusedrnn.torch" not in sys.modules
        import numpy as np
        import fusedrnn
        y, _ = fusedrnn.GRU(3, 4, seed=0)(np.ones((2, 1, 3), np.float32))
        assert y.shape == (2, 1, 4)
        print("ok")
    """))
    assert out.strip() == "ok"
