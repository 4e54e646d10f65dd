"""fusedrnn.optim against torch.optim, step by step (float64), and its argument checks.

The training loop: a fusedrnn LSTM and a NumPy readout (a dict of arrays) on a small
regression; gradients from ``backward`` and by hand for the readout, clipped with
``fusedrnn.clip_grad_norm``, then one optimizer step.  The torch side holds the same
parameters as tensors, receives the same unclipped gradients, clips them with
``torch.nn.utils.clip_grad_norm_`` and steps with torch.optim.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import fusedrnn
from fusedrnn import optim

RTOL = 1e-12
T, B, I, H, O = 5, 3, 3, 4, 2


def _problem(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    lstm = fusedrnn.LSTM(I, H, num_layers=2, dtype=dtype, seed=seed)
    readout = {"weight": (0.5 * rng.standard_normal((O, H))).astype(dtype),
               "bias": (0.1 * rng.standard_normal(O)).astype(dtype)}
    data = [(rng.standard_normal((T, B, I)).astype(dtype),
             rng.standard_normal((B, O)).astype(dtype)) for _ in range(3)]
    return lstm, readout, data


def _grads(lstm, readout, x, target):
    """Loss 0.5 * sum((y[-1] W^T + b - target)^2): gradients per source."""
    y, _, tape = lstm.forward(x, train=True)
    err = y[-1] @ readout["weight"].T + readout["bias"] - target
    dy = np.zeros_like(y)
    dy[-1] = err @ readout["weight"]
    _, _, g_lstm = lstm.backward(tape, dy)
    return [g_lstm, {"weight": err.T @ y[-1], "bias": err.sum(0)}]


def _torch_params(torch, lstm, readout):
    vals = list(lstm.state_dict().values()) + list(readout.values())
    return [torch.nn.Parameter(torch.tensor(v)) for v in vals]


def _ours(lstm, readout):
    return list(lstm.state_dict().values()) + list(readout.values())


def _close(a, b):
    """a == b to RTOL of b's largest magnitude: both sides take the same float64 steps,
    so only rounding separates them, and an element that cancels to near zero (say a
    momentum buffer's) carries the rounding of its terms, not of itself."""
    b = np.asarray(b)
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=RTOL * float(np.abs(b).max(initial=0.0)))


def _assert_same_params(lstm, readout, tparams):
    for a, t in zip(_ours(lstm, readout), tparams):
        _close(a, t.detach().numpy())


def _run_parity(torch, make_ours, make_torch, steps=7, skip=None):
    """Train both sides; lr changes after step 3.  skip(step) -> set of flat indices
    without a gradient at that step."""
    lstm, readout, data = _problem()
    tparams = _torch_params(torch, lstm, readout)
    n_lstm = len(lstm.state_dict())
    opt = make_ours([{"params": lstm}, {"params": readout, "lr": 0.05}])
    topt = make_torch([{"params": tparams[:n_lstm]}, {"params": tparams[n_lstm:], "lr": 0.05}])
    for step in range(steps):
        x, target = data[step % len(data)]
        grads = _grads(lstm, readout, x, target)
        flat = list(grads[0].values()) + list(grads[1].values())
        keys = [(0, k) for k in grads[0]] + [(1, k) for k in grads[1]]
        for t, g in zip(tparams, flat):
            t.grad = torch.tensor(g)
        missing = skip(step) if skip else set()
        for i in missing:
            si, k = keys[i]
            if i % 2:
                grads[si][k] = None  # None and an absent key mean the same
            else:
                del grads[si][k]
            tparams[i].grad = None
        total = fusedrnn.clip_grad_norm(grads, 0.5)
        ttotal = torch.nn.utils.clip_grad_norm_(tparams, 0.5)
        assert total == pytest.approx(float(ttotal), rel=RTOL)
        opt.step(grads)
        topt.step()
        _assert_same_params(lstm, readout, tparams)
        if step == 3:
            for g, tg in zip(opt.param_groups, topt.param_groups):
                g["lr"] *= 0.5
                tg["lr"] *= 0.5
    return opt, topt, lstm, readout, tparams


