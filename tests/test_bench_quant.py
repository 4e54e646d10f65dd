"""`python -m fusedrnn bench --quant`: the quantized rows run, print their columns, measure
every peer's max-abs error against our float32 output, check it, and show a missing peer
as a dash (functional checks only; no timing is asserted)."""

import json
import math
import re
from types import SimpleNamespace

import numpy as np
import pytest
from test_cli import run_cli

from fusedrnn.bench import quant, quant_table
from fusedrnn.bench.grid import KINDS, Shape
from fusedrnn.bench.quant import F32, QuantCase, QuantMeasurement, max_abs_error

#: tiny one-layer rows: a sequence (T=3, B=2, I=5, H=4) and a cell (B=1, I=6, H=8)
TINY = Shape("tiny", 3, 2, 5, 4)
TINY_CELL = Shape("cell", 1, 1, 6, 8)
DASH = ("\u2014", "-")


def quick_args(*more):
    return ("bench", "--quant", "--quick", "--min-runs", "1", "--max-runs", "1",
            "--budget", "0.01", *more)


# The CLI on a small grid: LSTM (every peer) and RNN (torch leaves nn.RNN in float32) on
# the quick S4 row (T=20, B=32, H=128) and the cell row, all three dtypes.
@pytest.fixture(scope="module")
def quant_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("quant") / "bench.json"
    r = run_cli(*quick_args("--kinds", "lstm,rnn", "--rows", "S4,cell", "--json", str(path)),
                timeout=120)
    return r, json.loads(path.read_text()) if path.exists() else None


def table_lines(stdout):
    """{(kind, row, dtype): the line's cells} of every table line."""
    out = {}
    for line in stdout.splitlines():
        cells = line.split()
        if len(cells) > 3 and cells[0] in KINDS and cells[2] in ("int8", "f16", "bf16"):
            out[tuple(cells[:3])] = cells
    return out


def test_quant_cli_prints_every_column_and_line(quant_run, torch, onnxruntime):
    r, doc = quant_run
    assert r.returncode == 0, r.stdout + r.stderr
    header = next(line for line in r.stdout.splitlines() if line.startswith("kind"))
    for title in ("dtype", "ours ms", "err", "f32 ms", "x f32", "x ti8", "ti8 err",
                  "x tf16", "tf16 err", "x ort", "ort err", "spread", "check"):
        assert title in header, header
    assert "ours \u00b5s" in r.stdout or "ours us" in r.stdout  # the cell table's unit
    lines = table_lines(r.stdout)
    assert sorted(lines) == sorted((k, row, d) for k in ("lstm", "rnn") for row in ("S4", "cell")
                                   for d in ("int8", "f16", "bf16")), sorted(lines)
    assert all(cells[-1] == "ok" for cells in lines.values()), r.stdout
    # ORT: LSTM only; torch: no quantized nn.RNN, but a quantized nn.RNNCell
    cols = [t for t, _, _ in quant_table.NARROW]
    lstm, rnn, rnn_cell = lines["lstm", "S4", "int8"], lines["rnn", "S4", "int8"], lines[
        "rnn", "cell", "int8"]
    # titles have spaces ("x ti8"): index the cells by value position instead
    assert len(lstm) == len(rnn) == len(cols), (lstm, cols)
    at = {t: i for i, t in enumerate(cols)}
    assert lstm[at["x ort"]] not in DASH and lstm[at["ort err"]] not in DASH
    assert rnn[at["x ort"]] in DASH and rnn[at["x ti8"]] in DASH and rnn[at["tf16 err"]] in DASH
    assert rnn_cell[at["x ti8"]] not in DASH and rnn_cell[at["ti8 err"]] not in DASH
    assert "peers: ti8" in r.stdout and "DynamicQuantizeLSTM" in r.stdout
    # the default table fits a 120-column terminal, as the float32 one
    assert max(len(line) for line in r.stdout.splitlines()
               if line.split()[:1] in (["kind"], ["lstm"], ["rnn"])) <= 120, r.stdout


