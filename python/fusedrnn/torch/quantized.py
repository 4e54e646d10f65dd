"""Quantized (inference-only) torch modules on fusedrnn's kernels, which
``fusedrnn.torch.quantize_dynamic`` (``_quantize.py``) puts in a model in place of its
recurrent modules.

Each module holds a ``fusedrnn.quantized`` module (the stored int8 / 16-bit weights,
packed for the kernels) and takes and returns tensors as its ``torch.nn`` namesake,
``PackedSequence`` included (the float drop-in's input and state handling, reused).
Inference only: an input or state that requires grad while grad is enabled raises
RuntimeError (rather than giving outputs without gradients).  See docs/quantization.md.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .. import cells as _fcells
from .. import layers as _flayers
from .. import quantized as _q
from .._stack import PADDED, Rows, forward_layer_pair, run_layers
from ..quantized.layers import QuantDirection
from ._kernel import _check_tensor, _np, on_torch_threads
from ._modules import GRU as _FrGRU
from ._modules import LSTM as _FrLSTM
from ._modules import RNN as _FrRNN
from ._modules import GRUCell as _FrGRUCell
from ._modules import LSTMCell as _FrLSTMCell
from ._modules import RNNCell as _FrRNNCell
from ._modules import _LayerMixin

__all__ = ["LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell"]

#: torch dtype -> weight mode
_MODES = {torch.qint8: "int8", torch.float16: "float16", torch.bfloat16: "bfloat16"}
_TORCH_DTYPE = {v: k for k, v in _MODES.items()}
_STORED = {"int8": torch.int8, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _mode(dtype, arg="dtype"):
    if dtype not in _MODES:
        raise ValueError(f"{arg}: expected torch.qint8, torch.float16 or torch.bfloat16, got "
                         f"{dtype!r}")
    return _MODES[dtype]


def _to_tensor(name, a):
    t = torch.from_numpy(np.array(a))
    return t.view(torch.bfloat16) if a.dtype == np.uint16 else t


def _names(hx):
    """The names of the input and the state's parts, for messages."""
    if isinstance(hx, (tuple, list)):
        return ["input", "hx[0] (h_0)", "hx[1] (c_0)"]
    return ["input", "hx"]


class _QuantBase(nn.Module):
    """The stored weights (``self._fr_q``), state_dict, repr and the inference guard."""

    _fr_q: object

    def _fr_init(self, q):
        self._fr_q = q
        self.dtype = _TORCH_DTYPE[q.dtype]
        for k in ("input_size", "hidden_size", "bias"):
            setattr(self, k, getattr(q, k))

    def _get_name(self):
        return "Quantized" + type(self).__name__

    def _fr_guard(self, tensors):
        if torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad
                                           for t in tensors):
            raise RuntimeError(
                f"{self._get_name()}: inference-only (no gradients through quantized weights), "
                "but an input requires grad; call it under torch.no_grad() or "
                "torch.inference_mode(), or detach the input")

    def _fr_float32(self, tensors, names):
        for t, name in zip(tensors, names):
            if isinstance(t, torch.Tensor) and t.dtype != torch.float32:
                raise TypeError(f"{self._get_name()}: {name} is {t.dtype}; the quantized "
                                "modules take torch.float32 tensors (convert with .float())")

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        for name, a in self._fr_q._params.items():
            destination[prefix + name] = _to_tensor(name, a)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        ours = {}
        for name in self._fr_q._shapes:
            if prefix + name in state_dict:
                ours[name] = state_dict[prefix + name]
            else:
                missing_keys.append(prefix + name)
        if strict:
            for key in state_dict:
                rest = key[len(prefix):]
                if key.startswith(prefix) and "." not in rest and rest not in self._fr_q._shapes:
                    unexpected_keys.append(key)
        try:
            self._fr_q.load_state_dict(ours, strict=False)
        except (TypeError, ValueError) as e:
            error_msgs.append(f"{self._get_name()}: {e}")

    def dequantize(self):
        """The float32 ``fusedrnn.torch`` module (a torch.nn subclass) with the
        dequantized weights."""
        m = self._fr_float_cls(*self._fr_args(), **self._fr_kwargs())
        sd = self._fr_q._float_params()
        m.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
        return m

    def _fr_kwargs(self):
        return {"bias": self.bias}