def _sgd_cases():
    for momentum, dampening, nesterov, wd, maximize in itertools.product(
            (0.0, 0.9), (0.0, 0.3), (False, True), (0.0, 0.01), (False, True)):
        if nesterov and (momentum == 0 or dampening != 0):
            continue
        yield dict(momentum=momentum, dampening=dampening, nesterov=nesterov,
                   weight_decay=wd, maximize=maximize)


@pytest.mark.parametrize("kw", list(_sgd_cases()), ids=lambda kw: "-".join(
    f"{k}={v}" for k, v in kw.items()))
def test_sgd_matches_torch(torch, kw):
    opt, topt, *_ = _run_parity(torch, lambda p: optim.SGD(p, lr=0.1, **kw),
                                lambda p: torch.optim.SGD(p, lr=0.1, **kw))
    if kw["momentum"]:  # the buffers are torch's
        for i, t in enumerate(p for g in topt.param_groups for p in g["params"]):
            _close(opt.state[i]["momentum_buffer"], topt.state[t]["momentum_buffer"].numpy())
    else:
        assert opt.state_dict()["state"] == {} and topt.state_dict()["state"] == {}


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
@pytest.mark.parametrize("maximize", [False, True])
def test_adam_matches_torch(torch, name, amsgrad, weight_decay, maximize):
    kw = dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=weight_decay,
              amsgrad=amsgrad, maximize=maximize)
    opt, topt, *_ = _run_parity(torch, lambda p: getattr(optim, name)(p, **kw),
                                lambda p: getattr(torch.optim, name)(p, **kw))
    tps = [p for g in topt.param_groups for p in g["params"]]
    for i, t in enumerate(tps):
        st, tst = opt.state[i], topt.state[t]
        assert st["step"] == float(tst["step"]) == 7
        for k in ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if amsgrad else ()):
            _close(st[k], tst[k].numpy())


def test_defaults_and_small_beta1_match_torch(torch):
    """The default hyperparameters are torch's; beta1 < 0.5 (torch's lerp then uses its
    other formula) follows too."""
    for kw in ({}, {"betas": (0.3, 0.9)}):
        _run_parity(torch, lambda p: optim.Adam(p, **kw),
                    lambda p: torch.optim.Adam(p, **kw), steps=4)
    _run_parity(torch, lambda p: optim.AdamW(p), lambda p: torch.optim.AdamW(p), steps=4)
    _run_parity(torch, lambda p: optim.SGD(p), lambda p: torch.optim.SGD(p), steps=2)
    assert optim.AdamW({"w": np.zeros(1)}).defaults["weight_decay"] == 0.01
    assert optim.Adam({"w": np.zeros(1)}).defaults["weight_decay"] == 0.0


@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_missing_grads_are_skipped_like_none_grad(torch, name):
    """Absent keys and None values: no update and no state for that parameter that
    step, as a torch parameter whose .grad is None."""
    kw = {"lr": 0.05, "momentum": 0.9} if name == "SGD" else {"lr": 0.05}
    skipped = {1: {0, 5}, 2: {1}, 4: {0, 1, 5, 6}}  # step -> flat indices without a grad
    opt, topt, lstm, readout, tparams = _run_parity(
        torch, lambda p: getattr(optim, name)(p, **kw),
        lambda p: getattr(torch.optim, name)(p, **kw), steps=6,
        skip=lambda s: skipped.get(s, set()))
    if name == "Adam":  # per-parameter step counts differ, as torch's
        tps = [p for g in topt.param_groups for p in g["params"]]
        counts = [opt.state[i]["step"] for i in range(len(tps))]
        assert counts == [float(topt.state[t]["step"]) for t in tps]
        assert counts[0] == 4 and counts[2] == 6


def test_first_step_skipped_param_has_no_state():
    lstm, readout, data = _problem()
    opt = optim.Adam([lstm, readout], lr=0.1)
    before = readout["bias"].copy()
    grads = _grads(lstm, readout, *data[0])
    del grads[1]["bias"]
    opt.step(grads)
    np.testing.assert_array_equal(readout["bias"], before)
    n_lstm = len(lstm.state_dict())
    assert n_lstm + 1 not in opt.state and n_lstm in opt.state
    assert sorted(opt.state_dict()["state"]) == list(range(n_lstm + 1))


