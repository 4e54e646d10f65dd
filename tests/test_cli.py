"""The command line runs: `python -m fusedrnn bench/info/demo` (functional checks only;
no timing is asserted anywhere in tests/)."""

import importlib.util
import json
import os
import re
import struct
import subprocess
import sys

import numpy as np
import pytest


def run_cli(*args, timeout=240, pre=""):
    """`python -m fusedrnn ARGS`; `pre`: Python run first in that process (then the CLI)."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    if pre:
        code = f"{pre}\nimport sys\nfrom fusedrnn.__main__ import main\nsys.exit(main())"
        cmd = [sys.executable, "-c", code, *args]
    else:
        cmd = [sys.executable, "-m", "fusedrnn", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


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


# The default (narrow) table: two kinds, a sequence row and the cell row in both modes.
@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("small") / "bench.json"
    r = run_cli("bench", "--quick", "--kinds", "gru,rnn", "--rows", "S4,cell",
                "--min-runs", "1", "--budget", "0.01", "--json", str(out))
    return r, out


def test_bench_small_subset_writes_checked_json(small_run):
    r, out = small_run
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(out.read_text())
    assert doc["thread_counts"] == [1]  # the default
    assert doc["fma_peak_gflops"] > 0
    rows = doc["results"]
    # 2 kinds x (S4 and the cell row, each in both modes)
    assert len(rows) == 2 * 4, [(x.get("kind"), x.get("row"), x.get("mode")) for x in rows]
    for row in rows:
        ours, refr = row["peers"]["ours"], row["peers"]["reference"]
        assert ours["runs"] >= 1 and ours["median_s"] > 0
        assert refr["median_s"] > 0
        assert ours["rel_error"] < 1e-4, row  # ours checked against the reference
        assert row["threads"]["ours"] == 1 and row["gflops"] > 0 and row["pct_peak"] > 0
        assert "ort" not in row["peers"] or row["mode"] == "inference"  # ORT: no training
        if "dropin" in row["peers"]:  # fusedrnn.torch, whenever torch imports: both modes
            assert row["peers"]["dropin"]["rel_error_vs_ours"] < 1e-4, row
            assert row["peers"]["dropin"]["rel_error"] < 1e-4, row
    checked = [line for line in r.stdout.splitlines() if re.search(r"\sok \d", line)]
    assert len(checked) == 8 and not any("!" in line for line in checked), r.stdout


# One small run shared by the tests below: three kinds (each its own ONNX operator and
# gate order), a sequence row and the cell row, inference, two thread counts, JSON and
# (when matplotlib is importable) the plot; --wide, so every column.
@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    args = ["bench", "--quick", "--rows", "S1,cell", "--modes", "inference", "--wide",
            "--threads", "1,2", "--min-runs", "1", "--max-runs", "2", "--budget", "0.01",
            "--json", str(d / "bench.json")]
    if importlib.util.find_spec("matplotlib") is not None:
        args += ["--plot", str(d / "bench.png")]
    r = run_cli(*args)
    assert r.returncode == 0, r.stdout + r.stderr
    return r, json.loads((d / "bench.json").read_text()), d


def test_bench_threads_list_gives_a_table_per_count(bench_run):
    r, doc, _ = bench_run
    assert doc["thread_counts"] == [1, 2]
    assert [t["threads"] for t in doc["tables"]] == [1, 2]
    for n in (1, 2):
        rows = [x for x in doc["results"] if x["threads"]["ours"] == n]
        assert len(rows) == 3 * 2, doc["results"]  # 3 kinds x (S1, cell), inference
        for x in rows:
            assert x["threads"]["torch"] in (None, n) and x["threads"]["ort"] in (None, n)
            assert x["peers"]["ours"]["median_s"] > 0
    titles = [line for line in r.stdout.splitlines() if line.startswith("== ")]
    assert [t.split(":")[0] for t in titles] == ["== 1 thread", "== 2 threads"], r.stdout
    # one header per table: sequence rows in ms, the cell row in µs, per thread count
    headers = [line.split() for line in r.stdout.splitlines() if line.startswith("kind ")]
    assert [h[4] for h in headers] == ["ms", "\u00b5s", "ms", "\u00b5s"], r.stdout
    assert all("%peak" in h and "x ort" in " ".join(h) for h in headers)
    # the drop-in's columns are there whether or not torch is
    assert all({"drop", "drop/ours"} <= set(h) and "drop x torch" in " ".join(h)
               for h in headers)
    # runs: ours/ref/torch/drop/ort/tpad
    runs = [line.split()[-3] for line in r.stdout.splitlines() if re.search(r"\sok \d", line)]
    assert runs and all(len(x.split("/")) == 6 for x in runs), r.stdout
    assert "peak:" in r.stdout and "GFLOP/s" in r.stdout


def test_bench_json_has_torch_dropin_and_ort_peers(bench_run, torch, frt, onnxruntime):
    _, doc, _ = bench_run
    assert doc["machine"]["versions"]["torch"] == torch.__version__
    assert doc["machine"]["versions"]["onnxruntime"] == onnxruntime.__version__
    assert doc["peers"] == ["ours", "reference", "torch", "dropin", "ort", "torch_pad"]
    for t in doc["tables"]:
        assert t["thread_info"]["torch"] == t["threads"] == t["thread_info"]["ort"]
    for x in doc["results"]:
        assert x["missing_peers"] == [], x
        for peer in ("torch", "dropin", "ort", "reference"):
            p = x["peers"][peer]
            assert p["median_s"] > 0 and p["speedup"] > 0, (peer, x)
        # torch/drop: torch.nn's time over the drop-in's; the drop-in's speedup: its / ours
        t, d = x["peers"]["torch"]["median_s"], x["peers"]["dropin"]["median_s"]
        assert x["torch_over_dropin"] == pytest.approx(t / d), x
        assert x["peers"]["dropin"]["speedup"] == pytest.approx(
            d / x["peers"]["ours"]["median_s"]), x


def test_bench_table_shows_the_dropin_columns(bench_run, frt):
    from fusedrnn.bench import table

    r, doc, _ = bench_run
    lines = [line for line in r.stdout.splitlines() if re.search(r"\sok \d", line)]
    assert len(lines) == len(doc["results"]), r.stdout
    # one word per column in a line (the check column's two come last)
    titles = [title for title, _, _ in table.WIDE]
    i = titles.index("drop x torch")
    assert titles[i - 2:i] == ["drop {u}", "drop/ours"]
    for line, x in zip(lines, doc["results"]):
        v = line.split()
        unit_scale = 1e6 if x["row"] == "cell" else 1e3
        assert float(v[i]) == pytest.approx(x["torch_over_dropin"], abs=0.006), (line, x)
        assert float(v[i - 1]) == pytest.approx(x["peers"]["dropin"]["speedup"], abs=0.006)
        drop = x["peers"]["dropin"]["median_s"] * unit_scale
        assert float(v[i - 2]) == pytest.approx(drop, rel=0.01, abs=0.006), (line, x)
    assert ("drop  fusedrnn.torch." in r.stdout
            and "drop x torch = torch time / drop time" in r.stdout)


def test_bench_ort_agrees_with_ours(bench_run, onnxruntime):
    r, doc, _ = bench_run
    for x in doc["results"]:
        assert x["peers"]["ort"]["rel_error_vs_ours"] < 1e-4, x
        assert x["ok"], x
        if "dropin" in x["peers"]:
            assert x["peers"]["dropin"]["rel_error_vs_ours"] < 1e-4, x
    lines = [line for line in r.stdout.splitlines() if re.search(r"\sok \d", line)]
    assert len(lines) == len(doc["results"]) and not any("!" in line for line in lines)


def test_bench_ort_check_catches_a_wrong_gate_order(onnxruntime, monkeypatch):
    """The check column's job: ORT fed torch's gate order instead of ONNX's fails."""
    from dataclasses import replace

    from fusedrnn import bench, convert

    to_onnx = convert.to_onnx

    def torch_order(module):  # ONNX's LSTM gate blocks i,o,f,c back to torch's i,f,g,o
        layers = to_onnx(module)
        for w in layers:
            for key, axis in (("W", 1), ("R", 1), ("B", 1)):
                blocks = np.split(w[key], 4 if key != "B" else 8, axis=axis)
                order = (0, 2, 3, 1) if key != "B" else (0, 2, 3, 1, 4, 6, 7, 5)
                w[key] = np.concatenate([blocks[k] for k in order], axis=axis)
        return layers

    monkeypatch.setattr(convert, "to_onnx", torch_order)
    shape = replace(bench.ROWS[0], T=3)
    m = bench.measure(bench.Case(bench.KINDS["lstm"], shape, "inference", threads=1),
                      min_runs=1, budget_s=0)
    assert m.agrees("ours") and not m.agrees("ort") and not m.ok()
    assert m.vs_ours["ort"] > 1e-2
    assert bench.table_row(m, 100.0).endswith(" ort!")


