"""Quantized (inference-only) cells: ``fusedrnn.quantized.LSTMCell / GRUCell / RNNCell``.

One step per call, as the float cells.  The per-step path is lean: a batched
C-contiguous float32 x (B, I) and states of the right shapes go straight to the
kernel (``functional.quant_forward_unchecked`` with T = 1, which checks shapes, dtypes
and finiteness itself); anything else, or an error, takes the checked path
(conversions, worded errors).
"""

from __future__ import annotations

import numpy as np

from .. import cells as _float
from .. import functional as _fn
from .._stack import split_state
from ..functional import expect_shape
from ._base import QuantModule
from .layers import as_input, check_finite

__all__ = ["LSTMCell", "GRUCell", "RNNCell"]

_F32 = np.dtype(np.float32)
_ndarray = np.ndarray
_zeros = np.zeros
_qcall = _fn.quant_forward_unchecked


class _QuantCellBase(QuantModule):
    def _init_from(self, m, mode):
        for k in ("input_size", "hidden_size", "bias", "reset_after", "nonlinearity", "_cell"):
            if hasattr(m, k):
                object.__setattr__(self, k, getattr(m, k))
        self._init_stored(mode, [dict(g) for g in m._groups], dict(m._shapes), m.state_dict())

    def _float_module(self):
        kw = {}
        if hasattr(self, "reset_after"):
            kw["reset_after"] = self.reset_after
        if hasattr(self, "nonlinearity"):
            kw["nonlinearity"] = self.nonlinearity
        return self._float_cls(self.input_size, self.hidden_size, bias=self.bias, **kw)

    def __repr__(self):
        s = f"Quantized{type(self).__name__}({self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        if not getattr(self, "reset_after", True):
            s += ", reset_after=False"
        return s + f", dtype={self.dtype})"

    def __call__(self, x, hx=None):
        """One step (inference): h' or, for an LSTMCell, (h', c'); float32."""
        # The per-step path: a batched x and states that need no conversion go straight to
        # the kernel, which checks them; anything else (or an error) takes the checked
        # path below, which converts or raises the worded error.
        if type(x) is _ndarray:
            try:
                if hx is None:
                    h = _zeros((x.shape[0], self.hidden_size), _F32)
                    c = h if self._is_lstm else None
                elif self._is_lstm:
                    h, c = hx
                else:
                    h, c = hx, None
                _, h1, c1 = _qcall(self._packed[0], x[None], h, c)
                return h1 if c is None else (h1, c1)
            except (TypeError, ValueError, IndexError):
                pass
        state, _ = self.forward(x, hx, train=False)
        return state

    def forward(self, x, hx=None, train=True):
        """As the float cell's ``forward(..., train=False)``: (state, None).  x: float32
        (float16 and float64 accepted, rounded to float32) (B, input_size) or
        (input_size,); hx likewise.  ``train=True`` (the float cells' default) raises
        RuntimeError: pass ``train=False`` or call the cell."""
        if train:
            self._no_training()
        xa = as_input(x, "x")
        if xa.ndim not in (1, 2):
            raise ValueError("x: expected 2 dimensions (B, input_size) or 1 (input_size,), got "
                             f"shape {xa.shape}")
        if xa.shape[-1] != self.input_size:
            raise ValueError(f"x: expected input_size {self.input_size} on the last axis, got "
                             f"shape {xa.shape}")
        int8 = self.dtype == "int8"
        if int8:
            check_finite(xa, "x")
        H = self.hidden_size
        B = 1 if xa.ndim == 1 else xa.shape[0]
        shape = (H,) if xa.ndim == 1 else (B, H)
        if hx is None:
            h0 = np.zeros((B, H), _F32)
            c0 = np.zeros((B, H), _F32) if self._is_lstm else None
        else:
            parts = []
            for v, name in split_state(hx, "hx", self._is_lstm, ("h_0", "c_0"),
                                       single=f"an array of shape {shape}",
                                       pair_note=" for an LSTMCell"):
                a = as_input(v, name)
                expect_shape(a, name, shape)
                if int8:
                    check_finite(a, name)
                parts.append(a.reshape(B, H))
            h0, c0 = parts[0], (parts[1] if self._is_lstm else None)
        if B == 0:
            h1 = np.zeros((0, H), _F32)
            c1 = h1.copy() if self._is_lstm else None
        else:
            _, h1, c1 = _fn.quant_forward(self._packed[0], xa.reshape(1, B, self.input_size),
                                          h0, c0)
        h1 = h1.reshape(shape)
        return ((h1, c1.reshape(shape)) if self._is_lstm else h1), None


class LSTMCell(_QuantCellBase):
    """Quantized LSTM cell (inference only); constructor as ``fusedrnn.LSTMCell``'s plus
    ``dtype``.  Usually made by ``fusedrnn.quantize_dynamic(cell)``."""

    _num_gates = 4
    _is_lstm = True
    _float_cls = _float.LSTMCell


class GRUCell(_QuantCellBase):
    """Quantized GRU cell (both ``reset_after`` forms), inference only."""

    _num_gates = 3
    _float_cls = _float.GRUCell


class RNNCell(_QuantCellBase):
    """Quantized Elman RNN cell (tanh or relu), inference only."""

    _num_gates = 1
    _float_cls = _float.RNNCell
