"""Benchmark grid, peers and timing shared by ``python -m fusedrnn bench`` and bench/.

The grid lives here, in the package, so that the CLI of an installed wheel has it;
``bench/shapes.py`` re-exports it for the pytest-benchmark suite.

A :class:`Case` is one cell of the grid (kind x row x mode).  It holds the inputs and
one zero-argument callable per peer -- ``ours`` (the fusedrnn layers and cells),
``reference`` (``fusedrnn.reference`` in float32) and ``torch`` (torch.nn on the CPU,
only when ``import torch`` works) -- each computing the same thing from the same
weights and returning its results as a dict of NumPy arrays with common keys
(``y``, ``h_n``, ``c_n``, ``dx``, ``weight_ih``, ...), so that one function,
:func:`rel_error`, checks every peer against the reference.
"""

from __future__ import annotations

import functools
import gc
import importlib
import os
import platform
import time
from dataclasses import dataclass, replace

import numpy as np

import fusedrnn as fr
from fusedrnn import reference as ref

# ------------------------------------------------------------------------------- the grid


@dataclass(frozen=True)
class Shape:
    """One row of the grid: T steps, batch B, input size I, hidden size H."""

    name: str
    T: int
    B: int
    I: int  # noqa: E741 -- the usual name of the input size
    H: int

    @property
    def is_cell(self) -> bool:
        """One-step latency row: timed through the *Cell classes, per call."""
        return self.name == "cell"

    def describe(self) -> str:
        size = f"I=H={self.H}" if self.I == self.H else f"I={self.I} H={self.H}"
        steps = "(one step)" if self.is_cell else f"T={self.T}"
        return f"{self.name} {steps} B={self.B} {size}"


#: The rows of DESIGN.md section 6, then the one-step cell latency row.
ROWS = (
    Shape("S1", 100, 1, 256, 256),  # streaming
    Shape("S2", 100, 8, 512, 512),
    Shape("S3", 50, 64, 1024, 1024),  # throughput
    Shape("S4", 200, 32, 128, 128),  # small hidden
    Shape("cell", 1, 1, 128, 128),  # one-step latency, per call
)

#: The quick subset (seconds): these rows by default, and T cut to QUICK_T.
QUICK_ROW_NAMES = ("S1", "S4", "cell")
QUICK_T = 20

MODES = ("inference", "training")


@dataclass(frozen=True)
class Kind:
    """A recurrent cell type: its classes (same names in fusedrnn and torch.nn),
    gate count and its reference functions."""

    name: str
    layer: str
    cell: str
    gates: int
    has_c: bool  # an LSTM also carries the cell state c
    ref_forward: object
    ref_backward: object
    ref_cell: object


KINDS = {
    "lstm": Kind("lstm", "LSTM", "LSTMCell", 4, True, ref.lstm_forward, ref.lstm_backward,
                 ref.lstm_cell),
    "gru": Kind("gru", "GRU", "GRUCell", 3, False, ref.gru_forward, ref.gru_backward,
                ref.gru_cell),
    "rnn": Kind("rnn", "RNN", "RNNCell", 1, False, ref.rnn_forward, ref.rnn_backward,
                ref.rnn_cell),
}

PEERS = ("ours", "reference", "torch")

#: Bound on ||peer - reference|| / ||reference|| (float32 against float32).
TOLERANCE = 1e-4


def shapes(rows=None, quick=False):
    """The rows named in `rows` (None: all, or QUICK_ROW_NAMES if quick); quick cuts T."""
    names = rows if rows is not None else (QUICK_ROW_NAMES if quick else [s.name for s in ROWS])
    return [replace(s, T=min(s.T, QUICK_T)) if quick else s for s in ROWS if s.name in names]


def grid(kinds=None, rows=None, modes=None, quick=False):
    """The (kind, shape, mode) triples to run, in table order.

    kinds / rows / modes: iterables of names (None: all; rows see `shapes`).  The cell
    row is timed in inference mode only.
    """
    out = []
    for k in kinds or KINDS:
        for s in shapes(rows, quick):
            for m in modes or MODES:
                if not (s.is_cell and m == "training"):
                    out.append((KINDS[k], s, m))
    return out


def flops(kind: Kind, shape: Shape, mode: str) -> int:
    """Forward FLOPs 2*T*B*G*H*(I+H) (the matrix products); training counts 3x."""
    f = 2 * shape.T * shape.B * kind.gates * shape.H * (shape.I + shape.H)
    return 3 * f if mode == "training" else f