@pytest.mark.parametrize("mode", ["inference", "training"])
def test_bench_dropin_check_catches_a_wrong_weight(frt, torch, mode):
    """The drop-in is fusedrnn.torch's module on a copy of torch's (its own Parameters),
    and its results are checked against ours: a changed weight of its own fails the
    check (and leaves torch's, and torch's check, alone)."""
    from dataclasses import replace

    from fusedrnn import bench

    case = bench.Case(bench.KINDS["lstm"], replace(bench.ROWS[0], T=3), mode, threads=1)
    drop, tm = case._dropin_module, case._torch_module
    assert isinstance(drop, frt.LSTM) and not isinstance(tm, frt.LSTM)
    assert drop.weight_hh_l0 is not tm.weight_hh_l0
    assert torch.equal(drop.weight_hh_l0, tm.weight_hh_l0)
    with torch.no_grad():
        drop.weight_hh_l0.mul_(1.5)  # advances its version: the drop-in repacks
    m = bench.measure(case, min_runs=1, budget_s=0)
    assert m.agrees("ours") and m.agrees("torch") and not m.agrees("dropin") and not m.ok()
    assert m.vs_ours["dropin"] > 1e-2 and m.vs_ours["torch"] < 1e-4
    assert m.disagreeing() == ["dropin"]
    assert bench.table_row(m, 100.0).endswith(" drop!")


