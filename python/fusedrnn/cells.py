"""torch.nn-style recurrent cells on NumPy arrays: one step per call.

``LSTMCell / GRUCell / RNNCell`` follow ``torch.nn.LSTMCell / GRUCell / RNNCell``
(constructor arguments, parameter names and shapes, initialisation, states), plus
``dtype``, ``seed``, ``reset_after`` (GRUCell) and the explicit training pair
``forward(..., train=True)`` -> ``(state, tape)`` / ``backward(tape, dstate)``.
"""

from __future__ import annotations

import numpy as np

from ._module import Tape, _check_bool, _check_nonlinearity, _Module
from .functional import (
    _to_numpy,
    as_array,
    cell_call_unchecked,
    sequence_backward,
    sequence_forward,
    step,
)

__all__ = ["LSTMCell", "GRUCell", "RNNCell"]


class _CellBase(_Module):
    _one_step = True

    def __init__(self, input_size, hidden_size, bias=True, *, dtype=np.float32, seed=None):
        self._setup(input_size, hidden_size, bias, dtype, seed, [("", input_size)])

    def __repr__(self):
        s = f"{type(self).__name__}({self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        if not getattr(self, "reset_after", True):
            s += ", reset_after=False"
        if self.dtype != np.float32:
            s += f", dtype={self.dtype}"
        return s + ")"

    @classmethod
    def from_layer(cls, rnn, layer=0, direction=0):
        """A new cell holding copies of the weights of ``rnn``'s (layer, direction), with
        its dtype, bias and options: one step of it is one step of that layer-direction
        (direction 1 runs the sequence backwards).  ``rnn``: a layer of the same kind
        with proj_size 0."""
        from ._moves import cell_from_layer  # noqa: PLC0415

        return cell_from_layer(cls, rnn, layer, direction)

    def __call__(self, x, hx=None):
        """One step (inference): returns h' or, for an LSTMCell, (h', c')."""
        # The per-step fast path: batched C-contiguous arrays of this dtype and shape go
        # straight to the kernel (cell_call_unchecked returns None for anything else,
        # which then takes the general path: conversions and worded errors).
        cached = self._packed
        if cached is not None and cached[0] is self._params:
            out = cell_call_unchecked(cached[1][0], x, hx)
            if out is not None:
                return out
        state, _ = self.forward(x, hx, train=False)
        return state

    def forward(self, x, hx=None, train=True):
        """One step.  Returns (state, tape); tape is None unless ``train``.

        x: (B, input_size) or (input_size,) unbatched.  hx: (B, hidden_size) (or
        (hidden_size,)); for an LSTMCell a tuple (h, c).  None means zeros.
        """
        xa = as_array(x, "x", self.dtype)
        if xa.ndim not in (1, 2):
            raise ValueError("x: expected 2 dimensions (B, input_size) or 1 (input_size,), got "
                             f"shape {xa.shape}")
        if xa.shape[-1] != self.input_size:
            raise ValueError(f"x: expected input_size {self.input_size} on the last axis, got "
                             f"shape {xa.shape}")
        B = 1 if xa.ndim == 1 else xa.shape[0]  # B = 0 (an empty batch): as torch.nn
        xk = xa.reshape(1, B, self.input_size)
        if train and np.may_share_memory(xk, _to_numpy(x)):
            xk = xk.copy()
        state_shape = (self.hidden_size,) if xa.ndim == 1 else (B, self.hidden_size)
        shapes = (state_shape, state_shape)
        H = self.hidden_size
        if hx is None:
            h0 = np.zeros((B, H), self.dtype)
            c0 = np.zeros((B, H), self.dtype) if self._is_lstm else None
        else:
            h0, c0 = self._state_arrays(hx, "hx", ("h_0", "c_0"), shapes, optional=False)
            h0 = h0.reshape(B, H)
            c0 = None if c0 is None else c0.reshape(B, H)
        packed = self._weights()[0]
        if B == 0:  # no kernel call: empty states (ws None on the tape: zero gradients)
            h_n = np.zeros((0, H), self.dtype)
            tape = None
            if train:
                tape = Tape(self, [(packed, xk, None)], None, xa.shape, state_shape, shapes,
                            "cell")
            return self._state_out(h_n, h_n.copy() if self._is_lstm else None,
                                   state_shape), tape
        if not train and packed.one_step:
            h_n, c_n = step(packed, np.ascontiguousarray(xk[0]), h0, c0)
            return self._state_out(h_n, c_n, state_shape), None
        _, h_n, c_n, ws = sequence_forward(packed, xk, h0, c0, train=train)
        tape = None
        if train:
            tape = Tape(self, [(packed, xk, ws)], None, xa.shape, state_shape, shapes, "cell")
        return self._state_out(h_n, c_n, state_shape), tape

    def _state_out(self, h, c, shape):
        h = h.reshape(shape)
        return (h, c.reshape(shape)) if self._is_lstm else h

    def backward(self, tape, dstate):
        """Gradients of one step.  dstate: dL/dh' (for an LSTMCell a tuple (dh', dc'),
        either may be None).  Returns (dx, dstate0, grads): dx like x, dstate0 like hx,
        grads keyed like state_dict()."""
        self._check_tape(tape)
        packed, xk, ws = tape._runs[0]
        B, H = xk.shape[1], self.hidden_size
        dh, dc = (None, None) if dstate is None else self._state_arrays(
            dstate, "dstate", ("dh_n", "dc_n"), tape._state_shapes, optional=True)
        dh = None if dh is None else dh.reshape(B, H)
        dc = None if dc is None else dc.reshape(B, H)
        if ws is None:  # an empty batch
            g = self._zero_grads(0, xk, H)
        else:
            g = sequence_backward(packed, xk, ws, np.zeros((1, B, H), self.dtype), dh, dc)
        dx = g["dx"].reshape(tape._x_shape)
        return (dx, self._state_out(g["dh0"], g.get("dc0"), tape._y_shape),
                self._grads_out(self._groups[0], g, {}))


class LSTMCell(_CellBase):
    """One LSTM step, as torch.nn.LSTMCell."""

    _num_gates = 4
    _is_lstm = True
    _cell = "lstm"


class GRUCell(_CellBase):
    """One GRU step, as torch.nn.GRUCell (``reset_after=False``: Cho et al. form)."""

    _num_gates = 3

    def __init__(self, input_size, hidden_size, bias=True, *, reset_after=True,
                 dtype=np.float32, seed=None):
        self.reset_after = _check_bool(reset_after, "reset_after")
        self._cell = "gru" if self.reset_after else "gru_reset_before"
        super().__init__(input_size, hidden_size, bias, dtype=dtype, seed=seed)


class RNNCell(_CellBase):
    """One Elman RNN step with tanh or relu, as torch.nn.RNNCell."""

    _num_gates = 1

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", *,
                 dtype=np.float32, seed=None):
        self.nonlinearity = _check_nonlinearity(nonlinearity)
        self._cell = "rnn_" + nonlinearity
        super().__init__(input_size, hidden_size, bias, dtype=dtype, seed=seed)
