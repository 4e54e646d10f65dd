"""torch.nn-style recurrent layers and cells on NumPy arrays.

Constructor arguments, parameter names and shapes, initialisation, state layouts and
return values follow ``torch.nn.LSTM / GRU / RNN`` and ``torch.nn.LSTMCell / GRUCell /
RNNCell``.  Additions: ``dtype`` (float32 or float64) and ``seed`` on every class,
``reset_after`` on the GRU classes, and the explicit training pair
``forward(..., train=True)`` -> ``(outputs, tape)`` / ``backward(tape, ...)``.

Parameters are kept privately and packed once per weight version for the kernels.
The arrays you can read (``layer.weight_ih_l0``, ``state_dict()``) are read-only
views or copies; change weights through ``load_state_dict``, which repacks.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy as np

from . import _core
from .functional import (
    _to_numpy,
    as_array,
    as_dtype,
    check_size,
    expect_shape,
    pack,
    sequence_backward,
    sequence_forward,
)

__all__ = ["LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell", "Tape", "IncompatibleKeys"]


class IncompatibleKeys(NamedTuple):
    missing_keys: list
    unexpected_keys: list


class Tape:
    """What a training forward saved for its backward.  Opaque; pass it to ``backward``.

    It holds the input, the workspace of the kernels and the packed weights that the
    forward used, so the gradients belong to that forward even if the weights were
    changed in between.  A tape can be used for several backward calls.
    """

    __slots__ = ("_owner", "_packed", "_x", "_workspace", "_y_shape", "_state_shape",
                 "_x_shape", "_layout")

    def __init__(self, owner, packed, x, workspace, x_shape, y_shape, state_shape, layout):
        self._owner, self._packed, self._x, self._workspace = owner, packed, x, workspace
        self._x_shape, self._y_shape = x_shape, y_shape
        self._state_shape, self._layout = state_shape, layout

    def __repr__(self):
        return f"<fusedrnn.Tape of {type(self._owner).__name__}, y shape {self._y_shape}>"


class _Module:
    """Parameters, state_dict and packing shared by layers and cells."""

    _num_gates: int
    _is_lstm = False
    _one_step = False  # cells also pack for _core.step

    def _setup(self, input_size, hidden_size, bias, dtype, seed, names):
        self.input_size = check_size(input_size, "input_size")
        self.hidden_size = check_size(hidden_size, "hidden_size")
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"bias: expected a bool, got {type(bias).__name__}")
        self.bias = bool(bias)
        self.dtype = as_dtype(dtype)
        G, H, I = self._num_gates, self.hidden_size, self.input_size
        shapes = {"weight_ih": (G * H, I), "weight_hh": (G * H, H)}
        if self.bias:
            shapes.update({"bias_ih": (G * H,), "bias_hh": (G * H,)})
        # state_dict name -> shape, and -> role (weight_ih, weight_hh, bias_ih, bias_hh)
        self._shapes = {names[role]: shape for role, shape in shapes.items()}
        self._roles = {names[role]: role for role in shapes}
        # torch's default initialisation: every parameter uniform in +-1/sqrt(hidden_size).
        rng = np.random.default_rng(seed)
        k = 1.0 / math.sqrt(H)
        params = {n: rng.uniform(-k, k, s).astype(self.dtype) for n, s in self._shapes.items()}
        self._set_params(params)

    def __repr__(self):
        # torch's style: positional sizes, then only the options that differ from default.
        s = f"{type(self).__name__}({self.input_size}, {self.hidden_size}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        if not getattr(self, "reset_after", True):
            s += ", reset_after=False"
        if not self.bias:
            s += ", bias=False"
        if getattr(self, "batch_first", False):
            s += ", batch_first=True"
        if self.dtype != np.float32:
            s += f", dtype={self.dtype}"
        return s + ")"

    def _set_params(self, params):
        # Keep each parameter in an immutable bytes object: a read-only array that owns
        # its memory could be made writeable again (and then silently disagree with the
        # packed copy the kernels use); one whose base is `bytes` cannot.
        frozen = {}
        for n, a in params.items():
            f = np.frombuffer(np.ascontiguousarray(a).tobytes(), a.dtype).reshape(a.shape)
            if not f.flags.aligned:  # never seen with CPython's allocator; stay safe anyway
                f = a.copy()
                f.flags.writeable = False
            frozen[n] = f
        self._params = frozen
        self._packed = None  # packed lazily, once per weight version

    def __getattr__(self, name):
        params = self.__dict__.get("_params")
        if params is not None and name in params:
            return params[name].view()  # read-only: change weights with load_state_dict
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def state_dict(self) -> dict:
        """A dict of copies of the parameters, with torch's names, shapes and order."""
        return {n: a.copy() for n, a in self._params.items()}

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Replace the parameters (torch tensors and any array-likes accepted).

        Floating values are cast to the module's dtype, as torch's copy_ does; shapes
        must match exactly.  With ``strict`` (the default) the keys must be exactly
        those of ``state_dict()``.  Nothing changes unless every value is valid.
        """
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"state_dict: expected a mapping, got {type(state_dict).__name__}")
        missing = [k for k in self._shapes if k not in state_dict]
        unexpected = [k for k in state_dict if k not in self._shapes]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected}")
            raise ValueError(
                f"state_dict: {' and '.join(parts)}; expected exactly {list(self._shapes)}"
            )
        new = dict(self._params)
        for name, shape in self._shapes.items():
            if name not in state_dict:
                continue
            a = as_array(state_dict[name], f"state_dict[{name!r}]", self.dtype, copy=True,
                         exact=False)
            expect_shape(a, f"state_dict[{name!r}]", shape)
            new[name] = a
        self._set_params(new)
        return IncompatibleKeys(missing, unexpected)

    def _weights(self):
        if self._packed is None:
            p = {self._roles[n]: a for n, a in self._params.items()}
            self._packed = pack(self._cell, p["weight_ih"], p["weight_hh"], p.get("bias_ih"),
                                p.get("bias_hh"), one_step=self._one_step)
        return self._packed

    # -- shared argument handling ------------------------------------------------------
    def _state_in(self, hx, shape, B):
        """Initial states as (B, H) arrays: (h0, c0) for LSTM (c0 None otherwise)."""
        if hx is None:
            H = self.hidden_size
            return np.zeros((B, H), self.dtype), (
                np.zeros((B, H), self.dtype) if self._is_lstm else None)
        return self._state_arrays(hx, "hx", ("h_0", "c_0"), shape, B, parts_optional=False)

    def _dstate_in(self, dstate, shape, B):
        """Gradients of the final states as (B, H) arrays or None: (dh_n, dc_n)."""
        if dstate is None:
            return None, None
        return self._state_arrays(dstate, "dstate", ("dh_n", "dc_n"), shape, B,
                                  parts_optional=True)

    def _state_arrays(self, value, arg, parts, shape, B, parts_optional):
        """A state argument as (B, H) arrays (h, c): a tuple of two for an LSTM, one
        array otherwise (c is then None).  Each part must have `shape`; with
        ``parts_optional`` a part may be None."""

        def one(v, name):
            if v is None and parts_optional:
                return None
            a = as_array(v, name, self.dtype)
            expect_shape(a, name, shape)
            return a.reshape(B, self.hidden_size)

        if self._is_lstm:
            if not isinstance(value, (tuple, list)) or len(value) != 2:
                either = " (either may be None)" if parts_optional else ""
                raise TypeError(f"{arg}: expected a tuple ({parts[0]}, {parts[1]}) for an LSTM"
                                f"{either}, got {type(value).__name__}")
            return (one(value[0], f"{arg}[0] ({parts[0]})"),
                    one(value[1], f"{arg}[1] ({parts[1]})"))
        if isinstance(value, (tuple, list)):
            raise TypeError(f"{arg}: expected an array of shape {shape}, got a "
                            f"{type(value).__name__}")
        return one(value, arg), None

    def _check_tape(self, tape):
        if not isinstance(tape, Tape):
            raise TypeError("tape: expected the Tape returned by forward(..., train=True), got "
                            f"{type(tape).__name__}")
        if tape._owner is not self:
            raise ValueError("tape: it was made by a different module's forward; pass the tape "
                             "of this module's own forward call")

    def _run(self, x_kernel, h0, c0, train, x_shape, y_shape, state_shape, layout):
        """The kernel call; returns (y, h_n, c_n, tape), tape None unless ``train``."""
        packed = self._weights()
        y, h_n, c_n, ws = sequence_forward(packed, x_kernel, h0, c0, train=train)
        tape = None
        if train:
            tape = Tape(self, packed, x_kernel, ws, x_shape, y_shape, state_shape, layout)
        return y, h_n, c_n, tape

    def _state_out(self, h, c, state_shape):
        """Final (or initial-state gradient) arrays in the caller's state layout."""
        h = h.reshape(state_shape)
        return (h, c.reshape(state_shape)) if self._is_lstm else h

    def _grads_out(self, g):
        inv = {role: name for name, role in self._roles.items()}
        return {inv[role]: g[role] for role in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
                if role in g}


