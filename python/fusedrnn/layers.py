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
    reverse_rows,
    sequence_backward,
    sequence_forward,
)

__all__ = ["LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell", "Tape", "IncompatibleKeys"]


class IncompatibleKeys(NamedTuple):
    missing_keys: list
    unexpected_keys: list


class Tape:
    """What a training forward saved for its backward.  Opaque; pass it to ``backward``.

    It holds the inputs of every layer and direction, the workspaces of the kernels and
    the packed weights that the forward used, so the gradients belong to that forward
    even if the weights were changed in between.  A tape can be used for several
    backward calls.  ``dropout_masks`` (layers with dropout, training) lists the masks
    applied to the outputs of layers 0 .. num_layers-2, each (T, B, D*H_out) in time-major
    order, already scaled by 1/(1-dropout).
    """

    __slots__ = ("_owner", "_runs", "_plan", "_x_shape", "_y_shape", "_state_shapes",
                 "_layout", "dropout_masks", "_packed_masks")

    def __init__(self, owner, runs, plan, x_shape, y_shape, state_shapes, layout,
                 dropout_masks=(), packed_masks=()):
        self._owner, self._runs, self._plan = owner, runs, plan
        self._x_shape, self._y_shape = x_shape, y_shape
        self._state_shapes, self._layout = state_shapes, layout
        self.dropout_masks = list(dropout_masks)
        self._packed_masks = list(packed_masks)

    def __repr__(self):
        return f"<fusedrnn.Tape of {type(self._owner).__name__}, y shape {self._y_shape}>"


class _Module:
    """Parameters, state_dict and packing shared by layers and cells."""

    _num_gates: int
    _is_lstm = False
    _one_step = False  # cells also pack for _core.step
    proj_size = 0

    def _setup(self, input_size, hidden_size, bias, dtype, seed, groups):
        """Creates the parameters.  groups: (name suffix, input size) per layer-direction,
        in torch's order; returns the generator, for draws after the initialisation."""
        self.input_size = check_size(input_size, "input_size")
        self.hidden_size = check_size(hidden_size, "hidden_size")
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"bias: expected a bool, got {type(bias).__name__}")
        self.bias = bool(bias)
        self.dtype = as_dtype(dtype)
        G, H, P = self._num_gates, self.hidden_size, self.proj_size
        # per layer-direction: role (weight_ih, ...) -> state_dict name; name -> shape
        self._groups, self._shapes = [], {}
        for suffix, in_size in groups:
            roles = {"weight_ih": (G * H, in_size), "weight_hh": (G * H, P or H)}
            if self.bias:
                roles.update({"bias_ih": (G * H,), "bias_hh": (G * H,)})
            if P:
                roles["weight_hr"] = (P, H)
            self._groups.append({role: role + suffix for role in roles})
            self._shapes.update({role + suffix: shape for role, shape in roles.items()})
        # torch's default initialisation: every parameter uniform in +-1/sqrt(hidden_size).
        rng = np.random.default_rng(seed)
        k = 1.0 / math.sqrt(H)
        try:
            params = {n: rng.uniform(-k, k, s).astype(self.dtype)
                      for n, s in self._shapes.items()}
        except (MemoryError, ValueError) as e:  # sizes whose parameters cannot exist
            n = sum(math.prod(s) for s in self._shapes.values())
            raise MemoryError(f"input_size, hidden_size: {type(self).__name__}({input_size}, "
                              f"{hidden_size}) needs {n} parameters, more than fit in "
                              "memory") from e
        self._set_params(params)
        return rng

    def __setattr__(self, name, value):
        params = self.__dict__.get("_params")
        if params is not None and name in params:
            raise AttributeError(f"{name}: parameters are read-only; change them with "
                                 "load_state_dict")
        object.__setattr__(self, name, value)

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
        self._packed = None  # (params, packed copies): packed lazily, once per weight version

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
        """The packed weights of every layer-direction, in torch's order.

        The cache is the pair (parameters, packed copy): it serves only the parameter
        dict it was packed from, so a load_state_dict in another thread while this one
        packs can never leave a stale or mixed packed copy behind (the pair is one
        attribute, replaced in one step)."""
        cached = self._packed
        params = self._params
        if cached is not None and cached[0] is params:
            return cached[1]
        packed = []
        for g in self._groups:
            p = {role: params[name] for role, name in g.items()}
            packed.append(pack(self._cell, p["weight_ih"], p["weight_hh"], p.get("bias_ih"),
                               p.get("bias_hh"), weight_hr=p.get("weight_hr"),
                               one_step=self._one_step))
        self._packed = (params, packed)
        return packed

    # -- shared argument handling ------------------------------------------------------
    def _state_arrays(self, value, arg, parts, shapes, optional):
        """A state argument as arrays of the given shapes: (h, c) for an LSTM (a tuple
        of two), (h, None) otherwise.  With ``optional`` a part may be None."""

        def one(v, name, shape):
            if v is None and optional:
                return None
            a = as_array(v, name, self.dtype)
            expect_shape(a, name, shape)
            return a

        if self._is_lstm:
            if not isinstance(value, (tuple, list)) or len(value) != 2:
                either = " (either may be None)" if optional else ""
                raise TypeError(f"{arg}: expected a tuple ({parts[0]}, {parts[1]}) for an LSTM"
                                f"{either}, got {type(value).__name__}")
            return (one(value[0], f"{arg}[0] ({parts[0]})", shapes[0]),
                    one(value[1], f"{arg}[1] ({parts[1]})", shapes[1]))
        if isinstance(value, (tuple, list)):
            raise TypeError(f"{arg}: expected an array of shape {shapes[0]}, got a "
                            f"{type(value).__name__}")
        return one(value, arg, shapes[0]), None

    def _check_tape(self, tape):
        if not isinstance(tape, Tape):
            raise TypeError("tape: expected the Tape returned by forward(..., train=True), got "
                            f"{type(tape).__name__}")
        if tape._owner is not self:
            raise ValueError("tape: it was made by a different module's forward; pass the tape "
                             "of this module's own forward call")

    def _grads_out(self, group, g, out):
        for role, name in group.items():
            out[name] = g[role]
        return out


