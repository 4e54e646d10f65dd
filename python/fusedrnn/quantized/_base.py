"""What the quantized layers and cells share: the weight modes, the stored (quantized)
parameters, their state_dict, packing for the kernels and dequantization.

A quantized module keeps its stored arrays privately (read-only), packed once per
version for the kernels (``fusedrnn.functional.quant_pack``); ``load_state_dict``
replaces and repacks them.  Names: the float module's (``weight_ih_l0``, ...), each
int8 weight followed by its per-row scales ``<weight name>_scale``.
"""

from __future__ import annotations

import numpy as np

from .. import functional as _fn
from .._module import IncompatibleKeys
from ..functional import _to_numpy, as_array, expect_shape
from .reference import from_bfloat16_bits, quantize_weight, to_bfloat16_bits

MODES = _fn.QUANT_MODES
_F32 = np.dtype(np.float32)
_INFERENCE_ONLY = ("{name}: a quantized module is inference-only (no {what}); for training "
                   "use dequantize(), which gives a float module back")


def as_mode(dtype) -> str:
    """'int8' | 'float16' | 'bfloat16' from a name or a NumPy dtype (np.int8, np.float16)."""
    if isinstance(dtype, str):
        if dtype in MODES:
            return dtype
        raise ValueError(f"dtype: expected one of {list(MODES)}, got {dtype!r}")
    try:
        dt = np.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"dtype: expected one of {list(MODES)} (or np.int8, np.float16), got "
                        f"{dtype!r}") from e
    if dt == np.int8:
        return "int8"
    if dt == np.float16:
        return "float16"
    raise ValueError(f"dtype: expected one of {list(MODES)} (or np.int8, np.float16), got {dt}")


def quantize_matrix(w, mode):
    """A float weight matrix -> (stored array, float32 per-row scales or None)."""
    if not np.all(np.isfinite(w)):
        raise ValueError("non-finite values cannot be quantized")
    if mode == "int8":
        return quantize_weight(w)
    if mode == "float16":
        with np.errstate(over="ignore"):
            q = np.asarray(w).astype(np.float16)
        if not np.all(np.isfinite(q)):
            raise ValueError("values beyond float16's range (65504)")
        return q, None
    return to_bfloat16_bits(np.asarray(w, np.float32)), None


def dequantize_matrix(q, scale, mode):
    """A stored weight -> float32 (q * scale in float32 for int8; exact for 16 bits)."""
    if mode == "int8":
        return q.astype(np.float32) * scale[:, None]
    if mode == "float16":
        return q.astype(np.float32)
    return from_bfloat16_bits(q)


def _frozen(a):
    f = np.frombuffer(np.ascontiguousarray(a).tobytes(), a.dtype).reshape(a.shape)
    if not f.flags.aligned:
        f = a.copy()
        f.flags.writeable = False
    return f