# ------------------------------------------------------------------------------- layers
class _RNNBase(_Module):
    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, *, dtype=np.float32, seed=None):
        self.num_layers = check_size(num_layers, "num_layers")
        if not isinstance(dropout, numbers.Real) or isinstance(dropout, bool) or not (
            0.0 <= dropout <= 1.0
        ):
            raise ValueError(f"dropout: expected a number in [0, 1], got {dropout!r}")
        self.dropout = float(dropout)
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.proj_size = check_size(proj_size, "proj_size", minimum=0)
        if self.proj_size and self.proj_size >= hidden_size:
            raise ValueError(f"proj_size: expected less than hidden_size ({hidden_size}), got "
                             f"{self.proj_size}")
        for option, unsupported in (
            ("num_layers", self.num_layers > 1),
            ("bidirectional", self.bidirectional),
            ("proj_size", self.proj_size > 0),
            ("dropout", self.dropout > 0),
        ):
            if unsupported:
                raise NotImplementedError(
                    f"{option}: this version of fusedrnn supports one layer, one direction, "
                    "no projection and no dropout")
        names = {r: f"{r}_l0" for r in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        self._setup(input_size, hidden_size, bias, dtype, seed, names)

    def _prepare(self, x, hx, lengths, train):
        if lengths is not None:
            raise NotImplementedError(
                "lengths: variable-length sequences are not supported by this version of "
                "fusedrnn; pad them and pass lengths=None")
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
        if T == 0 or B == 0:
            raise ValueError(f"x: expected at least one time step and one sequence, got shape "
                             f"{xa.shape}")
        if train and np.may_share_memory(xk, _to_numpy(x)):
            xk = xk.copy()  # the tape must not see later in-place changes of the caller's x
        state_shape = (1, self.hidden_size) if unbatched else (1, B, self.hidden_size)
        h0, c0 = self._state_in(hx, state_shape, B)
        return xk, h0, c0, state_shape, layout, xa.shape

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

    def __call__(self, x, hx=None):
        """Inference: returns (output, h_n) or, for an LSTM, (output, (h_n, c_n))."""
        y, state, _ = self.forward(x, hx, train=False)
        return y, state

    def forward(self, x, hx=None, lengths=None, train=True):
        """Run the layer.  Returns (output, state, tape); tape is None unless ``train``.

        x: (T, B, input_size), (B, T, input_size) with batch_first, or (T, input_size)
        unbatched.  hx: initial state(s) of shape (1, B, hidden_size) ((1, hidden_size)
        unbatched); for an LSTM a tuple (h_0, c_0).  None means zeros.
        """
        xk, h0, c0, state_shape, layout, x_shape = self._prepare(x, hx, lengths, train)
        y_shape = x_shape[:-1] + (self.hidden_size,)
        y, h_n, c_n, tape = self._run(xk, h0, c0, train, x_shape, y_shape, state_shape, layout)
        return self._to_layout(y, layout), self._state_out(h_n, c_n, state_shape), tape

    def backward(self, tape, dy=None, dstate=None):
        """Gradients for the forward call that made ``tape``.

        dy: dL/d(output), same shape as the output (None: zeros).  dstate: dL/d(h_n)
        (for an LSTM a tuple (dh_n, dc_n), either may be None), or None.
        Returns (dx, dstate0, grads): dx like x, dstate0 like hx, grads a dict with the
        keys of state_dict().
        """
        self._check_tape(tape)
        T, B = tape._x.shape[:2]
        if dy is None:
            dyk = np.zeros((T, B, self.hidden_size), self.dtype)
        else:
            dya = as_array(dy, "dy", self.dtype)
            expect_shape(dya, "dy", tape._y_shape)
            dyk = self._from_layout(dya, tape._layout)
        dh, dc = self._dstate_in(dstate, tape._state_shape, B)
        g = sequence_backward(tape._packed, tape._x, tape._workspace, dyk, dh, dc)
        dx = self._to_layout(g["dx"], tape._layout)
        dstate0 = self._state_out(g["dh0"], g.get("dc0"), tape._state_shape)
        return dx, dstate0, self._grads_out(g)


class LSTM(_RNNBase):
    """Long short-term memory layer, as torch.nn.LSTM (gate rows i, f, g, o)."""

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
        self.reset_after = bool(reset_after)
        self._cell = "gru" if self.reset_after else "gru_reset_before"
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, dtype=dtype, seed=seed)


