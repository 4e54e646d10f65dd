"""The thread team, every test of it in this file: the settings; the team really running
the threads it is given; results bit-identical for any thread count (the kernels on
padded and packed rows for every ISA, the NumPy layers, fusedrnn.torch); a fork()ed
child; concurrent Python callers; torch's threads beside ours.

A comparison across thread counts proves something only if the work was shared, so
each one also checks, through ``_core._last_region_threads()`` (threads that ran the
last parallel region the calling thread started), that more than one thread ran.
Speed is never asserted here (the benchmark measures it); these tests pin down that
threads never change a result and never hang or crash.
"""

import concurrent.futures
import multiprocessing
import os
import threading

import numpy as np
import pytest

import fusedrnn
from _problems import CELLS, kernel_run, make_problem, rounded
from _util import KINDS, make_layer, run_layer


def ran_threads() -> int:
    return fusedrnn._core._last_region_threads()


def assert_team_ran(n):
    """The last kernel region of this thread ran on n threads, or at least on more than
    one for n > 1 (a region with little work may take fewer)."""
    got = ran_threads()
    if n == 1:
        assert got == 1, f"set_num_threads(1), but the last region ran on {got} threads"
    else:
        assert got > 1, (f"set_num_threads({n}), but the last region ran on {got} thread: "
                         "the comparison across thread counts would prove nothing")


# ------------------------------------------------------------------ 1. settings
def test_default_is_the_cpus_this_process_may_use():
    # Checked in a fresh process: other tests change the setting.
    import subprocess
    import sys

    code = "import fusedrnn, os; print(fusedrnn.get_num_threads(), len(os.sched_getaffinity(0)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[0] == out[1]


def test_set_num_threads(restore_threads):
    fusedrnn.set_num_threads(3)
    assert fusedrnn.get_num_threads() == 3
    fusedrnn.set_num_threads(np.int64(1))
    assert fusedrnn.get_num_threads() == 1


@pytest.mark.parametrize("bad", [0, -2])
def test_set_num_threads_rejects_non_positive(bad, restore_threads):
    with pytest.raises(ValueError, match="n: expected n >= 1"):
        fusedrnn.set_num_threads(bad)


@pytest.mark.parametrize("bad", [1.5, "2", True, None])
def test_set_num_threads_rejects_non_integers(bad, restore_threads):
    with pytest.raises(TypeError, match="n: expected an int"):
        fusedrnn.set_num_threads(bad)


def test_thread_settings_are_independent(torch, frt, restore_threads):
    """fusedrnn's and torch's thread counts are separate settings."""
    t0 = torch.get_num_threads()
    try:
        fusedrnn.set_num_threads(2)
        torch.set_num_threads(1)
        assert fusedrnn.get_num_threads() == 2
        torch.set_num_threads(3)
        assert fusedrnn.get_num_threads() == 2
        fusedrnn.set_num_threads(1)
        assert torch.get_num_threads() == 3
        fusedrnn.set_num_threads(5)
        assert torch.get_num_threads() == 3
        # nor does a forward/backward change either
        m = frt.LSTM(4, 5)
        m(torch.randn(3, 2, 4))[0].sum().backward()
        assert (fusedrnn.get_num_threads(), torch.get_num_threads()) == (5, 3)
    finally:
        torch.set_num_threads(t0)


# ------------------------------------------------------------------ 2. the team runs
def _train(m, x):
    y, state, tape = m.forward(x)
    dx, dstate, grads = m.backward(tape, np.ones_like(y))
    return [y, dx] + [grads[k] for k in sorted(grads)]


def _problem():
    rng = np.random.default_rng(4)
    m = fusedrnn.LSTM(48, 80, seed=2)
    x = rng.standard_normal((6, 8, 48)).astype(np.float32)
    return m, x