def test_state_dict_round_trip_continues_identically():
    lstm, readout, data = _problem()
    opt = optim.Adam([lstm, readout], lr=0.03, amsgrad=True)
    for step in range(3):
        opt.step(_grads(lstm, readout, *data[step]))
    opt.param_groups[1]["lr"] = 0.01
    sd = opt.state_dict()
    assert list(sd) == ["state", "param_groups"]
    assert sd["param_groups"][0]["params"] == list(range(len(lstm.state_dict())))
    assert sd["param_groups"][1]["lr"] == 0.01
    # A second copy of the model and an optimizer restored from sd.
    lstm2 = fusedrnn.LSTM(I, H, num_layers=2, dtype=np.float64, seed=99)
    lstm2.load_state_dict(lstm.state_dict())
    readout2 = {k: v.copy() for k, v in readout.items()}
    opt2 = optim.Adam([lstm2, readout2], lr=0.5)
    opt2.load_state_dict(sd)
    assert opt2.param_groups[1]["lr"] == 0.01 and opt2.param_groups[0]["lr"] == 0.03
    # sd holds copies: stepping the original does not change it, nor opt2.
    saved = {i: {k: np.copy(v) for k, v in s.items()} for i, s in sd["state"].items()}
    for step in range(3):
        x, target = data[(step + 1) % 3]
        opt.step(_grads(lstm, readout, x, target))
        opt2.step(_grads(lstm2, readout2, x, target))
    for a, b in zip(_ours(lstm, readout), _ours(lstm2, readout2)):
        np.testing.assert_array_equal(a, b)
    for i, s in saved.items():
        for k, v in s.items():
            np.testing.assert_array_equal(sd["state"][i][k], v)


def test_state_dict_sgd_and_errors():
    w = {"w": np.ones(3)}
    opt = optim.SGD(w, lr=0.1, momentum=0.5)
    opt.step({"w": np.ones(3)})
    sd = opt.state_dict()
    np.testing.assert_array_equal(sd["state"][0]["momentum_buffer"], np.ones(3))
    other = optim.SGD({"w": np.zeros(3)}, lr=1.0)
    other.load_state_dict(sd)
    assert other.param_groups[0]["momentum"] == 0.5
    with pytest.raises(TypeError, match="state_dict"):
        other.load_state_dict({"state": {}})
    with pytest.raises(ValueError, match=r"param_groups.*expected 1 groups, got 2"):
        other.load_state_dict({"state": {}, "param_groups": sd["param_groups"] * 2})
    bad = {"state": {}, "param_groups": [dict(sd["param_groups"][0], params=[0, 1])]}
    with pytest.raises(ValueError, match=r"\['params'\]: expected 1 parameters"):
        other.load_state_dict(bad)
    bad = {"state": {0: {"momentum_buffer": np.ones(4)}}, "param_groups": sd["param_groups"]}
    with pytest.raises(ValueError, match=r"momentum_buffer.*shape \(3,\)"):
        other.load_state_dict(bad)
    bad = {"state": {0: {"exp_avg": np.ones(3)}}, "param_groups": sd["param_groups"]}
    with pytest.raises(ValueError, match="exp_avg.*not a buffer of SGD"):
        other.load_state_dict(bad)
    bad = {"state": {7: {}}, "param_groups": sd["param_groups"]}
    with pytest.raises(ValueError, match=r"\[7\]"):
        other.load_state_dict(bad)
    bad = {"state": {}, "param_groups": [dict(sd["param_groups"][0], lr=-1.0)]}
    with pytest.raises(ValueError, match="lr"):
        other.load_state_dict(bad)
    assert other.param_groups[0]["momentum"] == 0.5  # failed loads changed nothing


