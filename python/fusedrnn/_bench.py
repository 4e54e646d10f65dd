"""Benchmark grid, peers and timing shared by ``python -m fusedrnn bench`` and bench/.

The grid lives here, in the package, so that the CLI of an installed wheel has it;
``bench/shapes.py`` re-exports it for the pytest-benchmark suite.

A :class:`Case` is one cell of the grid (kind x row x mode).  It holds the inputs and
one zero-argument callable per peer -- ``ours`` (the fusedrnn layers and cells),
``reference`` (``fusedrnn.reference`` in float32), ``torch`` (torch.nn on the CPU, only
when ``import torch`` works) and ``ort`` (ONNX Runtime's LSTM/GRU/RNN operators, in
inference only, when ``onnx`` and ``onnxruntime`` import) -- each computing the same
thing from the same weights and returning its results as a dict of NumPy arrays with
common keys (``y``, ``h_n``, ``c_n``, ``dx``, ``weight_ih``, ...), so that one function,
:func:`rel_error`, checks every peer against the reference and against ours.
"""

from __future__ import annotations

import functools
import gc
import importlib
import math
import os
import platform
import time
from dataclasses import dataclass, replace

import numpy as np

import fusedrnn as fr
from fusedrnn import _core
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
    """A recurrent cell type: its classes (same names in fusedrnn and torch.nn, and the
    ONNX operator), gate count and its reference functions."""

    name: str
    layer: str
    cell: str
    gates: int
    has_c: bool  # an LSTM also carries the cell state c
    ref_forward: object
    ref_backward: object
    ref_cell: object
    #: ONNX gate block k = torch gate block onnx_order[k] (torch: LSTM i,f,g,o, GRU r,z,n;
    #: ONNX: LSTM i,o,f,c, GRU z,r,h).
    onnx_order: tuple


KINDS = {
    "lstm": Kind("lstm", "LSTM", "LSTMCell", 4, True, ref.lstm_forward, ref.lstm_backward,
                 ref.lstm_cell, (0, 3, 1, 2)),
    "gru": Kind("gru", "GRU", "GRUCell", 3, False, ref.gru_forward, ref.gru_backward,
                ref.gru_cell, (1, 0, 2)),
    "rnn": Kind("rnn", "RNN", "RNNCell", 1, False, ref.rnn_forward, ref.rnn_backward,
                ref.rnn_cell, (0,)),
}

#: Every peer, in table order; ``ort`` (ONNX Runtime) is timed in inference only.
PEERS = ("ours", "reference", "torch", "ort")
#: The peers ours is compared with (speedup columns and the plot), with their short names.
OTHERS = {"reference": "ref", "torch": "torch", "ort": "ort"}

#: Bound on ||ours - reference|| / ||reference|| and ||peer - ours|| / ||ours|| (float32).
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


@functools.cache
def ort_or_none():
    """(onnx, onnxruntime) if both import here, else None: the models are built in memory
    with ``onnx.helper`` and run by ``onnxruntime``."""
    try:
        return importlib.import_module("onnx"), importlib.import_module("onnxruntime")
    except Exception:
        return None


def matplotlib_or_none():
    """matplotlib.pyplot on the non-interactive Agg backend, or None if not importable."""
    try:
        matplotlib = importlib.import_module("matplotlib")
        matplotlib.use("Agg")
        return importlib.import_module("matplotlib.pyplot")
    except Exception:
        return None


def missing_peers() -> list:
    """Lines naming the optional peers that are not importable here, and how to get them."""
    out = []
    if torch_or_none() is None:
        out.append("torch (pip install torch==2.13.0, the CPU build)")
    if ort_or_none() is None:
        out.append("ort (pip install onnx onnxruntime)")
    return out


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


#: The thread count last given to set_threads (ORT's sessions are built with it).
_threads = None


def set_threads(n: int) -> None:
    """Use n threads in every peer that can be told: ours (fusedrnn.set_num_threads),
    torch (torch.set_num_threads) and ORT (the sessions that Case builds from now on get
    intra_op_num_threads = n, inter_op_num_threads = 1).  NumPy's BLAS keeps its own."""
    global _threads
    _threads = n
    fr.set_num_threads(n)
    torch = torch_or_none()
    if torch is not None:
        torch.set_num_threads(n)