class _QuantLayer(_QuantBase):
    _fr_input = _LayerMixin._fr_input
    _fr_states = _LayerMixin._fr_states
    _fr_output = _LayerMixin._fr_output

    def _fr_init(self, q, mode_name):
        super()._fr_init(q)
        self.mode = mode_name
        for k in ("num_layers", "batch_first", "dropout", "bidirectional", "proj_size"):
            setattr(self, k, getattr(q, k))

    def _fr_args(self):
        return (self.input_size, self.hidden_size)

    def _fr_kwargs(self):
        kw = dict(num_layers=self.num_layers, bias=self.bias, batch_first=self.batch_first,
                  bidirectional=self.bidirectional)
        if self.proj_size:
            kw["proj_size"] = self.proj_size
        if self.mode.startswith("RNN"):
            kw["nonlinearity"] = self.mode[4:].lower()
        return kw

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity=relu"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        return s + f", dtype={self.dtype}"

    @on_torch_threads
    def forward(self, input, hx=None):  # noqa: A002 -- torch.nn's argument name
        owner = self._get_name()
        is_lstm = self.mode == "LSTM"
        parts = [] if hx is None else list(hx) if isinstance(hx, (tuple, list)) else [hx]
        data = input.data if isinstance(input, nn.utils.rnn.PackedSequence) else input
        self._fr_guard([data] + parts)
        self._fr_float32([data] + parts, _names(hx))
        x, bs, unbatched, sorted_idx = self._fr_input(input, owner, torch.float32)
        D = 2 if self.bidirectional else 1
        L, H = self.num_layers, self.hidden_size
        Hr = self.proj_size or H
        B = x.shape[1] if bs is None else int(bs[0])
        h_shape, c_shape = (L * D, B, Hr), (L * D, B, H)
        h0, c0 = self._fr_states(hx, owner, torch.float32, is_lstm, unbatched, h_shape,
                                 c_shape, sorted_idx)
        xn = _np(x)
        h0n = np.zeros(h_shape, np.float32) if h0 is None else _np(h0)
        c0n = None if not is_lstm else np.zeros(c_shape, np.float32) if c0 is None else _np(c0)
        if self._fr_q.dtype == "int8":
            for a, name in ((xn, "input"), (h0n, "hx"), (c0n, "hx[1] (c_0)")):
                if a is not None and not np.isfinite(a).all():
                    raise ValueError(f"{owner}: {name}: non-finite values (NaN or inf) cannot "
                                     "be quantized (int8 mode)")
        rows = PADDED if bs is None else Rows(bs)
        runs = [QuantDirection(w, rows, k % D == 1) for k, w in enumerate(self._fr_q._packed)]
        hs, cs = [], []

        def record(k, y, h, c, _xd, _ws):  # a layer-direction's results: y returned
            hs.append(h)
            cs.append(c)
            return y

        def direction(k, layer_in):
            if B == 0:
                return record(k, np.zeros(layer_in.shape[:-1] + (Hr,), np.float32),
                              np.zeros((0, Hr), np.float32), np.zeros((0, H), np.float32),
                              None, None)
            return record(k, *runs[k].forward(layer_in, h0n[k],
                                              None if c0n is None else c0n[k]))

        def pair(k, layer_in):  # a bidirectional layer: both directions side by side
            if B == 0:
                return [direction(k, layer_in), direction(k + 1, layer_in)]
            return forward_layer_pair(runs, k, layer_in, h0n, c0n, False, record)

        output = torch.from_numpy(run_layers(L, D, xn, direction, _flayers._concat, pair=pair))
        h_n = torch.from_numpy(np.stack(hs))
        c_n = torch.from_numpy(np.stack(cs)) if is_lstm else None
        return self._fr_output(input, output, h_n, c_n, is_lstm, unbatched)