# ---------------------------------------------------------------------- environment


@functools.cache
def torch_or_none():
    """The torch module if ``import torch`` works here, else None (never installed)."""
    try:
        return importlib.import_module("torch")
    except Exception:  # ImportError, or a broken install failing on its shared libraries
        return None


def _threadpoolctl_info():
    try:
        import threadpoolctl
    except ImportError:
        return None
    return [
        {k: d.get(k) for k in ("internal_api", "version", "num_threads", "filepath")}
        for d in threadpoolctl.threadpool_info()
    ]


def _numpy_blas() -> str:
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas['name']} {blas.get('version', '')}".strip()
    except Exception:  # older NumPy: no mode="dicts"
        return "unknown"


def set_threads(n: int) -> None:
    """Use n threads in the peers that can be told (torch; ours once it is threaded)."""
    torch = torch_or_none()
    if torch is not None:
        torch.set_num_threads(n)
    if hasattr(fr, "set_num_threads"):
        fr.set_num_threads(n)


def thread_info() -> dict:
    pools = _threadpoolctl_info()
    torch = torch_or_none()
    return {
        # Until fusedrnn has get/set_num_threads its kernels are single-threaded.
        "ours": fr.get_num_threads() if hasattr(fr, "get_num_threads") else 1,
        "ours_threaded": hasattr(fr, "get_num_threads"),
        "torch": torch.get_num_threads() if torch is not None else None,
        "numpy_blas": _numpy_blas(),
        "numpy_blas_threadpools": pools,  # None: threadpoolctl is not installed
    }


def thread_line(threads: dict) -> str:
    """The threads used, on one line."""
    ours = f"ours {threads['ours']}"
    if not threads["ours_threaded"]:
        ours += " (single-threaded in this version)"
    parts = [ours]
    if threads["torch"] is not None:
        parts.append(f"torch {threads['torch']}")
    blas = f"NumPy BLAS {threads['numpy_blas']}"
    pools = threads["numpy_blas_threadpools"]
    if pools:
        blas += ": " + ", ".join(f"{p['internal_api']} {p['num_threads']}" for p in pools)
    parts.append(blas)
    return "threads: " + " | ".join(parts)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """CPU, versions and threads: the header of the table and of the JSON file."""
    torch = torch_or_none()
    versions = {"python": platform.python_version(), "numpy": np.__version__,
                "fusedrnn": fr.__version__, "torch": torch.__version__ if torch else None}
    return {
        "cpu": _cpu_model(),
        "machine": platform.machine(),
        "system": platform.platform(),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "fusedrnn_cpu_info": fr.cpu_info(),
        "versions": versions,
        "threads": thread_info(),
    }


# -------------------------------------------------------------------------------- cases


def rel_error(got: dict, want: dict) -> float:
    """max over the keys of ``want`` of ||got - want|| / ||want|| (norm-wise, float64).

    NaN if any result has a NaN, inf if a shape differs.
    """
    errors = []
    for key, w in want.items():
        g = np.asarray(got[key], np.float64)
        w = np.asarray(w, np.float64)
        if g.shape != w.shape:
            return float("inf")
        scale = np.linalg.norm(w) or np.linalg.norm(g) or 1.0
        errors.append(np.linalg.norm(g - w) / scale)
    return float(np.max(errors))  # np.max, unlike max(), propagates NaN


def _strip_layer(name: str) -> str:
    """'weight_ih_l0' -> 'weight_ih': layer parameter names to the reference's keywords."""
    return name[:-3] if name.endswith("_l0") else name