def thread_info() -> dict:
    pools = _threadpoolctl_info()
    torch = torch_or_none()
    return {
        # The count set; a step too short to share runs on fewer (see set_num_threads).
        "ours": fr.get_num_threads(),
        "torch": torch.get_num_threads() if torch is not None else None,
        # None: ORT's default (all cores); only the intra-op pool runs these graphs.
        "ort": _threads if ort_or_none() is not None else None,
        "ort_inter_op": 1 if ort_or_none() is not None else None,
        "numpy_blas": _numpy_blas(),
        "numpy_blas_threadpools": pools,  # None: threadpoolctl is not installed
    }


def thread_line(threads: dict, label: str = "threads: ") -> str:
    """The threads used, on one line."""
    parts = [f"ours {threads['ours']}"]
    if threads["torch"] is not None:
        parts.append(f"torch {threads['torch']}")
    if threads["ort"] is not None or ort_or_none() is not None:
        ort = threads["ort"] if threads["ort"] is not None else "default"
        parts.append(f"ort {ort} intra-op, {threads['ort_inter_op']} inter-op")
    blas = f"NumPy BLAS {threads['numpy_blas']}"
    pools = threads["numpy_blas_threadpools"]
    if pools:
        blas += ": " + ", ".join(f"{p['internal_api']} {p['num_threads']}" for p in pools)
    parts.append(blas)
    return label + " | ".join(parts)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module_name):
    try:
        return importlib.import_module(module_name).__version__
    except Exception:
        return None


def machine_info() -> dict:
    """CPU, versions and threads: the header of the table and of the JSON file."""
    torch, ort = torch_or_none(), ort_or_none()
    versions = {"python": platform.python_version(), "numpy": np.__version__,
                "fusedrnn": fr.__version__, "torch": torch.__version__ if torch else None,
                "onnx": ort[0].__version__ if ort else None,
                "onnxruntime": ort[1].__version__ if ort else None,
                "matplotlib": _version("matplotlib")}
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


def fma_peak(seconds: float = 0.2) -> float:
    """This machine's float32 FMA GFLOP/s on one thread, with the ISA ours runs
    (``fusedrnn._core.fma_peak``: independent FMAs on registers only)."""
    return float(_core.fma_peak(seconds=seconds))


# -------------------------------------------------------------------------------- cases


def rel_error(got: dict, want: dict) -> float:
    """max over the keys of ``want`` of ||got - want|| / ||want|| (norm-wise, float64).

    NaN if any result has a NaN, inf if a shape differs or a key is missing.
    """
    errors = []
    for key, w in want.items():
        if key not in got:
            return float("inf")
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


def onnx_weights(kind: Kind, weights: dict) -> dict:
    """torch-layout weights (weight_ih (G*H, I), weight_hh (G*H, H), bias_ih, bias_hh;
    gate blocks in torch's order) as the ONNX operator's inputs W (1, G*H, I),
    R (1, G*H, H) and B (1, 2*G*H) = [Wb, Rb], gate blocks in ONNX's order."""

    def reorder(a):
        blocks = np.split(np.asarray(a, np.float32), kind.gates)
        return np.ascontiguousarray(np.concatenate([blocks[k] for k in kind.onnx_order]))

    out = {"W": reorder(weights["weight_ih"])[None], "R": reorder(weights["weight_hh"])[None]}
    if weights.get("bias_ih") is not None:
        out["B"] = np.concatenate([reorder(weights["bias_ih"]),
                                   reorder(weights["bias_hh"])])[None]
    return out


