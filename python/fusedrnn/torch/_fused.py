"""What the drop-in layers and cells share: parameter checks, the packed-weight cache
(keyed by each parameter's storage address and autograd version, see docs/pytorch.md,
"Weight packing") and the outputs of an empty batch."""

from __future__ import annotations

import torch

from ..functional import pack
from ._kernel import _FLOATS, _np, _role
from ._plan import cache_epoch, cacheable

_is_grad_enabled = torch.is_grad_enabled


def _empty(tensors, params, dtype, shapes):
    """Outputs of an empty batch (B = 0), zeros of these shapes (all empty), with torch.nn's
    gradients: zeros for every tensor and parameter that needs one (each output plus an
    empty sum of them, so that autograd links them)."""
    outs = [torch.zeros(s, dtype=dtype) for s in shapes]
    if _is_grad_enabled():
        parts = [t.sum() for t in tensors if t is not None and t.requires_grad]
        parts += [p.reshape(-1)[:0].sum() for p in params if p.requires_grad]
        if parts:
            link = sum(parts[1:], parts[0])
            outs = [o + link for o in outs]
    return outs


class _Fused:
    """What layers and cells share: parameter checks and the packed-weight cache."""

    _fr_one_step = False

    def _fr_check_params(self, params):
        owner = type(self).__name__
        dtype = params[0].dtype
        for p in params:
            if p.device.type != "cpu":
                raise TypeError(
                    f"{owner}: the parameters are on {p.device}; fusedrnn's kernels run on "
                    f"the CPU only.  Use torch.nn.{owner} on {p.device.type} (fusedrnn.torch "
                    "does not fall back to torch silently)."
                )
            if p.dtype not in _FLOATS or p.dtype != dtype:
                raise TypeError(
                    f"{owner}: the parameters are {p.dtype}; fusedrnn's kernels run "
                    "torch.float32 and torch.float64 only (all parameters of one dtype).  "
                    f"Convert with .float() or .double(), or use torch.nn.{owner}."
                )
        return dtype

    def _fr_packed(self, k, names, params, cell):
        """Layer-direction k's weights (params, named names) packed for the kernels,
        cached per version."""

        def packed_now():
            a = {_role(n): _np(p) for n, p in zip(names, params)}
            return pack(cell, a["weight_ih"], a["weight_hh"], a.get("bias_ih"),
                        a.get("bias_hh"), weight_hr=a.get("weight_hr"),
                        one_step=self._fr_one_step)

        if not cacheable(params):
            # Pack for this call only when the weights are not the module's own parameters
            # (torch.func.functional_call's or a parametrization's tensors: gradcheck
            # perturbs those in place without advancing their version counter), or were
            # made under torch.inference_mode() (no version counter at all); and always
            # within weight_cache(False).
            return packed_now()
        # The cell is in the key: an RNN's nonlinearity may be reassigned between calls.
        key = (cache_epoch(), cell) + tuple((p.data_ptr(), p._version) for p in params)
        cache = self.__dict__.get("_fr_cache")
        if cache is None:
            cache = self.__dict__["_fr_cache"] = {}
        entry = cache.get(k)
        if entry is not None and entry[0] == key:
            return entry[2]
        packed = packed_now()
        # The detached tensors keep the packed storages alive, so no other tensor can be
        # given their addresses while the entry exists (the key stays unambiguous).
        cache[k] = (key, [p.detach() for p in params], packed)
        return packed

    def flatten_parameters(self):
        """Also drops fusedrnn's packed weights (repacked at the next forward).  Needed
        only after writes that bypass autograd's version counter, like ``p.data.copy_``."""
        parent = getattr(super(), "flatten_parameters", None)
        if parent is not None:  # the layers' (a no-op on the CPU); cells have none
            parent()
        self.__dict__["_fr_cache"] = None
        self.__dict__["_fr_plan"] = None

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_fr_cache", None)  # packed kernels' copies: rebuilt after unpickling
        state.pop("_fr_plan", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self.__dict__["_fr_cache"] = None
        self.__dict__["_fr_plan"] = None
