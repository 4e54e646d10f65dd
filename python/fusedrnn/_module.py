"""What the NumPy layers and cells share: parameters, state_dict, packing, the tape.

Parameters are kept privately and packed once per weight version for the kernels.
The arrays you can read (``layer.weight_ih_l0``, ``state_dict()``) are read-only
views or copies; change weights through ``load_state_dict``, which repacks.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ._stack import split_state
from .functional import as_array, as_dtype, check_size, expect_shape, pack

__all__ = ["Tape", "IncompatibleKeys"]

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
        note = " for an LSTM" + (" (either may be None)" if optional else "")
        out = []
        for (v, name), shape in zip(split_state(value, arg, self._is_lstm, parts,
                                                single=f"an array of shape {shapes[0]}",
                                                pair_note=note), shapes):
            if v is None and optional:
                out.append(None)
                continue
            a = as_array(v, name, self.dtype)
            expect_shape(a, name, shape)
            out.append(a)
        return out[0], (out[1] if self._is_lstm else None)

    def _check_tape(self, tape):
        if not isinstance(tape, Tape):
            raise TypeError("tape: expected the Tape returned by forward(..., train=True), got "
                            f"{type(tape).__name__}")
        if tape._owner is not self:
            raise ValueError("tape: it was made by a different module's forward; pass the tape "
                             "of this module's own forward call")

    def _zero_grads(self, k, xd, Hr):
        """sequence_backward's dict for an empty batch (B = 0), which runs no kernel:
        every gradient zero, as torch.nn's (xd: the direction's input, (T, 0, F))."""
        g = {"dx": np.zeros_like(xd), "dh0": np.zeros((0, Hr), self.dtype),
             "dc0": np.zeros((0, self.hidden_size), self.dtype)}
        for role, name in self._groups[k].items():
            g[role] = np.zeros(self._shapes[name], self.dtype)
        return g

    def _grads_out(self, group, g, out):
        for role, name in group.items():
            out[name] = g[role]
        return out


def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return bool(value)


def _check_nonlinearity(nonlinearity):
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
    return nonlinearity
