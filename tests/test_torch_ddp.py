"""DistributedDataParallel over fusedrnn.torch.LSTM (examples/ddp_train.py).

Two processes (torch.multiprocessing, spawn; gloo on 127.0.0.1) train the example's
model (fusedrnn.torch.LSTM -> last step -> nn.Linear) in float64 on their shards of one
batch.  The replicas must be bitwise identical after every step, and equal, to rounding,
to one process trained on the whole batch: the loss is a mean over equal shards, so
DDP's average of the shards' gradients is the whole batch's gradient.  And the loss
must go down.  A second test runs the example as a script.

The training code lives in examples/ddp_train.py, which is not a package: the test puts
examples/ on sys.path and imports it as ``ddp_train``.  Spawned children get the
parent's sys.path, so they import ``ddp_train`` by name to find ``train`` (a function
of this test module would depend on how pytest imported the module).
"""

import importlib
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TIMEOUT_S = 120  # for the processes of one test; the tests take about 10 s each
WORLD, STEPS, SEED = 2, 5, 0
RTOL = 1e-10  # DDP against one process, float64, norm-wise per parameter tensor


@pytest.fixture
def example(frt, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))  # the children inherit it
    return importlib.import_module("ddp_train")


def run_ddp(torch, example, out_dir, skew_init):
    """example.train in WORLD spawned processes; their results, one dict per rank."""
    import torch.multiprocessing as mp  # noqa: PLC0415 - torch is imported lazily

    # train(rank, world_size, port, steps, seed, dtype, out_dir, verbose, skew_init)
    args = (WORLD, example.free_port(), STEPS, SEED, "float64", str(out_dir), False,
            skew_init)
    ctx = mp.spawn(example.train, args=args, nprocs=WORLD, join=False,
                   start_method="spawn")
    deadline = time.monotonic() + TIMEOUT_S
    try:
        # join re-raises a child's exception (with its traceback) and stops the others
        while not ctx.join(timeout=1.0):
            if time.monotonic() > deadline:
                pytest.fail(f"the {WORLD} DDP processes did not finish within {TIMEOUT_S} s "
                            "(a hung gloo rendezvous or collective?); killed them",
                            pytrace=False)
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
                p.join()
    return [torch.load(out_dir / f"rank{r}.pt") for r in range(WORLD)]


def bits(torch, t):
    """A float64 tensor's bits, for bitwise comparison (-0.0 != 0.0, NaN == same NaN)."""
    return t.contiguous().view(dtype=torch.int64)


def test_ddp_matches_one_process(torch, example, tmp_path):
    # skew_init: rank 1 starts from other weights (already packed by a forward), so
    # the replicas can only agree if DDP's broadcast reached fusedrnn's kernels.
    ranks = run_ddp(torch, example, tmp_path, skew_init=True)
    one = example.single_process(STEPS, SEED, "float64")
    names = [n for n, _ in example.make_model(SEED, torch.float64).named_parameters()]
    r0 = ranks[0]
    assert len(r0["params"]) == STEPS + 1 and len(r0["losses"]) == STEPS

    # (a) the replicas are bitwise identical, before training and after every step
    for r in ranks[1:]:
        assert r["losses"] == r0["losses"]
        for s in range(STEPS + 1):
            for name, p, q in zip(names, r0["params"][s], r["params"][s]):
                assert p.dtype == torch.float64
                assert torch.equal(bits(torch, p), bits(torch, q)), (
                    f"replicas differ in {name} after step {s - 1}: max |diff| "
                    f"{(p - q).abs().max().item():.3g}")

    # (b) DDP on shards == one process on the whole batch, to float64 rounding
    worst = 0.0
    for s in range(STEPS + 1):
        for name, p, q in zip(names, r0["params"][s], one["params"][s]):
            rel = ((p - q).norm() / q.norm()).item()
            worst = max(worst, rel)
            assert rel <= RTOL, f"{name} after step {s - 1}: relative difference {rel:.3g}"
    for s, (a, b) in enumerate(zip(r0["losses"], one["losses"])):
        assert abs(a - b) <= RTOL * abs(b), f"step {s}: loss {a!r} (DDP) vs {b!r} (one)"
    print(f"DDP vs one process: max relative parameter difference {worst:.3g}")

    # (c) training trains
    assert r0["losses"][-1] < r0["losses"][0], r0["losses"]


def test_example_script_runs(frt):
    """python examples/ddp_train.py --steps 3: DDP in 2 processes, exit status 0."""
    cmd = [sys.executable, str(EXAMPLES / "ddp_train.py"), "--steps", "3"]
    # A session of its own, so that a timeout kills the script's workers too.
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(cmd)} did not finish within {TIMEOUT_S} s; killed it\n"
                    f"stdout:\n{out}\nstderr:\n{err}", pytrace=False)
    assert proc.returncode == 0, f"exit status {proc.returncode}\nstdout:\n{out}\nstderr:\n{err}"
    lines = out.splitlines()
    assert [ln.split()[:2] for ln in lines if ln.startswith("step")] == [
        ["step", "0"], ["step", "1"], ["step", "2"]], out
    assert "one process, whole batch" in lines[-1], out
