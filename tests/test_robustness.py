"""Robustness: gradient clipping, numerics at the edges, load_state_dict during calls
and resources.  (Threads and concurrent callers: test_threads.py; workspace sizes:
test_workspace.py.)

Speed is never asserted; the sizes are kept small enough that the file runs in well
under a minute on two cores.
"""

from __future__ import annotations

import concurrent.futures
import math
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import fusedrnn
from _util import KINDS, run_layer
from _util import make_layer as make
from fusedrnn import reference as ref


def run_reference(kind, m, x, dy=None, lengths=None):
    """The float64 reference on the layer's parameters, keyed like run_layer."""
    params = {k: v.astype(np.float64) for k, v in m.state_dict().items()}
    x = np.asarray(x, np.float64)
    y, h_n, c_n, cache = ref.stack_forward(kind, x, None, params, num_layers=m.num_layers,
                                           bidirectional=m.bidirectional, lengths=lengths)
    g = ref.stack_backward(cache, np.ones_like(y) if dy is None else dy)
    out = {"y": y, "dx": g.pop("dx"), "h_n": h_n, "dh0": g.pop("dh0")}
    if c_n is not None:
        out.update(c_n=c_n, dc0=g.pop("dc0"))
    out.update(g)
    return out


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), np.finfo(np.float64).tiny))


# ================================================================== clip_grad_norm
def _grads(rng, scale=1.0, dtype=np.float32):
    return {"weight_ih_l0": (scale * rng.standard_normal((12, 5))).astype(dtype),
            "weight_hh_l0": (scale * rng.standard_normal((12, 3))).astype(dtype),
            "bias_ih_l0": (scale * rng.standard_normal(12)).astype(dtype)}


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])  # clipped; below the limit (no-op)
def test_clip_grad_norm_matches_torch(torch, norm_type, max_norm):
    g = _grads(np.random.default_rng(1), scale=3.0)
    tensors = [torch.tensor(a.copy(), requires_grad=True) for a in g.values()]
    for t in tensors:
        t.grad = t.detach().clone()
    expected = torch.nn.utils.clip_grad_norm_(tensors, max_norm, norm_type=norm_type)
    before = {k: v.copy() for k, v in g.items()}
    total = fusedrnn.clip_grad_norm(g, max_norm, norm_type=norm_type)
    assert isinstance(total, float)
    assert total == pytest.approx(float(expected), rel=1e-5)
    for a, t in zip(g.values(), tensors):
        np.testing.assert_allclose(a, t.grad.numpy(), rtol=1e-5, atol=1e-7)
    if max_norm > total:
        for k in g:  # below the limit: untouched, bit for bit
            np.testing.assert_array_equal(g[k], before[k])
    else:
        flat = np.concatenate([a.ravel() for a in g.values()]).astype(np.float64)
        assert np.linalg.norm(flat, norm_type) == pytest.approx(max_norm, rel=1e-5)


def test_clip_grad_norm_in_place_and_iterables():
    rng = np.random.default_rng(2)
    g = _grads(rng, scale=10.0, dtype=np.float64)
    arrays = list(g.values())
    ids = [id(a) for a in arrays]
    total = fusedrnn.clip_grad_norm(g, 1.0)
    assert [id(a) for a in g.values()] == ids  # the same arrays, scaled in place
    flat = np.concatenate([a.ravel() for a in arrays])
    assert total > 1.0
    assert np.linalg.norm(flat) == pytest.approx(1.0, rel=1e-5)
    # A list, a generator and one array.
    lst = [rng.standard_normal(4), rng.standard_normal((2, 3))]
    expect = math.sqrt(sum(float((a**2).sum()) for a in lst))
    assert fusedrnn.clip_grad_norm(lst, 1e9) == pytest.approx(expect)
    assert fusedrnn.clip_grad_norm((a for a in lst), 1e9) == pytest.approx(expect)
    one = np.full(4, 2.0)
    assert fusedrnn.clip_grad_norm(one, 1.0) == pytest.approx(4.0)
    np.testing.assert_allclose(one, 0.5, rtol=1e-5)
    assert fusedrnn.clip_grad_norm([], 1.0) == 0.0
    assert fusedrnn.clip_grad_norm({}, 1.0) == 0.0