def test_step_keeps_packed_weights_right():
    """After a step, the layer's and the cell's outputs are those of fresh modules loaded
    with the same weights (the packed copy the kernels use was renewed)."""
    rng = np.random.default_rng(5)
    for dtype in (np.float32, np.float64):
        lstm = fusedrnn.GRU(I, H, bidirectional=True, dtype=dtype, seed=1)
        cell = fusedrnn.LSTMCell(I, H, dtype=dtype, seed=2)
        x = rng.standard_normal((T, B, I)).astype(dtype)
        xt = x[0].copy()
        lstm(x)
        cell(xt)  # prime the packed caches
        opt = optim.SGD([lstm, cell], lr=0.5)
        opt.step([{k: np.ones_like(v) for k, v in lstm.state_dict().items()},
                  {k: np.ones_like(v) for k, v in cell.state_dict().items()}])
        fresh = fusedrnn.GRU(I, H, bidirectional=True, dtype=dtype, seed=7)
        fresh.load_state_dict(lstm.state_dict())
        fresh_cell = fusedrnn.LSTMCell(I, H, dtype=dtype, seed=8)
        fresh_cell.load_state_dict(cell.state_dict())
        np.testing.assert_array_equal(lstm(x)[0], fresh(x)[0])
        for a, b in zip(cell(xt), fresh_cell(xt)):
            np.testing.assert_array_equal(a, b)
        assert lstm.weight_ih_l0.dtype == dtype
        np.testing.assert_allclose(fresh.weight_hh_l0_reverse,
                                   fusedrnn.GRU(I, H, bidirectional=True, dtype=dtype,
                                                seed=1).weight_hh_l0_reverse - 0.5,
                                   rtol=1e-6)


def test_dict_arrays_updated_in_place_and_grads_untouched():
    w = np.array([1.0, 2.0])
    g = np.array([0.5, -0.5])
    opt = optim.SGD({"w": w}, lr=0.1, momentum=0.9, weight_decay=0.1, maximize=True)
    ident = id(w)
    opt.step({"w": g})
    opt.step({"w": g})
    assert id(w) == ident
    np.testing.assert_array_equal(g, [0.5, -0.5])  # the gradient is not modified
    assert not np.shares_memory(opt.state[0]["momentum_buffer"], g)
    # float32 parameters: float16 gradients convert exactly and are accepted.
    w32 = np.ones(2, np.float32)
    optim.Adam({"w": w32}).step({"w": np.ones(2, np.float16)})
    assert w32.dtype == np.float32 and (w32 < 1).all()


