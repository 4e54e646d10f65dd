"""The thread team under contention (cpu/threads.h, "Contention"; docs/architecture.md).

With the default thread count, a barrier wait far longer than the step's work (a worker
that the scheduler took off its CPU) makes the region drop a thread at the next step
barrier and caps the following regions; later regions probe one thread more, backing
off while the probes stall.  A count set with set_num_threads or FUSEDRNN_NUM_THREADS
is used as given.

The descheduled worker is simulated by ``_core._slow_worker(rank, step, ms)``: that rank
sleeps before one step barrier of the next region.  Every shrink must leave the results
bit-identical to one thread and to two, forward and backward, for every kind of kernel
(fused, GRU reset_after=False, LSTM with projection).  Speed is never asserted here.
"""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

import fusedrnn
from _util import make_layer

core = fusedrnn._core

#: The sequence kernels with step barriers: fused cells, GRU reset_after=False, projection.
KINDS = ["lstm", "gru", "gru_reset_before", "rnn_tanh", "lstm_proj"]
NEVER = 1e6  # ms: no probe during the test
#: Waits shorter than STALL ms are never stalls in these tests, and the slow worker sleeps
#: SLOW ms: the machine's own hiccups (a loaded machine, a sanitizer build) stay below the
#: one and the simulated stall far above it.
STALL, SLOW = 40.0, 100.0


def reset(probe_ms=NEVER, probe_max_ms=None):
    core._reset_adaptive(probe_ms=probe_ms, probe_max_ms=probe_ms if probe_max_ms is None
                         else probe_max_ms, threads=2, stall_min_ms=STALL)


def ran_threads() -> int:
    return core._last_region_threads()


@pytest.fixture
def adaptive():
    """The default (adaptive) count of 2 threads during the test; afterwards no slow
    worker armed, the policy reset and the count as before."""
    before = fusedrnn.get_num_threads()
    yield
    core._slow_worker(-1, 0, 0.0)
    core._reset_adaptive()
    fusedrnn.set_num_threads(before)


def _layer(kind):
    if kind == "lstm_proj":
        return fusedrnn.LSTM(32, 128, proj_size=64, seed=1)
    return make_layer(kind, 32, 128, seed=1)  # wide enough for 2 threads on every ISA


def _x(T=12):
    return np.random.default_rng(3).standard_normal((T, 8, 32)).astype(np.float32)


def _flat(y, dx, grads):
    return [y, dx] + [grads[k] for k in sorted(grads)]


def _assert_identical(got, want, what):
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(got, want)):
        assert np.array_equal(a, b), f"{what}: result {i} differs"


# ------------------------------------------------------------------ the policy's decisions
def _shrunk_forward(m, x):
    """m(x)'s output on 1 thread, on 2, and on the adaptive 2 with rank 1 slowed before
    its 4th step barrier; and the policy's state after that last call."""
    fusedrnn.set_num_threads(1)
    y1 = m(x)[0]
    fusedrnn.set_num_threads(2)
    y2 = m(x)[0]
    assert ran_threads() == 2
    reset()
    core._slow_worker(1, 3, SLOW)
    y = m(x)[0]
    return y1, y2, y, core._adaptive_threads()


@pytest.mark.parametrize("kind", KINDS)
def test_slow_worker_shrinks_the_forward_mid_call(kind, adaptive):
    m, x = _layer(kind), _x()
    y1, y2, y, s = _shrunk_forward(m, x)
    assert s["adaptive"] and ran_threads() == 2
    assert s["stalls"] >= 1 and s["shrinks"] == 1, s
    assert s["cap"] == 1 and s["last_region_final"] == 1, s
    _assert_identical([y], [y1], "shrunk vs 1 thread")
    _assert_identical([y], [y2], "shrunk vs 2 threads")
    # The next calls are capped at the thread that kept up (no probe for NEVER ms).
    _assert_identical([m(x)[0]], [y1], "capped")
    assert ran_threads() == 1


@pytest.mark.parametrize("dtype", ["int8", "bfloat16"])
@pytest.mark.parametrize("kind", KINDS)
def test_slow_worker_shrinks_a_quantized_forward_mid_call(kind, dtype, adaptive):
    # The quantized kernels' time loop has the same step barrier (csrc/quant/forward-inl.h).
    q, x = fusedrnn.quantize_dynamic(_layer(kind), dtype), _x()
    y1, y2, y, s = _shrunk_forward(q, x)
    assert s["shrinks"] == 1 and s["last_region_final"] == 1, s
    _assert_identical([y], [y1], "shrunk vs 1 thread")
    _assert_identical([y], [y2], "shrunk vs 2 threads")


