"""The drop-ins' per-module call plans: a repeat call in a few attribute reads.

A forward that passed every check leaves a plan on its module: what it checked (the
parameters' identities, storage addresses and autograd versions; the input's and the
states' type, dtype, shape and contiguity) and what it built (the packed weights, the
kernel runs, zero states).  The next forward with the same key skips the checks and
the packing and goes straight to the kernels; anything else (a new shape, dtype or
state form, a parameter changed through torch, a tensor subclass, a non-contiguous
view...) takes the checked path, which raises the worded errors and makes a new plan.

``weight_cache(False)`` (a context manager) turns plans and the packed-weight cache
off: every call then repacks the weights from the parameters, which is what
``torch.autograd.gradcheck`` over a module's own parameters needs (it perturbs them
through ``.data``, which no version counter sees).
"""

from __future__ import annotations

import contextlib

import torch

_Tensor = torch.Tensor
_strided = torch.strided

#: [enabled, epoch]: the packed-weight cache and the plans are on (see weight_cache);
#: the epoch advances when a weight_cache(False) block ends, which retires every plan
#: and packed copy made before it (the block may have written weights unseen).
_CACHE = [True, 0]


@contextlib.contextmanager
def weight_cache(enabled: bool = True):
    """Within the block, fusedrnn.torch modules cache their packed weights (and call
    plans) only if ``enabled``.  ``weight_cache(False)``: every forward packs the weights
    from the parameters as they are now, so writes that no autograd version counter
    sees (``p.data``, ``torch.autograd.gradcheck``'s perturbations) are read.  Costs a
    repack per call.  When such a block ends, every module repacks at its next call.
    Process-wide (not per thread); blocks nest."""
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled: expected a bool, got {type(enabled).__name__}")
    old = _CACHE[0]
    _CACHE[0] = enabled
    try:
        yield
    finally:
        _CACHE[0] = old
        if not enabled:
            _CACHE[1] += 1


def cache_epoch() -> int:
    return _CACHE[1]


def _tensor_ok(t, dtype, shape) -> bool:
    """t is a plain contiguous dense CPU tensor of this dtype and shape."""
    return (type(t) is _Tensor and t.dtype is dtype and t.shape == shape and t.is_cpu
            and t.layout is _strided and t.is_contiguous())


class Plan:
    """What one checked forward established, and the test that a call matches it.

    ``params``: the weights in the kernels' order (the module's own parameters;
    ``ids``: the identities of the module's ``_parameters`` values, None included);
    ``held``: detached views that keep their storages alive, so that an address in
    the key can belong to no other tensor while the plan exists; ``x_shape``: the
    input's shape; ``hx``: None (no state), or the shapes of its parts (a tuple of one
    for a tensor, of two for an LSTM's pair); ``data``: what the module's fast call
    needs (packed weights, runs, zero states...)."""

    __slots__ = ("params", "ids", "versions", "ptrs", "held", "dtype", "x_shape", "hx",
                 "extra", "data", "epoch", "fast")

    def __init__(self, module, params, dtype, x_shape, hx_shapes, extra, data):
        params = tuple(params)
        self.params = params
        self.ids = tuple(map(id, module._parameters.values()))
        self.versions = [p._version for p in params]
        self.ptrs = [p.data_ptr() for p in params]
        self.held = [p.detach() for p in params]
        self.dtype, self.x_shape, self.hx, self.extra = dtype, x_shape, hx_shapes, extra
        self.data = data
        self.epoch = _CACHE[1]
        self.fast = None

    def fast_key(self, module, packed, hx_kind, h_shape, zeros, rows):
        """The plan as the compiled cell call reads it (``fusedrnn._core.tensor_cell``,
        csrc/bindings/tensor_step.cc: its Field enum names these places): the same test
        as ``states``, in one call."""
        self.fast = (packed, _CACHE, self.epoch, tuple(module._parameters.values()),
                     self.params, tuple(self.versions), tuple(self.ptrs), self.extra,
                     self.dtype, self.x_shape, hx_kind, h_shape, zeros, rows)

    def __deepcopy__(self, memo):
        # A copied module's parameters have other addresses: it makes its own plan
        # (the key's addresses are only unambiguous while ``held`` keeps them).
        return None

    def states(self, module, x, hx, extra):
        """The state tensors ((h,) or (h, c); () for hx None) if the call (x, hx) matches
        this plan and the module's parameters are as they were, else None."""
        dtype = self.dtype
        if (not _CACHE[0] or _CACHE[1] != self.epoch or extra != self.extra
                or not _tensor_ok(x, dtype, self.x_shape)):
            return None
        params = self.params
        if (tuple(map(id, module._parameters.values())) != self.ids
                or [p._version for p in params] != self.versions
                or [p.data_ptr() for p in params] != self.ptrs):
            return None
        shapes = self.hx
        if hx is None:
            return () if shapes is None else None
        if shapes is None:
            return None
        if len(shapes) == 1:
            return (hx,) if _tensor_ok(hx, dtype, shapes[0]) else None
        if type(hx) is not tuple or len(hx) != 2:
            return None
        h, c = hx
        if _tensor_ok(h, dtype, shapes[0]) and _tensor_ok(c, dtype, shapes[1]):
            return hx
        return None


def cacheable(params) -> bool:
    """Whether a plan may be made: every weight is one of the module's own parameters
    with a version counter (not an inference tensor), and the cache is on."""
    return _CACHE[0] and all(isinstance(p, torch.nn.Parameter) and not p.is_inference()
                             for p in params)