def test_team_runs_as_many_threads_as_set(restore_threads):
    """The hook itself: 0 in a thread that never ran a region, then exactly the threads
    set (this problem has work enough for 3)."""
    seen = []
    t = threading.Thread(target=lambda: seen.append(ran_threads()))
    t.start()
    t.join()
    assert seen == [0]
    m, x = _problem()
    for n in (1, 2, 3, 2):
        fusedrnn.set_num_threads(n)
        m(x)
        assert ran_threads() == n
        _train(m, x)
        assert ran_threads() == n


# ------------------------------------------------------------------ 3. bit-identical
@pytest.mark.usefixtures("isa")
@pytest.mark.parametrize("cell", CELLS)
def test_kernel_results_bit_identical_across_thread_counts(cell, restore_threads):
    """Work is split by whole tiles and every sum has a fixed order (issue: determinism)."""
    # Big enough that the kernels do split the work at 2 and 3 threads.
    p = make_problem(cell, 5, 8, 40, 96, True, seed=11, lengths=False)
    results = []
    for n in (1, 2, 3):
        fusedrnn.set_num_threads(n)
        results.append(kernel_run(cell, p, np.float32, packed_rows=False))
        assert_team_ran(n)
    for out, g in results[1:]:
        for k in out:
            np.testing.assert_array_equal(out[k], results[0][0][k], err_msg=k)
        for k in g:
            np.testing.assert_array_equal(g[k], results[0][1][k], err_msg=k)


THREADED = [(c, 0, True) for c in CELLS] + [("lstm", 40, False), ("lstm", 40, True)]


@pytest.mark.usefixtures("isa")
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell,P,packed_rows", THREADED,
                         ids=[f"{c}-P{p}-{'rows' if r else 'padded'}" for c, p, r in THREADED])
def test_kernel_rows_bit_identical_across_thread_counts(cell, P, packed_rows, dtype,
                                                        restore_threads):
    """The kernels on packed variable-length rows and with an LSTM projection."""
    T, B, I, H = 5, 16, 32, 96
    p = make_problem(cell, T, B, I, H, True, seed=11, P=P, lengths=packed_rows)
    if packed_rows:
        p["lengths"] = np.array([5] * 4 + [4] * 3 + [3] * 3 + [2] * 3 + [1] * 3, np.int64)
    p = rounded(p, dtype)
    results = []
    for n in (1, 2, 3):
        fusedrnn.set_num_threads(n)
        assert fusedrnn.get_num_threads() == n
        results.append(kernel_run(cell, p, dtype, packed_rows))
        assert_team_ran(n)
    for out, g in results[1:]:
        for k in out:
            np.testing.assert_array_equal(out[k], results[0][0][k], err_msg=k)
        for k in g:
            np.testing.assert_array_equal(g[k], results[0][1][k], err_msg=k)


def test_layer_results_identical_for_1_2_3_threads(restore_threads):
    m, x = _problem()
    runs = []
    for n in (1, 2, 3):
        fusedrnn.set_num_threads(n)
        runs.append(_train(m, x))
        assert_team_ran(n)
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            np.testing.assert_array_equal(a, b)


DET_CONFIGS = [
    dict(),
    dict(num_layers=2, bidirectional=True),
    dict(num_layers=2, bidirectional=True, lengths=True),
]


def _det_case(kind, cfg):
    cfg = dict(cfg)
    lengths = cfg.pop("lengths", False)
    if kind == "lstm" and cfg.get("num_layers") == 2:
        cfg["proj_size"] = 40
    m = make_layer(kind, 32, 96, seed=11, **cfg)
    rng = np.random.default_rng(11)
    x = rng.standard_normal((7, 16, 32)).astype(np.float32)
    L = rng.integers(1, 8, 16) if lengths else None
    if L is not None:
        L[0] = 7
    y, _, _ = m.forward(x, lengths=L, train=False)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    return m, x, dy, L


