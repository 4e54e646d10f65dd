"""Benchmark grid, peers and timing shared by ``python -m fusedrnn bench`` and bench/.

The grid lives here, in the package, so that the CLI of an installed wheel has it;
``bench/shapes.py`` re-exports it for the pytest-benchmark suite.

A :class:`Case` is one cell of the grid (kind x row x mode).  It holds the inputs and
one zero-argument callable per peer -- ``ours`` (the fusedrnn layers and cells),
``reference`` (``fusedrnn.reference`` in float32), ``torch`` (torch.nn on the CPU, only
when ``import torch`` works), ``dropin`` (``fusedrnn.torch``'s drop-in torch.nn modules,
made from a copy of the torch module and called exactly as it is, so that ``torch`` /
``dropin`` is the gain of swapping the module and ``dropin`` / ``ours`` the cost of
autograd and the torch glue over the NumPy API), ``ort`` (ONNX Runtime's LSTM/GRU/RNN
operators, in inference only, when ``onnx`` and ``onnxruntime`` import) and, in the
variable-length row only, ``torch_pad`` (torch on the padded batch, without packing) --
each computing the same thing from the same weights and returning its results as a dict
of NumPy arrays with common keys (``y``, ``h_n``, ``c_n``, ``dx``, ``weight_ih``, ...;
``weight_ih_l1_reverse`` ... in the rows of several layers or directions), so that one
function, :func:`rel_error`, checks every peer against the reference and against ours.
"""

from __future__ import annotations

import copy
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
    """One row of the grid: T steps, batch B, input size I, hidden size H; optionally
    several layers, both directions, and variable lengths (`ragged`).

    kinds: the kinds the row is run for (None: every kind).
    ragged: sequence b has length lengths()[b], spread evenly over T/10 .. T and shuffled
    (torch's packed-sequence semantics); the FLOPs count only those valid steps.
    """

    name: str
    T: int
    B: int
    I: int  # noqa: E741 -- the usual name of the input size
    H: int
    num_layers: int = 1
    bidirectional: bool = False
    ragged: bool = False
    kinds: tuple = None

    @property
    def is_cell(self) -> bool:
        """One-step latency row: timed through the *Cell classes, per call."""
        return self.name == "cell"

    @property
    def D(self) -> int:  # noqa: N802 -- torch's name: 2 directions if bidirectional
        return 2 if self.bidirectional else 1

    @property
    def is_plain(self) -> bool:
        """One layer, one direction, full lengths: the single-layer reference functions
        and one ONNX operator (the rows S1..S4 and cell)."""
        return self.num_layers == 1 and not self.bidirectional and not self.ragged

    def lengths(self):
        """The (B,) int64 lengths of a ragged row (None otherwise): round(linspace(T/10,
        T, B)), shuffled by a fixed seed so that they are not sorted."""
        if not self.ragged:
            return None
        lengths = np.linspace(self.T / 10, self.T, self.B).round().astype(np.int64)
        return np.random.default_rng(0).permutation(np.maximum(lengths, 1))

    def steps(self) -> int:
        """The valid (step, sequence) pairs: T*B, or the sum of the lengths if ragged."""
        return int(self.lengths().sum()) if self.ragged else self.T * self.B

    def describe(self) -> str:
        size = f"I=H={self.H}" if self.I == self.H else f"I={self.I} H={self.H}"
        steps = "(one step)" if self.is_cell else f"T={self.T}"
        out = f"{self.name} {steps} B={self.B} {size}"
        if self.num_layers > 1:
            out += f" {self.num_layers} layers"
        if self.bidirectional:
            out += " bidirectional"
        if self.ragged:
            lengths = self.lengths()
            out += (f" lengths {lengths.min()}..{lengths.max()} evenly, unsorted "
                    f"(FLOPs: valid steps only, sum(lengths)={self.steps()} of T*B="
                    f"{self.T * self.B})")
        if self.kinds:
            out += f" ({'/'.join(self.kinds)} only)"
        return out


