"""Quantized (inference-only) layers: ``fusedrnn.quantized.LSTM / GRU / RNN``.

Made by ``fusedrnn.quantize_dynamic(layer, dtype)`` from a float layer (or built
directly with the float layer's constructor arguments plus ``dtype``: the float
layer's initialisation, then quantized).  Called as the float layers are; the layer x
direction loop, the rows of ``lengths`` and the reverse direction are the float layers'
own (``fusedrnn._stack``), each layer-direction one ``functional.quant_forward`` call.
"""

from __future__ import annotations

import numpy as np

from .. import functional as _fn
from .. import layers as _float
from .._stack import Direction, Plan, check_lengths, forward_layer_pair, run_layers, split_state
from ..functional import _to_numpy, as_array, expect_shape
from ._base import QuantModule

__all__ = ["LSTM", "GRU", "RNN"]

_F32 = np.float32


class QuantDirection(Direction):
    """A layer-direction whose packed weights are quantized: inference only."""

    __slots__ = ()

    def forward(self, x, h0, c0, train=False):
        xd = self.order(x)
        y, h_n, c_n = _fn.quant_forward(self.packed, xd, h0, c0,
                                        batch_sizes=self.rows.batch_sizes)
        return self.order(y), h_n, c_n, xd, None

    def forward_kernels_pair(self, packed, xd, h0, c0, train=False):
        return [r + (None,) for r in _fn.quant_forward_pair(packed, xd, h0, c0,
                                                            batch_sizes=self.rows.batch_sizes)]


def as_input(value, name):
    """float32 (float16 converted exactly, float64 rounded to float32: far below the
    quantization's error) C-contiguous array."""
    a = _to_numpy(value)
    if isinstance(a, np.ndarray) and a.dtype == np.float64:
        a = a.astype(_F32)
    return as_array(a, name, np.dtype(_F32))


def check_finite(a, name):
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: non-finite values (NaN or inf) cannot be quantized "
                         "(int8 mode)")