def test_clip_grad_norm_errors():
    g = _grads(np.random.default_rng(3))
    with pytest.raises(ValueError, match="max_norm"):
        fusedrnn.clip_grad_norm(g, -1.0)
    with pytest.raises(TypeError, match="max_norm"):
        fusedrnn.clip_grad_norm(g, "1")
    with pytest.raises(TypeError, match="norm_type"):
        fusedrnn.clip_grad_norm(g, 1.0, norm_type="fro")
    with pytest.raises(ValueError, match="norm_type"):
        fusedrnn.clip_grad_norm(g, 1.0, norm_type=-2)
    with pytest.raises(TypeError, match=r"grads\['w'\]"):
        fusedrnn.clip_grad_norm({"w": [1.0, 2.0]}, 1.0)
    with pytest.raises(TypeError, match=r"grads\[1\]"):
        fusedrnn.clip_grad_norm([np.ones(2), 3.0], 1.0)
    with pytest.raises(TypeError, match=r"grads\[0\].*dtype int"):
        fusedrnn.clip_grad_norm([np.ones(2, np.int64)], 1.0)
    with pytest.raises(TypeError, match="grads"):
        fusedrnn.clip_grad_norm(5, 1.0)
    ro = np.ones(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"grads\[0\].*read-only"):
        fusedrnn.clip_grad_norm([ro], 1.0)
    bad = {"a": np.array([1.0, np.nan]), "b": np.array([np.inf, 1.0])}
    keep = {k: v.copy() for k, v in bad.items()}
    with pytest.raises(ValueError, match="nan|inf"):
        fusedrnn.clip_grad_norm(bad, 1.0, error_if_nonfinite=True)
    for k in bad:  # nothing changed
        np.testing.assert_array_equal(bad[k], keep[k])
    # Without error_if_nonfinite: the norm is returned, the gradients become NaN (torch).
    assert math.isnan(fusedrnn.clip_grad_norm(bad, 1.0))
    assert np.isnan(bad["b"]).all()


def test_clip_grad_norm_nonfinite_like_torch(torch):
    for vals in ([1.0, np.inf], [1.0, np.nan]):
        a = np.array(vals, np.float32)
        t = torch.tensor(vals, requires_grad=True)
        t.grad = t.detach().clone()
        e = float(torch.nn.utils.clip_grad_norm_([t], 1.0))
        n = fusedrnn.clip_grad_norm([a], 1.0)
        assert (math.isnan(n) and math.isnan(e)) or n == e
        np.testing.assert_array_equal(np.isnan(a), np.isnan(t.grad.numpy()))


def test_clip_grad_norm_tames_exploding_gradients():
    """A relu RNN with large recurrent weights explodes over 50 steps; clipping bounds it."""
    m = fusedrnn.RNN(4, 16, nonlinearity="relu", dtype=np.float64, seed=0)
    sd = m.state_dict()
    sd["weight_hh_l0"] = 1.5 * np.eye(16) + 0.05 * np.abs(sd["weight_hh_l0"])
    m.load_state_dict(sd)
    x = np.abs(np.random.default_rng(0).standard_normal((50, 2, 4)))
    y, _, tape = m.forward(x)
    _, _, grads = m.backward(tape, np.ones_like(y))
    total = fusedrnn.clip_grad_norm(grads, 5.0)
    assert total > 1e8  # it did explode
    flat = np.concatenate([g.ravel() for g in grads.values()])
    assert np.isfinite(flat).all()
    assert np.linalg.norm(flat) <= 5.0


