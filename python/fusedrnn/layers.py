"""torch.nn-style recurrent layers and cells on NumPy arrays.

Constructor arguments, parameter names and shapes, initialisation, state layouts and
return values follow ``torch.nn.LSTM / GRU / RNN`` and ``torch.nn.LSTMCell / GRUCell /
RNNCell``.  Additions: ``dtype`` (float32 or float64) and ``seed`` on every class,
``reset_after`` on the GRU classes, and the explicit training pair
``forward(..., train=True)`` -> ``(outputs, tape)`` / ``backward(tape, ...)``.

This module holds the layers; the cells are in ``fusedrnn.cells``, what both share
(parameters, state_dict, packing, the tape) in ``fusedrnn._module``, and the path to
the kernels that the layers share with ``fusedrnn.torch`` in ``fusedrnn._stack``.
Parameters are kept privately and packed once per weight version for the kernels.
The arrays you can read (``layer.weight_ih_l0``, ``state_dict()``) are read-only
views or copies; change weights through ``load_state_dict``, which repacks.
"""

from __future__ import annotations

import numbers

import numpy as np

from ._module import IncompatibleKeys, Tape, _check_bool, _check_nonlinearity, _Module
from ._stack import (Direction, Plan, backward_pair, check_lengths, forward_layer_pair,
                     run_layers)
from .cells import GRUCell, LSTMCell, RNNCell
from .functional import _to_numpy, as_array, check_size, expect_shape

__all__ = ["LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell", "Tape", "IncompatibleKeys"]


def _concat(outs):
    return np.concatenate(outs, axis=-1)


def layer_args(m, *, dropout=True) -> str:
    """The constructor arguments of layer m that differ from the defaults, as a repr
    writes them ("10, 20, num_layers=2, bidirectional=True"); ``dropout=False`` leaves
    dropout out (the quantized layers: inference only)."""
    s = f"{m.input_size}, {m.hidden_size}"
    if m.num_layers != 1:
        s += f", num_layers={m.num_layers}"
    if getattr(m, "nonlinearity", "tanh") != "tanh":
        s += f", nonlinearity={m.nonlinearity}"
    if not getattr(m, "reset_after", True):
        s += ", reset_after=False"
    if not m.bias:
        s += ", bias=False"
    if m.batch_first:
        s += ", batch_first=True"
    if dropout and m.dropout:
        s += f", dropout={m.dropout}"
    if m.bidirectional:
        s += ", bidirectional=True"
    if m.proj_size:
        s += f", proj_size={m.proj_size}"
    return s