# ------------------------------------------------------------------------------- layers
class _Plan:
    """How a batch maps onto the kernels' packed rows (see fusedrnn/dims.h).

    The batch is sorted by length, longest first (stable, as torch's PackedSequence);
    step t then runs rows [0, bs[t]), stored at packed rows off[t] + j (steps past the
    longest sequence are left out).  ``index`` gives
    the packed rows' positions in the flattened time-major (T*B) padded array (None:
    no lengths, the identity), ``order`` the sorted batch (None: identity), and
    ``reverse`` the permutation of packed rows that pairs step t of a row with its
    step len-1-t (what a reverse direction sees; it is its own inverse).
    """

    def __init__(self, T, B, lengths):
        self.T, self.B = T, B
        if lengths is None:
            self.order = self.index = None
            self.bs = np.full(T, B, np.int64)
            self.N = T * B
            self.reverse = reverse_rows(self.bs)
            return
        order = np.argsort(-lengths, kind="stable")
        sl = lengths[order]
        # Steps past the longest sequence have no rows: the kernels stop before them.
        steps = int(sl[0])
        self.bs = (sl[None, :] > np.arange(steps)[:, None]).sum(1).astype(np.int64)
        off = np.concatenate([[0], np.cumsum(self.bs)])
        self.N = int(off[-1])
        t_of = np.repeat(np.arange(steps), self.bs)
        j_of = np.arange(self.N) - off[t_of]
        self.order = order
        self.index = t_of * B + order[j_of]
        self.reverse = reverse_rows(self.bs)

    def pack(self, a):
        """(T, B, F) -> (N, F) packed rows."""
        flat = a.reshape(self.T * self.B, a.shape[-1])
        return flat if self.index is None else flat[self.index]

    def unpack(self, p):
        """(N, F) packed rows -> (T, B, F), zero past each sequence's end."""
        if self.index is None:
            return p.reshape(self.T, self.B, p.shape[-1])
        out = np.zeros((self.T * self.B, p.shape[-1]), p.dtype)
        out[self.index] = p
        return out.reshape(self.T, self.B, p.shape[-1])

    def sort(self, s):
        """(B, F) in the caller's batch order -> sorted (C-contiguous)."""
        return np.ascontiguousarray(s if self.order is None else s[self.order])

    def unsort(self, s):
        if self.order is None:
            return s
        out = np.empty_like(s)
        out[self.order] = s
        return out


