"""The quantized tables (``bench --quant``): one line per kind, row and our dtype, and the
text above them (what ran, the peers, a short legend).

Every "x" column is the other code's time / our quantized time, so > 1 means our
quantized module is faster, as in the float32 tables; every "err" is the max-abs
difference from our float32 output on the same weights and inputs.
docs/benchmarks.md ("Quantized rows") explains each column.
"""

from __future__ import annotations

import math

import fusedrnn as fr

from . import table
from .machine import missing_peers
from .quant import CAP, DTYPES, F32, LOOSE, PEERS, SHORT, SHORT_DTYPE, QuantMeasurement, ours
from .report import row_lines, wrap

# (title, width, value) of each column; {u}: ms (sequence rows) or µs per call (cells).
_FIRST = (("kind", 4, "kind"), ("row", 7, "row"), ("dtype", 5, "dtype"),
          ("ours {u}", 7, "t:ours"), ("err", 7, "err:ours"), ("f32 {u}", 7, f"t:{F32}"),
          ("x f32", 5, f"x:{F32}"))
#: The default table (fits 120 columns): per peer "x PEER" and "PEER err".
NARROW = (_FIRST
          + tuple(c for p in PEERS for c in ((f"x {SHORT[p]}", max(5, len(SHORT[p]) + 2),
                                                f"x:{p}"),
                                               (f"{SHORT[p]} err", len(SHORT[p]) + 4,
                                                f"err:{p}")))
          + (("spread", 6, "spread"), ("check", 5, "check")))
#: --wide: each peer's own time too, and the timed runs of every peer.
WIDE = (_FIRST
        + tuple(c for p in PEERS for c in ((f"{SHORT[p]} {{u}}", 8, f"t:{p}"),
                                             (f"x {SHORT[p]}", max(5, len(SHORT[p]) + 2),
                                              f"x:{p}"),
                                             (f"{SHORT[p]} err", len(SHORT[p]) + 4,
                                              f"err:{p}")))
        + (("spread", 6, "spread"), ("runs", 14, "runs"), ("check", 5, "check")))
def columns(wide: bool = False) -> tuple:
    return WIDE if wide else NARROW


# The cells are laid out as the float table's: kind, row and dtype left-aligned, the
# rest right-aligned (table._join).
_join = table._join


def table_header(unit: str, wide: bool = False) -> str:
    cols = columns(wide)
    return _join([t.format(u=unit) for t, _, _ in cols], cols)


def error_text(e) -> str:
    """A max-abs error with two significant digits ('1.2e-02'), or the dash."""
    if e is None:
        return table.NONE
    return f"{e:.1e}" if math.isfinite(e) else str(e)


class _Line:
    """The text of each column for one dtype of one QuantMeasurement."""

    def __init__(self, m: QuantMeasurement, dtype: str):
        self.m, self.d, self.peer = m, dtype, ours(dtype)
        self.scale = 1e6 if m.case.shape.is_cell else 1e3

    def value(self, key: str) -> str:
        name, _, peer = key.partition(":")
        peer = self.peer if peer == "ours" else peer
        return getattr(self, name)(peer) if peer else getattr(self, name)()

    def kind(self):
        return self.m.case.kind.name

    def row(self):
        return self.m.case.shape.name

    def dtype(self):
        return SHORT_DTYPE[self.d]

    def t(self, peer):
        v = self.m.median(peer)
        return table.NONE if v is None else table.fixed(v * self.scale)

    def x(self, peer):
        v = self.m.speedup(peer, self.d)
        if v is None:
            return table.NONE
        # three significant digits in at most 5 characters: 0.87, 12.3, 294
        return f"{v:.0f}" if v >= 99.95 else f"{v:.1f}" if v >= 9.995 else f"{v:.2f}"

    def err(self, peer):
        return error_text(self.m.errors.get(peer))

    def spread(self):
        s, _ = self.m.worst_spread([self.peer, F32, *PEERS])
        return table.NONE if s is None else f"{s:.0f}%" if s >= 10 else f"{s:.1f}%"

    def runs(self):
        return "/".join(str(len(self.m.times[p])) if p in self.m.times else table.NONE
                        for p in (self.peer, F32, *PEERS))

    def check(self):
        return "ok" if self.m.agrees(self.peer) else "FAIL"


