"""The text above the tables: what was measured, where and how, and a short legend
(docs/benchmarks.md has the long one).  Every function returns lines of at most
WIDTH characters (a CPU name aside)."""

from __future__ import annotations

import fusedrnn as fr

from . import table
from .grid import TOLERANCE
from .machine import dropin_or_none, missing_peers, openvino_or_none, openvino_wanted

WIDTH = 120


def wrap(prefix: str, parts: list, sep: str = " | ") -> list:
    """parts joined by sep on lines of at most WIDTH characters, the first starting with
    prefix and the others indented as far."""
    lines, line = [], prefix
    for part in parts:
        if line != prefix and len(line) + len(sep) + len(part) > WIDTH:
            lines.append(line)
            line = " " * len(prefix) + part
        else:
            line = line + (sep if line != prefix else "") + part
    return lines + [line]


def machine_lines(info: dict, peak: float) -> list:
    v, isa = info["versions"], info["fusedrnn_cpu_info"]["isa"]
    found = [f"torch {v['torch']}"] * (v["torch"] is not None)
    found += [f"onnxruntime {v['onnxruntime']}"] * (v["onnxruntime"] is not None)
    return [f"fusedrnn {fr.__version__} (isa {isa}) on {info['cpu']}, {info['cpu_count']} CPUs",
            "; ".join([f"Python {v['python']}, NumPy {v['numpy']}"] + found),
            f"peak: {peak:.1f} GFLOP/s = float32 FMAs of one thread (fusedrnn._core.fma_peak, "
            f"{isa}, registers only)"]


def thread_lines(info: dict, counts: list) -> list:
    v = info["versions"]
    parts = ["ours fusedrnn.set_num_threads(n)"]
    if v["torch"] is not None:
        parts.append("torch torch.set_num_threads(n)")
        parts += ["drop both"] if dropin_or_none() is not None else []
    if v["onnxruntime"] is not None:
        parts.append("ort intra_op_num_threads=n, inter_op_num_threads=1")
    if _openvino(info):
        parts.append("OV INFERENCE_NUM_THREADS=n")
    return wrap(f"threads: {', '.join(map(str, counts))} (a table each): ", parts, sep="; ")


def row_lines(shapes: list) -> list:
    return wrap("rows: ", [s.describe() for s in shapes])


def peer_lines(info: dict, ragged: bool) -> list:
    """One line per peer found, then the missing ones."""
    v = info["versions"]
    peers = [("ref", "fusedrnn.reference (NumPy, float32)")]
    if v["torch"] is not None:
        peers.append(("torch", "torch.nn.LSTM/GRU/RNN (cell row: LSTMCell/...) under torch.inference_mode"
                      + ("; len row: a PackedSequence" if ragged else "")))
        if dropin_or_none() is not None:
            peers.append(("drop", "fusedrnn.torch.LSTM/GRU/RNN (cells: LSTMCell/...), the drop-in "
                          "torch.nn modules, called as torch is"))
    if v["onnxruntime"] is not None:
        peers.append(("ort", "ONNX Runtime's LSTM/GRU/RNN operators, model from fusedrnn.convert; "
                      "inference only"))
    if v["torch"] is not None and ragged:
        peers.append(("tpad", "len row only: torch on the padded batch, no packing"))
    if _openvino(info):
        version = str(v.get("openvino")).split("-")[0]  # 2026.4.1, not its build tag
        peers.append(("OV", f"OpenVINO {version} CPU plugin, f32, openvino.convert_model of the "
                      "torch module; inference only, not the len row"))
    lines = [f"{'peers:' if i == 0 else '':<6} {name:<5} {text}"
             for i, (name, text) in enumerate(peers)]
    return lines + [f"not installed: {m}; shown as {table.NONE}" for m in missing_peers()]


def timing_lines(peers: list, min_runs: int, budget: float, ref_limit: float) -> list:
    return [f"timing: median of >= {min_runs} runs per peer, alternating {'/'.join(peers)}, "
            f"about {budget:g} s per line;",
            f"        * = measured once (its first run took over {ref_limit:g} s)"]


def legend_lines(wide: bool = False) -> list:
    """The legend: what the columns mean, in a few lines."""
    unit = table.CELL_UNIT
    lines = [
        f"legend: ours ms: fusedrnn's median (cell row: {unit} per call); GFLOP/s over the "
        "matrix products; %peak of peak x threads",
        "        x PEER = PEER time / ours time; drop x torch = torch time / drop time "
        "(torch.nn vs the drop-in):",
        "        > 1 always means fusedrnn is faster.  spread = IQR / median of the line's "
        "noisiest peer",
        f"        check: ok/FAIL and max ||ours - ref|| / ||ref|| (bound {TOLERANCE:.0e}); "
        "PEER! = that peer differs from ours",
    ]
    if wide:
        lines.append("        --wide: PEER ms = its median; drop/ours = drop time / ours time "
                     "(the drop-in's overhead); runs per peer")
    return lines + ["        every column and how to read the numbers: docs/benchmarks.md"]


def _openvino(info) -> bool:
    """Whether the OpenVINO peer runs (asked for, and openvino and torch import)."""
    return (openvino_wanted() and openvino_or_none() is not None
            and info["versions"]["torch"] is not None)


def ceiling_lines() -> list:
    return ["ceiling: after each kind and row, numpy.matmul of its input projection (N, I) x "
            "(I, G*H) in the same run:",
            "         time, GFLOP/s and %peak in the columns of ours (docs/benchmarks.md)"]


def header(info, shapes, peak, counts, settings, wide=False) -> list:
    """Every line above the first table.  settings: (min_runs, budget, ref_limit)."""
    v = info["versions"]
    ragged = any(s.ragged for s in shapes)
    peers = (["ours", "ref"] + ["torch"] * (v["torch"] is not None)
             + ["drop"] * (dropin_or_none() is not None)
             + ["ort"] * (v["onnxruntime"] is not None)
             + ["tpad"] * (v["torch"] is not None and ragged) + ["OV"] * _openvino(info))
    return (machine_lines(info, peak) + thread_lines(info, counts) + row_lines(shapes)
            + peer_lines(info, ragged) + timing_lines(peers, *settings) + legend_lines(wide)
            + ceiling_lines())
