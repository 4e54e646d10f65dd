"""Regions on torch's OpenMP threads (cpu/threads.h, "Host OpenMP"; docs/pytorch.md,
"Threads").

While a thread's host scope is on, parallel regions run on the OpenMP runtime that torch
loaded (GNU OpenMP in its Linux wheels) instead of fusedrnn's own workers; the drop-in
modules turn it on around their kernel calls.  Here: that the regions really run there
(each rank sees its OpenMP thread number), that results are the same bits as on the
team's own threads (also for a bidirectional layer's pair and from two Python threads
at once), that an exception leaves both sides working, that the drop-ins use it, and
the environment switch FUSEDRNN_TORCH_OPENMP."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import fusedrnn
from fusedrnn import _core

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the host scope uses Linux's dynamic loader")


@pytest.fixture
def host(torch, restore_threads):
    """torch loaded (so its OpenMP runtime is), 2 threads; the scope restored after."""
    assert _core._host_openmp_available(), "torch's GNU OpenMP runtime was not found"
    fusedrnn.set_num_threads(2)
    before = _core._host_openmp(False)
    yield
    _core._host_openmp(before)


def scoped(on, fn, *args):
    before = _core._host_openmp(on)
    try:
        return fn(*args)
    finally:
        _core._host_openmp(before)


def test_the_scope_is_per_thread_and_returns_the_previous_one(host):
    assert _core._host_openmp(True) is False
    assert _core._host_openmp(True) is True
    seen = []
    t = threading.Thread(target=lambda: seen.append(_core._host_openmp(False)))
    t.start()
    t.join()
    assert seen == [False]  # another thread's scope starts off
    assert _core._host_openmp(False) is True


@pytest.mark.parametrize("n", [2, 3])
def test_regions_run_on_the_openmp_threads_only_in_scope(host, n):
    fusedrnn.set_num_threads(n)
    before = _core._host_openmp_regions()
    # Each rank's omp_get_thread_num(): its OpenMP thread in scope; outside it the team's
    # own threads, which are in no OpenMP region (0 for all).
    assert scoped(True, _core._host_openmp_probe, n) == list(range(n))
    assert _core._host_openmp_regions() == before + 1
    assert scoped(False, _core._host_openmp_probe, n) == [0] * n
    assert _core._host_openmp_regions() == before + 1


@pytest.mark.parametrize("n, threads", [(2, 1), (4, 2), (3, 3)])
def test_a_pairs_halves_split_the_openmp_threads(host, n, threads):
    fusedrnn.set_num_threads(n)
    # (threads each job sees, threads of its nested region, threads past its barriers,
    # whether the jobs ran on different threads), as in test_pair.py: the same in scope
    assert scoped(True, _core._pair_probe, n) == scoped(False, _core._pair_probe, n) == [
        (threads, threads, threads, n % 2 == 0)] * 2


def run_both(layer, x, dy, bidirectional):
    y, h, tape = layer.forward(x, train=True)
    dx, dh0, grads = layer.backward(tape, dy)
    return [y, *(h if isinstance(h, tuple) else (h,)), dx, *grads.values()]


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_results_are_the_same_bits_on_either_threads(host, kind, bidirectional):
    cls = {"lstm": fusedrnn.LSTM, "gru": fusedrnn.GRU, "rnn": fusedrnn.RNN}[kind]
    layer = cls(24, 40, num_layers=2, bidirectional=bidirectional, seed=3)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 12, 24)).astype(np.float32)
    dy = rng.standard_normal((30, 12, 40 * (2 if bidirectional else 1))).astype(np.float32)
    before = _core._host_openmp_regions()
    on = scoped(True, run_both, layer, x, dy, bidirectional)
    assert _core._host_openmp_regions() > before
    off = scoped(False, run_both, layer, x, dy, bidirectional)
    assert len(on) == len(off)
    for a, b in zip(on, off):
        np.testing.assert_array_equal(a, b)


def test_two_python_threads_in_scope_at_once(host):
    layer = fusedrnn.LSTM(16, 32, seed=1)
    x = np.random.default_rng(2).standard_normal((40, 8, 16)).astype(np.float32)
    want = scoped(False, layer, x)[0]
    got, errors = [], []

    def work():
        try:
            for _ in range(20):
                got.append(scoped(True, layer, x)[0])
        except Exception as e:  # reported below, not lost in the thread
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(got) == 40
    for y in got:
        np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("fail", [0, 1])
def test_an_exception_in_a_region_reaches_the_caller_and_both_sides_work_after(host, fail):
    with pytest.raises(RuntimeError, match=f"job {fail} failed"):
        scoped(True, _core._pair_probe, 2, fail)
    assert scoped(True, _core._host_openmp_probe, 2) == [0, 1]
    assert scoped(False, _core._host_openmp_probe, 2) == [0, 0]
    # the pair's halves, led and served on the OpenMP threads
    assert scoped(True, _core._pair_probe, 2) == [(1, 1, 1, True)] * 2


@pytest.mark.parametrize("bidirectional", [False, True])
def test_the_drop_in_runs_its_kernels_in_scope(host, frt, torch, bidirectional):
    lstm = frt.LSTM(16, 32, num_layers=2, bidirectional=bidirectional)
    x = torch.randn(20, 4, 16, requires_grad=True)
    before = _core._host_openmp_regions()
    y, _ = lstm(x)
    forward = _core._host_openmp_regions()
    y.sum().backward()
    assert forward > before and _core._host_openmp_regions() > forward
    assert _core._host_openmp(False) is False  # the modules restored the caller's scope
    with torch.inference_mode():
        lstm(x.detach())
    assert _core._host_openmp_regions() > forward


def test_the_quantized_drop_in_runs_its_kernels_in_scope(host, frt, torch):
    model = frt.quantize_dynamic(torch.nn.Sequential(torch.nn.GRU(32, 64, bidirectional=True)))
    x = torch.randn(30, 8, 32)
    before = _core._host_openmp_regions()
    with torch.no_grad():
        y_on = model(x)[0]
    assert _core._host_openmp_regions() > before
    assert _core._host_openmp(False) is False  # restored
    import fusedrnn.torch._kernel as kernel
    setting, kernel.TORCH_OPENMP = kernel.TORCH_OPENMP, False  # as FUSEDRNN_TORCH_OPENMP=0
    try:
        before = _core._host_openmp_regions()
        with torch.no_grad():
            y_off = model(x)[0]
        assert _core._host_openmp_regions() == before
    finally:
        kernel.TORCH_OPENMP = setting
    assert torch.equal(y_on, y_off)


def run_python(code, **env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, **env))


def test_fusedrnn_torch_openmp_0_keeps_the_drop_in_on_its_own_threads(torch):
    code = ("import torch, fusedrnn, fusedrnn.torch as frt\n"
            "from fusedrnn import _core\n"
            "fusedrnn.set_num_threads(2)\n"
            "m = frt.GRU(64, 128)\n"
            "m(torch.randn(20, 16, 64, requires_grad=True))[0].sum().backward()\n"
            "print(_core._host_openmp_regions())\n")
    on, off = run_python(code), run_python(code, FUSEDRNN_TORCH_OPENMP="0")
    assert on.returncode == 0 and off.returncode == 0, on.stderr + off.stderr
    assert int(on.stdout) > 0 and int(off.stdout) == 0


def test_fusedrnn_torch_openmp_must_be_0_or_1(torch):
    r = run_python("import fusedrnn.torch", FUSEDRNN_TORCH_OPENMP="yes")
    assert r.returncode != 0 and "FUSEDRNN_TORCH_OPENMP: expected 0 or 1, got 'yes'" in r.stderr


def test_a_forked_child_runs_its_regions_on_its_own_team(torch):
    """GNU OpenMP is not fork-safe (a child's 2-thread region waits for the parent's
    threads forever): a child of fork() never uses it, even with its scope on."""
    code = ("import os, torch, fusedrnn, fusedrnn.torch as frt\n"
            "from fusedrnn import _core\n"
            "fusedrnn.set_num_threads(2)\n"
            "torch.set_num_threads(2)\n"
            "m = frt.LSTM(64, 128)\n"
            "x = torch.randn(20, 16, 64, requires_grad=True)\n"
            "m(x)[0].sum().backward()\n"
            "parent = _core._host_openmp_regions()\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    torch.set_num_threads(1)  # torch's own ops in a child need it (DataLoader)\n"
            "    m(x)[0].sum().backward()\n"
            "    _core._host_openmp(True)\n"
            "    assert _core._host_openmp_probe(2) == [0, 0]\n"
            "    os._exit(0 if _core._host_openmp_regions() == parent else 3)\n"
            "_, status = os.waitpid(pid, 0)\n"
            "print(parent, os.waitstatus_to_exitcode(status))\n")
    r = run_python(code)
    assert r.returncode == 0, r.stderr
    parent, child = (int(v) for v in r.stdout.split())
    assert parent > 0 and child == 0
