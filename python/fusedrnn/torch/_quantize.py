"""``fusedrnn.torch.quantize_dynamic``: torch's ``torch.ao.quantization.quantize_dynamic``
for recurrent modules, putting ``fusedrnn.torch.quantized``'s modules in a model in place of
its ``torch.nn`` (and fusedrnn.torch) LSTM, GRU, RNN and cells."""

from __future__ import annotations

import copy

import torch
from torch import nn

from .quantized import _KINDS, _OURS, GRU, LSTM, RNN, RNNCell, _base_kind, _from_torch, _mode

__all__ = ["quantize_dynamic"]


def _convert(mod, mode):
    kind = _base_kind(mod)
    if kind is None:
        raise TypeError("module: expected a torch.nn.LSTM, GRU, RNN, LSTMCell, GRUCell or "
                        "RNNCell (or fusedrnn.torch's), got "
                        f"{type(mod).__module__}.{type(mod).__qualname__}")
    cls = _OURS[type(mod)]
    new = cls.__new__(cls)
    nn.Module.__init__(new)
    q = _from_torch(mod, mode)
    if cls in (LSTM, GRU, RNN):
        new._fr_init(q, mod.mode)
    else:
        new._fr_init(q)
        if cls is RNNCell:
            new.nonlinearity = mod.nonlinearity
    return new


def _spec_mode(value, dtype):
    """The mode a qconfig_spec dict value asks for (a QConfig's weight dtype), else
    the ``dtype`` argument's."""
    weight = getattr(value, "weight", None)
    if callable(weight):
        try:
            wd = weight().dtype
        except Exception:  # noqa: BLE001 - not a torch QConfig: the dtype argument rules
            return _mode(dtype)
        return _mode(wd, "qconfig_spec (a QConfig's weight dtype)")
    return _mode(dtype)


def quantize_dynamic(model, qconfig_spec=None, dtype=torch.qint8, inplace=False):
    """torch.ao.quantization.quantize_dynamic's meaning, for recurrent modules, on
    fusedrnn's kernels.

    Replaces every ``nn.LSTM``, ``nn.GRU``, ``nn.RNN``, ``nn.LSTMCell``, ``nn.GRUCell``
    and ``nn.RNNCell`` in ``model`` (exact classes, and fusedrnn.torch's drop-ins; the
    model itself too) by ``fusedrnn.torch.quantized.LSTM`` etc., inference-only copies
    with int8 (``dtype=torch.qint8``), float16 or bfloat16 weights.  ``qconfig_spec``:
    None (all six kinds), a set of those types and/or submodule names, or a dict from
    types / names to a QConfig (its weight dtype chooses the mode) or None (left
    float).  Other modules (``nn.Linear`` too) are left as they are.  ``inplace=False``
    converts a deep copy.  Returns the model (or the root's replacement).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    default_mode = _mode(dtype)
    if qconfig_spec is None:
        spec = dict.fromkeys(_KINDS, True)
    elif isinstance(qconfig_spec, (set, frozenset, list, tuple)):
        spec = dict.fromkeys(qconfig_spec, True)
    elif isinstance(qconfig_spec, dict):
        spec = dict(qconfig_spec)
    else:
        raise TypeError("qconfig_spec: expected None, a set of module types / names or a dict, "
                        f"got {type(qconfig_spec).__name__}")
    for key in spec:
        if not isinstance(key, (str, type)):
            raise TypeError(f"qconfig_spec: expected module types or names as keys, got {key!r}")

    def mode_for(name, mod):
        kind = _base_kind(mod)
        if kind is None:
            return None
        hits = [spec[k] for k in (type(mod), kind) if k in spec]
        # names: the module's own name or one of its parents' ("" is the whole model)
        parts = name.split(".") if name else []
        for i in range(len(parts), -1, -1):
            prefix = ".".join(parts[:i])
            if prefix in spec:
                hits.insert(0, spec[prefix])
                break
        if not hits or hits[0] is None or hits[0] is False:
            return None
        return default_mode if hits[0] is True else _spec_mode(hits[0], dtype)

    if not inplace:
        model = copy.deepcopy(model)
    mode = mode_for("", model)
    if mode is not None:
        return _convert(model, mode)
    done = {}
    for name, parent in list(model.named_modules()):
        for child_name, child in list(parent._modules.items()):
            if child is None:
                continue
            full = f"{name}.{child_name}" if name else child_name
            m = mode_for(full, child)
            if m is not None:
                if id(child) not in done:
                    done[id(child)] = _convert(child, m)
                parent._modules[child_name] = done[id(child)]
    return model