class _QuantRNNBase(QuantModule):
    def _init_from(self, m, mode):
        for k in ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
                  "bidirectional", "proj_size", "reset_after", "nonlinearity", "_cell"):
            if hasattr(m, k):
                object.__setattr__(self, k, getattr(m, k))
        self._init_stored(mode, [dict(g) for g in m._groups], dict(m._shapes), m.state_dict())

    def _float_module(self):
        kw = {}
        if hasattr(self, "reset_after"):
            kw["reset_after"] = self.reset_after
        if hasattr(self, "nonlinearity"):
            kw["nonlinearity"] = self.nonlinearity
        if self._is_lstm:
            kw["proj_size"] = self.proj_size
        return self._float_cls(self.input_size, self.hidden_size, num_layers=self.num_layers,
                               bias=self.bias, batch_first=self.batch_first,
                               dropout=self.dropout, bidirectional=self.bidirectional, **kw)

    def __repr__(self):
        return (f"Quantized{type(self).__name__}({_float.layer_args(self, dropout=False)}, "
                f"dtype={self.dtype})")

    @property
    def _D(self):
        return 2 if self.bidirectional else 1

    @property
    def _h_out(self):
        return self.proj_size or self.hidden_size

    def __call__(self, x, hx=None, lengths=None):
        """Inference: (output, h_n) or, for an LSTM, (output, (h_n, c_n)); float32."""
        y, state, _ = self.forward(x, hx, lengths=lengths, train=False)
        return y, state

    def forward(self, x, hx=None, lengths=None, train=True):
        """As the float layer's ``forward(..., train=False)``: (output, state, None).

        x: float32 (float16 and float64 accepted, rounded to float32), shapes as the
        float layer's; hx, lengths likewise.  The signature is the float layer's, whose
        default is a training call: ``train=True`` (the default) raises RuntimeError, so
        pass ``train=False`` (or call the layer)."""
        if train:
            self._no_training()
        xa = as_input(x, "x")
        if xa.ndim not in (2, 3):
            raise ValueError("x: expected 3 dimensions "
                             f"({'B, T' if self.batch_first else 'T, B'}, input_size) or 2 "
                             f"(T, input_size) for an unbatched sequence, got shape {xa.shape}")
        if xa.shape[-1] != self.input_size:
            raise ValueError(f"x: expected input_size {self.input_size} on the last axis, got "
                             f"shape {xa.shape}")
        unbatched = xa.ndim == 2
        layout = "unbatched" if unbatched else ("batch_first" if self.batch_first else "seq")
        xk = _float._RNNBase._from_layout(xa, layout)
        T, B = xk.shape[0], xk.shape[1]
        if T == 0:
            raise ValueError(f"x: expected at least one time step, got shape {xa.shape}")
        if lengths is not None:
            if unbatched:
                raise ValueError("lengths: not supported for an unbatched (2-D) x; add a batch "
                                 "axis")
            lengths = check_lengths(lengths, T, B)
            if B == 0 or lengths.min() == T:
                lengths = None
        int8 = self.dtype == "int8"
        if int8:
            check_finite(xk, "x")
        D, Hr, H = self._D, self._h_out, self.hidden_size
        LD = self.num_layers * D
        lead = (LD,) if unbatched else (LD, B)
        shapes = (lead + (Hr,), lead + (H,))
        if hx is None:
            h0 = np.zeros((LD, B, Hr), _F32)
            c0 = np.zeros((LD, B, H), _F32) if self._is_lstm else None
        else:
            parts = []
            for (v, name), shape in zip(split_state(hx, "hx", self._is_lstm,
                                                    single=f"an array of shape {shapes[0]}",
                                                    pair_note=" for an LSTM"), shapes):
                a = as_input(v, name)
                expect_shape(a, name, shape)
                if int8:
                    check_finite(a, name)
                parts.append(a)
            h0 = parts[0].reshape(LD, B, Hr)
            c0 = parts[1].reshape(LD, B, H) if self._is_lstm else None
        plan = Plan(T, B, lengths)
        runs = [QuantDirection(w, plan.rows, k % D == 1) for k, w in enumerate(self._packed)]
        h_n = np.empty_like(h0)
        c_n = np.empty_like(c0) if self._is_lstm else None

        def record(k, y, hk, ck, _xd, _ws):  # a layer-direction's results: y returned
            h_n[k] = plan.unsort(hk)
            if c_n is not None:
                c_n[k] = plan.unsort(ck)
            return y

        def direction(k, layer_in):
            if B == 0:
                return np.zeros(layer_in.shape[:-1] + (Hr,), _F32)
            return record(k, *runs[k].forward(
                layer_in, plan.sort(h0[k]), None if c0 is None else plan.sort(c0[k])))

        def pair(k, layer_in):  # a bidirectional layer: both directions side by side
            if B == 0:
                return [direction(k, layer_in), direction(k + 1, layer_in)]
            return forward_layer_pair(runs, k, layer_in, h0, c0, False, record, plan.sort)

        out = run_layers(self.num_layers, D, plan.pack(xk), direction, _float._concat,
                         pair=pair)
        y = _float._RNNBase._to_layout(plan.unpack(out), layout)
        h_n = h_n.reshape(shapes[0])
        state = (h_n, c_n.reshape(shapes[1])) if self._is_lstm else h_n
        return y, state, None


class LSTM(_QuantRNNBase):
    """Quantized torch.nn.LSTM-like layer (inference only; ``proj_size`` included).

    ``LSTM(input_size, hidden_size, ..., dtype="int8", seed=None)``: the float
    ``fusedrnn.LSTM``'s arguments (its initialisation), weights stored in ``dtype``.
    Usually made by ``fusedrnn.quantize_dynamic(float_lstm)``."""

    _num_gates = 4
    _is_lstm = True
    _float_cls = _float.LSTM


class GRU(_QuantRNNBase):
    """Quantized GRU layer (both ``reset_after`` forms), inference only; constructor as
    ``fusedrnn.GRU``'s plus ``dtype``."""

    _num_gates = 3
    _float_cls = _float.GRU


class RNN(_QuantRNNBase):
    """Quantized Elman RNN layer (tanh or relu), inference only; constructor as
    ``fusedrnn.RNN``'s plus ``dtype``."""

    _num_gates = 1
    _float_cls = _float.RNN
