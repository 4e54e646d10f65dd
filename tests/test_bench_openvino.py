"""The benchmark's OpenVINO peer (``bench --openvino``, column "x OV") and its ceiling
lines (numpy.matmul of each row's input projection).  Functional checks only: no time
is asserted.

OpenVINO is an optional peer that CI does not install: the tests that run it skip
without it (the skip names it), unless FUSEDRNN_REQUIRE_OPENVINO=1 makes that a failure.
(Not in CI because one run of this file alone hung here: a thread that OpenVINO's
conversion started forked while NumPy's OpenBLAS was busy, and OpenBLAS's fork handler
waited for its own threads forever; see docs/benchmarks.md.)
A missing openvino must never fail the benchmark: that is checked with openvino hidden
(``sys.modules['openvino'] = None``) whether or not it is installed.
"""

import json
import os
import re

import numpy as np
import pytest

import importlib

from fusedrnn.bench import ceiling, table
from fusedrnn.bench.case import Case

from test_cli import run_cli

grid = importlib.import_module("fusedrnn.bench.grid")  # the package's `grid` is a function


@pytest.fixture
def openvino(torch):
    try:
        import openvino  # noqa: PLC0415 - optional
    except ImportError:
        if os.environ.get("FUSEDRNN_REQUIRE_OPENVINO") == "1":
            pytest.fail("openvino is not installed, and FUSEDRNN_REQUIRE_OPENVINO=1")
        pytest.skip("openvino is not installed (pip install openvino): optional peer")
    return openvino


def _shape(name, T=5):
    from dataclasses import replace

    s = next(s for s in grid.ROWS if s.name == name)
    return replace(s, T=min(s.T, T))


# ------------------------------------------------------------------ which lines have OV
def test_openvino_applies_to_inference_outside_the_len_row():
    for s in grid.ROWS:
        assert grid.applies("openvino", s, "inference") == (not s.ragged), s.name
        assert not grid.applies("openvino", s, "training")
    assert "openvino" not in grid.PEERS and "openvino" in grid.OPTIONAL_PEERS
    assert grid.OTHERS["openvino"] == "OV"


def test_openvino_only_when_asked_for(torch):
    case = Case(grid.KINDS["lstm"], _shape("S1"), "inference")
    assert "openvino" not in case.peers  # bench without --openvino


# ------------------------------------------------------------------ the peer's results
@pytest.mark.parametrize("kind,row", [(k, r) for r in ("S4", "cell") for k in ("lstm", "gru", "rnn")]
                         + [(k, "L2bi") for k in ("lstm", "gru", "rnn")])
def test_openvino_peer_agrees_with_ours(kind, row, openvino):
    shape = _shape(row)
    from fusedrnn.bench import peer_openvino

    case = Case(grid.KINDS[kind], shape, "inference")
    peer_openvino.attach(case, threads=1, wanted=True)
    got, ours = case.peers["openvino"](), case.peers["ours"]()
    assert set(got) == set(ours)
    assert case.check_vs("openvino", got, ours) < grid.TOLERANCE
    assert case.check(got, "openvino") < grid.TOLERANCE


def test_openvino_config_asks_for_float32_and_the_threads():
    from fusedrnn.bench.peer_openvino import compile_config

    assert compile_config(2) == {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 2}
    assert compile_config(None) == {"INFERENCE_PRECISION_HINT": "f32"}


# ------------------------------------------------------------------ ceiling lines
def test_ceiling_shape_is_the_input_projection():
    lstm, gru = grid.KINDS["lstm"], grid.KINDS["gru"]
    assert ceiling.input_projection_shape(lstm, _shape("S3", T=50)) == (50 * 64, 1024, 4 * 1024)
    assert ceiling.input_projection_shape(gru, _shape("cell")) == (1, 128, 3 * 128)
    length = _shape("len", T=200)
    assert ceiling.input_projection_shape(lstm, length) == (int(length.lengths().sum()), 256,
                                                            1024)