def test_float32_close_to_torch(torch):
    lstm, readout, data = _problem(dtype=np.float32)
    tparams = _torch_params(torch, lstm, readout)
    opt = optim.AdamW([lstm, readout], lr=0.01)
    topt = torch.optim.AdamW(tparams, lr=0.01)
    for step in range(4):
        grads = _grads(lstm, readout, *data[step % 3])
        for t, g in zip(tparams, list(grads[0].values()) + list(grads[1].values())):
            t.grad = torch.tensor(g)
        opt.step(grads)
        topt.step()
    for a, t in zip(_ours(lstm, readout), tparams):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, t.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_constructor_errors():
    p = {"w": np.zeros(2)}
    cases = [
        (lambda: optim.SGD(p, lr=-1), ValueError, "lr"),
        (lambda: optim.SGD(p, lr="0.1"), TypeError, "lr"),
        (lambda: optim.SGD(p, momentum=-0.1), ValueError, "momentum"),
        (lambda: optim.SGD(p, weight_decay=-1), ValueError, "weight_decay"),
        (lambda: optim.SGD(p, dampening=-1), ValueError, "dampening"),
        (lambda: optim.SGD(p, nesterov=True), ValueError, "nesterov"),
        (lambda: optim.SGD(p, momentum=0.9, dampening=0.1, nesterov=True), ValueError,
         "nesterov"),
        (lambda: optim.SGD(p, nesterov=1), TypeError, "nesterov"),
        (lambda: optim.Adam(p, betas=(1.0, 0.9)), ValueError, r"betas\[0\]"),
        (lambda: optim.Adam(p, betas=(0.9, -0.1)), ValueError, r"betas\[1\]"),
        (lambda: optim.Adam(p, betas=0.9), TypeError, "betas"),
        (lambda: optim.Adam(p, eps=-1e-8), ValueError, "eps"),
        (lambda: optim.AdamW(p, lr=float("nan")), ValueError, "lr"),
        (lambda: optim.Adam(p, amsgrad="yes"), TypeError, "amsgrad"),
        (lambda: optim.Adam(p, maximize=None), TypeError, "maximize"),
        (lambda: optim.Adam([]), ValueError, "params"),
        (lambda: optim.Adam({}), ValueError, "params"),
        (lambda: optim.Adam(5), TypeError, "params"),
        (lambda: optim.Adam([p, 5]), TypeError, r"params\[1\]"),
        (lambda: optim.Adam({"w": [1.0]}), TypeError, r"params\['w'\]"),
        (lambda: optim.Adam({"w": np.zeros(2, np.int32)}), TypeError, r"params\['w'\].*int32"),
        (lambda: optim.Adam([p, p]), ValueError, "more than once"),
        (lambda: optim.Adam([{"params": p, "lr": -1}]), ValueError, r"params\[0\]\['lr'\]"),
        (lambda: optim.Adam([{"params": p, "betas1": 0.5}]), ValueError, "betas1"),
    ]
    ro = np.zeros(2)
    ro.flags.writeable = False
    cases.append((lambda: optim.SGD({"w": ro}), ValueError, r"params\['w'\].*read-only"))
    m = fusedrnn.RNN(2, 3)
    cases.append((lambda: optim.SGD([m, m]), ValueError, "more than once"))
    for make, exc, match in cases:
        with pytest.raises(exc, match=match):
            make()


def test_step_errors_change_nothing():
    lstm, readout, data = _problem()
    opt = optim.Adam([lstm, readout], lr=0.1)
    good = _grads(lstm, readout, *data[0])
    before = [a.copy() for a in _ours(lstm, readout)]

    def with_(i, key, value):
        g = [dict(good[0]), dict(good[1])]
        g[i][key] = value
        return g

    cases = [
        (good[0], TypeError, "one dict"),
        (good[:1], ValueError, "expected 2 dict"),
        ("x", TypeError, "grads"),
        ([good[0], [1.0]], TypeError, r"grads\[1\]"),
        (with_(1, "scale", np.ones(2)), ValueError, r"grads\[1\]\['scale'\].*not a param"),
        (with_(1, "weight", np.ones((H, O))), ValueError, r"grads\[1\]\['weight'\].*shape"),
        (with_(1, "bias", np.ones(O, np.int64)), TypeError, r"grads\[1\]\['bias'\].*dtype"),
        (with_(1, "bias", [0.0, 0.0]), TypeError, r"grads\[1\]\['bias'\]"),
        (with_(0, "weight_ih_l1", np.ones((4 * H, H), np.complex128)), TypeError,
         "weight_ih_l1"),
    ]
    for grads, exc, match in cases:
        with pytest.raises(exc, match=match):
            opt.step(grads)
    opt.param_groups[1]["lr"] = -0.5
    with pytest.raises(ValueError, match=r"param_groups\[1\]\['lr'\]"):
        opt.step(good)
    for a, b in zip(_ours(lstm, readout), before):
        np.testing.assert_array_equal(a, b)
    assert opt.state == {}
    # A readout array rebound to another shape is caught, not broadcast into.
    readout["bias"] = np.zeros(O + 1)
    with pytest.raises(ValueError, match=r"params\[1\]\['bias'\].*rebound"):
        opt.step(good)
    # float64 gradients do not silently round into float32 parameters.
    w32 = {"w": np.ones(2, np.float32)}
    with pytest.raises(TypeError, match=r"grads\['w'\].*float32"):
        optim.SGD(w32).step({"w": np.ones(2)})


