"""The thread team: settings, determinism, fork, concurrent callers and torch beside us.

Speed is never asserted here (the benchmark measures it); these tests pin down that
threads never change a result and never hang or crash.
"""

import multiprocessing
import os
import threading

import numpy as np
import pytest

import fusedrnn


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


def _train(m, x):
    y, state, tape = m.forward(x)
    dx, dstate, grads = m.backward(tape, np.ones_like(y))
    return [y, dx] + [grads[k] for k in sorted(grads)]


def _problem():
    rng = np.random.default_rng(4)
    m = fusedrnn.LSTM(48, 80, seed=2)
    x = rng.standard_normal((6, 8, 48)).astype(np.float32)
    return m, x


def test_layer_results_identical_for_1_2_3_threads(restore_threads):
    m, x = _problem()
    runs = []
    for n in (1, 2, 3):
        fusedrnn.set_num_threads(n)
        runs.append(_train(m, x))
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            np.testing.assert_array_equal(a, b)


def _child(q):
    m, x = _problem()
    fusedrnn.set_num_threads(2)
    q.put([a.tolist() for a in _train(m, x)])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_forked_child_gets_a_working_team(restore_threads):
    """A fork()ed child has none of the parent's threads; its team must be its own."""
    m, x = _problem()
    fusedrnn.set_num_threads(2)
    expected = _train(m, x)  # the parent's team exists now
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(q,))
    p.start()
    got = q.get(timeout=120)
    p.join(timeout=60)
    assert p.exitcode == 0
    for a, b in zip(expected, got):
        np.testing.assert_array_equal(a, np.asarray(b, a.dtype))


def test_concurrent_callers_get_serial_results(restore_threads):
    """Four Python threads call the same and different layers at once (the GIL is
    released in the kernels); each result equals the serial one."""
    fusedrnn.set_num_threads(2)
    m, x = _problem()
    other = fusedrnn.GRU(48, 40, seed=5)
    expected = {"lstm": _train(m, x), "gru": _train(other, x)}
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
        for a, b in zip(expected, got):
            np.testing.assert_array_equal(a, b)