def _check_nonlinearity(nonlinearity):
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
    return nonlinearity


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


# -------------------------------------------------------------------------------- cells
class _CellBase(_Module):
    _one_step = True

    def __init__(self, input_size, hidden_size, bias=True, *, dtype=np.float32, seed=None):
        names = {r: r for r in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        self._setup(input_size, hidden_size, bias, dtype, seed, names)

    def __call__(self, x, hx=None):
        """One step (inference): returns h' or, for an LSTMCell, (h', c')."""
        # The per-step fast path: batched C-contiguous arrays of this dtype and shape go
        # straight to the kernel (_core.cell_call returns None for anything else, which
        # then takes the general path: conversions and worded errors).
        packed = self._packed
        if packed is not None:
            out = _core.cell_call(packed, x, hx)
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
        B = 1 if xa.ndim == 1 else xa.shape[0]
        if B == 0:
            raise ValueError(f"x: expected at least one row, got shape {xa.shape}")
        xk = xa.reshape(1, B, self.input_size)
        if train and np.may_share_memory(xk, _to_numpy(x)):
            xk = xk.copy()
        state_shape = (self.hidden_size,) if xa.ndim == 1 else (B, self.hidden_size)
        h0, c0 = self._state_in(hx, state_shape, B)
        packed = self._weights()
        if not train and packed.one_step:
            h_n, c_n = _core.step(packed, np.ascontiguousarray(xk[0]), h0, c0)
            return self._state_out(h_n, c_n, state_shape), None
        _, h_n, c_n, tape = self._run(xk, h0, c0, train, xa.shape, state_shape, state_shape,
                                      "cell")
        return self._state_out(h_n, c_n, state_shape), tape

    def backward(self, tape, dstate):
        """Gradients of one step.  dstate: dL/dh' (for an LSTMCell a tuple (dh', dc'),
        either may be None).  Returns (dx, dstate0, grads): dx like x, dstate0 like hx,
        grads keyed like state_dict()."""
        self._check_tape(tape)
        B = tape._x.shape[1]
        dh, dc = self._dstate_in(dstate, tape._state_shape, B)
        dy = np.zeros((1, B, self.hidden_size), self.dtype)
        g = sequence_backward(tape._packed, tape._x, tape._workspace, dy, dh, dc)
        dx = g["dx"].reshape(tape._x_shape)
        return dx, self._state_out(g["dh0"], g.get("dc0"), tape._state_shape), self._grads_out(g)


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
        self.reset_after = bool(reset_after)
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