class LSTM(_QuantLayer):
    """Quantized ``torch.nn.LSTM`` (inference only, ``proj_size`` included) on fusedrnn's
    kernels.  ``LSTM(input_size, hidden_size, ..., dtype=torch.qint8)``: torch.nn.LSTM's
    arguments and initialisation, then quantized; usually made by ``quantize_dynamic``
    or ``LSTM.from_float(module)``."""

    _fr_float_cls = _FrLSTM

    def __init__(self, *args, dtype=torch.qint8, **kwargs):
        super().__init__()
        self._fr_init(_from_torch(nn.LSTM(*args, **kwargs), _mode(dtype)), "LSTM")

    @classmethod
    def from_float(cls, mod, dtype=torch.qint8):
        """The quantized copy of a torch.nn (or fusedrnn.torch) recurrent module."""
        from ._quantize import _convert  # noqa: PLC0415 - it imports this module

        return _convert(mod, _mode(dtype))


class GRU(_QuantLayer):
    """Quantized ``torch.nn.GRU`` (inference only) on fusedrnn's kernels."""

    _fr_float_cls = _FrGRU

    def __init__(self, *args, dtype=torch.qint8, **kwargs):
        super().__init__()
        self._fr_init(_from_torch(nn.GRU(*args, **kwargs), _mode(dtype)), "GRU")

    from_float = LSTM.from_float


class RNN(_QuantLayer):
    """Quantized ``torch.nn.RNN`` (tanh or relu; inference only) on fusedrnn's kernels."""

    _fr_float_cls = _FrRNN

    def __init__(self, *args, dtype=torch.qint8, **kwargs):
        super().__init__()
        m = nn.RNN(*args, **kwargs)
        self._fr_init(_from_torch(m, _mode(dtype)), m.mode)

    from_float = LSTM.from_float


class _QuantCell(_QuantBase):
    def _fr_args(self):
        return (self.input_size, self.hidden_size)

    def _fr_kwargs(self):
        kw = {"bias": self.bias}
        if hasattr(self, "nonlinearity"):
            kw["nonlinearity"] = self.nonlinearity
        return kw

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s + f", dtype={self.dtype}"

    def forward(self, input, hx=None):  # noqa: A002 -- torch.nn's argument name
        q = self._fr_q
        is_lstm = q._is_lstm
        parts = [] if hx is None else list(hx) if isinstance(hx, (tuple, list)) else [hx]
        self._fr_guard([input] + parts)
        if type(input) is torch.Tensor and input.dtype is torch.float32:
            # the lean path: the quantized cell's own fast call (worded errors otherwise)
            try:
                if hx is None:
                    out = q(input.numpy())
                elif is_lstm:
                    out = q(input.numpy(), (hx[0].numpy(), hx[1].numpy()))
                else:
                    out = q(input.numpy(), hx.numpy())
                return ((torch.from_numpy(out[0]), torch.from_numpy(out[1])) if is_lstm
                        else torch.from_numpy(out))
            except (TypeError, ValueError, AttributeError, RuntimeError, IndexError):
                pass  # the checked path below raises the torch-worded error
        owner = self._get_name()
        self._fr_float32([input] + parts, _names(hx))
        _check_tensor(input, "input", torch.float32, owner)
        if input.dim() not in (1, 2) or input.shape[-1] != self.input_size:
            raise ValueError(f"{owner}: input: expected shape (B, {self.input_size}) or "
                             f"({self.input_size},), got {tuple(input.shape)}")
        shape = (self.hidden_size,) if input.dim() == 1 else (input.shape[0], self.hidden_size)
        states = None
        if hx is not None:
            from .._stack import split_state  # noqa: PLC0415

            states = []
            for t, arg in split_state(hx, "hx", is_lstm, single="a tensor", owner=owner):
                _check_tensor(t, arg, torch.float32, owner)
                if tuple(t.shape) != shape:
                    raise ValueError(f"{owner}: {arg}: expected shape {shape}, got "
                                     f"{tuple(t.shape)}")
                states.append(_np(t))
        try:
            out, _ = q.forward(_np(input), None if states is None else
                               (tuple(states) if is_lstm else states[0]), train=False)
        except ValueError as e:
            raise ValueError(f"{owner}: {str(e).replace('x: ', 'input: ', 1)}") from None
        return ((torch.from_numpy(out[0]), torch.from_numpy(out[1])) if is_lstm
                else torch.from_numpy(out))