def test_quant_json_errors_and_checks(quant_run, torch, onnxruntime):
    r, doc = quant_run
    assert doc["quant"] is True and doc["dtypes"] == ["int8", "float16", "bfloat16"]
    res = {(x["kind"], x["row"]): x for x in doc["results"]}
    assert sorted(res) == [("lstm", "S4"), ("lstm", "cell"), ("rnn", "S4"), ("rnn", "cell")]
    lstm = res["lstm", "S4"]
    assert set(lstm["peers"]) == {"ours_int8", "ours_float16", "ours_bfloat16",
                                  "ours_float32", "torch_int8", "torch_float16", "ort_int8"}
    assert lstm["peers"]["ours_float32"]["max_abs_error"] == 0.0
    for p, v in lstm["peers"].items():
        assert v["runs"] == 1 and v["median_s"] > 0, p
        if p != "ours_float32":  # quantized: a real, small error, within its bound
            assert 0 < v["max_abs_error"] <= v["bound"] and v["ok"], (p, v)
    # 16-bit weights err far less than int8 ones
    assert (lstm["peers"]["ours_float16"]["max_abs_error"]
            < lstm["peers"]["ours_int8"]["max_abs_error"])
    assert set(res["rnn", "S4"]["missing_peers"]) == {"torch_int8", "torch_float16", "ort_int8"}
    assert res["rnn", "cell"]["missing_peers"] == ["ort_int8"]
    x = lstm["speedups"]["int8"]
    assert x["x_float32"] == pytest.approx(lstm["peers"]["ours_float32"]["median_s"]
                                           / lstm["peers"]["ours_int8"]["median_s"])


def perturbed(run, key, index, delta):
    """A peer returning run()'s results with `delta` added at results[key][index]."""

    def peer():
        out = {k: np.array(v, np.float32, copy=True) for k, v in run().items()}
        out[key][index] += np.float32(delta)
        return out

    return peer


def test_quant_errors_are_max_abs_against_float32(torch, onnxruntime):
    """Planted perturbations: each peer's error is the perturbation, the largest over y,
    h_n and c_n, and the table prints it; 0.3 is beyond every bound and flagged."""
    case = QuantCase(KINDS["lstm"], TINY)
    f32 = case.peers[F32]
    case.peers["torch_int8"] = perturbed(f32, "y", (1, 0, 2), 0.3)
    case.peers["torch_float16"] = perturbed(f32, "c_n", (0, 1, 3), -0.0025)
    case.peers["ort_int8"] = perturbed(f32, "h_n", (0, 0, 0), 0.02)
    m = quant.measure_quant(case, min_runs=1, max_runs=1, budget_s=0)
    assert m.errors[F32] == 0
    assert m.errors["torch_int8"] == pytest.approx(0.3, abs=1e-6)
    assert m.errors["torch_float16"] == pytest.approx(0.0025, abs=1e-7)
    assert m.errors["ort_int8"] == pytest.approx(0.02, abs=1e-7)
    assert not m.agrees("torch_int8") and "torch_int8" in m.disagreeing()
    line = quant_table.table_rows(m)[0]
    cells = line.split()
    assert cells[:3] == ["lstm", "tiny", "int8"]
    assert "3.0e-01" in cells and "2.5e-03" in cells and "2.0e-02" in cells, line
    assert " ti8!" in line, line


def test_cell_rows_compare_the_state_only(torch, onnxruntime):
    case = QuantCase(KINDS["gru"], TINY_CELL)
    f32 = case.peers[F32]
    want = f32()
    assert sorted(want) == ["h_n"] and want["h_n"].shape == (1, 1, 8)
    case.peers["torch_int8"] = perturbed(f32, "h_n", (0, 0, 7), -0.04)
    m = quant.measure_quant(case, min_runs=1, max_runs=1, budget_s=0)
    assert m.errors["torch_int8"] == pytest.approx(0.04, abs=1e-7)
    assert m.times["torch_int8"] and m.median("torch_int8") > 0


def test_max_abs_error_edge_cases():
    want = {"y": np.zeros((2, 3)), "h_n": np.zeros((1, 3))}
    assert max_abs_error({"y": np.full((2, 3), -0.5), "h_n": np.ones((1, 3))}, want) == 1.0
    assert math.isinf(max_abs_error({"y": np.zeros((2, 3))}, want))  # h_n missing
    assert math.isinf(max_abs_error({"y": np.zeros((3, 2)), "h_n": np.zeros((1, 3))}, want))
    nan = np.zeros((2, 3))
    nan[0, 0] = np.nan
    assert math.isnan(max_abs_error({"y": nan, "h_n": np.zeros((1, 3))}, want))


