"""The tables: one line per Measurement, narrow by default (fits 120 columns), everything
with ``--wide``.  Every "x" ratio is some other code's time / fusedrnn's time, so > 1
always means fusedrnn is faster; docs/benchmarks.md explains each column."""

from __future__ import annotations

from .grid import OPTIONAL_PEERS, PEERS
from .timing import Measurement, gflops, pct_peak, speedup, torch_over_dropin

#: Shown for a peer that is not importable or has no such line (ort: inference only,
#: tpad: ragged rows only).
NONE = "\u2014"  # an em dash
#: The time unit of the cell row.
CELL_UNIT = "\u00b5s"
#: Short names of the peers in titles and markers.
SHORT = {"ours": "ours", "reference": "ref", "torch": "torch", "dropin": "drop", "ort": "ort",
         "torch_pad": "tpad", "openvino": "OV"}


def set_ascii(ascii_only: bool) -> None:
    """Use '-' and 'us' for the em dash and 'µs' (for a terminal that cannot print them)."""
    global NONE, CELL_UNIT
    NONE, CELL_UNIT = ("-", "us") if ascii_only else ("\u2014", "\u00b5s")


# (title, width, value) of each column: {u} is the time unit (ms for sequences, µs for
# cells); value names a function of _Line below.
_FIRST = (("kind", 4, "kind"), ("row", 7, "row"), ("mode", 9, "mode"),
          ("ours {u}", 7, "ours"), ("GFLOP/s", 7, "gflops"), ("%peak", 5, "peak"),
          ("spread", 6, "spread"))
#: The default table: one "x faster" column per peer, and check.
NARROW = _FIRST + (("x ref", 5, "x:reference"), ("x torch", 7, "x:torch"),
                   ("drop x torch", 12, "drop_x_torch"), ("x ort", 6, "x:ort"),
                   ("x tpad", 6, "x:torch_pad"), ("x OV", 4, "x:openvino"), ("check", 8, "check"))
#: --wide: the peers' times too, the drop-in's overhead over ours and the run counts.
WIDE = _FIRST + (("ref {u}", 9, "t:reference"), ("x ref", 6, "x:reference"),
                 ("torch {u}", 9, "t:torch"), ("x torch", 7, "x:torch"),
                 ("drop {u}", 9, "t:dropin"), ("drop/ours", 9, "x:dropin"),
                 ("drop x torch", 12, "drop_x_torch"), ("ort {u}", 9, "t:ort"),
                 ("x ort", 6, "x:ort"), ("tpad {u}", 9, "t:torch_pad"),
                 ("x tpad", 6, "x:torch_pad"), ("OV {u}", 9, "t:openvino"),
                 ("x OV", 5, "x:openvino"), ("runs", 17, "runs"), ("check", 9, "check"))
_LEFT = 3  # the first columns are left-aligned, the others right-aligned


def columns(wide: bool = False) -> tuple:
    """The (title, width, value) of each column of the table."""
    return WIDE if wide else NARROW


def _join(values, cols) -> str:
    cells = [v.ljust(w) if i < _LEFT else v.rjust(w)
             for i, (v, (_, w, _)) in enumerate(zip(values, cols))]
    return "  ".join(cells).rstrip()


def table_header(unit: str, wide: bool = False) -> str:
    cols = columns(wide)
    return _join([t.format(u=unit) for t, _, _ in cols], cols)


def fixed(v: float) -> str:
    """A time or rate with three significant digits or so, never in e-notation."""
    if v >= 100:
        return f"{v:.0f}"
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def _ratio(v):
    return f"{v:.2f}" if v is not None else NONE


class _Line:
    """The text of each column for one Measurement."""

    def __init__(self, m: Measurement, peak_gflops: float):
        self.m, self.peak_gflops = m, peak_gflops
        self.scale = 1e6 if m.case.shape.is_cell else 1e3

    def value(self, key: str) -> str:
        name, _, peer = key.partition(":")
        return getattr(self, name)(peer) if peer else getattr(self, name)()

    def kind(self):
        return self.m.case.kind.name

    def row(self):
        return self.m.case.shape.name

    def mode(self):
        return self.m.case.mode

    def ours(self):
        return fixed(self.m.median("ours") * self.scale)

    def gflops(self):
        return fixed(gflops(self.m))

    def peak(self):
        return f"{pct_peak(self.m, self.peak_gflops):.1f}"

    def spread(self):
        s, _ = self.m.worst_spread()
        return NONE if s is None else f"{s:.0f}%" if s >= 10 else f"{s:.1f}%"

    def t(self, peer):
        v = self.m.median(peer)
        if v is None:
            return NONE
        return fixed(v * self.scale) + ("*" if peer in self.m.once else "")

    def x(self, peer):
        v = speedup(self.m, peer)
        if peer == "openvino" and v is not None and v >= 10:  # 4 characters: 12.3, 123
            return f"{v:.1f}" if v < 100 else f"{v:.0f}"
        return _ratio(v)

    def drop_x_torch(self):
        return _ratio(torch_over_dropin(self.m))

    def runs(self):
        return "/".join(str(len(self.m.times[p])) if p in self.m.times else NONE
                        for p in PEERS + tuple(p for p in OPTIONAL_PEERS if p in self.m.times))

    def check(self):
        m = self.m
        return f"{'ok' if m.agrees() else 'FAIL'} {m.errors['ours']:.0e}"


def table_row(m: Measurement, peak_gflops: float, wide: bool = False) -> str:
    """One line: times in the unit of the row (ms, or µs per call for the cell row);
    x PEER = peer time / ours time and drop x torch = torch.nn time / drop-in time (> 1:
    fusedrnn is faster); — for an absent peer.  A peer whose results differ from ours
    is named after the check, as "ort!": its times are suspect (or its conversion is
    wrong)."""
    cols, line = columns(wide), _Line(m, peak_gflops)
    text = _join([line.value(key) for _, _, key in cols], cols)
    return text + "".join(f" {SHORT[p]}!" for p in m.disagreeing())
