"""The quantized rows (``python -m fusedrnn bench --quant``): one :class:`QuantCase` per
kind and row, timed by :func:`measure_quant`, every output's max-abs error against our
float32 output, and the checks.

A case holds a seeded float32 fusedrnn layer (or cell), its quantized copies
``fusedrnn.quantize_dynamic(module, dtype)`` for each dtype asked for, the same module in
float32, and the peers of :mod:`.peer_quant` (torch's dynamic quantization in qint8 and
float16, ONNX Runtime's DynamicQuantizeLSTM), all on the same weights and inputs.  Every
callable returns ``{"y", "h_n"[, "c_n"]}`` (the cell rows: ``h_n`` (and ``c_n``)), and
:func:`max_abs_error` compares it with our float32 result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

import fusedrnn as fr

from . import peer_quant
from .grid import QUICK_T, ROWS, Kind, Shape
from .machine import thread_info
from .timing import _rounds, iqr_pct, time_call

#: Our quantized dtypes, in table order, and their short names in the table.
DTYPES = ("int8", "float16", "bfloat16")
SHORT_DTYPE = {"int8": "int8", "float16": "f16", "bfloat16": "bf16"}
#: The rows of the quantized tables (plain one-layer rows and the cell rows), and the
#: --quick subset (T cut to grid.QUICK_T as in the float tables).
QUANT_ROWS = ("S1", "S2", "S3", "S4", "cell", "cell256")
QUICK_QUANT_ROWS = ("S1", "S4", "cell", "cell256")
#: Our float32 module on the same weights: the baseline of every error and of "x f32".
F32 = "ours_float32"
#: The other peers, in table order, with their short names (column titles).
PEERS = ("torch_int8", "torch_float16", "ort_int8")
SHORT = {"torch_int8": "ti8", "torch_float16": "tf16", "ort_int8": "ort"}
#: The quantization class of each result that is checked: its error is compared with
#: the other results of its class (see QuantMeasurement.bound).
CLASS = {"ours_int8": "int8", "torch_int8": "int8", "ort_int8": "int8",
         "ours_float16": "float16", "torch_float16": "float16", "ours_bfloat16": "bfloat16"}
#: A result agrees when its max-abs error is at most LOOSE x the smallest error of the
#: other results of its class (e.g. ours int8 within 10x of torch int8's) ...
LOOSE = 10.0
#: ... and never above this absolute bound (the outputs of LSTM, GRU and tanh-RNN lie in
#: (-1, 1): these catch a wrong weight layout or gate order, which errs by O(1)).
CAP = {"int8": 0.25, "float16": 0.02, "bfloat16": 0.1}


def ours(dtype: str) -> str:
    """The peer name of our module in `dtype`: 'ours_int8', ..."""
    return f"ours_{dtype}"


def quant_shapes(rows=None, quick=False) -> list:
    """The quantized rows named in `rows` (None: QUANT_ROWS, or QUICK_QUANT_ROWS if
    quick); quick cuts T to grid.QUICK_T."""
    names = rows if rows is not None else (QUICK_QUANT_ROWS if quick else QUANT_ROWS)
    bad = [n for n in names if n not in QUANT_ROWS]
    if bad:
        raise ValueError(f"rows: the quantized rows are {', '.join(QUANT_ROWS)}; got "
                         f"{', '.join(bad)}")
    return [replace(s, T=min(s.T, QUICK_T)) if quick else s
            for s in ROWS if s.name in names]


def max_abs_error(got: dict, want: dict) -> float:
    """max over the keys of `want` of max |got - want| (float64); NaN if a result has a
    NaN, inf if a key is missing or a shape differs."""
    errors = []
    for key, w in want.items():
        if key not in got:
            return math.inf
        g, w = np.asarray(got[key], np.float64), np.asarray(w, np.float64)
        if g.shape != w.shape:
            return math.inf
        errors.append(np.max(np.abs(g - w)) if g.size else 0.0)
    return float(np.max(errors)) if errors else 0.0  # np.max propagates NaN


class QuantCase:
    """One kind and row: the inputs, the float32 module, and one callable per peer.

    Weights: a seeded fusedrnn module (torch's initialisation); x standard normal.
    Sequence rows start from zero states (every peer's default); the cell rows are called
    with a random state, ``cell(x, state)``, so that W_hh counts.
    dtypes: our quantized dtypes to run (DTYPES by default).  threads: ORT's intra-op
    threads (default: the last set_threads).
    """

    def __init__(self, kind: Kind, shape: Shape, dtypes=DTYPES, seed: int = 0,
                 threads=None):
        if not shape.is_plain:
            raise ValueError(f"shape: the quantized rows are one-layer, one-direction rows "
                             f"({', '.join(QUANT_ROWS)}); got {shape.name}")
        bad = [d for d in dtypes if d not in DTYPES]
        if bad or not dtypes:
            raise ValueError(f"dtypes: expected some of {DTYPES}, got {tuple(dtypes)}")
        self.kind, self.shape, self.dtypes = kind, shape, tuple(dtypes)
        s = shape
        if s.is_cell:
            self.module = getattr(fr, kind.cell)(s.I, s.H, seed=seed)
        else:
            self.module = getattr(fr, kind.layer)(s.I, s.H, seed=seed)
        rng = np.random.default_rng(seed)
        lead = (s.B,) if s.is_cell else (s.T, s.B)
        self.x = rng.standard_normal(lead + (s.I,)).astype(np.float32)
        n_states = 2 if kind.has_c else 1
        scale = 0.5 if s.is_cell else 0.0
        self.states0 = tuple((scale * rng.standard_normal((s.B, s.H))).astype(np.float32)
                             for _ in range(n_states))
        self.quantized = {d: fr.quantize_dynamic(self.module, dtype=d) for d in self.dtypes}
        #: peer -> why it imports but could not be built here
        self.unavailable = {}
        self.peers = {ours(d): self._runner(self.quantized[d]) for d in self.dtypes}
        self.peers[F32] = self._runner(self.module)
        peer_quant.attach(self, threads)

    @property
    def label(self) -> str:
        return f"{self.kind.name}-{self.shape.name}-quant"

    def named_state(self, state) -> dict:
        """A final state (h or (h, c), any array type) as {'h_n': (1, B, H)[, 'c_n']}."""
        state = state if isinstance(state, (tuple, list)) else (state,)
        return {k: peer_quant.as_numpy(v).reshape(1, self.shape.B, self.shape.H)
                for k, v in zip(("h_n", "c_n"), state)}

    def hx(self, states):
        """States as a cell takes them: (h, c) for an LSTM, h otherwise."""
        return tuple(states) if self.kind.has_c else states[0]

    def _runner(self, module):
        """A callable running `module` (ours: float32 or quantized) on the inputs."""
        if self.shape.is_cell:
            return lambda: self.named_state(module(self.x, self.hx(self.states0)))

        def run():
            y, state = module(self.x)
            return {"y": y, **self.named_state(state)}

        return run


@dataclass
class QuantMeasurement:
    """Timings of one QuantCase: per peer the seconds of each timed run, and per peer its
    max-abs error against our float32 output (0 for ours_float32 itself)."""

    case: QuantCase
    times: dict
    errors: dict
    threads: dict = None

    def median(self, peer):
        t = self.times.get(peer)
        return float(np.median(t)) if t else None

    def spread(self, peer):
        return iqr_pct(self.times.get(peer))

    def worst_spread(self, peers=None):
        """(spread, peer) of the noisiest of `peers` (default: all), or (None, None)."""
        spreads = [(s, p) for p in (peers or self.times)
                   if p in self.times and (s := self.spread(p)) is not None]
        return max(spreads) if spreads else (None, None)

    def speedup(self, peer, dtype):
        """peer time / our `dtype` time (> 1: ours quantized is faster), or None."""
        v, t = self.median(peer), self.median(ours(dtype))
        return v / t if v is not None and t else None

    def bound(self, peer) -> float:
        """The largest max-abs error that `peer` may have: LOOSE x the smallest error of
        the other results of its class that ran here, and at most CAP of its class."""
        cls = CLASS[peer]
        others = [e for p, e in self.errors.items()
                  if p != peer and CLASS.get(p) == cls and math.isfinite(e)]
        return min([CAP[cls]] + [LOOSE * e for e in others])

    def agrees(self, peer) -> bool:
        """Whether peer's error is within its bound (False for NaN or inf)."""
        e = self.errors[peer]
        return math.isfinite(e) and e <= self.bound(peer)

    def disagreeing(self) -> list:
        """The peers besides ours whose results are off (see bound)."""
        return [p for p in PEERS if p in self.errors and not self.agrees(p)]

    def ok(self) -> bool:
        return (all(self.agrees(ours(d)) for d in self.case.dtypes)
                and not self.disagreeing())


def measure_quant(case: QuantCase, *, min_runs=3, max_runs=50, budget_s=2.0,
                  min_sample_s=0.01) -> QuantMeasurement:
    """Time every peer of `case` alternating, as timing.measure does: a warm-up round
    (packing, sessions; its results give the errors), then rounds until `min_runs` and
    `budget_s` seconds, or `max_runs`; calls shorter than `min_sample_s` repeated within a
    run (the cell rows); with several threads the peers alternate in blocks."""
    results, inner = {}, {}
    for peer in sorted(case.peers, key=lambda p: p != F32):  # ours float32 first
        t, results[peer] = time_call(case.peers[peer])
        inner[peer] = max(1, int(min_sample_s / t)) if t > 0 else 1
    want = results[F32]
    errors = {p: max_abs_error(r, want) for p, r in results.items()}
    times = {p: [] for p in case.peers}
    _rounds(case.peers, inner, times, min_runs, max(max_runs, min_runs), budget_s)
    return QuantMeasurement(case, times, errors, thread_info())


def to_json(m: QuantMeasurement) -> dict:
    """One kind, row and thread count as a JSON-ready dict (the "results" of --json);
    "mode" is "inference" so that bench.trust reads it as any other line."""
    c, s = m.case, m.case.shape
    peers = {p: {"times_s": m.times[p], "median_s": m.median(p), "runs": len(m.times[p]),
                 "spread_pct": m.spread(p), "max_abs_error": m.errors[p],
                 "bound": m.bound(p) if p in CLASS else None,
                 "ok": m.agrees(p) if p in CLASS else None}
             for p in c.peers}
    ratios = {d: {"x_" + p.replace("ours_", ""): m.speedup(p, d)
                  for p in (F32, *PEERS)} for d in c.dtypes}
    return {"kind": c.kind.name, "row": s.name, "mode": "inference", "T": s.T, "B": s.B,
            "I": s.I, "H": s.H, "dtypes": list(c.dtypes), "threads": m.threads,
            "ok": m.ok(), "spread_pct": m.worst_spread()[0], "peers": peers,
            "speedups": ratios, "unavailable": dict(c.unavailable),
            "missing_peers": [p for p in PEERS if p not in c.peers]}