def _check_lengths(lengths, T, B):
    a = _to_numpy(lengths)
    if a.dtype.kind not in "iu":
        raise ValueError(f"lengths: expected integers, got dtype {a.dtype}")
    if a.shape != (B,):
        raise ValueError(f"lengths: expected shape ({B},) (one length per sequence), got "
                         f"{a.shape}")
    if B and (a.min() < 1 or a.max() > T):
        raise ValueError(f"lengths: expected values in [1, {T}] (T = {T} steps), got min "
                         f"{a.min()}, max {a.max()}")
    return a.astype(np.int64)


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
        s = f"{type(self).__name__}({self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        if not getattr(self, "reset_after", True):
            s += ", reset_after=False"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
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
        if T == 0 or B == 0:
            raise ValueError(f"x: expected at least one time step and one sequence, got shape "
                             f"{xa.shape}")
        if lengths is not None:
            if unbatched:
                raise ValueError("lengths: not supported for an unbatched (2-D) x; add a batch "
                                 "axis")
            lengths = _check_lengths(lengths, T, B)
            if lengths.min() == T:
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
        plan = _Plan(T, B, lengths)
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
        packed_w = self._weights()
        D, Hr, H = self._D, self._h_out, self.hidden_size
        p = self.dropout
        inp = plan.pack(xk)
        if train and np.may_share_memory(inp, _to_numpy(x)):
            inp = inp.copy()  # the tape must not see later in-place changes of the caller's x
        h_n = np.empty_like(h0)
        c_n = np.empty_like(c0) if self._is_lstm else None
        runs, masks, packed_masks = [], [], []
        for layer in range(self.num_layers):
            outs = []
            for d in range(D):
                k = layer * D + d
                xd = inp if d == 0 else np.ascontiguousarray(inp[plan.reverse])
                y, hk, ck, ws = sequence_forward(
                    packed_w[k], xd, plan.sort(h0[k]), plan.sort(c0[k]) if c0 is not None else
                    None, train=train, batch_sizes=plan.bs)
                h_n[k] = plan.unsort(hk)
                if c_n is not None:
                    c_n[k] = plan.unsort(ck)
                outs.append(y if d == 0 else y[plan.reverse])
                if train:
                    runs.append((packed_w[k], xd, ws))
            out = outs[0] if D == 1 else np.concatenate(outs, axis=1)
            if train and p > 0 and layer < self.num_layers - 1:
                mask = self._dropout_mask(plan, D * Hr)
                masks.append(mask)
                packed_masks.append(plan.pack(mask))
                out = out * packed_masks[-1]
            inp = out
        y = plan.unpack(inp)
        y_shape = x_shape[:-1] + (D * Hr,)
        tape = None
        if train:
            tape = Tape(self, runs, plan, x_shape, y_shape, shapes, layout, masks,
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
        T, B = plan.T, plan.B
        if dy is None:
            d_out = np.zeros((plan.N, D * Hr), self.dtype)
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
        for layer in reversed(range(L)):
            d_inp = None
            for d in range(D):
                k = layer * D + d
                packed_w, xd, ws = tape._runs[k]
                dyd = d_out[:, d * Hr:(d + 1) * Hr]
                dyd = np.ascontiguousarray(dyd if d == 0 else dyd[plan.reverse])
                g = sequence_backward(packed_w, xd, ws, dyd,
                                      None if dh is None else plan.sort(dh[k]),
                                      None if dc is None else plan.sort(dc[k]),
                                      batch_sizes=plan.bs)
                dx = g["dx"] if d == 0 else g["dx"][plan.reverse]
                d_inp = dx if d_inp is None else d_inp + dx
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


def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return bool(value)


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
        # straight to the kernel (_core.cell_call returns None for anything else, which
        # then takes the general path: conversions and worded errors).
        cached = self._packed
        if cached is not None and cached[0] is self._params:
            out = _core.cell_call(cached[1][0], x, hx)
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
        if not train and packed.one_step:
            h_n, c_n = _core.step(packed, np.ascontiguousarray(xk[0]), h0, c0)
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
        dy = np.zeros((1, B, H), self.dtype)
        g = sequence_backward(packed, xk, ws, dy, dh, dc)
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