# ================================================================== numerics at the edges
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", KINDS)
def test_saturated_preactivations(kind, dtype):
    """Pre-activations of about +-1e4: gates saturate exactly, nothing overflows."""
    T = 3 if kind == "rnn_relu" else 6  # relu grows by ~3e4 per step; keep it in float32
    m = make(kind, 5, 8, dtype=dtype, seed=1)
    sd = {k: v.astype(np.float64) * 3e4 for k, v in m.state_dict().items()}
    m.load_state_dict(sd)
    x = np.random.default_rng(1).standard_normal((T, 3, 5))
    got = run_layer(m, x.astype(dtype), dy=np.ones((T, 3, 8), dtype))
    want = run_reference(kind, m, x, dy=np.ones((T, 3, 8)))
    pre = x[0] @ sd["weight_ih_l0"].T
    assert np.abs(pre).max() > 1e4  # the edge we meant to test
    for k, w in want.items():
        assert np.isfinite(w).all(), k
        assert np.isfinite(got[k]).all(), f"{k}: NaN or inf"
        if dtype == np.float64:
            np.testing.assert_allclose(got[k], w, rtol=1e-10, atol=1e-10 * np.abs(w).max(),
                                       err_msg=k)
        else:
            # float32 rounds a pre-activation of 1e4 by ~1e-3: irrelevant where saturated.
            np.testing.assert_allclose(got[k], w, rtol=1e-4, atol=1e-4 * max(np.abs(w).max(), 1),
                                       err_msg=k)
    if kind != "rnn_relu":
        assert np.abs(got["y"]).max() <= 1.0
    if kind == "lstm":  # sigmoid/tanh at +-1e4: exactly 0 or +-1, hence c in integers
        c = got["c_n"]
        np.testing.assert_array_equal(c, np.round(c))


def _nan_input(kind_x_shape):
    T, B, I = kind_x_shape
    x = np.random.default_rng(5).standard_normal((T, B, I))
    x[2, 1, 0] = np.nan  # row 1 from step 2 on
    x[1, 3, 2] = np.inf  # row 3 from step 1 on
    x[4, 0, 1] = -np.inf  # row 0 from step 4 on
    return x


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", KINDS)
def test_nan_and_inf_propagate_like_the_reference(kind, dtype, bidirectional):
    T, B, I, H = 6, 5, 4, 9
    m = make(kind, I, H, dtype=dtype, seed=3, bidirectional=bidirectional)
    x = _nan_input((T, B, I))
    got = run_layer(m, x.astype(dtype))
    want = run_reference(kind, m, x)
    for k, w in want.items():
        np.testing.assert_array_equal(np.isnan(got[k]), np.isnan(w), err_msg=f"{k}: NaN pattern")
        np.testing.assert_array_equal(np.isinf(got[k]), np.isinf(w), err_msg=f"{k}: inf pattern")
        ok = np.isfinite(w)
        tol = 1e-10 if dtype == np.float64 else 1e-4
        assert rel_err(got[k][ok], w[ok]) <= tol, k
    # Rows 2 and 4 saw only finite values: untouched everywhere, forward and backward.
    for k in ("y", "dx"):
        assert np.isfinite(got[k][:, [2, 4]]).all(), k
    for k in ("h_n", "dh0"):
        assert np.isfinite(got[k][:, [2, 4]]).all(), k
    if not bidirectional:  # the affected row is clean before its first non-finite step
        assert np.isfinite(got["y"][:2, 1]).all()


@pytest.fixture(scope="module")
def long_problem():
    """T = 10,000 steps, H = 32, B = 2: inputs and the float64 reference, per kind."""
    cache = {}

    def get(kind):
        if kind not in cache:
            m = make(kind, 8, 32, dtype=np.float64, seed=7)
            x = np.random.default_rng(7).standard_normal((10_000, 2, 8))
            dy = np.random.default_rng(8).standard_normal((10_000, 2, 32))
            cache[kind] = (m.state_dict(), x, dy, run_reference(kind, m, x, dy))
        return cache[kind]

    return get


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_ten_thousand_steps(kind, dtype, long_problem):
    """Float64: the reference to 1e-10.  Float32: 1e-3, norm-wise.  The per-step
    rounding (~1e-7) does not compound (the gated recurrences contract), but the weight
    gradients are sums of 20,000 terms, whose float32 error grows like sqrt(T) * eps ~
    1e-5 and, for terms of both signs that cancel, somewhat more (measured: 2e-6 for LSTM,
    3e-6 for GRU, in the bias gradients); 1e-3 bounds that with margin for other ISAs and
    thread counts and still catches any real error (a wrong step gives O(1))."""
    sd, x, dy, want = long_problem(kind)
    m = make(kind, 8, 32, dtype=dtype)
    m.load_state_dict(sd)
    got = run_layer(m, x.astype(dtype), dy=dy.astype(dtype))
    tol = 1e-10 if dtype == np.float64 else 1e-3
    for k, w in want.items():
        assert np.isfinite(got[k]).all(), k
        e = rel_err(got[k], w)
        assert e <= tol, f"{k}: relative error {e:.2e} > {tol:.0e}"