@pytest.mark.parametrize("kind", KINDS)
def test_slow_worker_shrinks_the_backward_mid_call(kind, adaptive):
    m, x = _layer(kind), _x()
    dy = np.random.default_rng(5).standard_normal(m(x)[0].shape).astype(np.float32)
    fusedrnn.set_num_threads(2)
    y, _, tape = m.forward(x, train=True)
    want = []
    for n in (1, 2):
        fusedrnn.set_num_threads(n)
        dx, _, grads = m.backward(tape, dy)
        assert ran_threads() == n
        want.append(_flat(y, dx, grads))
    reset()
    core._slow_worker(1, 2, SLOW)  # the backward's first region is its time loop
    dx, _, grads = m.backward(tape, dy)
    s = core._adaptive_threads()
    assert s["shrinks"] == 1 and s["cap"] == 1, s
    got = _flat(y, dx, grads)
    _assert_identical(got, want[0], "shrunk backward vs 1 thread")
    _assert_identical(got, want[1], "shrunk backward vs 2 threads")


def test_a_probe_that_does_not_stall_restores_the_team(adaptive):
    m, x = _layer("lstm"), _x()
    reset(probe_ms=0.0)
    core._slow_worker(1, 3, SLOW)
    m(x)
    assert core._adaptive_threads()["cap"] == 1
    # probe_ms 0: the next region probes 2 threads.  On a busy machine a probe may stall
    # for real, so allow a few.
    for _ in range(50):
        m(x)
        if core._adaptive_threads()["cap"] == 0:
            break
    s = core._adaptive_threads()
    assert ran_threads() == 2 and s["cap"] == 0 and s["probes"] >= 1, s
    m(x)
    assert ran_threads() == 2


def test_stalled_probes_back_off(adaptive):
    """A stall soon after another doubles the wait before the next probe, up to the
    maximum; a stall after a long quiet time starts again from the base."""
    m, x = _layer("lstm"), _x()
    reset(probe_ms=30.0, probe_max_ms=120.0)
    intervals, failed = [], []
    for _ in range(4):
        core._slow_worker(1, 3, 2 * STALL)
        m(x)  # the first call: 2 threads; then each call probes 2 threads and stalls
        s = core._adaptive_threads()
        intervals.append(s["probe_interval_ms"])
        failed.append(s["probes_failed"])
        time.sleep(2 * s["probe_interval_ms"] / 1e3)  # the next call probes
    assert intervals == [30.0, 60.0, 120.0, 120.0]
    assert failed == [0, 1, 2, 3]
    time.sleep(1.3)  # longer than 10 waits of 120 ms: the next stall is not "recent"
    core._slow_worker(1, 3, 2 * STALL)
    m(x)
    assert core._adaptive_threads()["probe_interval_ms"] == 30.0


def test_a_set_count_does_not_adapt(adaptive):
    m, x = _layer("lstm"), _x()
    reset()
    fusedrnn.set_num_threads(2)
    y2 = m(x)[0]
    core._slow_worker(1, 3, SLOW)
    y = m(x)[0]
    s = core._adaptive_threads()
    assert not s["adaptive"] and s["stalls"] == 0 and s["shrinks"] == 0, s
    m(x)
    assert ran_threads() == 2
    _assert_identical([y], [y2], "slow worker, pinned count")


# ------------------------------------------------------------------ FUSEDRNN_NUM_THREADS
def _fresh(env_value):
    env = dict(os.environ)
    env.pop("FUSEDRNN_NUM_THREADS", None)
    if env_value is not None:
        env["FUSEDRNN_NUM_THREADS"] = env_value
    code = ("import fusedrnn; s = fusedrnn._core._adaptive_threads(); "
            "print(fusedrnn.get_num_threads(), s['adaptive'])")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)


def test_environment_variable_pins_the_count():
    out = _fresh("3")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["3", "False"]
    out = _fresh(None)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(len(os.sched_getaffinity(0))), "True"]


@pytest.mark.parametrize("bad", ["0", "-1", "two", "1.5"])
def test_environment_variable_rejects_bad_values(bad):
    out = _fresh(bad)
    assert out.returncode != 0
    assert "FUSEDRNN_NUM_THREADS: expected an integer >= 1" in out.stderr