class Case:
    """One cell of the grid: inputs, weights and one callable per available peer.

    Weights come from a seeded fusedrnn layer (torch's initialisation), x and dy are
    standard normal, initial states are zeros.  Training computes the gradients of
    sum(y * dy) with respect to x and every parameter.
    """

    def __init__(self, kind: Kind, shape: Shape, mode: str, seed: int = 0):
        if mode not in MODES:
            raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
        self.kind, self.shape, self.mode = kind, shape, mode
        self.flops = flops(kind, shape, mode)
        rng = np.random.default_rng(seed)
        s = shape
        cls = getattr(fr, kind.cell if s.is_cell else kind.layer)
        self.module = cls(s.I, s.H, seed=seed)
        self.weights = {_strip_layer(n): a for n, a in self.module.state_dict().items()}
        lead = (s.B,) if s.is_cell else (s.T, s.B)
        self.x = rng.standard_normal(lead + (s.I,)).astype(np.float32)
        self.dy = rng.standard_normal(lead + (s.H,)).astype(np.float32)
        self.h0 = np.zeros((s.B, s.H), np.float32)
        self.states0 = (self.h0, self.h0.copy()) if kind.has_c else (self.h0,)

        self.peers = {"ours": self._ours, "reference": self._reference}
        self._torch_module = self._make_torch()
        if self._torch_module is not None:
            self.peers["torch"] = self._torch

    @property
    def label(self) -> str:
        return f"{self.kind.name}-{self.shape.name}-{self.mode}"

    @functools.cached_property
    def expected(self) -> dict:
        """The reference's results: the oracle every peer is checked against."""
        return self._reference()

    def check(self, results: dict) -> float:
        """Relative norm error of a peer's results against the reference's."""
        return rel_error(results, self.expected)

    # -- helpers ---------------------------------------------------------------------
    def _named_state(self, state) -> dict:
        """A peer's final state(s) as {'h_n': (B, H)[, 'c_n': (B, H)]} NumPy arrays."""
        state = state if isinstance(state, (tuple, list)) else (state,)
        return {k: _numpy(v).reshape(self.shape.B, self.shape.H)
                for k, v in zip(("h_n", "c_n"), state)}

    def _hx(self, states):
        return tuple(states) if self.kind.has_c else states[0]

    # -- ours --------------------------------------------------------------------------
    def _ours(self) -> dict:
        m = self.module
        if self.shape.is_cell:
            return self._named_state(m(self.x, self._hx(self.states0)))
        if self.mode == "inference":
            y, state = m(self.x)
            return {"y": y, **self._named_state(state)}
        y, state, tape = m.forward(self.x, train=True)
        dx, _, grads = m.backward(tape, self.dy)
        return {"y": y, **self._named_state(state), "dx": dx,
                **{_strip_layer(n): g for n, g in grads.items()}}

    # -- reference --------------------------------------------------------------------
    def _reference(self) -> dict:
        k, w = self.kind, self.weights
        if self.shape.is_cell:
            return self._named_state(k.ref_cell(self.x, *self.states0, **w))
        y, *state, cache = k.ref_forward(self.x, *self.states0, **w)
        out = {"y": y, **self._named_state(state)}
        if self.mode == "training":
            g = k.ref_backward(cache, self.dy)
            out["dx"] = g["dx"]
            out.update((n, g[n]) for n in w)
        return out

    # -- torch ------------------------------------------------------------------------
    def _make_torch(self):
        torch = torch_or_none()
        if torch is None:
            return None
        s = self.shape
        m = getattr(torch.nn, self.kind.cell if s.is_cell else self.kind.layer)(s.I, s.H)
        m.load_state_dict({n: torch.from_numpy(a) for n, a in self.module.state_dict().items()})
        self._tx = torch.from_numpy(self.x)
        self._tdy = torch.from_numpy(self.dy)
        self._tstates = tuple(torch.from_numpy(a) for a in self.states0)
        return m

    def _torch(self) -> dict:
        torch, m = torch_or_none(), self._torch_module
        if self.shape.is_cell:
            with torch.inference_mode():
                return self._named_state(m(self._tx, self._hx(self._tstates)))
        if self.mode == "inference":
            with torch.inference_mode():
                y, state = m(self._tx)
            return {"y": _numpy(y), **self._named_state(state)}
        m.zero_grad(set_to_none=True)
        x = torch.from_numpy(self.x).requires_grad_()  # a fresh leaf per call
        y, state = m(x)
        (y * self._tdy).sum().backward()
        return {"y": _numpy(y), **self._named_state(state), "dx": _numpy(x.grad),
                **{_strip_layer(n): _numpy(p.grad) for n, p in m.named_parameters()}}


def _numpy(a):
    """A torch tensor (or an array) as a NumPy array, without copying."""
    return a.detach().numpy() if hasattr(a, "detach") else a


# ------------------------------------------------------------------------------- timing