# ================================================================== load_state_dict during calls
@pytest.mark.parametrize("during", ["kernel_calls", "packing"])
def test_load_state_dict_while_calling_uses_old_or_new_weights(during, monkeypatch):
    """A call that load_state_dict overtakes runs on the weights it started with, never
    on a mix of old and new: the swap replaces the parameters (and drops their packed
    copy) as one reference, which a call reads once.

    The interleaving is forced, in a layer of four layer-directions: thread B runs
    load_state_dict, to its end, while call A waits between its first and second kernel
    calls ("kernel_calls": one per bidirectional layer, both directions at once) or
    between packing its first and second layer-directions ("packing").  A's output must then be the old weights' (never a mix), and the next
    call's the new weights'."""
    import fusedrnn._module as module  # where the layers pack their weights
    import fusedrnn._stack as stack  # where the layers call the kernels

    m = make("gru", 16, 32, seed=0, num_layers=2, bidirectional=True)
    old = m.state_dict()
    new = {k: -v for k, v in old.items()}
    x = np.random.default_rng(4).standard_normal((5, 4, 16)).astype(np.float32)
    y_old = m(x)[0]
    m.load_state_dict(new)
    y_new = m(x)[0]
    assert not np.array_equal(y_old, y_new)
    m.load_state_dict(old)  # unpacked now: the next call packs
    if during == "kernel_calls":
        m(x)  # packed: call A below only runs the kernels
    target, name, count = ((stack, "sequence_forward_pair", 2) if during == "kernel_calls"
                           else (module, "pack", 4))
    real = getattr(target, name)
    calls, abort = [], []
    in_call, swapped = threading.Event(), threading.Event()

    def hooked(*a, **k):  # in call A
        calls.append(name)
        if len(calls) == 2:
            in_call.set()
            swapped.wait(60)
        return real(*a, **k)

    def swap():  # thread B
        if in_call.wait(60) and not abort:
            m.load_state_dict(new)
            swapped.set()

    monkeypatch.setattr(target, name, hooked)
    b = threading.Thread(target=swap)
    b.start()
    try:
        y = m(x)[0]  # call A
    finally:
        abort.append(True)  # B must never wait for a call that did not reach the hook
        in_call.set()
        b.join(60)
        monkeypatch.setattr(target, name, real)
    assert swapped.is_set(), f"load_state_dict did not run inside the call ({calls})"
    assert calls == [name] * count  # A went on through all four layer-directions
    np.testing.assert_array_equal(y, y_old)
    np.testing.assert_array_equal(m(x)[0], y_new)


def test_load_state_dict_while_calling_stress():
    """Free-running: three threads call a layer while a fourth swaps its weights back
    and forth; every result is the old or the new weights'.  Where the swaps fall is up
    to the scheduler; the test above forces the interleavings."""
    m = make("gru", 16, 32, seed=0, num_layers=2, bidirectional=True)
    old = m.state_dict()
    new = {k: -v for k, v in old.items()}
    x = np.random.default_rng(4).standard_normal((5, 4, 16)).astype(np.float32)
    y_old = m(x)[0]
    m.load_state_dict(new)
    y_new = m(x)[0]
    stop = threading.Event()

    def swap():
        i = 0
        while not stop.is_set():
            m.load_state_dict(old if i % 2 else new)
            m(x)  # repack
            i += 1

    t = threading.Thread(target=swap)
    t.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(3) as ex:
            outs = list(ex.map(lambda _: m(x)[0], range(60)))
    finally:
        stop.set()
        t.join()
    for y in outs:
        assert np.array_equal(y, y_old) or np.array_equal(y, y_new)