@pytest.mark.parametrize("cfg", DET_CONFIGS, ids=["plain", "2layers-bidir", "lengths"])
@pytest.mark.parametrize("kind", KINDS)
def test_layer_bit_identical_across_calls_and_thread_counts(kind, cfg, restore_threads):
    """Every kernel kind through the NumPy layers: training and inference, repeated."""
    m, x, dy, L = _det_case(kind, cfg)
    runs = []
    for n in (1, 2, 3, 3, 2):
        fusedrnn.set_num_threads(n)
        out = run_layer(m, x, dy=dy, lengths=L)
        assert_team_ran(n)
        out["y_inference"] = m(x, lengths=L)[0]
        assert_team_ran(n)
        runs.append(out)
    for other in runs[1:]:
        assert other.keys() == runs[0].keys()
        for k in runs[0]:
            np.testing.assert_array_equal(other[k], runs[0][k], err_msg=k)
    np.testing.assert_array_equal(runs[0]["y"], runs[0]["y_inference"])


def test_torch_results_bitwise_identical_for_thread_counts(torch, frt, restore_threads):
    """fusedrnn.torch with autograd, for each of torch's and fusedrnn's thread counts."""
    from torch.nn.utils.rnn import pack_padded_sequence

    torch.manual_seed(0)
    lstm = frt.LSTM(48, 80, num_layers=2, bidirectional=True)
    cell = frt.GRUCell(48, 64)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 8, 48, generator=g)
    lengths = torch.tensor([6, 6, 5, 4, 4, 3, 2, 1])

    def run():
        for p in list(lstm.parameters()) + list(gru.parameters()) + list(cell.parameters()):
            p.grad = None  # fresh gradient tensors each run (none accumulates or aliases)
        xx = x.clone().requires_grad_()
        y, (h, c) = lstm(xx)
        py, ph = gru(pack_padded_sequence(xx, lengths))
        hc = cell(xx[0])
        loss = (y * y).sum() + h.sum() + c.sum() + (py.data * 2).sum() + ph.sum() + hc.sum()
        loss.backward()
        return ([y.detach(), h.detach(), c.detach(), py.data.detach(), hc.detach(), xx.grad]
                + [p.grad for p in list(lstm.parameters()) + list(gru.parameters())
                   + list(cell.parameters())])

    gru = frt.GRU(48, 40)
    t0 = torch.get_num_threads()
    runs = {}
    try:
        for tn in (1, 2):
            torch.set_num_threads(tn)
            for fn in (1, 2):
                fusedrnn.set_num_threads(fn)
                runs[(tn, fn)] = run()
                assert_team_ran(fn)  # backward runs the kernels on this thread too
    finally:
        torch.set_num_threads(t0)
    first = runs[(1, 1)]
    for key, other in runs.items():
        assert len(other) == len(first)
        for a, b in zip(first, other):
            assert torch.equal(a, b), f"threads (torch, fusedrnn) {key} differ from (1, 1)"


# ------------------------------------------------------------------ 4. fork
def _child(q):
    m, x = _problem()
    fusedrnn.set_num_threads(2)
    out = _train(m, x)
    q.put(([a.tolist() for a in out], ran_threads()))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_forked_child_gets_a_working_team(restore_threads):
    """A fork()ed child has none of the parent's threads; its team must be its own."""
    m, x = _problem()
    fusedrnn.set_num_threads(2)
    expected = _train(m, x)  # the parent's team exists now
    assert_team_ran(2)
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(q,))
    p.start()
    got, child_threads = q.get(timeout=120)
    p.join(timeout=60)
    assert p.exitcode == 0
    assert child_threads == 2, f"the child's last region ran on {child_threads} threads"
    for a, b in zip(expected, got):
        np.testing.assert_array_equal(a, np.asarray(b, a.dtype))


# ------------------------------------------------------------------ 5. concurrent callers
def _flat(out):
    return {k: np.array(v, copy=True) for k, v in out.items()}