class QuantModule:
    """Stored parameters, state_dict, packing and dequantization (layers and cells)."""

    _num_gates: int
    _is_lstm = False
    proj_size = 0
    _float_cls: type  # the float class this one quantizes

    # -- construction ----------------------------------------------------------------
    @classmethod
    def _from_float(cls, m, mode):
        q = cls.__new__(cls)
        q._init_from(m, mode)
        return q

    def __init__(self, *args, dtype="int8", **kwargs):
        """The float class's arguments (its initialisation), then quantized in ``dtype``."""
        mode = as_mode(dtype)
        self._init_from(self._float_cls(*args, **kwargs), mode)

    def _init_stored(self, mode, groups, float_shapes, float_params):
        """groups: per layer-direction, role -> float name (the float module's _groups);
        float_params: name -> float array.  Quantizes them in ``mode``."""
        self.dtype = mode
        self._groups = groups
        self._shapes = {}  # stored name -> (shape, dtype)
        stored = {}
        wdt = {"int8": np.int8, "float16": np.float16, "bfloat16": np.uint16}[mode]
        for g in groups:
            for role, name in g.items():
                shape = float_shapes[name]
                if role.startswith("weight"):
                    self._shapes[name] = (shape, np.dtype(wdt))
                    if mode == "int8":
                        self._shapes[name + "_scale"] = ((shape[0],), _F32)
                else:
                    self._shapes[name] = (shape, _F32)
        for g in groups:
            for role, name in g.items():
                a = np.asarray(float_params[name])
                if role.startswith("weight"):
                    try:
                        q, s = quantize_matrix(a, mode)
                    except ValueError as e:
                        raise ValueError(f"module: {name}: {e}") from None
                    stored[name] = q
                    if s is not None:
                        stored[name + "_scale"] = s
                else:
                    stored[name] = a.astype(np.float32)
        self._set_stored(stored)

    def _set_stored(self, stored):
        """Freeze the arrays and pack them for the kernels (nothing changes on error)."""
        frozen = {n: _frozen(stored[n]) for n in self._shapes}
        packed = []
        for g in self._groups:
            p = {role: frozen[name] for role, name in g.items()}
            s = {role: frozen.get(name + "_scale") for role, name in g.items()}
            packed.append(_fn.quant_pack(
                self._cell, self.dtype, p["weight_ih"], p["weight_hh"], p.get("bias_ih"),
                p.get("bias_hh"), scale_ih=s["weight_ih"], scale_hh=s["weight_hh"],
                weight_hr=p.get("weight_hr"), scale_hr=s.get("weight_hr")))
        object.__setattr__(self, "_params", frozen)
        object.__setattr__(self, "_packed", packed)

    def __getstate__(self):  # pickle and copy.deepcopy: the arrays, repacked on load
        state = dict(self.__dict__)
        state.pop("_packed", None)
        return state

    def __setstate__(self, state):
        params = state.pop("_params")
        self.__dict__.update(state)
        self._set_stored(params)  # freezes copies and packs them for this process's ISA

    # -- parameters --------------------------------------------------------------------
    def __setattr__(self, name, value):
        params = self.__dict__.get("_params")
        if params is not None and name in params:
            raise AttributeError(f"{name}: parameters are read-only; change them with "
                                 "load_state_dict")
        object.__setattr__(self, name, value)

    def __getattr__(self, name):
        params = self.__dict__.get("_params")
        if params is not None and name in params:
            return params[name].view()
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def state_dict(self) -> dict:
        """Copies of the stored arrays: ``weight_ih_l0`` (int8, float16, or uint16 holding
        bfloat16 bits), ``weight_ih_l0_scale`` (float32 per-row scales, int8 only),
        ``bias_ih_l0`` (float32), ... in the float module's order."""
        return {n: a.copy() for n, a in self._params.items()}

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Replace the stored arrays (names and dtypes of ``state_dict()``; torch tensors
        accepted).  int8 weights: integers in [-127, 127]; scales: finite and > 0;
        float16 weights: floating (cast to float16); bfloat16: uint16 bits (or a torch
        bfloat16 tensor); biases: floating (cast to float32).  Nothing changes unless every
        value is valid."""
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"state_dict: expected a mapping, got {type(state_dict).__name__}")
        missing = [k for k in self._shapes if k not in state_dict]
        unexpected = [k for k in state_dict if k not in self._shapes]
        if strict and (missing or unexpected):
            parts = ([f"missing keys {missing}"] if missing else []) + (
                [f"unexpected keys {unexpected}"] if unexpected else [])
            raise ValueError(f"state_dict: {' and '.join(parts)}; expected exactly "
                             f"{list(self._shapes)}")
        new = dict(self._params)
        for name, (shape, dt) in self._shapes.items():
            if name in state_dict:
                new[name] = _stored_value(state_dict[name], f"state_dict[{name!r}]", shape, dt,
                                          scale=name.endswith("_scale"))
        self._set_stored(new)
        return IncompatibleKeys(missing, unexpected)

    def _float_params(self):
        """name -> float32 array: the weights' dequantized values, the biases."""
        out = {}
        for g in self._groups:
            for role, name in g.items():
                a = self._params[name]
                out[name] = (dequantize_matrix(a, self._params.get(name + "_scale"), self.dtype)
                             if role.startswith("weight") else a.copy())
        return out

    def dequantize(self):
        """A float32 float module (``fusedrnn.LSTM``, ...) with the same options and the
        dequantized weights (q * scale for int8; the exact 16-bit values)."""
        m = self._float_module()
        m.load_state_dict(self._float_params())
        return m

    def backward(self, *args, **kwargs):
        raise RuntimeError(_INFERENCE_ONLY.format(name=f"Quantized{type(self).__name__}.backward",
                                                  what="backward"))

    def _no_training(self):
        raise RuntimeError(_INFERENCE_ONLY.format(
            name=f"Quantized{type(self).__name__}.forward(train=True)", what="training forward"))

    def _options_repr(self):
        return f"dtype={self.dtype}"


def _stored_value(value, name, shape, dt, scale):
    if str(getattr(value, "dtype", "")) == "torch.bfloat16":  # its bits (NumPy has no bf16)
        value = value.detach().cpu().contiguous().view(_torch_int16()).numpy().view(np.uint16)
    try:
        a = _to_numpy(value)
    except Exception as e:  # noqa: BLE001 - e.g. ragged lists
        raise TypeError(f"{name}: expected an array, got {type(value).__name__}") from e
    if dt == np.int8:
        if a.dtype.kind not in "iu":
            raise TypeError(f"{name}: expected int8 values (integers), got dtype {a.dtype}")
        if a.size and (a.min() < -127 or a.max() > 127):
            raise ValueError(f"{name}: expected values in [-127, 127], got min {a.min()}, "
                             f"max {a.max()}")
        a = np.asarray(a, np.int8, order="C")
    elif dt == np.uint16:
        if a.dtype != np.uint16:
            raise TypeError(f"{name}: expected uint16 bfloat16 bits, got dtype {a.dtype}")
        a = np.ascontiguousarray(a)
    else:
        a = as_array(a, name, dt, copy=True, exact=False)
    expect_shape(a, name, shape)
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: expected finite values")
    if scale and a.size and a.min() <= 0:
        raise ValueError(f"{name}: expected scales > 0, got min {a.min()}")
    return a.copy()


def _torch_int16():
    import torch  # noqa: PLC0415 - only reached with a torch tensor in hand

    return torch.int16