class _RNNBase(_Module):
    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, *, dtype=np.float32, seed=None):
        self.num_layers = check_size(num_layers, "num_layers")
        if not isinstance(dropout, numbers.Real) or isinstance(dropout, bool) or not (
            0.0 <= dropout <= 1.0
        ):
            raise ValueError(f"dropout: expected a number in [0, 1], got {dropout!r}")
        self.dropout = float(dropout)
        self.batch_first = _check_bool(batch_first, "batch_first")
        self.bidirectional = _check_bool(bidirectional, "bidirectional")
        self.proj_size = check_size(proj_size, "proj_size", minimum=0)
        if self.proj_size and self.proj_size >= check_size(hidden_size, "hidden_size"):
            raise ValueError(f"proj_size: expected less than hidden_size ({hidden_size}), got "
                             f"{self.proj_size}")
        D = 2 if self.bidirectional else 1
        out = self.proj_size or hidden_size
        groups = [(f"_l{layer}" + ("_reverse" if d else ""),
                   input_size if layer == 0 else D * out)
                  for layer in range(self.num_layers) for d in range(D)]
        rng = self._setup(input_size, hidden_size, bias, dtype, seed, groups)
        # Dropout masks: drawn from this generator, seeded from `seed` after the
        # initialisation, advancing with every training call.
        self._dropout_rng = np.random.default_rng(rng.integers(2**63))

    def __repr__(self):
        s = f"{type(self).__name__}({layer_args(self)}"
        if self.dtype != np.float32:
            s += f", dtype={self.dtype}"
        return s + ")"

    def load_cell(self, cell, layer=0, direction=0):
        """Copy a cell's weights into this layer's (layer, direction) slot, through
        load_state_dict; the reverse of ``*Cell.from_layer``.  The cell's kind, sizes,
        dtype, bias and options must match the slot's (proj_size 0 only)."""
        from ._moves import load_cell  # noqa: PLC0415

        load_cell(self, cell, layer, direction)

    @property
    def _D(self):
        return 2 if self.bidirectional else 1

    @property
    def _h_out(self):
        return self.proj_size or self.hidden_size

    def _prepare(self, x, hx, lengths, train):
        xa = as_array(x, "x", self.dtype)
        if xa.ndim not in (2, 3):
            raise ValueError("x: expected 3 dimensions "
                             f"({'B, T' if self.batch_first else 'T, B'}, input_size) or 2 "
                             f"(T, input_size) for an unbatched sequence, got shape {xa.shape}")
        if xa.shape[-1] != self.input_size:
            raise ValueError(f"x: expected input_size {self.input_size} on the last axis, got "
                             f"shape {xa.shape}")
        unbatched = xa.ndim == 2
        layout = "unbatched" if unbatched else ("batch_first" if self.batch_first else "seq")
        xk = self._from_layout(xa, layout)
        T, B = xk.shape[0], xk.shape[1]
        if T == 0:  # (an empty batch, B = 0, is accepted, as torch.nn does)
            raise ValueError(f"x: expected at least one time step, got shape {xa.shape}")
        if lengths is not None:
            if unbatched:
                raise ValueError("lengths: not supported for an unbatched (2-D) x; add a batch "
                                 "axis")
            lengths = check_lengths(lengths, T, B)
            if B == 0 or lengths.min() == T:
                lengths = None  # every sequence is full: the padded path, same numbers
        LD = self.num_layers * self._D
        lead = (LD,) if unbatched else (LD, B)
        shapes = (lead + (self._h_out,), lead + (self.hidden_size,))
        if hx is None:
            h0 = np.zeros((LD, B, self._h_out), self.dtype)
            c0 = np.zeros((LD, B, self.hidden_size), self.dtype) if self._is_lstm else None
        else:
            h0, c0 = self._state_arrays(hx, "hx", ("h_0", "c_0"), shapes, optional=False)
            h0 = h0.reshape(LD, B, self._h_out)
            c0 = None if c0 is None else c0.reshape(LD, B, self.hidden_size)
        plan = Plan(T, B, lengths)
        return xk, h0, c0, plan, shapes, layout, xa.shape

    @staticmethod
    def _from_layout(a, layout):
        """The caller's array -> a C-contiguous (T, B, F) kernel array."""
        if layout == "unbatched":
            a = a[:, None, :]
        elif layout == "batch_first":
            a = a.transpose(1, 0, 2)
        return np.ascontiguousarray(a)

    @staticmethod
    def _to_layout(a, layout):
        """(T, B, F) kernel array -> the caller's layout."""
        if layout == "unbatched":
            return a[:, 0, :]
        if layout == "batch_first":
            return np.ascontiguousarray(a.transpose(1, 0, 2))
        return a

    def __call__(self, x, hx=None, lengths=None):
        """Inference: returns (output, h_n) or, for an LSTM, (output, (h_n, c_n))."""
        y, state, _ = self.forward(x, hx, lengths=lengths, train=False)
        return y, state

    def forward(self, x, hx=None, lengths=None, train=True):
        """Run the layer.  Returns (output, state, tape); tape is None unless ``train``.

        x: (T, B, input_size), (B, T, input_size) with batch_first, or (T, input_size)
        unbatched.  hx: initial state(s) h_0 of shape (num_layers * D, B, H_out) (D = 2
        if bidirectional, H_out = proj_size or hidden_size; (num_layers * D, H_out)
        unbatched); for an LSTM a tuple (h_0, c_0), c_0 with hidden_size columns.  None
        means zeros.  lengths: None, or each sequence's length (B,) in [1, T], any order:
        torch's packed-sequence semantics (outputs past a sequence's end are zero, its
        final state is taken at its own last step, a reverse direction starts there).
        output: (T, B, D * H_out) (batch_first: (B, T, ...)), forward direction first.
        """
        xk, h0, c0, plan, shapes, layout, x_shape = self._prepare(x, hx, lengths, train)
        D, Hr = self._D, self._h_out
        B = plan.B
        runs = [Direction(w, plan.rows, k % D == 1) for k, w in enumerate(self._weights())]
        inp = plan.pack(xk)
        if train and np.may_share_memory(inp, _to_numpy(x)):
            inp = inp.copy()  # the tape must not see later in-place changes of the caller's x
        h_n = np.empty_like(h0)
        c_n = np.empty_like(c0) if self._is_lstm else None
        saved, masks, packed_masks = [], [], []

        def record(k, y, hk, ck, xd, ws):  # a layer-direction's results: y returned
            h_n[k] = plan.unsort(hk)
            if c_n is not None:
                c_n[k] = plan.unsort(ck)
            if train:
                saved.append((runs[k], xd, ws))
            return y

        def direction(k, layer_in):
            if B == 0:  # an empty batch: no kernel call, empty outputs (ws None on the tape)
                if train:
                    saved.append((runs[k], layer_in, None))
                return np.zeros(layer_in.shape[:-1] + (Hr,), self.dtype)
            return record(k, *runs[k].forward(
                layer_in, plan.sort(h0[k]), None if c0 is None else plan.sort(c0[k]), train))

        def pair(k, layer_in):  # a bidirectional layer: both directions side by side
            if B == 0:
                return [direction(k, layer_in), direction(k + 1, layer_in)]
            return forward_layer_pair(runs, k, layer_in, h0, c0, train, record, plan.sort)

        def dropout(out):
            mask = self._dropout_mask(plan, D * Hr)
            masks.append(mask)
            packed_masks.append(plan.pack(mask))
            return out * packed_masks[-1]

        out = run_layers(self.num_layers, D, inp, direction, _concat,
                         dropout if train and self.dropout > 0 else None, pair)
        y = plan.unpack(out)
        y_shape = x_shape[:-1] + (D * Hr,)
        tape = None
        if train:
            tape = Tape(self, saved, plan, x_shape, y_shape, shapes, layout, masks,
                        packed_masks)
        state = self._state_out(h_n, c_n, shapes)
        return self._to_layout(y, layout), state, tape

    def _dropout_mask(self, plan, F):
        p = self.dropout
        if p >= 1.0:
            return np.zeros((plan.T, plan.B, F), self.dtype)
        keep = self._dropout_rng.random((plan.T, plan.B, F)) >= p
        return (keep / (1.0 - p)).astype(self.dtype)

    def _state_out(self, h, c, shapes):
        h = h.reshape(shapes[0])
        return (h, c.reshape(shapes[1])) if self._is_lstm else h

    def backward(self, tape, dy=None, dstate=None):
        """Gradients for the forward call that made ``tape``.

        dy: dL/d(output), same shape as the output (None: zeros).  dstate: dL/d(h_n)
        (for an LSTM a tuple (dh_n, dc_n), either may be None), or None.
        Returns (dx, dstate0, grads): dx like x, dstate0 like hx, grads a dict with the
        keys of state_dict().
        """
        self._check_tape(tape)
        plan = tape._plan
        D, Hr, H, L = self._D, self._h_out, self.hidden_size, self.num_layers
        B = plan.B
        if dy is None:
            d_out = np.zeros(plan.shape(D * Hr), self.dtype)
        else:
            dya = as_array(dy, "dy", self.dtype)
            expect_shape(dya, "dy", tape._y_shape)
            d_out = plan.pack(self._from_layout(dya, tape._layout))
        dh, dc = (None, None) if dstate is None else self._state_arrays(
            dstate, "dstate", ("dh_n", "dc_n"), tape._state_shapes, optional=True)
        if dh is not None:
            dh = dh.reshape(L * D, B, Hr)
        if dc is not None:
            dc = dc.reshape(L * D, B, H)
        dh0 = np.empty((L * D, B, Hr), self.dtype)
        dc0 = np.empty((L * D, B, H), self.dtype) if self._is_lstm else None
        grads = {}
        # The forward's loop run backwards (fusedrnn.torch leaves this to autograd).
        for layer in reversed(range(L)):
            ks = range(layer * D, layer * D + D)
            saved = [tape._runs[k] for k in ks]
            dys = [d_out[..., d * Hr:(d + 1) * Hr] for d in range(D)]
            dhs = None if dh is None else tuple(plan.sort(dh[k]) for k in ks)
            dcs = None if dc is None else tuple(plan.sort(dc[k]) for k in ks)
            if saved[0][2] is None:  # an empty batch: zero gradients, as torch.nn
                gs = [self._zero_grads(k, xd, Hr) for k, (_, xd, _) in zip(ks, saved)]
            elif D == 2:  # both directions side by side
                gs = backward_pair([r for r, _, _ in saved], [xd for _, xd, _ in saved],
                                   [ws for _, _, ws in saved], dys, dhs, dcs)
            else:
                run, xd, ws = saved[0]
                gs = [run.backward(xd, ws, dys[0], None if dhs is None else dhs[0],
                                   None if dcs is None else dcs[0])]
            d_inp = None
            for k, g in zip(ks, gs):
                d_inp = g["dx"] if d_inp is None else d_inp + g["dx"]
                dh0[k] = plan.unsort(g["dh0"])
                if dc0 is not None:
                    dc0[k] = plan.unsort(g["dc0"])
                self._grads_out(self._groups[k], g, grads)
            if layer > 0 and tape._packed_masks:
                d_inp = d_inp * tape._packed_masks[layer - 1]
            d_out = d_inp
        dx = self._to_layout(plan.unpack(d_out), tape._layout)
        grads = {name: grads[name] for name in self._shapes}  # state_dict order
        return dx, self._state_out(dh0, dc0, tape._state_shapes), grads