def test_concurrent_callers_get_serial_results(restore_threads):
    """Four Python threads call the same and different layers at once (the GIL is
    released in the kernels); each result equals the serial one."""
    fusedrnn.set_num_threads(2)
    m, x = _problem()
    other = fusedrnn.GRU(48, 40, seed=5)
    expected = {"lstm": _train(m, x), "gru": _train(other, x)}
    assert_team_ran(2)
    errors, results = [], []

    def work(k):
        try:
            for _ in range(5):
                layer = m if k % 2 == 0 else other
                results.append(("lstm" if k % 2 == 0 else "gru", _train(layer, x)))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert len(results) == 20
    for name, got in results:
        for a, b in zip(expected[name], got):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
def test_concurrent_calls_equal_serial_calls(kind, restore_threads):
    fusedrnn.set_num_threads(2)
    layers = [make_layer(kind, 24, 64, seed=s, num_layers=2, bidirectional=True)
              for s in range(3)]
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((9, 8, 24)).astype(np.float32) for _ in range(6)]
    jobs = [(layers[i % 3], xs[i]) for i in range(6)] + [(layers[0], xs[i]) for i in range(6)]

    def infer(job):
        return m_call(*job)

    def m_call(m, x):
        y, state = m(x)
        return {"y": y, "h": state[0] if isinstance(state, tuple) else state}

    def train(job):
        return run_layer(*job)

    for fn in (infer, train):
        serial = [_flat(fn(j)) for j in jobs]
        assert_team_ran(2)
        for _ in range(3):
            with concurrent.futures.ThreadPoolExecutor(4) as ex:
                parallel = list(ex.map(fn, jobs * 2))
            for got, want in zip(parallel, serial * 2):
                for k in want:
                    np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_cells_shared_between_threads():
    cell = fusedrnn.LSTMCell(16, 32, seed=0)
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((4, 16)).astype(np.float32) for _ in range(8)]

    def roll(x):
        h = c = np.zeros((4, 32), np.float32)
        for _ in range(50):
            h, c = cell(x, (h, c))
        return h

    serial = [roll(x) for x in xs]
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        parallel = list(ex.map(roll, xs * 3))
    for got, want in zip(parallel, serial * 3):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_region_never_exceeds_the_threads_asked_while_the_count_changes(n, restore_threads):
    """A kernel sizes its per-thread buffers for the n threads it asks parallel() for; a
    set_num_threads from another thread at that moment must not give it a larger region
    (it once did: the count was read twice, and ASan caught a strip buffer overrun)."""
    fusedrnn.set_num_threads(2)
    largest = fusedrnn._core._largest_region_under_flips(n, 20000)
    assert 1 <= largest <= n
    assert fusedrnn.get_num_threads() == 2, "the count set before the call is restored"


def test_set_num_threads_from_another_thread_between_calls(restore_threads):
    m = make_layer("lstm", 32, 96, seed=2, num_layers=2)
    x = np.random.default_rng(2).standard_normal((8, 16, 32)).astype(np.float32)
    want = _flat(run_layer(m, x))
    stop = threading.Event()

    def flip():
        n = 0
        while not stop.is_set():
            fusedrnn.set_num_threads(1 + n % 3)
            n += 1

    t = threading.Thread(target=flip)
    t.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(3) as ex:
            outs = list(ex.map(lambda _: _flat(run_layer(m, x)), range(24)))
    finally:
        stop.set()
        t.join()
    for got in outs:
        for k in want:
            np.testing.assert_array_equal(got[k], want[k], err_msg=k)


# ------------------------------------------------------------------ 6. torch beside us
def test_torch_in_the_same_process(torch, restore_threads):
    """torch's own thread pool beside ours: interleaved calls, no hang, same results."""
    m, x = _problem()
    fusedrnn.set_num_threads(1)
    expected = _train(m, x)
    torch.set_num_threads(2)
    fusedrnn.set_num_threads(2)
    tm = torch.nn.LSTM(48, 80)
    tx = torch.from_numpy(x)
    for _ in range(3):
        with torch.no_grad():
            tm(tx)
        got = _train(m, x)
        assert_team_ran(2)
        for a, b in zip(expected, got):
            np.testing.assert_array_equal(a, b)