def time_call(fn, inner: int = 1):
    """Seconds per call of fn over `inner` back-to-back calls (GC paused), and its last
    result."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(inner):
            result = fn()
        return (time.perf_counter() - t0) / inner, result
    finally:
        if gc_was_enabled:
            gc.enable()


@dataclass
class Measurement:
    """Timings of one case: per peer, the seconds of each timed run, and its error."""

    case: Case
    times: dict  # peer -> [seconds per call, ...]
    errors: dict  # peer -> relative error against the reference
    once: set  # peers measured once only (their first run was over the limit)

    def median(self, peer):
        t = self.times.get(peer)
        return float(np.median(t)) if t else None

    def agrees(self, peer="ours") -> bool:
        """Whether the peer matched the reference (False for a NaN error too)."""
        return self.errors[peer] < TOLERANCE


def measure(case: Case, *, min_runs=3, max_runs=50, budget_s=2.0, ref_limit_s=None,
            min_sample_s=0.01) -> Measurement:
    """Time every peer of `case`, alternating (ours, reference, torch, ours, ...).

    A first round warms up (weight packing, allocations) and gives the results that
    are checked against the reference; its times are not kept, but they decide two
    things: calls shorter than `min_sample_s` are repeated back to back within each
    timed run (the cell rows), and a reference slower than `ref_limit_s` seconds is
    not run again -- that first run is its only measurement.  Then timed rounds run
    until there are at least `min_runs` and either `budget_s` seconds have passed or
    there are `max_runs`.
    """
    max_runs = max(max_runs, min_runs)
    times = {p: [] for p in case.peers}
    inner, once, results = {}, set(), {}
    # The reference goes first: its result becomes the case's oracle (not run twice).
    for peer in sorted(case.peers, key=lambda p: p != "reference"):
        t, results[peer] = time_call(case.peers[peer])
        inner[peer] = max(1, int(min_sample_s / t)) if t > 0 else 1
        if peer == "reference":
            case.expected = results[peer]
            if ref_limit_s is not None and t > ref_limit_s:
                times[peer].append(t)
                once.add(peer)
    errors = {peer: case.check(r) for peer, r in results.items()}
    active = [p for p in case.peers if p not in once]
    start, rounds = time.perf_counter(), 0
    while rounds < max_runs and (rounds < min_runs or time.perf_counter() - start < budget_s):
        for peer in active:
            times[peer].append(time_call(case.peers[peer], inner[peer])[0])
        rounds += 1
    return Measurement(case, times, errors, once)


def to_json(m: Measurement) -> dict:
    c = m.case
    return {
        "kind": c.kind.name, "row": c.shape.name, "mode": c.mode,
        "T": c.shape.T, "B": c.shape.B, "I": c.shape.I, "H": c.shape.H,
        "flops": c.flops,
        "peers": {
            p: {"times_s": m.times[p], "median_s": m.median(p), "runs": len(m.times[p]),
                "measured_once": p in m.once, "rel_error": m.errors[p]}
            for p in c.peers
        },
    }


# -------------------------------------------------------------------------------- table

# (title, width) of each column; the time unit is ms for sequences, us for cells.
COLUMNS = (("kind", 5), ("row", 4), ("mode", 9), ("ours {u}", 10), ("GFLOP/s", 8),
           ("ref {u}", 10), ("x ref", 7), ("torch {u}", 10), ("x torch", 7), ("runs", 9),
           ("check", 12))


def table_header(unit: str) -> str:
    cells = [t.format(u=unit).rjust(w) if i > 2 else t.ljust(w)
             for i, (t, w) in enumerate(COLUMNS)]
    return "  ".join(cells)


def table_row(m: Measurement) -> str:
    """One line: times in the unit of the row (ms, or us per call for the cell row),
    speedup = peer time / ours time (> 1: ours is faster)."""
    c = m.case
    scale = 1e6 if c.shape.is_cell else 1e3
    ours = m.median("ours")

    def t(peer):
        v = m.median(peer)
        if v is None:
            return "-"
        return f"{v * scale:.1f}" + ("*" if peer in m.once else "")

    def x(peer):
        v = m.median(peer)
        return f"{v / ours:.2f}" if v is not None else "-"

    check = f"{'ok' if m.agrees() else 'FAIL'} {m.errors['ours']:.0e}"
    if "torch" in m.errors and not m.agrees("torch"):
        check += " torch!"  # torch disagrees with the reference: its times are suspect
    runs = "/".join(str(len(m.times[p])) for p in c.peers)
    values = [c.kind.name, c.shape.name, c.mode, f"{ours * scale:.1f}",
              f"{c.flops / ours / 1e9:.2f}", t("reference"), x("reference"), t("torch"),
              x("torch"), runs, check]
    return "  ".join(v.rjust(w) if i > 2 else v.ljust(w)
                     for i, (v, (_, w)) in enumerate(zip(values, COLUMNS)))