class LSTM(_RNNBase):
    """Long short-term memory layer, as torch.nn.LSTM (gate rows i, f, g, o).

    ``proj_size > 0``: LSTM with projections (h = W_hr (o * tanh(c)), proj_size units).
    """

    _num_gates = 4
    _is_lstm = True
    _cell = "lstm"

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, *, dtype=np.float32, seed=None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size, dtype=dtype, seed=seed)


class GRU(_RNNBase):
    """Gated recurrent unit layer, as torch.nn.GRU (gate rows r, z, n).

    ``reset_after=True`` is torch's (and cuDNN's) form; ``reset_after=False`` is the
    original of Cho et al. (2014), where the reset gate multiplies the state before the
    candidate's recurrent product: n = tanh(W_in x + b_in + W_hn (r * h) + b_hn).
    """

    _num_gates = 3

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, *, reset_after=True, dtype=np.float32,
                 seed=None):
        self.reset_after = _check_bool(reset_after, "reset_after")
        self._cell = "gru" if self.reset_after else "gru_reset_before"
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, dtype=dtype, seed=seed)


class RNN(_RNNBase):
    """Elman RNN layer with tanh or relu, as torch.nn.RNN."""

    _num_gates = 1

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, *, dtype=np.float32,
                 seed=None):
        self.nonlinearity = _check_nonlinearity(nonlinearity)
        self._cell = "rnn_" + nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, dtype=dtype, seed=seed)