#: The rows of DESIGN.md section 6, the one-step cell latency row, then two LSTM rows:
#: a 2-layer bidirectional network and variable lengths (packed sequences in torch).
ROWS = (
    Shape("S1", 100, 1, 256, 256),  # streaming
    Shape("S2", 100, 8, 512, 512),
    Shape("S3", 50, 64, 1024, 1024),  # throughput
    Shape("S4", 200, 32, 128, 128),  # small hidden
    Shape("cell", 1, 1, 128, 128),  # one-step latency, per call
    Shape("L2bi", 100, 16, 256, 256, num_layers=2, bidirectional=True, kinds=("lstm",)),
    Shape("len", 200, 32, 256, 256, ragged=True, kinds=("lstm",)),  # lengths 20..200
)

#: The quick subset (seconds): these rows by default, and T cut to QUICK_T.
QUICK_ROW_NAMES = ("S1", "S4", "cell", "L2bi", "len")
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
    #: The kind's name for reference.stack_forward (the rows beyond one plain layer).
    stack: str


KINDS = {
    "lstm": Kind("lstm", "LSTM", "LSTMCell", 4, True, ref.lstm_forward, ref.lstm_backward,
                 ref.lstm_cell, (0, 3, 1, 2), "lstm"),
    "gru": Kind("gru", "GRU", "GRUCell", 3, False, ref.gru_forward, ref.gru_backward,
                ref.gru_cell, (1, 0, 2), "gru"),
    "rnn": Kind("rnn", "RNN", "RNNCell", 1, False, ref.rnn_forward, ref.rnn_backward,
                ref.rnn_cell, (0,), "rnn_tanh"),
}

#: Every peer, in table order; ``dropin`` is fusedrnn.torch's drop-in module (every row
#: and mode, when torch imports); ``ort`` (ONNX Runtime) is timed in inference only;
#: ``torch_pad`` (torch on the padded batch, no packing) in ragged one-layer rows only.
PEERS = ("ours", "reference", "torch", "dropin", "ort", "torch_pad")
#: The peers ours is compared with (speedup columns and the plot), with their short names.
OTHERS = {"reference": "ref", "torch": "torch", "dropin": "drop", "ort": "ort",
          "torch_pad": "tpad"}

#: Bound on ||ours - reference|| / ||reference|| and ||peer - ours|| / ||ours|| (float32).
TOLERANCE = 1e-4


def shapes(rows=None, quick=False):
    """The rows named in `rows` (None: all, or QUICK_ROW_NAMES if quick); quick cuts T."""
    names = rows if rows is not None else (QUICK_ROW_NAMES if quick else [s.name for s in ROWS])
    return [replace(s, T=min(s.T, QUICK_T)) if quick else s for s in ROWS if s.name in names]


def grid(kinds=None, rows=None, modes=None, quick=False):
    """The (kind, shape, mode) triples to run, in table order.

    kinds / rows / modes: iterables of names (None: all; rows see `shapes`).  The cell
    row is timed in inference mode only; a row with `kinds` (L2bi, len: LSTM) is run
    for those kinds only.
    """
    out = []
    for k in kinds or KINDS:
        for s in shapes(rows, quick):
            if s.kinds and k not in s.kinds:
                continue
            for m in modes or MODES:
                if not (s.is_cell and m == "training"):
                    out.append((KINDS[k], s, m))
    return out


def applies(peer: str, shape: Shape, mode: str) -> bool:
    """Whether `peer` has a line for this row and mode (installed or not): ort in
    inference only; torch_pad in ragged rows of one layer and one direction only (its
    padded outputs give ours' y and h_n only there); the others (dropin too) everywhere."""
    if peer == "ort":
        return mode == "inference"
    if peer == "torch_pad":
        return shape.ragged and shape.num_layers == 1 and not shape.bidirectional
    return True