@pytest.mark.parametrize("errors, bad", [
    # ours int8 within 10x of torch int8's and the reverse: all agree
    ({"ours_int8": 0.01, "torch_int8": 0.03, "ort_int8": 0.02}, []),
    # a wrong peer (gate order): O(1) error, beyond the int8 cap of 0.25
    ({"ours_int8": 0.01, "torch_int8": 0.03, "ort_int8": 0.6}, ["ort_int8"]),
    # ours 20x torch's: ours fails, torch does not
    ({"ours_int8": 0.2, "torch_int8": 0.01}, ["ours_int8"]),
    # torch float16 beyond 10x ours float16
    ({"ours_float16": 2e-4, "torch_float16": 5e-3}, ["torch_float16"]),
    # alone in its class (bfloat16; int8 without torch and ORT): the caps only
    ({"ours_bfloat16": 0.09, "ours_int8": 0.2}, []),
    ({"ours_bfloat16": 0.11}, ["ours_bfloat16"]),
    ({"ours_int8": float("nan")}, ["ours_int8"]),
])
def test_check_bounds(errors, bad):
    case = SimpleNamespace(dtypes=tuple(p[5:] for p in errors if p.startswith("ours_")))
    m = QuantMeasurement(case, {p: [1.0] for p in errors}, {F32: 0.0, **errors})
    assert [p for p in errors if not m.agrees(p)] == bad
    assert m.ok() == (not bad)


def test_quant_without_torch_and_onnxruntime_shows_dashes(tmp_path):
    path = tmp_path / "bench.json"
    r = run_cli(*quick_args("--kinds", "lstm", "--rows", "cell", "--quant", "int8",
                            "--json", str(path)),
                pre="import sys; sys.modules['torch'] = None; sys.modules['onnx'] = None",
                timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "not installed: torch" in r.stdout and "not installed: ort" in r.stdout, r.stdout
    (cells,) = table_lines(r.stdout).values()  # int8 only
    at = {t: i for i, (t, _, _) in enumerate(quant_table.NARROW)}
    for title in ("x ti8", "ti8 err", "x tf16", "tf16 err", "x ort", "ort err"):
        assert cells[at[title]] in DASH, (title, cells)
    assert cells[-1] == "ok"
    (x,) = json.loads(path.read_text())["results"]
    assert set(x["peers"]) == {"ours_int8", "ours_float32"}
    assert x["missing_peers"] == ["torch_int8", "torch_float16", "ort_int8"]


@pytest.mark.parametrize("bad, says", [
    (("--rows", "L2bi"), "the quantized rows are S1,S2,S3,S4,cell,cell256"),
    (("--modes", "training"), "inference-only"),
    (("--plot", "x.png"), "--plot"),
])
def test_quant_rejects_options_that_do_not_apply(bad, says):
    r = run_cli(*quick_args(*bad), timeout=60)
    assert r.returncode == 2 and says in r.stderr, r.stderr


def test_quant_rejects_an_unknown_dtype():
    r = run_cli("bench", "--quant", "int4", timeout=60)
    assert r.returncode == 2 and re.search(r"int8, float16, bfloat16", r.stderr), r.stderr


def test_quant_is_in_the_help():
    r = run_cli("bench", "--help", timeout=60)
    assert r.returncode == 0 and "--quant" in r.stdout and "DynamicQuantizeLSTM" in r.stdout


def test_quant_threads_list_gives_a_table_per_count(tmp_path):
    path = tmp_path / "bench.json"
    r = run_cli(*quick_args("--kinds", "rnn", "--rows", "cell", "--quant", "bfloat16",
                            "--threads", "1,2", "--json", str(path), "--wide"), timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    header = next(line for line in r.stdout.splitlines() if line.startswith("kind"))
    assert re.search(r"ti8 (\u00b5s|us) +x ti8 +ti8 err", header) and "runs" in header, header
    assert "== 1 thread: ours 1" in r.stdout and "== 2 threads: ours 2" in r.stdout, r.stdout
    assert len(table_lines(r.stdout)) == 1  # the same key twice: one line per table
    assert sum(line.startswith("rnn   cell") for line in r.stdout.splitlines()) == 2
    doc = json.loads(path.read_text())
    assert doc["thread_counts"] == [1, 2]
    assert [x["threads"]["ours"] for x in doc["results"]] == [1, 2]


@pytest.mark.parametrize("ratio, text", [(0.874, "0.87"), (12.34, "12.3"), (294.31, "294"),
                                         (None, quant_table.table.NONE)])
def test_ratios_fit_their_columns(ratio, text):
    m = SimpleNamespace(speedup=lambda peer, dtype: ratio)
    line = object.__new__(quant_table._Line)
    line.m, line.d = m, "int8"
    assert line.x("torch_int8") == text and len(text) <= 5