def test_load_state_dict_during_packing_is_not_lost(monkeypatch):
    """The interleaving is forced: while call A packs the first layer-direction,
    thread B runs load_state_dict.  Afterwards the layer must run the new weights."""
    import fusedrnn._module as module  # where the layers pack their weights

    m = make("lstm", 6, 8, seed=0, num_layers=2)
    x = np.random.default_rng(0).standard_normal((3, 2, 6)).astype(np.float32)
    new = {k: 0.5 * v for k, v in m.state_dict().items()}
    fresh = make("lstm", 6, 8, seed=1, num_layers=2)
    fresh.load_state_dict(new)
    y_new = fresh(x)[0]
    control = make("lstm", 6, 8, seed=0, num_layers=2)
    control.load_state_dict(new)
    np.testing.assert_array_equal(control(x)[0], y_new)  # no interleaving: fine
    real_pack, fired = module.pack, []

    def pack(*a, **k):
        if not fired:
            fired.append(1)
            t = threading.Thread(target=m.load_state_dict, args=(new,))
            t.start()
            t.join()
        return real_pack(*a, **k)

    monkeypatch.setattr(module, "pack", pack)
    m._packed = None  # as right after construction or load_state_dict
    m(x)  # call A: packs while B loads the new weights
    monkeypatch.setattr(module, "pack", real_pack)
    np.testing.assert_array_equal(m(x)[0], y_new)


# ================================================================== resources
def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_rss_stays_flat_over_many_training_calls():
    m = fusedrnn.LSTM(4, 8, seed=0)
    x = np.random.default_rng(0).standard_normal((3, 2, 4)).astype(np.float32)
    dy = np.ones((3, 2, 8), np.float32)

    def step():
        y, _, tape = m.forward(x)
        m.backward(tape, dy)

    for _ in range(500):
        step()
    before = _rss_bytes()
    for _ in range(10_000):
        step()
    growth = _rss_bytes() - before
    assert growth < 20 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB over 10,000 calls"


HUGE = {
    "broadcast_input": (
        "m = fusedrnn.LSTM(8, 8)\n"
        "x = np.broadcast_to(np.zeros(8, np.float32), (2**20, 2**20, 8))\n"
        "m.forward(x, train={train})\n"),
    "huge_hidden_size": "m = fusedrnn.LSTM(8, 2**20)\n",
    "huge_cell_input": (
        "m = fusedrnn.LSTMCell(8, 8)\n"
        "m(np.broadcast_to(np.zeros(8, np.float32), (2**40, 8)))\n"),
}


@pytest.mark.parametrize("case,train", [("broadcast_input", False), ("broadcast_input", True),
                                        ("huge_hidden_size", False), ("huge_cell_input", False)])
def test_requests_beyond_memory_raise(case, train):
    """Checked in a subprocess: a crash (segfault, abort, OOM kill) is a failure, not a
    lost test run."""
    code = ("import numpy as np, fusedrnn\n"
            "try:\n" + "".join("    " + line + "\n" for line in
                               HUGE[case].format(train=train).splitlines()) +
            "except (MemoryError, ValueError) as e:\n"
            "    print('raised', type(e).__name__)\n"
            "else:\n"
            "    print('no error')\n")
    # An address-space limit makes an allocation that would succeed lazily fail at once.
    prelude = ("import resource\n"
               "resource.setrlimit(resource.RLIMIT_AS, (8 * 2**30, 8 * 2**30))\n")
    p = subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, f"crashed with {p.returncode}: {p.stderr[-2000:]}"
    assert p.stdout.startswith("raised"), p.stdout + p.stderr[-2000:]