def flops(kind: Kind, shape: Shape, mode: str) -> int:
    """Forward FLOPs 2*T*B*G*H*(I+H) (the matrix products) per layer and direction, with
    I = D*H for the layers after the first, and the sum of the lengths in place of T*B
    in a ragged row (the valid steps only); training counts 3x."""
    f = 0
    for layer in range(shape.num_layers):
        i = shape.I if layer == 0 else shape.D * shape.H
        f += shape.D * 2 * shape.steps() * kind.gates * shape.H * (i + shape.H)
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
def dropin_or_none():
    """``fusedrnn.torch`` (the drop-in torch.nn modules) if it imports here, else None
    (it needs torch)."""
    if torch_or_none() is None:
        return None
    try:
        return importlib.import_module("fusedrnn.torch")
    except Exception:
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
        out.append("drop (fusedrnn.torch, the drop-in modules: needs torch)")
    elif dropin_or_none() is None:
        out.append("drop (fusedrnn.torch does not import here although torch does: "
                   "run `python -c 'import fusedrnn.torch'` to see why)")
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


def onnx_model(kind: Kind, I: int, H: int, weights, with_state: bool,  # noqa: E741
               with_y: bool = True, D: int = 1, with_lengths: bool = False):
    """An in-memory ONNX model of one LSTM / GRU / RNN operator per layer (weights as
    initializers; direction "bidirectional" if D == 2, else "forward").

    weights: torch-layout weights of one plain layer (see onnx_weights), or a list of
    per-layer dicts W (D, G*H, I_k), R (D, G*H, H), B (D, 2*G*H) as
    ``fusedrnn.convert.to_onnx`` gives them.  Between layers, and after the last when
    D == 2, a Transpose and a Reshape turn Y (T, D, B, H) into (T, B, D*H), the next
    layer's X (torch's layout).  Inputs: X (T, B, I); with_lengths: seq_lens (B,) int32,
    the operators' sequence_lens; with_state (one layer only): initial_h (D, B, H) (LSTM
    also initial_c).  Outputs: Y if with_y ((T, B, D*H) if D == 2, else (T, 1, B, H)),
    then Y_h (D, B, H) (LSTM also Y_c) of each layer; one layer: named Y, Y_h, Y_c."""
    onnx, _ = ort_or_none()
    helper, TP = onnx.helper, onnx.TensorProto
    op = kind.layer  # the ONNX operators are called LSTM, GRU and RNN too
    layers = [onnx_weights(kind, weights)] if isinstance(weights, dict) else list(weights)
    L = len(layers)
    if with_state and L > 1:
        raise ValueError("with_state: one layer only")
    vi = helper.make_tensor_value_info
    inputs, outputs, nodes, inits = [vi("X", TP.FLOAT, ["T", "B", I])], [], [], []
    if with_lengths:
        inputs.append(vi("seq_lens", TP.INT32, ["B"]))
    states = ["initial_h", "initial_c"] if kind.has_c else ["initial_h"]
    if with_state:
        inputs += [vi(s, TP.FLOAT, [D, "B", H]) for s in states]
    attrs = {"hidden_size": H, "direction": "bidirectional" if D == 2 else "forward"}
    if op == "GRU":
        attrs["linear_before_reset"] = 1  # torch's GRU: r * (W_hn h + b_hn)
    x_name, y_name = "X", "Y"
    for k, w in enumerate(layers):
        sfx = f"_{k}" if L > 1 else ""
        names = {key: key + sfx for key in ("W", "R", "B") if w.get(key) is not None}
        inits += [onnx.numpy_helper.from_array(np.asarray(w[key], np.float32), n)
                  for key, n in names.items()]
        # Operator inputs: X, W, R, B, sequence_lens, initial_h, initial_c, P ("" = omitted).
        node_in = [x_name, names["W"], names["R"], names.get("B", ""),
                   "seq_lens" if with_lengths else ""]
        node_in += states if with_state else []
        last = k == L - 1
        y_k = ("Y" if D == 1 else "Y_raw") if last else f"Y_raw{sfx}"
        out_names = [n + sfx for n in (["Y_h", "Y_c"] if kind.has_c else ["Y_h"])]
        outputs += [vi(n, TP.FLOAT, [D, "B", H]) for n in out_names]
        emit_y = with_y or not last
        nodes.append(helper.make_node(op, node_in, [y_k if emit_y else ""] + out_names,
                                      name=f"layer{k}", **attrs))
        if emit_y and (D == 2 or not last):  # (T, D, B, H) -> (T, B, D*H)
            y_next = "Y" if last else f"X_{k + 1}"
            nodes.append(helper.make_node("Transpose", [y_k], [f"Yt{sfx}"], perm=[0, 2, 1, 3]))
            inits.append(onnx.numpy_helper.from_array(np.array([0, 0, -1], np.int64),
                                                      f"shape{sfx}"))
            nodes.append(helper.make_node("Reshape", [f"Yt{sfx}", f"shape{sfx}"], [y_next]))
            x_name = y_next
    if with_y:
        dims = ["T", "B", D * H] if D == 2 else ["T", 1, "B", H]
        outputs.insert(0, vi(y_name, TP.FLOAT, dims))
    graph = helper.make_graph(nodes, f"fusedrnn_bench_{kind.name}", inputs, outputs, inits)
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
    A ragged row passes its lengths to every peer: ours and the reference as `lengths`,
    torch as a PackedSequence (packing and unpacking timed with it), ORT as
    sequence_lens; torch_pad runs torch on the padded batch and masks y past each end.
    dropin is ``fusedrnn.torch.from_torch`` of a deep copy of the torch module (same
    weights, its own Parameters and gradients), called through the same code as torch.
    `threads`: ORT's intra-op threads (default: the last set_threads, else ORT's default).
    """

    def __init__(self, kind: Kind, shape: Shape, mode: str, seed: int = 0, threads=None):
        if mode not in MODES:
            raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
        self.kind, self.shape, self.mode = kind, shape, mode
        self.flops = flops(kind, shape, mode)
        rng = np.random.default_rng(seed)
        s = shape
        self.lengths = s.lengths()
        if s.is_cell:
            self.module = getattr(fr, kind.cell)(s.I, s.H, seed=seed)
        else:
            self.module = getattr(fr, kind.layer)(s.I, s.H, num_layers=s.num_layers,
                                                  bidirectional=s.bidirectional, seed=seed)
        # Parameter names: the single-layer reference's keywords (weight_ih, ...) for the
        # plain rows, torch's full names (weight_ih_l1_reverse, ...) for the others.
        self._key = _strip_layer if s.is_plain else (lambda name: name)
        self.weights = {self._key(n): a for n, a in self.module.state_dict().items()}
        lead = (s.B,) if s.is_cell else (s.T, s.B)
        self.x = rng.standard_normal(lead + (s.I,)).astype(np.float32)
        self.dy = rng.standard_normal(lead + (s.D * s.H,)).astype(np.float32)
        n_states = 2 if kind.has_c else 1
        if s.is_cell:
            self.states0 = tuple((0.5 * rng.standard_normal((s.B, s.H))).astype(np.float32)
                                 for _ in range(n_states))
        else:  # (B, H): the single-layer reference's; torch's layout for a stack
            lead = (s.B,) if s.is_plain else (s.num_layers * s.D, s.B)
            self.states0 = tuple(np.zeros(lead + (s.H,), np.float32) for _ in range(n_states))
        #: peer -> result keys it cannot give (left out of its checks): torch_pad's c_n
        #: is the state at step T, not at each sequence's end.
        self.omits = {"torch_pad": ("c_n",)}

        self.peers = {"ours": self._ours, "reference": self._reference}
        self._torch_module = self._make_torch()
        self._dropin_module = None
        if self._torch_module is not None:
            self.peers["torch"] = self._torch
            frt = dropin_or_none()
            if frt is not None:
                # A copy: its own Parameters, so that its .grad never mixes with torch's.
                self._dropin_module = frt.from_torch(copy.deepcopy(self._torch_module))
                self.peers["dropin"] = self._dropin
            if applies("torch_pad", s, mode):
                self.peers["torch_pad"] = self._torch_pad
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

    def _common(self, peer, want: dict) -> dict:
        """`want` without the keys that `peer` cannot give (see omits)."""
        left_out = self.omits.get(peer, ())
        return {k: v for k, v in want.items() if k not in left_out}

    def check(self, results: dict, peer: str = "ours") -> float:
        """Relative norm error of a peer's results against the reference's."""
        return rel_error(results, self._common(peer, self.expected))

    def check_vs(self, peer: str, results: dict, ours: dict) -> float:
        """Relative norm error of a peer's results against ours."""
        return rel_error(results, self._common(peer, ours))

    # -- helpers ---------------------------------------------------------------------
    def _named_state(self, state) -> dict:
        """A peer's final state(s) as {'h_n': (L*D, B, H)[, 'c_n': ...]} NumPy arrays
        ((1, B, H) for one layer and one direction, and for the cell row)."""
        state = state if isinstance(state, (tuple, list)) else (state,)
        return {k: _numpy(v).reshape(-1, self.shape.B, self.shape.H)
                for k, v in zip(("h_n", "c_n"), state)}

    def _hx(self, states):
        return tuple(states) if self.kind.has_c else states[0]

    def _grads(self, named) -> dict:
        """(name, gradient) pairs as a dict under the reference's names."""
        return {self._key(n): _numpy(g) for n, g in named}

    # -- ours --------------------------------------------------------------------------
    def _ours(self) -> dict:
        m = self.module
        if self.shape.is_cell:
            return self._named_state(m(self.x, self._hx(self.states0)))
        if self.mode == "inference":
            y, state = m(self.x, lengths=self.lengths)
            return {"y": y, **self._named_state(state)}
        y, state, tape = m.forward(self.x, lengths=self.lengths, train=True)
        dx, _, grads = m.backward(tape, self.dy)
        return {"y": y, **self._named_state(state), "dx": dx, **self._grads(grads.items())}

    # -- reference --------------------------------------------------------------------
    def _reference(self) -> dict:
        k, w, s = self.kind, self.weights, self.shape
        if s.is_cell:
            return self._named_state(k.ref_cell(self.x, *self.states0, **w))
        if s.is_plain:
            y, *state, cache = k.ref_forward(self.x, *self.states0, **w)
        else:
            y, h_n, c_n, cache = ref.stack_forward(
                k.stack, self.x, None, w, num_layers=s.num_layers,
                bidirectional=s.bidirectional, lengths=self.lengths)
            state = (h_n, c_n) if k.has_c else (h_n,)
        out = {"y": y, **self._named_state(state)}
        if self.mode == "training":
            g = (k.ref_backward(cache, self.dy) if s.is_plain
                 else ref.stack_backward(cache, self.dy))
            out["dx"] = g["dx"]
            out.update((n, g[n]) for n in w)
        return out

    # -- torch ------------------------------------------------------------------------
    def _make_torch(self):
        torch = torch_or_none()
        if torch is None:
            return None
        s = self.shape
        if s.is_cell:
            m = getattr(torch.nn, self.kind.cell)(s.I, s.H)
        else:
            m = getattr(torch.nn, self.kind.layer)(s.I, s.H, num_layers=s.num_layers,
                                                   bidirectional=s.bidirectional)
        m.load_state_dict({n: torch.from_numpy(a) for n, a in self.module.state_dict().items()})
        self._tx = torch.from_numpy(self.x)
        self._tdy = torch.from_numpy(self.dy)
        self._tstates = tuple(torch.from_numpy(a) for a in self.states0)
        if self.lengths is not None:
            self._tlengths = torch.from_numpy(self.lengths)  # int64 on the CPU, as pack wants
            # torch_pad: y past each end set to zero, h_n read at each sequence's last step
            mask = np.arange(s.T)[:, None] < self.lengths[None, :]
            self._tmask = torch.from_numpy(mask[:, :, None].astype(np.float32))
            self._tlast = torch.from_numpy(self.lengths - 1)
            self._tbatch = torch.arange(s.B)
        return m

    def _torch_run(self, x, m=None):
        """torch's module (or `m`, the drop-in) on x (T, B, I): a PackedSequence in and
        out in a ragged row."""
        torch = torch_or_none()
        m = self._torch_module if m is None else m
        if self.lengths is None:
            return m(x)
        rnn = torch.nn.utils.rnn
        packed = rnn.pack_padded_sequence(x, self._tlengths, enforce_sorted=False)
        out, state = m(packed)
        y, _ = rnn.pad_packed_sequence(out, total_length=self.shape.T)
        return y, state

    def _torch(self) -> dict:
        return self._torch_call(self._torch_module)

    def _dropin(self) -> dict:
        """The drop-in module, called exactly as torch's (_torch_call)."""
        return self._torch_call(self._dropin_module)

    def _torch_call(self, m) -> dict:
        """Module m (torch.nn's or the drop-in) on the case's inputs: inference under
        torch.inference_mode; training = forward and backward of sum(y * dy) from a fresh
        leaf x, the gradients read from x.grad and each Parameter's .grad."""
        torch = torch_or_none()
        if self.shape.is_cell:
            with torch.inference_mode():
                return self._named_state(m(self._tx, self._hx(self._tstates)))
        if self.mode == "inference":
            with torch.inference_mode():
                y, state = self._torch_run(self._tx, m)
            return {"y": _numpy(y), **self._named_state(state)}
        m.zero_grad(set_to_none=True)
        x = torch.from_numpy(self.x).requires_grad_()  # a fresh leaf per call
        y, state = self._torch_run(x, m)
        (y * self._tdy).sum().backward()
        return {"y": _numpy(y), **self._named_state(state), "dx": _numpy(x.grad),
                **self._grads((n, p.grad) for n, p in m.named_parameters())}

    def _torch_pad(self) -> dict:
        """torch on the padded batch, no packing: every sequence runs all T steps.  What a
        user needs from it is y masked past each end and h at each sequence's last step
        (c_n there is not in its outputs); the loss is sum(masked y * dy)."""
        torch, m = torch_or_none(), self._torch_module
        if self.mode == "inference":
            with torch.inference_mode():
                y, _ = m(self._tx)
                h_n = y[self._tlast, self._tbatch]
                y = y * self._tmask
            return {"y": _numpy(y), **self._named_state(h_n)}
        m.zero_grad(set_to_none=True)
        x = torch.from_numpy(self.x).requires_grad_()
        y, _ = m(x)
        h_n = y[self._tlast, self._tbatch]
        y = y * self._tmask
        (y * self._tdy).sum().backward()
        return {"y": _numpy(y), **self._named_state(h_n), "dx": _numpy(x.grad),
                **self._grads((n, p.grad) for n, p in m.named_parameters())}

    # -- ONNX Runtime -------------------------------------------------------------------
    def _make_ort(self, threads):
        """An ORT session of the ONNX operator(s) with our weights (inference only).  The
        cell row runs it for one step with the state as initial_h (/initial_c); a row of
        several layers or directions gets fusedrnn.convert.to_onnx's weights, one
        operator per layer; a ragged row passes its lengths as sequence_lens."""
        mods = ort_or_none()
        if mods is None or self.mode != "inference":
            return None
        ort = mods[1]
        s, cell = self.shape, self.shape.is_cell
        if s.num_layers == 1 and not s.bidirectional:
            weights = self.weights if s.is_plain else [onnx_weights(self.kind, {
                _strip_layer(n): a for n, a in self.weights.items()})]
        else:
            from fusedrnn import convert  # noqa: PLC0415 -- only the stack rows need it
            weights = [{k: v for k, v in w.items() if k in ("W", "R", "B")}
                       for w in convert.to_onnx(self.module)]
        model = onnx_model(self.kind, s.I, s.H, weights, with_state=cell, with_y=not cell,
                           D=s.D, with_lengths=self.lengths is not None)
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
        if self.lengths is not None:
            self._ort_feed["seq_lens"] = self.lengths.astype(np.int32)
        if cell:
            names = ("initial_h", "initial_c")
            self._ort_feed.update((n, a[None]) for n, a in zip(names, self.states0))
        return sess

    def _ort(self) -> dict:
        out = self._ort_session.run(None, self._ort_feed)
        if self.shape.is_cell:
            return self._named_state(out)
        s = self.shape
        n = 2 if self.kind.has_c else 1  # Y_h (, Y_c) per layer, layer by layer
        states = [np.concatenate(out[1 + i::n]) for i in range(n)]
        return {"y": out[0].reshape(s.T, s.B, s.D * s.H), **self._named_state(states)}


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
    """Time every peer of `case`, alternating (ours, reference, torch, dropin, ort, ours,
    ...).

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
    errors = {peer: case.check(r, peer) for peer, r in results.items()}
    vs_ours = {peer: case.check_vs(peer, r, results["ours"]) for peer, r in results.items()
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


def torch_over_dropin(m: Measurement):
    """torch.nn's time / the drop-in's time (> 1: swapping in fusedrnn.torch is faster),
    or None without either."""
    t, d = m.median("torch"), m.median("dropin")
    return t / d if t is not None and d else None


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
        "num_layers": c.shape.num_layers, "bidirectional": c.shape.bidirectional,
        "lengths": None if c.lengths is None else c.lengths.tolist(),
        "flops": c.flops, "threads": m.threads, "gflops": gflops(m),
        "pct_peak": pct_peak(m, peak_gflops) if peak_gflops else None,
        "ok": m.ok(),
        # torch.nn time / drop-in time, both called the same way (> 1: the drop-in faster);
        # the drop-in's own "speedup" is its time / ours (its autograd and glue overhead).
        "torch_over_dropin": torch_over_dropin(m),
        "peers": {
            p: {"times_s": m.times[p], "median_s": m.median(p), "runs": len(m.times[p]),
                "measured_once": p in m.once, "rel_error": m.errors[p],
                "rel_error_vs_ours": (m.vs_ours or {}).get(p),
                "speedup": speedup(m, p) if p != "ours" else None}
            for p in c.peers
        },
    }
    # Peers that have no line here (ort in training, torch_pad outside ragged rows) are
    # left out; missing_peers: those that would, but are not importable.
    doc["missing_peers"] = [p for p in PEERS
                            if p not in c.peers and applies(p, c.shape, c.mode)]
    return doc


# -------------------------------------------------------------------------------- table

#: Shown for a peer that is not importable or has no such line (ort: inference only,
#: tpad: ragged rows only).
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
           ("drop {u}", 9), ("x drop", 6), ("torch/drop", 10), ("ort {u}", 9), ("x ort", 6),
           ("tpad {u}", 9), ("x tpad", 6), ("runs", 17), ("check", 9))
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
    speedup = peer time / ours time (> 1: ours is faster; x drop is the drop-in's
    overhead over ours), torch/drop = torch.nn time / drop-in time (> 1: the drop-in is
    faster), — for an absent peer."""
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
    td = torch_over_dropin(m)
    values = [c.kind.name, c.shape.name, c.mode, _fixed(ours * scale), _fixed(gflops(m)),
              f"{pct_peak(m, peak_gflops):.1f}", t("reference"), x("reference"),
              t("torch"), x("torch"), t("dropin"), x("dropin"),
              f"{td:.2f}" if td is not None else NONE, t("ort"), x("ort"), t("torch_pad"),
              x("torch_pad"), runs, check]
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
    colors = {"reference": "#999999", "torch": "#ee4c2c", "dropin": "#38a169",
              "ort": "#2b6cb0", "torch_pad": "#f6ad55"}
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