def onnx_model(kind: Kind, I: int, H: int, weights: dict, with_state: bool,  # noqa: E741
               with_y: bool = True):
    """An in-memory ONNX model of one LSTM / GRU / RNN operator (one direction, weights as
    initializers).  Inputs: X (T, B, I), and with_state: initial_h (1, B, H) (LSTM also
    initial_c); outputs: Y (T, 1, B, H) if with_y, Y_h (1, B, H), LSTM also Y_c."""
    onnx, _ = ort_or_none()
    helper, TP = onnx.helper, onnx.TensorProto
    op = kind.layer  # the ONNX operators are called LSTM, GRU and RNN too
    w = onnx_weights(kind, weights)
    inits = [onnx.numpy_helper.from_array(a, name) for name, a in w.items()]
    states = ["initial_h", "initial_c"] if kind.has_c else ["initial_h"]
    vi = helper.make_tensor_value_info
    inputs = [vi("X", TP.FLOAT, ["T", "B", I])]
    if with_state:
        inputs += [vi(s, TP.FLOAT, [1, "B", H]) for s in states]
    # Operator inputs: X, W, R, B, sequence_lens, initial_h, initial_c, P ("" = omitted).
    node_in = ["X", "W", "R", "B" if "B" in w else "", ""]
    node_in += states if with_state else []
    out_names = ["Y_h", "Y_c"] if kind.has_c else ["Y_h"]
    outputs = [vi(n, TP.FLOAT, [1, "B", H]) for n in out_names]
    if with_y:
        outputs.insert(0, vi("Y", TP.FLOAT, ["T", 1, "B", H]))
    attrs = {"hidden_size": H}
    if op == "GRU":
        attrs["linear_before_reset"] = 1  # torch's GRU: r * (W_hn h + b_hn)
    node = helper.make_node(op, node_in, ["Y" if with_y else ""] + out_names, **attrs)
    graph = helper.make_graph([node], f"fusedrnn_bench_{kind.name}", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8  # opset 14 needs no more; older onnxruntime builds accept it
    onnx.checker.check_model(model)
    return model


class Case:
    """One cell of the grid: inputs, weights and one callable per available peer.

    Weights come from a seeded fusedrnn layer (torch's initialisation), x and dy are
    standard normal.  Sequence rows start from zero states (each peer's default); the
    cell row is called with a random state, ``cell(x, state)``, so that W_hh counts.
    Training computes the gradients of sum(y * dy) with respect to x and every parameter.
    `threads`: ORT's intra-op threads (default: the last set_threads, else ORT's default).
    """

    def __init__(self, kind: Kind, shape: Shape, mode: str, seed: int = 0, threads=None):
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
        n_states = 2 if kind.has_c else 1
        if s.is_cell:
            self.states0 = tuple((0.5 * rng.standard_normal((s.B, s.H))).astype(np.float32)
                                 for _ in range(n_states))
        else:
            self.states0 = tuple(np.zeros((s.B, s.H), np.float32) for _ in range(n_states))

        self.peers = {"ours": self._ours, "reference": self._reference}
        self._torch_module = self._make_torch()
        if self._torch_module is not None:
            self.peers["torch"] = self._torch
        self._ort_session = self._make_ort(threads if threads is not None else _threads)
        if self._ort_session is not None:
            self.peers["ort"] = self._ort

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

    # -- ONNX Runtime -------------------------------------------------------------------
    def _make_ort(self, threads):
        """An ORT session of the ONNX operator with our weights (inference only).  The
        cell row runs it for one step with the state as initial_h (/initial_c)."""
        mods = ort_or_none()
        if mods is None or self.mode != "inference":
            return None
        ort = mods[1]
        s, cell = self.shape, self.shape.is_cell
        model = onnx_model(self.kind, s.I, s.H, self.weights, with_state=cell, with_y=not cell)
        so = ort.SessionOptions()
        if threads is not None:
            so.intra_op_num_threads = threads
        if threads is None or threads > 1:
            # ORT's idle workers otherwise busy-wait between runs for longer than the
            # benchmark's pause between peers, taking a core from whoever runs next.
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3  # errors only
        sess = ort.InferenceSession(model.SerializeToString(), so,
                                    providers=["CPUExecutionProvider"])
        x = self.x[None] if cell else self.x
        self._ort_feed = {"X": x}
        if cell:
            names = ("initial_h", "initial_c")
            self._ort_feed.update((n, a[None]) for n, a in zip(names, self.states0))
        return sess

    def _ort(self) -> dict:
        out = self._ort_session.run(None, self._ort_feed)
        if self.shape.is_cell:
            return self._named_state(out)
        s = self.shape
        return {"y": out[0].reshape(s.T, s.B, s.H), **self._named_state(out[1:])}


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
    """Timings of one case: per peer, the seconds of each timed run, and its errors.

    errors: peer -> ||peer - reference|| / ||reference||; vs_ours: peer -> ||peer - ours||
    / ||ours|| (the other peers' check: a wrong weight conversion shows there).
    """

    case: Case
    times: dict  # peer -> [seconds per call, ...]
    errors: dict  # peer -> relative error against the reference
    once: set  # peers measured once only (their first run was over the limit)
    vs_ours: dict = None  # peer -> relative error against ours (not for ours, reference)
    threads: dict = None  # the thread counts of this measurement (thread_info())

    def median(self, peer):
        t = self.times.get(peer)
        return float(np.median(t)) if t else None

    def agrees(self, peer="ours") -> bool:
        """ours: whether it matched the reference; another peer: whether it matched ours
        (False for a NaN error too)."""
        if peer == "ours" or not self.vs_ours or peer not in self.vs_ours:
            return self.errors[peer] < TOLERANCE
        return self.vs_ours[peer] < TOLERANCE

    def disagreeing(self) -> list:
        """The peers besides ours and the reference whose results differ from ours."""
        return [p for p in (self.vs_ours or {}) if not self.agrees(p)]

    def ok(self) -> bool:
        return self.agrees() and not self.disagreeing()


def measure(case: Case, *, min_runs=3, max_runs=50, budget_s=2.0, ref_limit_s=None,
            min_sample_s=0.01) -> Measurement:
    """Time every peer of `case`, alternating (ours, reference, torch, ort, ours, ...).

    A first round warms up (weight packing, allocations) and gives the results that
    are checked against the reference (and the other peers against ours); its times
    are not kept, but they decide two things: calls shorter than `min_sample_s` are
    repeated back to back within each timed run (the cell rows), and a reference slower
    than `ref_limit_s` seconds is not run again -- that first run is its only
    measurement.  Then timed rounds run until there are at least `min_runs` and either
    `budget_s` seconds have passed or there are `max_runs`.

    With more than one thread the peers alternate in blocks: a 50 ms pause (the other
    peers' thread pools stop spinning: torch's OpenMP and ONNX Runtime's pools busy-wait
    after a call, and on a 2-core machine would take the cores from the peer being
    timed), one untimed call (this peer's pool is awake: a sleeping worker can take
    milliseconds to wake on a virtual machine), then three timed calls.
    """
    max_runs = max(max_runs, min_runs)
    settle = fr.get_num_threads() > 1
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
    vs_ours = {peer: rel_error(r, results["ours"]) for peer, r in results.items()
               if peer not in ("ours", "reference")}
    active = [p for p in case.peers if p not in once]
    start, rounds = time.perf_counter(), 0
    while rounds < max_runs and (rounds < min_runs or time.perf_counter() - start < budget_s):
        for peer in active:
            if settle:
                time.sleep(0.05)
                time_call(case.peers[peer], inner[peer])
                for _ in range(2):
                    times[peer].append(time_call(case.peers[peer], inner[peer])[0])
            times[peer].append(time_call(case.peers[peer], inner[peer])[0])
        rounds += 1
    return Measurement(case, times, errors, once, vs_ours, thread_info())


def speedup(m: Measurement, peer: str):
    """Peer time / ours time (> 1: ours is faster), or None without that peer."""
    v, ours = m.median(peer), m.median("ours")
    return v / ours if v is not None and ours else None


def gflops(m: Measurement) -> float:
    return m.case.flops / m.median("ours") / 1e9


def pct_peak(m: Measurement, peak_gflops: float) -> float:
    """Ours' GFLOP/s as a percentage of peak_gflops x the threads ours was given."""
    return 100 * gflops(m) / (peak_gflops * m.threads["ours"])


def to_json(m: Measurement, peak_gflops=None) -> dict:
    c = m.case
    doc = {
        "kind": c.kind.name, "row": c.shape.name, "mode": c.mode,
        "T": c.shape.T, "B": c.shape.B, "I": c.shape.I, "H": c.shape.H,
        "flops": c.flops, "threads": m.threads, "gflops": gflops(m),
        "pct_peak": pct_peak(m, peak_gflops) if peak_gflops else None,
        "ok": m.ok(),
        "peers": {
            p: {"times_s": m.times[p], "median_s": m.median(p), "runs": len(m.times[p]),
                "measured_once": p in m.once, "rel_error": m.errors[p],
                "rel_error_vs_ours": (m.vs_ours or {}).get(p),
                "speedup": speedup(m, p) if p != "ours" else None}
            for p in c.peers
        },
    }
    # Peers that are not in this line (not importable; ort in training) are null.
    doc["missing_peers"] = [p for p in PEERS if p not in c.peers]
    return doc


# -------------------------------------------------------------------------------- table

#: Shown for a peer that is not importable or has no such mode (ort: inference only).
NONE = "\u2014"  # an em dash
#: The time unit of the cell row.
CELL_UNIT = "\u00b5s"


def set_ascii(ascii_only: bool) -> None:
    """Use '-' and 'us' for the em dash and 'µs' (for a terminal that cannot print them)."""
    global NONE, CELL_UNIT
    NONE, CELL_UNIT = ("-", "us") if ascii_only else ("\u2014", "\u00b5s")


# (title, width) of each column; {u} is the time unit: ms for sequences, µs for cells.
COLUMNS = (("kind", 4), ("row", 4), ("mode", 9), ("ours {u}", 9), ("GFLOP/s", 7),
           ("%peak", 5), ("ref {u}", 9), ("x ref", 6), ("torch {u}", 9), ("x torch", 7),
           ("ort {u}", 9), ("x ort", 6), ("runs", 12), ("check", 9))
_LEFT = 3  # the first columns are left-aligned, the others right-aligned


def _join(values) -> str:
    cells = [v.ljust(w) if i < _LEFT else v.rjust(w)
             for i, (v, (_, w)) in enumerate(zip(values, COLUMNS))]
    return "  ".join(cells).rstrip()


def table_header(unit: str) -> str:
    return _join([t.format(u=unit) for t, _ in COLUMNS])


def _fixed(v: float) -> str:
    """A time or rate with three significant digits or so, never in e-notation."""
    if v >= 100:
        return f"{v:.0f}"
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def table_row(m: Measurement, peak_gflops: float) -> str:
    """One line: times in the unit of the row (ms, or µs per call for the cell row),
    speedup = peer time / ours time (> 1: ours is faster), — for an absent peer."""
    c = m.case
    scale = 1e6 if c.shape.is_cell else 1e3
    ours = m.median("ours")

    def t(peer):
        v = m.median(peer)
        if v is None:
            return NONE
        return _fixed(v * scale) + ("*" if peer in m.once else "")

    def x(peer):
        v = speedup(m, peer)
        return f"{v:.2f}" if v is not None else NONE

    check = f"{'ok' if m.agrees() else 'FAIL'} {m.errors['ours']:.0e}"
    bad = m.disagreeing()
    runs = "/".join(str(len(m.times[p])) if p in m.times else NONE for p in PEERS)
    values = [c.kind.name, c.shape.name, c.mode, _fixed(ours * scale), _fixed(gflops(m)),
              f"{pct_peak(m, peak_gflops):.1f}", t("reference"), x("reference"),
              t("torch"), x("torch"), t("ort"), x("ort"), runs, check]
    line = _join(values)
    # A peer that differs from ours: its times are suspect (or its conversion is wrong).
    return line + "".join(f" {OTHERS[p]}!" for p in bad)


# --------------------------------------------------------------------------------- plot


def plot(results: list, path: str, title: str = "", scale: str = "log") -> None:
    """A PNG bar chart: per line of the tables (kind, row, mode), one bar per peer with
    peer time / ours time, a line at 1x; one panel per thread count.

    results: the to_json() dicts (with their "threads").  Needs matplotlib.
    """
    plt = matplotlib_or_none()
    if plt is None:
        raise ImportError("matplotlib is not importable")
    from matplotlib.ticker import FuncFormatter
    counts = sorted({r["threads"]["ours"] for r in results})
    peers = [p for p in OTHERS if any(p in r["peers"] for r in results)]
    labels = list(dict.fromkeys(f"{r['kind']} {r['row']}\n{r['mode'][:5]}" for r in results))
    width = 0.8 / max(1, len(peers))
    fig, axes = plt.subplots(len(counts), 1, squeeze=False,
                             figsize=(min(24.0, max(7.0, 0.5 * len(labels) + 2)),
                                      3.6 * len(counts)))
    colors = {"reference": "#999999", "torch": "#ee4c2c", "ort": "#2b6cb0"}
    for ax, n in zip(axes[:, 0], counts):
        rows = {f"{r['kind']} {r['row']}\n{r['mode'][:5]}": r for r in results
                if r["threads"]["ours"] == n}
        for j, p in enumerate(peers):
            xs, ys = [], []
            for i, label in enumerate(labels):
                r = rows.get(label)
                s = r["peers"].get(p, {}).get("speedup") if r else None
                if s is not None and s > 0 and math.isfinite(s):
                    xs.append(i + (j - (len(peers) - 1) / 2) * width)
                    ys.append(s)
            ax.bar(xs, ys, width, label=f"vs {OTHERS[p]}", color=colors.get(p))
        ax.axhline(1.0, color="black", linewidth=1, linestyle="--")
        ax.set_yscale(scale)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}\u00d7"))
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_xlim(-0.6, len(labels) - 0.4)
        ax.set_ylabel("speedup of ours\n(peer time / ours)")
        ax.set_title(f"{n} thread{'s' if n > 1 else ''}", fontsize=9)
        ax.grid(axis="y", which="both", alpha=0.3)
        if peers:
            ax.legend(fontsize=7, loc="upper right")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