def test_single_sources_and_groups():
    cell = fusedrnn.GRUCell(2, 3, dtype=np.float64, seed=0)
    opt = optim.SGD(cell, lr=1.0)
    g = {k: np.full_like(v, 0.25) for k, v in cell.state_dict().items()}
    before = cell.state_dict()
    opt.step(g)
    for k, v in cell.state_dict().items():
        np.testing.assert_allclose(v, before[k] - 0.25, rtol=1e-15)
    a, b = {"w": np.zeros(2)}, {"v": np.zeros(1)}
    opt = optim.SGD([{"params": [a, b], "lr": 2.0}], lr=1.0)
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["params"] == [a, b]
    opt.step([{"w": np.ones(2)}, {"v": np.ones(1)}])
    np.testing.assert_array_equal(a["w"], [-2.0, -2.0])
    np.testing.assert_array_equal(b["v"], [-2.0])
    assert "lr: 2.0" in repr(opt)
    assert not hasattr(opt, "zero_grad")  # gradients are returned, not accumulated


def test_clip_grad_norm_list_of_dicts_matches_torch(torch):
    rng = np.random.default_rng(4)
    grads = [{"a": rng.standard_normal((3, 2)), "b": rng.standard_normal(4), "skip": None},
             {"c": rng.standard_normal(5)}]
    flat = [grads[0]["a"], grads[0]["b"], grads[1]["c"]]
    ts = []
    for a in flat:
        t = torch.nn.Parameter(torch.tensor(a))
        t.grad = torch.tensor(a)
        ts.append(t)
    total = fusedrnn.clip_grad_norm(grads, 1.0)
    ttotal = torch.nn.utils.clip_grad_norm_(ts, 1.0)
    assert total == pytest.approx(float(ttotal), rel=1e-14)
    assert total > 1.0
    for a, t in zip(flat, ts):
        np.testing.assert_allclose(a, t.grad.numpy(), rtol=1e-14)
    assert grads[0]["skip"] is None
    with pytest.raises(TypeError, match=r"grads\[1\]\['c'\]"):
        fusedrnn.clip_grad_norm([{"a": np.ones(2)}, {"c": [1.0]}], 1.0)
    assert fusedrnn.clip_grad_norm([{}, {"x": None}], 1.0) == 0.0


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_torch_state_dict_loads_and_continues(torch, name):
    """A torch.optim state_dict (implementation switches such as foreach dropped) loads
    into ours over the same parameters and training continues as torch's does."""
    kw = {"SGD": {"lr": 0.1, "momentum": 0.9, "nesterov": True},
          "Adam": {"lr": 0.02, "amsgrad": True}, "AdamW": {"lr": 0.02}}[name]
    lstm, readout, data = _problem()
    tparams = _torch_params(torch, lstm, readout)
    topt = getattr(torch.optim, name)(tparams, **kw)
    for step in range(2):  # torch trains two steps on the torch side only
        for t in tparams:
            t.grad = torch.ones_like(t) * (step + 1)
        topt.step()
    state = list(lstm.state_dict())
    lstm.load_state_dict({k: t.detach().numpy() for k, t in zip(state, tparams)})
    for k, t in zip(list(readout), tparams[len(state):]):
        readout[k][...] = t.detach().numpy()
    opt = getattr(optim, name)({"params": [lstm, readout]}, lr=1.0)  # one group, as torch's
    opt.load_state_dict(topt.state_dict())
    assert opt.param_groups[0]["lr"] == kw["lr"]
    for step in range(3):
        grads = _grads(lstm, readout, *data[step])
        for t, g in zip(tparams, list(grads[0].values()) + list(grads[1].values())):
            t.grad = torch.tensor(g)
        opt.step(grads)
        topt.step()
        _assert_same_params(lstm, readout, tparams)


def test_torch_state_dict_of_another_rule_is_refused(torch):
    t = torch.nn.Parameter(torch.zeros(2))
    sd = torch.optim.AdamW([t]).state_dict()
    with pytest.raises(ValueError, match="decoupled_weight_decay.*AdamW"):
        optim.Adam({"w": np.zeros(2)}).load_state_dict(sd)
    sd["param_groups"][0]["capturable"] = True
    with pytest.raises(ValueError, match="capturable"):
        optim.AdamW({"w": np.zeros(2)}).load_state_dict(sd)