def test_bench_without_torch_shows_the_dropin_as_missing(tmp_path):
    """torch not importable: no torch and no drop-in peer, a note and — columns."""
    out = tmp_path / "bench.json"
    r = run_cli("bench", "--quick", "--kinds", "rnn", "--rows", "cell", "--modes", "inference",
                "--min-runs", "1", "--max-runs", "1", "--budget", "0.01", "--json", str(out),
                "--wide",
                pre="import sys; sys.modules['torch'] = None", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "not installed: drop (fusedrnn.torch" in r.stdout, r.stdout
    doc = json.loads(out.read_text())
    (x,) = doc["results"]
    assert {"torch", "dropin"} <= set(x["missing_peers"]) and "dropin" not in x["peers"]
    assert x["torch_over_dropin"] is None
    line = next(line for line in r.stdout.splitlines() if re.search(r"\sok \d", line))
    # runs = ours/ref/torch/drop/ort/tpad: no torch, no drop-in
    assert set(line.split()[-3].split("/")[2:4]) <= {"-", "\u2014"}, line


# The two rows beyond one plain layer, at T = 20 (--quick): L2bi (2 layers,
# bidirectional; ORT: one operator per layer from convert.to_onnx) and len (variable
# lengths; torch packed and padded, ORT with sequence_lens), both modes, every kind.
@pytest.fixture(scope="module")
def rows_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("rows") / "bench.json"
    r = run_cli("bench", "--quick", "--rows", "L2bi,len", "--min-runs", "1",
                "--max-runs", "1", "--budget", "0.01", "--json", str(path), "--wide")
    assert r.returncode == 0, r.stdout + r.stderr
    return r, json.loads(path.read_text())


def test_bench_layers_and_lengths_rows_check_every_peer(rows_run, torch, onnxruntime):
    r, doc = rows_run
    assert sorted((x["kind"], x["row"], x["mode"]) for x in doc["results"]) == sorted(
        (k, row, m) for k in ("lstm", "gru", "rnn") for row in ("L2bi", "len")
        for m in ("inference", "training"))
    for x in doc["results"]:
        row, mode = x["row"], x["mode"]
        want = {"ours", "reference", "torch", "dropin"}  # the drop-in: packed, 2 layers
        if mode == "inference":
            want.add("ort")
        if row == "len":
            want.add("torch_pad")  # torch on the padded batch: len row only
        assert set(x["peers"]) == want and x["missing_peers"] == [], (row, mode, x["peers"])
        assert x["ok"] and x["peers"]["ours"]["rel_error"] < 1e-4, x
        for peer in want - {"ours", "reference"}:
            p = x["peers"][peer]
            assert p["rel_error_vs_ours"] < 1e-4 and p["median_s"] > 0, (row, mode, peer)
    rows = {(x["kind"], x["row"], x["mode"]): x for x in doc["results"]}
    assert rows["gru", "L2bi", "inference"]["num_layers"] == 2
    assert rows["rnn", "L2bi", "inference"]["bidirectional"] is True
    lines = [line for line in r.stdout.splitlines() if re.search(r"\sok \d", line)]
    assert len(lines) == 12 and not any("!" in line for line in lines), r.stdout
    assert "tpad ms" in r.stdout and "sum(lengths)" in r.stdout


def test_bench_rows_flops_count_layers_directions_and_valid_steps(rows_run):
    _, doc = rows_run
    rows = {(x["row"], x["mode"]): x for x in doc["results"] if x["kind"] == "lstm"}
    x = rows["L2bi", "inference"]
    T, B, H = x["T"], x["B"], x["H"]
    assert T == 20 and x["I"] == H  # --quick cuts T
    # two directions; layer 1 reads both directions' outputs (I = 2H)
    assert x["flops"] == 2 * 2 * T * B * 4 * H * (H + H) + 2 * 2 * T * B * 4 * H * (2 * H + H)
    assert rows["L2bi", "training"]["flops"] == 3 * x["flops"]
    x = rows["len", "inference"]
    lengths = x["lengths"]
    assert len(lengths) == x["B"] and min(lengths) == 2 and max(lengths) == x["T"] == 20
    assert lengths != sorted(lengths) and lengths != sorted(lengths, reverse=True)
    # valid steps only: sum(lengths) in place of T*B
    assert x["flops"] == 2 * sum(lengths) * 4 * x["H"] * (x["I"] + x["H"])
    assert rows["len", "training"]["flops"] == 3 * x["flops"]


def test_bench_grid_has_the_layers_and_lengths_rows_for_every_kind():
    from fusedrnn import bench

    full = [(k.name, s.name, m) for k, s, m in bench.grid()]
    for row in ("L2bi", "len"):
        assert [(k, m) for k, r, m in full if r == row] == [
            (k, m) for k in ("lstm", "gru", "rnn") for m in ("inference", "training")]
    quick = {s.name: s for _, s, _ in bench.grid(kinds=["lstm"], quick=True)}
    assert quick["L2bi"].T == quick["len"].T == bench.QUICK_T
    s = {s.name: s for s in bench.ROWS}
    assert (s["L2bi"].T, s["L2bi"].B, s["L2bi"].I, s["L2bi"].H) == (100, 16, 256, 256)
    lengths = s["len"].lengths()  # 20..200 evenly over B = 32, unsorted
    expected = np.linspace(20, 200, 32).round().astype(int)
    assert sorted(lengths.tolist()) == expected.tolist() and list(lengths) != list(expected)


def test_bench_plot_writes_a_png(bench_run):
    pytest.importorskip("matplotlib")
    _, _, d = bench_run
    data = (d / "bench.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 400 and height >= 300 and len(data) > 10_000, (width, height, len(data))


def test_bench_plot_without_matplotlib_exits_2(tmp_path):
    # matplotlib made unimportable; the error comes before any timing
    r = run_cli("bench", "--quick", "--plot", str(tmp_path / "x.png"),
                pre="import sys; sys.modules['matplotlib'] = None", timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "--plot needs matplotlib" in r.stderr and "pip install" in r.stderr
    assert r.stdout == "" and not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("bad", [["bench", "--kinds", "lstmx"], ["bench", "--threads", "0"],
                                 ["bench", "--threads", "1,x"], ["bench", "--threads", "2,0"]])
def test_bench_rejects_bad_arguments(bad):
    r = run_cli(*bad)
    assert r.returncode == 2
    assert "expected" in r.stderr


# ------------------------------------------------------------------- readable table, help
def test_bench_default_table_fits_120_columns(small_run):
    r, out = small_run
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(out.read_text())
    lines = r.stdout.splitlines()
    headers = [line for line in lines if line.startswith("kind ")]
    rows = [line for line in lines if re.search(r"\sok \d", line)]
    assert len(headers) == 2 and len(rows) == len(doc["results"]) == 8, r.stdout
    for line in headers + rows:
        assert len(line) <= 120, (len(line), line)
    for h in headers:  # ours, GFLOP/s, %peak, spread, one "x" column per peer, check
        for title in ("ours", "GFLOP/s", "%peak", "spread", "x ref", "x torch",
                      "drop x torch", "x ort", "x tpad", "check"):
            assert title in h, (title, h)
        assert "runs" not in h and "ref ms" not in h and "drop/ours" not in h  # --wide only
    legend = lines.index(next(line for line in lines if line.startswith("legend:")))
    assert "docs/benchmarks.md" in " ".join(lines[legend:legend + 7])
    assert all(len(line) <= 120 for line in lines[legend:legend + 7])


def test_bench_prints_progress_with_eta(small_run):
    r, _ = small_run
    progress = [line for line in r.stderr.splitlines() if line.startswith("[")]
    assert [p.split("]")[0] for p in progress] == [f"[{k}/8" for k in range(1, 9)], r.stderr
    assert progress[0].startswith("[1/8] gru S4 inference (1 thread) ... eta "), progress
    assert all(re.search(r" eta (\d+s|\d+m\d\ds|\d+h\d\dm)$", p) for p in progress), progress


def test_bench_wide_has_every_column(bench_run):
    from fusedrnn.bench import table

    r, doc, _ = bench_run
    headers = [line for line in r.stdout.splitlines() if line.startswith("kind ")]
    narrow = [title.format(u="ms") for title, _, _ in table.NARROW]
    wide = [title.format(u="ms") for title, _, _ in table.WIDE]
    assert set(narrow) < set(wide)
    assert {"ref ms", "torch ms", "drop ms", "drop/ours", "ort ms", "tpad ms", "runs"} <= set(wide)
    assert headers[0] == table.table_header("ms", wide=True) and len(headers[0]) > 120
    assert "--wide: PEER ms" in r.stdout


def _fake_measurement(times_ms: dict, mode="inference", row="S1"):
    """A Measurement of planted times (ms per run, per peer) for a stand-in case."""
    from types import SimpleNamespace

    from fusedrnn import bench

    shape = next(s for s in bench.ROWS if s.name == row)
    case = SimpleNamespace(kind=bench.KINDS["lstm"], shape=shape, mode=mode, lengths=None,
                           flops=1e9, peers=dict.fromkeys(times_ms))
    times = {p: [t / 1e3 for t in ts] for p, ts in times_ms.items()}
    errors = dict.fromkeys(times_ms, 1e-7)
    vs_ours = {p: 1e-7 for p in times_ms if p not in ("ours", "reference")}
    return bench.Measurement(case, times, errors, set(), vs_ours, {"ours": 1})


def _narrow_values(line: str) -> dict:
    from fusedrnn.bench import table

    titles = [title for title, _, _ in table.NARROW]
    return dict(zip(titles, line.split()))  # one word per column; check's two come last


@pytest.mark.parametrize("drop_ms, torch_ms", [(0.25, 0.5), (1.0, 0.5)])
def test_bench_every_ratio_is_other_time_over_fusedrnn(drop_ms, torch_ms):
    """Plant slower and faster peers: a ratio is > 1 exactly when fusedrnn (ours, or the
    drop-in against torch.nn) is the faster one."""
    from fusedrnn.bench import table

    m = _fake_measurement({"ours": [1.0] * 3, "reference": [3.0] * 3, "torch": [torch_ms] * 3,
                           "dropin": [drop_ms] * 3, "ort": [2.0] * 3, "torch_pad": [0.8] * 3})
    v = _narrow_values(table.table_row(m, 100.0))
    assert float(v["x ref"]) == pytest.approx(3.0) and float(v["x ref"]) > 1  # ref slower
    assert float(v["x torch"]) == pytest.approx(torch_ms) and float(v["x torch"]) < 1
    assert float(v["x ort"]) == pytest.approx(2.0)
    assert float(v["x tpad"]) == pytest.approx(0.8)  # tpad faster than ours: < 1
    # drop x torch: torch.nn time / the drop-in's (> 1: the drop-in is faster)
    assert float(v["drop x torch"]) == pytest.approx(torch_ms / drop_ms)
    assert (float(v["drop x torch"]) > 1) == (drop_ms < torch_ms)
    assert v["ours {u}"] == "1.00" and v["check"] == "ok"
    w = table.table_row(m, 100.0, wide=True).split()
    titles = [title for title, _, _ in table.WIDE]
    assert float(w[titles.index("drop/ours")]) == pytest.approx(drop_ms)  # the overhead


def test_bench_spread_column_and_warning():
    from fusedrnn.bench import table, trust
    from fusedrnn.bench.timing import to_json

    # ours: quartiles 1.0 and 1.5 around a median of 1.0 ms: IQR 50% of the median
    noisy = _fake_measurement({"ours": [1.0, 1.0, 1.0, 1.5, 2.0], "reference": [3.0] * 5})
    quiet = _fake_measurement({"ours": [1.0, 1.0, 1.01, 1.02, 1.02], "reference": [3.0] * 5})
    assert _narrow_values(table.table_row(noisy, 100.0))["spread"] == "50%"
    assert _narrow_values(table.table_row(quiet, 100.0))["spread"] == "2.0%"
    assert trust.noisy([to_json(quiet)]) == []
    (warning,) = trust.noisy([to_json(noisy)])
    assert warning.startswith("lstm S1 inference (1 thread): spread 50% (ours)"), warning
    block = trust.warning_block(trust.warnings([to_json(noisy), to_json(quiet)]))
    assert block[0] == "warning: these numbers are not to be trusted:" and len(block) == 3
    assert "taskset -c 0" in block[-1] and "docs/benchmarks.md" in block[-1]
    assert trust.warning_block([]) == []
    # too few runs for a spread: shown as a dash, never warned about
    few = _fake_measurement({"ours": [1.0, 3.0], "reference": [3.0, 3.0]})
    assert _narrow_values(table.table_row(few, 100.0))["spread"] in ("-", "\u2014")
    assert trust.noisy([to_json(few)]) == []


def test_bench_warns_when_training_beats_inference():
    from fusedrnn.bench import trust
    from fusedrnn.bench.timing import to_json

    infer = _fake_measurement({"ours": [2.0] * 3, "reference": [3.0] * 3})
    fast_train = _fake_measurement({"ours": [1.5] * 3, "reference": [9.0] * 3}, "training")
    slow_train = _fake_measurement({"ours": [6.0] * 3, "reference": [9.0] * 3}, "training")
    (warning,) = trust.inverted([to_json(infer), to_json(fast_train)])
    assert warning == "lstm S1 (1 thread): training faster than inference for ours"
    assert trust.inverted([to_json(infer), to_json(slow_train)]) == []


def test_bench_warns_about_the_load_average(tmp_path):
    from fusedrnn.bench import trust

    assert trust.busy(0.4, cores=2, threads=1) == []
    assert trust.busy(1.5, cores=2, threads=1) != []  # 1.5 + 1 thread > 2 cores
    assert trust.busy(0.4, cores=2, threads=2) != []
    assert trust.busy(2.2, cores=2, threads=1, own=1) != [] and trust.busy(
        1.2, cores=2, threads=1, own=1) == []
    assert trust.busy(None, cores=2, threads=1) == []
    # the CLI prints it (a planted load average of 64), and --json keeps it
    out = tmp_path / "bench.json"
    r = run_cli("bench", "--quick", "--kinds", "rnn", "--rows", "cell", "--min-runs", "1",
                "--max-runs", "1", "--budget", "0.01", "--json", str(out),
                pre="import os; os.getloadavg = lambda: (64.0, 64.0, 64.0)", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "warning: these numbers are not to be trusted:" in r.stdout, r.stdout
    assert "1-min load average 64.00 on " in r.stdout, r.stdout
    doc = json.loads(out.read_text())
    assert doc["load_average"] == [64.0, 64.0]
    assert any("load average 64.00" in w for w in doc["warnings"]), doc["warnings"]


def test_bench_load_warning_counts_every_cpu_when_pinned(tmp_path):
    """The load average is system-wide: a run pinned to one CPU (taskset -c 0) of a
    4-CPU machine with a load of 0.6 elsewhere has its core free and is not warned;
    a load of 3.5 leaves it none and is."""
    pinned = ("import os; os.cpu_count = lambda: 4; os.sched_getaffinity = lambda pid: {0}; "
              "os.getloadavg = lambda: (LOAD, LOAD, LOAD)")
    for load, warned in ((0.6, False), (3.5, True)):
        r = run_cli("bench", "--quick", "--kinds", "rnn", "--rows", "cell", "--min-runs", "1",
                    "--max-runs", "1", "--budget", "0.01", "--threads", "1",
                    pre=pinned.replace("LOAD", str(load)), timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        assert (f"1-min load average {load:.2f} on 4 cores" in r.stdout) == warned, r.stdout


def test_no_arguments_prints_help_and_exits_0():
    r = run_cli(timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: python -m fusedrnn"), r.stdout
    for command in ("bench", "info", "demo"):
        assert re.search(rf"^\s+{command}\s+\S", r.stdout, flags=re.M), (command, r.stdout)


def test_every_option_has_help():
    import argparse

    from fusedrnn.__main__ import parser

    top = parser()
    (sub,) = [a for a in top._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(sub.choices) == {"bench", "info", "demo"}
    for name, p in sub.choices.items():
        assert p.description, name
        options = [a for a in p._actions if a.option_strings and a.dest != "help"]
        assert name == "info" or options, name
        for a in options:
            assert a.help and len(a.help) > 10, (name, a.option_strings)
    assert "docs/benchmarks.md" in sub.choices["bench"].description
    assert "--wide" in sub.choices["bench"].format_help()


def test_demo_says_what_it_trains_and_where_its_code_is():
    r = run_cli("demo", "--steps", "1", "--every", "1")
    assert r.returncode == 0, r.stderr
    assert "echo task: output at step t = input at step t-1" in r.stdout, r.stdout
    path = re.search(r"^code: (.+), line (\d+)$", r.stdout, flags=re.M)
    assert path and os.path.isfile(path[1]), r.stdout
    with open(path[1]) as f:
        assert f.read().splitlines()[int(path[2]) - 1].startswith("def demo("), path[0]
    h = run_cli("demo", "--help")
    assert h.returncode == 0 and "The echo task" in h.stdout and "Its code:" in h.stdout


def run_targets(path):
    tool = os.path.join(os.path.dirname(__file__), os.pardir, "tools", "targets.py")
    r = subprocess.run([sys.executable, tool, str(path)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return [line.split() for line in r.stdout.splitlines()[1:]]


def test_targets_tool_reads_the_benchmark_json(rows_run, tmp_path, torch, onnxruntime):
    """tools/targets.py on a real run: one line per result, the fastest of the named peers
    (torch.nn alone in training), ratios and targets as the docs state them."""
    _, doc = rows_run
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(doc))
    got = {(p[0], p[1], p[2]): p for p in run_targets(path)}
    assert len(got) == len(doc["results"])
    for x in doc["results"]:
        p = got[x["kind"], x["row"], x["mode"]]
        named = {k: v["median_s"] for k, v in x["peers"].items()
                 if k in (("torch",) if x["mode"] == "training" else ("torch", "ort", "openvino"))}
        best = min(named, key=named.get)
        assert p[6] == {"torch": "torch", "ort": "ORT", "openvino": "OV"}[best]
        ratio = named[best] / x["peers"]["ours"]["median_s"]
        assert float(p[9]) == pytest.approx(ratio, abs=0.006)
        goal = 1.10 if x["mode"] == "inference" else (1.2 if x["kind"] == "lstm" else 1.5)
        assert float(p[10]) == goal and p[12] == ("yes" if ratio >= goal else "no")


def test_targets_tool_arithmetic(tmp_path):
    """A made-up run: 2 threads at 100 GFLOP/s a core, 2 GFLOP in 10 ms is 100% of the
    peak; ONNX Runtime (11.1 ms) is the fastest peer, 1.11x: met, needing 99.1%; in
    training torch.nn alone counts, 1.2x of a 1.5x target: short, needing 125%."""
    peer = lambda s: {"median_s": s}  # noqa: E731
    result = {"kind": "gru", "row": "S2", "mode": "inference", "threads": {"ours": 2},
              "flops": 2e9, "peers": {"ours": peer(0.010), "reference": peer(0.001),
                                      "torch": peer(0.012), "ort": peer(0.0111)}}
    train = dict(result, mode="training", peers={"ours": peer(0.010), "torch": peer(0.012)})
    path = tmp_path / "made_up.json"
    path.write_text(json.dumps({"fma_peak_gflops": 100.0, "results": [result, train]}))
    inf, trn = run_targets(path)
    assert inf == ["gru", "S2", "inference", "2", "10.00", "100.0", "ORT", "11.10", "90.1",
                   "1.11", "1.10", "99.1", "yes"]
    assert trn == ["gru", "S2", "training", "2", "10.00", "100.0", "torch", "12.00", "83.3",
                   "1.20", "1.50", "125.0", "no"]
