"""One line of the benchmark: a :class:`Case` holds the inputs, the weights and one
zero-argument callable per peer, and checks every peer's results.

The peers: ``ours`` (the fusedrnn layers and cells), ``reference`` (``fusedrnn.reference``
in float32), and those of :mod:`.peer_torch` (``torch``, ``dropin``, ``torch_pad``) and
:mod:`.peer_ort` (``ort``) when their packages import.  Each computes the same thing from
the same weights and returns a dict of NumPy arrays with common keys (``y``, ``h_n``,
``c_n``, ``dx``, ``weight_ih``, ...; ``weight_ih_l1_reverse`` ... in the rows of several
layers or directions), so that one function, :func:`rel_error`, checks every peer against
the reference and against ours.
"""

from __future__ import annotations

import functools

import numpy as np

import fusedrnn as fr
from fusedrnn import reference as ref

from . import peer_openvino, peer_ort, peer_torch
from .grid import MODES, Kind, Shape, flops
from .peer_torch import as_numpy


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


def strip_layer(name: str) -> str:
    """'weight_ih_l0' -> 'weight_ih': layer parameter names to the reference's keywords."""
    return name[:-3] if name.endswith("_l0") else name


class Case:
    """One cell of the grid: inputs, weights and one callable per available peer.

    Weights come from a seeded fusedrnn layer (torch's initialisation), x and dy are
    standard normal.  Sequence rows start from zero states (each peer's default); the
    cell rows are called with a random state, ``cell(x, state)``, so that W_hh counts.
    Training computes the gradients of sum(y * dy) (a cell: sum(h' * dy)) with respect
    to x and every parameter.
    A ragged row passes its lengths to every peer (see peer_torch and peer_ort for how).
    `threads`: ORT's intra-op threads (default: the last set_threads, else ORT's default).
    """

    def __init__(self, kind: Kind, shape: Shape, mode: str, seed: int = 0, threads=None):
        if mode not in MODES:
            raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
        self.kind, self.shape, self.mode = kind, shape, mode
        self.flops = flops(kind, shape, mode)
        self.lengths = shape.lengths()
        self.module = self._make_module(seed)
        # Parameter names: the single-layer reference's keywords (weight_ih, ...) for the
        # plain rows, torch's full names (weight_ih_l1_reverse, ...) for the others.
        self._key = strip_layer if shape.is_plain else (lambda name: name)
        self.weights = {self._key(n): a for n, a in self.module.state_dict().items()}
        self._make_inputs(np.random.default_rng(seed))
        #: peer -> result keys it cannot give (left out of its checks): torch_pad's c_n
        #: is the state at step T, not at each sequence's end.
        self.omits = {"torch_pad": ("c_n",)}
        self.peers = {"ours": self._ours, "reference": self._reference}
        self._torch_module = self._dropin_module = None
        peer_torch.attach(self)
        peer_ort.attach(self, threads)
        peer_openvino.attach(self, threads)  # only when asked for (bench --openvino)

    def _make_module(self, seed):
        s = self.shape
        if s.is_cell:
            return getattr(fr, self.kind.cell)(s.I, s.H, seed=seed)
        return getattr(fr, self.kind.layer)(s.I, s.H, num_layers=s.num_layers,
                                            bidirectional=s.bidirectional, seed=seed)

    def _make_inputs(self, rng):
        """x, dy and the initial states: random for the cell row, zeros otherwise ((B, H)
        for the single-layer reference, torch's (L*D, B, H) for a stack)."""
        s = self.shape
        lead = (s.B,) if s.is_cell else (s.T, s.B)
        self.x = rng.standard_normal(lead + (s.I,)).astype(np.float32)
        self.dy = rng.standard_normal(lead + (s.D * s.H,)).astype(np.float32)
        n_states = 2 if self.kind.has_c else 1
        if s.is_cell:
            self.states0 = tuple((0.5 * rng.standard_normal((s.B, s.H))).astype(np.float32)
                                 for _ in range(n_states))
        else:
            lead = (s.B,) if s.is_plain else (s.num_layers * s.D, s.B)
            self.states0 = tuple(np.zeros(lead + (s.H,), np.float32) for _ in range(n_states))

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

    # -- helpers for the peers ---------------------------------------------------------
    def named_state(self, state) -> dict:
        """A peer's final state(s) as {'h_n': (L*D, B, H)[, 'c_n': ...]} NumPy arrays
        ((1, B, H) for one layer and one direction, and for the cell row)."""
        state = state if isinstance(state, (tuple, list)) else (state,)
        return {k: as_numpy(v).reshape(-1, self.shape.B, self.shape.H)
                for k, v in zip(("h_n", "c_n"), state)}

    def hx(self, states):
        """States as a cell or layer takes them: (h, c) for an LSTM, h otherwise."""
        return tuple(states) if self.kind.has_c else states[0]

    def grads(self, named) -> dict:
        """(name, gradient) pairs as a dict under the reference's names."""
        return {self._key(n): as_numpy(g) for n, g in named}

    # -- ours --------------------------------------------------------------------------
    def _ours(self) -> dict:
        m = self.module
        if self.shape.is_cell:
            if self.mode == "inference":
                return self.named_state(m(self.x, self.hx(self.states0)))
            state, tape = m.forward(self.x, self.hx(self.states0), train=True)
            # the loss: sum(h' * dy)
            dx, _, grads = m.backward(tape, (self.dy, None) if self.kind.has_c else self.dy)
            return {**self.named_state(state), "dx": dx, **self.grads(grads.items())}
        if self.mode == "inference":
            y, state = m(self.x, lengths=self.lengths)
            return {"y": y, **self.named_state(state)}
        y, state, tape = m.forward(self.x, lengths=self.lengths, train=True)
        dx, _, grads = m.backward(tape, self.dy)
        return {"y": y, **self.named_state(state), "dx": dx, **self.grads(grads.items())}

    # -- reference --------------------------------------------------------------------
    def _reference(self) -> dict:
        k, w, s = self.kind, self.weights, self.shape
        if s.is_cell and self.mode == "inference":
            return self.named_state(k.ref_cell(self.x, *self.states0, **w))
        if s.is_cell:  # one step of the sequence reference: y = h'
            _, *state, cache = k.ref_forward(self.x[None], *self.states0, **w)
            g = k.ref_backward(cache, self.dy[None])
            return {**self.named_state(state), "dx": g["dx"][0], **{n: g[n] for n in w}}
        if s.is_plain:
            y, *state, cache = k.ref_forward(self.x, *self.states0, **w)
        else:
            y, h_n, c_n, cache = ref.stack_forward(
                k.stack, self.x, None, w, num_layers=s.num_layers,
                bidirectional=s.bidirectional, lengths=self.lengths)
            state = (h_n, c_n) if k.has_c else (h_n,)
        out = {"y": y, **self.named_state(state)}
        if self.mode == "training":
            g = (k.ref_backward(cache, self.dy) if s.is_plain
                 else ref.stack_backward(cache, self.dy))
            out["dx"] = g["dx"]
            out.update((n, g[n]) for n in w)
        return out