def test_ceiling_measures_gflops_and_peak():
    c = ceiling.measure_ceiling(grid.KINDS["gru"], _shape("S4"), 1, 100.0, min_runs=3,
                                budget_s=0.0)
    m, k, n = c["M"], c["K"], c["N"]
    assert (m, k, n) == (5 * 32, 128, 3 * 128) and len(c["times_s"]) >= 3
    assert c["median_s"] == pytest.approx(float(np.median(c["times_s"])))
    assert c["gflops"] == pytest.approx(2 * m * k * n / c["median_s"] / 1e9)
    threads = c["blas_threads"] or 1
    assert c["pct_peak"] == pytest.approx(100 * c["gflops"] / (100.0 * threads))
    # ours: the same product with fusedrnn's own kernel, timed in turns with NumPy's
    assert len(c["ours_times_s"]) == len(c["times_s"])
    assert c["ours_median_s"] == pytest.approx(float(np.median(c["ours_times_s"])))
    assert c["ours_gflops"] == pytest.approx(2 * m * k * n / c["ours_median_s"] / 1e9)
    widths = [w for _, w, _ in table.columns()[:6]]
    line = ceiling.ceiling_line(c, False, widths)
    assert line.split()[:3] == ["gru", "S4", "matmul"] and len(line) <= 150
    assert "numpy.matmul (160, 128) x (128, 384)" in line
    ratio = c["median_s"] / c["ours_median_s"]
    assert line.endswith(f"; ours {c['ours_gflops']:.1f} GFLOP/s ({ratio:.2f}x)")
    assert not re.search(r"\sok \d", line)  # never taken for a checked line


# ------------------------------------------------------------------ the CLI
ARGS = ("bench", "--quick", "--kinds", "rnn", "--rows", "S1,cell", "--modes", "inference",
        "--min-runs", "1", "--budget", "0.01", "--openvino")


def _tables(stdout):
    lines = stdout.splitlines()
    headers = [line for line in lines if line.startswith("kind ")]
    checked = [line for line in lines if re.search(r"\sok \d", line)]
    ceilings = [line for line in lines if " matmul " in line and "ceiling:" in line]
    return headers, checked, ceilings


def test_bench_without_openvino_shows_a_dash(tmp_path):
    out = tmp_path / "b.json"
    r = run_cli(*ARGS, "--json", str(out), pre="import sys; sys.modules['openvino'] = None")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "not installed: OV (pip install openvino)" in r.stdout
    headers, checked, ceilings = _tables(r.stdout)
    assert len(headers) == 2 and all("x OV" in h for h in headers)
    col = headers[0].index("x OV") + len("x OV")  # right-aligned under its title
    assert len(checked) == 2 and all(line[col - 1] == table.NONE for line in checked), r.stdout
    assert len(ceilings) == 2
    doc = json.loads(out.read_text())
    assert all(x["missing_peers"] == ["openvino"] for x in doc["results"])
    assert [(c["kind"], c["row"]) for c in doc["ceilings"]] == [("rnn", "S1"), ("rnn", "cell")]


def test_bench_with_openvino_checks_it_and_prints_ceilings(tmp_path, openvino):
    out = tmp_path / "b.json"
    r = run_cli(*ARGS, "--json", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    headers, checked, ceilings = _tables(r.stdout)
    assert len(checked) == 2 and not any("OV!" in line for line in checked), r.stdout
    assert all(len(line) <= 120 for line in headers + checked)
    # a ceiling line ends with ours' product of the same shape (GFLOP/s and x numpy)
    assert all(len(line) <= 150 and re.search(r"; ours [\d.]+ GFLOP/s \([\d.]+x\)$", line)
               for line in ceilings), ceilings
    doc = json.loads(out.read_text())
    assert doc["peers"][-1] == "openvino" and doc["machine"]["versions"]["openvino"]
    for x in doc["results"]:
        ov = x["peers"]["openvino"]
        assert ov["rel_error_vs_ours"] < 1e-4 and ov["median_s"] > 0 and ov["speedup"] > 0
        assert x["missing_peers"] == []
    for c in doc["ceilings"]:
        assert c["gflops"] > 0 and c["threads"] == 1 and c["pct_peak"] > 0
        assert c["ours_gflops"] > 0 and len(c["ours_times_s"]) == len(c["times_s"])