def table_rows(m: QuantMeasurement, wide: bool = False) -> list:
    """One line per dtype of the case: times in the row's unit (ms; µs per call for the
    cell rows), "x" = other time / ours, errors against our float32; "—" for a peer that
    is not installed or has no such module (torch: nn.RNN; ort: LSTM only).  A peer whose
    error is outside its bound is named after the check, as "ort!"."""
    cols, out = columns(wide), []
    flags = "".join(f" {SHORT[p]}!" for p in m.disagreeing())
    for d in m.case.dtypes:
        line = _Line(m, d)
        out.append(_join([line.value(key) for _, _, key in cols], cols) + flags)
    return out


def header(info: dict, shapes: list, counts: list, dtypes: list, settings,
           wide: bool = False) -> list:
    """Every line above the first quantized table.  settings: (min_runs, budget_s)."""
    v, isa = info["versions"], info["fusedrnn_cpu_info"]["isa"]
    found = [f"torch {v['torch']}"] * (v["torch"] is not None)
    found += [f"onnxruntime {v['onnxruntime']}"] * (v["onnxruntime"] is not None)
    lines = [f"fusedrnn {fr.__version__} (isa {isa}) on {info['cpu']}, {info['cpu_count']} "
             "CPUs; quantized inference",
             "; ".join([f"Python {v['python']}, NumPy {v['numpy']}"] + found)]
    parts = ["ours fusedrnn.set_num_threads(n)"]
    parts += ["torch torch.set_num_threads(n)"] * (v["torch"] is not None)
    parts += ["ort intra_op_num_threads=n, inter_op_num_threads=1"] * (
        v["onnxruntime"] is not None)
    lines += wrap(f"threads: {', '.join(map(str, counts))} (a table each): ", parts, sep="; ")
    lines += row_lines(shapes)
    lines.append("ours:  fusedrnn.quantize_dynamic(module, dtype): "
                 + ", ".join(f"{SHORT_DTYPE[d]} = {d}" for d in dtypes)
                 + "; f32: the module itself")
    lines += peer_lines(v)
    peers = ["ours " + "/".join(SHORT_DTYPE[d] for d in dtypes), "f32"]
    peers += ["ti8", "tf16"] * (v["torch"] is not None) + ["ort"] * (v["onnxruntime"] is not None)
    min_runs, budget = settings
    lines.append(f"timing: median of >= {min_runs} runs per peer, alternating "
                 f"{'/'.join(peers)}, about {budget:g} s per kind and row")
    return lines + legend_lines(wide)


def peer_lines(versions: dict) -> list:
    """The peers found, then those not installed."""
    peers = []
    if versions["torch"] is not None:
        peers += [("ti8", "torch.ao.quantization.quantize_dynamic(m, dtype=torch.qint8) of "
                   f"torch.nn's m (nn.RNN stays float32: {table.NONE})"),
                  ("tf16", "the same with dtype=torch.float16")]
    if versions["onnxruntime"] is not None:
        peers.append(("ort", "ONNX Runtime com.microsoft.DynamicQuantizeLSTM (LSTM only), "
                      "our int8 weights and per-row scales"))
    lines = [f"{'peers:' if i == 0 else '':<6} {name:<5} {text}"
             for i, (name, text) in enumerate(peers)]
    missing = [m for m in missing_peers() if not m.startswith("drop")]
    return lines + [f"not installed: {m}; shown as {table.NONE}" for m in missing]


def legend_lines(wide: bool = False) -> list:
    caps = ", ".join(f"{SHORT_DTYPE[d]} {CAP[d]:g}" for d in DTYPES)
    lines = [
        f"legend: ours: our quantized module's median ({table.CELL_UNIT} per call in the cell "
        "rows); f32: our float32 module on the same weights",
        "        x f32, x PEER = that time / ours time: > 1 means our quantized module is "
        f"faster; {table.NONE} = no such peer",
        "        err = max |output - our float32 output| over y, h_n (and c_n); spread = "
        "IQR / median, noisiest peer",
        f"        check: ok = err <= {LOOSE:g}x the smallest err of the others of its dtype, "
        f"and <= {caps};",
        "        PEER! = that peer's err is not",
    ]
    if wide:
        lines.append("        --wide: PEER ms = its median; runs = timed runs of "
                     "ours/f32/ti8/tf16/ort")
    return lines + ["        every column: docs/benchmarks.md, \"Quantized rows\""]