class LSTMCell(_QuantCell):
    """Quantized ``torch.nn.LSTMCell`` (inference only) on fusedrnn's kernels."""

    _fr_float_cls = _FrLSTMCell

    def __init__(self, *args, dtype=torch.qint8, **kwargs):
        super().__init__()
        self._fr_init(_from_torch(nn.LSTMCell(*args, **kwargs), _mode(dtype)))

    from_float = LSTM.from_float


class GRUCell(_QuantCell):
    """Quantized ``torch.nn.GRUCell`` (inference only) on fusedrnn's kernels."""

    _fr_float_cls = _FrGRUCell

    def __init__(self, *args, dtype=torch.qint8, **kwargs):
        super().__init__()
        self._fr_init(_from_torch(nn.GRUCell(*args, **kwargs), _mode(dtype)))

    from_float = LSTM.from_float


class RNNCell(_QuantCell):
    """Quantized ``torch.nn.RNNCell`` (tanh or relu; inference only) on fusedrnn's kernels."""

    _fr_float_cls = _FrRNNCell

    def __init__(self, *args, dtype=torch.qint8, **kwargs):
        super().__init__()
        m = nn.RNNCell(*args, **kwargs)
        self._fr_init(_from_torch(m, _mode(dtype)))
        self.nonlinearity = m.nonlinearity

    from_float = LSTM.from_float


# -- conversion ----------------------------------------------------------------------------
_KINDS = (nn.LSTM, nn.GRU, nn.RNN, nn.LSTMCell, nn.GRUCell, nn.RNNCell)
_OURS = {nn.LSTM: LSTM, nn.GRU: GRU, nn.RNN: RNN, nn.LSTMCell: LSTMCell,
         nn.GRUCell: GRUCell, nn.RNNCell: RNNCell,
         _FrLSTM: LSTM, _FrGRU: GRU, _FrRNN: RNN, _FrLSTMCell: LSTMCell,
         _FrGRUCell: GRUCell, _FrRNNCell: RNNCell}


def _base_kind(mod):
    """The torch.nn class a module is quantized as (exact torch.nn classes and
    fusedrnn.torch's), or None."""
    t = type(mod)
    if t in _OURS:
        return next(k for k in _KINDS if issubclass(t, k))
    return None


def _from_torch(mod, mode):
    """A torch.nn (or fusedrnn.torch) recurrent module -> fusedrnn.quantized module."""
    kind = _base_kind(mod)
    owner = type(mod).__name__
    params = {n: p.detach().cpu() for n, p in mod.named_parameters()}
    for n, p in params.items():
        if not p.is_floating_point():
            raise TypeError(f"model: {owner}.{n}: expected floating parameters, got {p.dtype}")
    sd = {n: p.double().numpy() for n, p in params.items()}
    if kind in (nn.LSTM, nn.GRU, nn.RNN):
        if mod.mode not in ("LSTM", "GRU", "RNN_TANH", "RNN_RELU"):
            raise ValueError(f"model: {owner}: mode {mod.mode!r} is not supported")
        kw = dict(num_layers=mod.num_layers, bias=mod.bias, batch_first=mod.batch_first,
                  dropout=float(mod.dropout), bidirectional=mod.bidirectional,
                  dtype=np.float64)
        if kind is nn.LSTM:
            f = _flayers.LSTM(mod.input_size, mod.hidden_size, proj_size=mod.proj_size, **kw)
        elif kind is nn.GRU:
            f = _flayers.GRU(mod.input_size, mod.hidden_size, **kw)
        else:
            f = _flayers.RNN(mod.input_size, mod.hidden_size,
                             nonlinearity=mod.mode[4:].lower(), **kw)
    else:
        kw = dict(bias=mod.bias, dtype=np.float64)
        if kind is nn.RNNCell:
            kw["nonlinearity"] = mod.nonlinearity
        cls = {nn.LSTMCell: _fcells.LSTMCell, nn.GRUCell: _fcells.GRUCell,
               nn.RNNCell: _fcells.RNNCell}[kind]
        f = cls(mod.input_size, mod.hidden_size, **kw)
    f.load_state_dict(sd)
    return _q.quantize_dynamic(f, mode)
