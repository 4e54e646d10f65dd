"""The command line runs: `python -m fusedrnn bench/info/demo` (functional checks only;
no timing is asserted anywhere in tests/)."""

import json
import os
import re
import subprocess
import sys

import pytest


def run_cli(*args, timeout=240):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "fusedrnn", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_info():
    r = run_cli("info")
    assert r.returncode == 0, r.stderr
    assert "cpu_info" in r.stdout and "generic" in r.stdout


def test_demo_loss_decreases():
    r = run_cli("demo", "--steps", "60", "--every", "20")
    assert r.returncode == 0, r.stderr
    # lines "step    N  loss X"
    losses = [float(line.split()[-1]) for line in r.stdout.splitlines()
              if line.startswith("step")]
    assert len(losses) >= 2, r.stdout
    assert losses[-1] < losses[0], r.stdout


def test_bench_small_subset_writes_checked_json(tmp_path):
    out = tmp_path / "bench.json"
    r = run_cli("bench", "--quick", "--kinds", "gru,rnn", "--rows", "S4,cell",
                "--min-runs", "1", "--budget", "0.01", "--json", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(out.read_text())
    rows = doc["results"]
    # 2 kinds x (S4 in both modes + the cell row in inference)
    assert len(rows) == 2 * 3, [(x.get("kind"), x.get("row"), x.get("mode")) for x in rows]
    for row in rows:
        ours, refr = row["peers"]["ours"], row["peers"]["reference"]
        assert ours["runs"] >= 1 and ours["median_s"] > 0
        assert refr["median_s"] > 0
        assert ours["rel_error"] < 1e-4, row  # ours checked against the reference
    checked = [line for line in r.stdout.splitlines() if re.search(r"\sok \d", line)]
    assert len(checked) == 6, r.stdout


@pytest.mark.parametrize("bad", [["bench", "--kinds", "lstmx"], ["bench", "--threads", "0"]])
def test_bench_rejects_bad_arguments(bad):
    r = run_cli(*bad)
    assert r.returncode == 2
    assert "expected" in r.stderr
