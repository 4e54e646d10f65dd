"""The benchmark grid: rows (shapes), kinds, modes and peers, and the FLOPs of a line.

Defined in the package, so that the CLI of an installed wheel has it; ``bench/shapes.py``
at the repository root re-exports it for the pytest-benchmark suite.  docs/benchmarks.md
describes every row.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from fusedrnn import reference as ref


@dataclass(frozen=True)
class Shape:
    """One row of the grid: T steps, batch B, input size I, hidden size H; optionally
    several layers, both directions, and variable lengths (`ragged`).

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

    @property
    def is_cell(self) -> bool:
        """One-step latency row (cell, cell256): timed through the *Cell classes, per call."""
        return self.name.startswith("cell")

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
            out += (f" lengths {lengths.min()}..{lengths.max()} unsorted, FLOPs over "
                    f"sum(lengths)={self.steps()} of T*B={self.T * self.B}")
        return out


#: The rows S1..S4 (docs/benchmarks.md, "The grid"), the one-step cell latency row, then
#: a 2-layer bidirectional network and variable lengths (packed sequences in torch).
ROWS = (
    Shape("S1", 100, 1, 256, 256),  # streaming
    Shape("S2", 100, 8, 512, 512),
    Shape("S3", 50, 64, 1024, 1024),  # throughput
    Shape("S4", 200, 32, 128, 128),  # small hidden
    Shape("cell", 1, 1, 128, 128),  # one-step latency, per call
    Shape("cell256", 1, 1, 256, 256),  # the same at H = 256 (a generation loop's cell)
    Shape("L2bi", 100, 16, 256, 256, num_layers=2, bidirectional=True),
    Shape("len", 200, 32, 256, 256, ragged=True),  # lengths 20..200
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
    #: The kind's name for reference.stack_forward (the rows beyond one plain layer).
    stack: str


KINDS = {
    "lstm": Kind("lstm", "LSTM", "LSTMCell", 4, True, ref.lstm_forward, ref.lstm_backward,
                 ref.lstm_cell, "lstm"),
    "gru": Kind("gru", "GRU", "GRUCell", 3, False, ref.gru_forward, ref.gru_backward,
                ref.gru_cell, "gru"),
    "rnn": Kind("rnn", "RNN", "RNNCell", 1, False, ref.rnn_forward, ref.rnn_backward,
                ref.rnn_cell, "rnn_tanh"),
}

#: Every peer, in table order; ``dropin`` is fusedrnn.torch's drop-in module (every row
#: and mode, when torch imports); ``ort`` (ONNX Runtime) is timed in inference only;
#: ``torch_pad`` (torch on the padded batch, no packing) in ragged one-layer rows only.
PEERS = ("ours", "reference", "torch", "dropin", "ort", "torch_pad")
#: Peers timed only when asked for (``bench --openvino``): ``openvino`` (inference, not
#: the len row; bench/peer_openvino.py).
OPTIONAL_PEERS = ("openvino",)
#: The peers ours is compared with (speedup columns and the plot), with their short names.
OTHERS = {"reference": "ref", "torch": "torch", "dropin": "drop", "ort": "ort",
          "torch_pad": "tpad", "openvino": "OV"}

#: Bound on ||ours - reference|| / ||reference|| and ||peer - ours|| / ||ours|| (float32).
TOLERANCE = 1e-4


def shapes(rows=None, quick=False):
    """The rows named in `rows` (None: all, or QUICK_ROW_NAMES if quick); quick cuts T."""
    names = rows if rows is not None else (QUICK_ROW_NAMES if quick else [s.name for s in ROWS])
    return [replace(s, T=min(s.T, QUICK_T)) if quick else s for s in ROWS if s.name in names]


def grid(kinds=None, rows=None, modes=None, quick=False):
    """The (kind, shape, mode) triples to run, in table order.

    kinds / rows / modes: iterables of names (None: all; rows see `shapes`).
    """
    out = []
    for k in kinds or KINDS:
        for s in shapes(rows, quick):
            for m in modes or MODES:
                out.append((KINDS[k], s, m))
    return out


def applies(peer: str, shape: Shape, mode: str) -> bool:
    """Whether `peer` has a line for this row and mode (installed or not): ort in
    inference only; openvino in inference outside the ragged row; torch_pad in ragged
    rows of one layer and one direction only (its
    padded outputs give ours' y and h_n only there); the others (dropin too) everywhere."""
    if peer == "ort":
        return mode == "inference"
    if peer == "openvino":  # convert_model takes no PackedSequence
        return mode == "inference" and not shape.ragged
    if peer == "torch_pad":
        return shape.ragged and shape.num_layers == 1 and not shape.bidirectional
    return True


def flops(kind: Kind, shape: Shape, mode: str) -> int:
    """Forward FLOPs 2*T*B*G*H*(I+H) (the matrix products) per layer and direction, with
    I = D*H for the layers after the first, and the sum of the lengths in place of T*B
    in a ragged row (the valid steps only); training counts 3x (a cell's step too)."""
    f = 0
    for layer in range(shape.num_layers):
        i = shape.I if layer == 0 else shape.D * shape.H
        f += shape.D * 2 * shape.steps() * kind.gates * shape.H * (i + shape.H)
    return 3 * f if mode == "training" else f

