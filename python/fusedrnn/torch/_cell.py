"""The drop-in cells' forward: the call plan's fast path and the checked path."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.modules import module as _nn_module

from .. import _core
from .._stack import PADDED, split_state
from ..functional import step
from ._fused import _empty, _Fused
from ._kernel import _check_tensor, _Kernel, _np, _role, _Run, kernel_apply
from ._plan import Plan, cacheable

_tensor_cell = _core.tensor_cell
_tensor_call = _core.tensor_call
_core.tensor_setup(torch.Tensor, torch.strided, torch.from_numpy, torch.is_grad_enabled)


def _states(hx):
    """A state that matched a plan as _fr_fast takes it: (), (h,) or (h, c)."""
    return () if hx is None else hx if type(hx) is tuple else (hx,)


class _CellMixin(_Fused):
    _fr_one_step = True

    def __call__(self, *args, **kwargs):
        # The per-step path: where torch.nn.Module.__call__ would only call forward (no
        # hooks, not compiled or traced) and the call matches the plan, one compiled call
        # (_core.tensor_call) does it all; anything else is Module.__call__'s, looked up
        # now (torch.fx patches it while tracing).
        if not kwargs and 1 <= len(args) <= 2:
            hx = args[1] if len(args) == 2 else None
            out = _tensor_call(self, args[0], hx)
            if out is False:  # a match that autograd records: what forward would do
                return self._fr_fast(self.__dict__["_fr_plan"], args[0], _states(hx))
            if out is not None:
                return out
        return nn.Module.__call__(self, *args, **kwargs)

    def forward(self, input, hx=None):  # noqa: A002 -- torch.nn's argument name
        # A repeat call: the plan's test and the step in one compiled call (None: no plan
        # or no match; False: a match that autograd must record).
        out = _tensor_cell(self, input, hx)
        if out is None:
            return self._fr_forward(input, hx)
        if out is False:
            return self._fr_fast(self.__dict__["_fr_plan"], input, _states(hx))
        return out

    def _fr_fast(self, plan, x, states):
        """A call that matches ``plan`` and needs autograd: no checks, no packing."""
        packed, run, unbatched, shape, zeros = plan.data
        if unbatched:
            x = x.unsqueeze(0)
            states = tuple(t.unsqueeze(0) for t in states)
        out = kernel_apply(run, x, states[0] if states else None,
                           states[1] if len(states) == 2 else None, *plan.params)
        if unbatched:
            out = tuple(t.reshape(shape) for t in out)
        return out if run.is_lstm else out[0]

    def _fr_forward(self, input, hx):  # noqa: A002
        """The checked call: every worded error; leaves a plan for the next call."""
        owner = type(self).__name__
        cell = self._fr_kind
        if cell == "rnn":
            if self.nonlinearity not in ("tanh", "relu"):
                raise ValueError(f"{owner}: nonlinearity: expected 'tanh' or 'relu', got "
                                 f"{self.nonlinearity!r}")
            cell = "rnn_" + self.nonlinearity
        is_lstm = cell == "lstm"
        names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if self.bias else [])
        params = [getattr(self, n) for n in names]
        dtype = self._fr_check_params(params)
        _check_tensor(input, "input", dtype, owner)
        if input.dim() not in (1, 2) or input.shape[-1] != self.input_size:
            raise ValueError(f"{owner}: input: expected shape (B, {self.input_size}) or "
                             f"({self.input_size},), got {tuple(input.shape)}")
        unbatched = input.dim() == 1
        x = (input.unsqueeze(0) if unbatched else input).contiguous()
        B, H = x.shape[0], self.hidden_size
        shape = (H,) if unbatched else (B, H)
        h0 = c0 = None  # None: zeros
        if hx is not None:
            states = []
            for t, arg in split_state(hx, "hx", is_lstm, single="a tensor", owner=owner):
                _check_tensor(t, arg, dtype, owner)
                if tuple(t.shape) != shape:
                    raise ValueError(f"{owner}: {arg}: expected shape {shape}, got "
                                     f"{tuple(t.shape)}")
                states.append((t.unsqueeze(0) if unbatched else t).contiguous())
            h0, c0 = states[0], (states[1] if is_lstm else None)
        if B == 0:  # an empty batch: torch.nn's empty states, zero gradients
            out = _empty([x, h0, c0], params, dtype, [shape] * (2 if is_lstm else 1))
            return tuple(out) if is_lstm else out[0]
        packed = self._fr_packed(0, names, params, cell)
        grad = torch.is_grad_enabled() and (
            x.requires_grad or (h0 is not None and h0.requires_grad)
            or (c0 is not None and c0.requires_grad) or any(p.requires_grad for p in params))
        run = _Run(packed, PADDED, False, is_lstm, owner, [_role(n) for n in names],
                   cell=True)
        if cacheable(params) and packed.one_step:
            npdt = np.float32 if dtype == torch.float32 else np.float64
            zeros = (np.zeros((B, H), npdt),) * (2 if is_lstm else 1)
            hx_shapes = None if hx is None else (shape, shape) if is_lstm else (shape,)
            plan = Plan(self, params, dtype, tuple(input.shape), hx_shapes,
                        self.__dict__.get("nonlinearity"), (packed, run, unbatched, shape, zeros))
            plan.fast_key(self, packed, 0 if hx is None else len(hx_shapes), shape, zeros, B)
            self.__dict__["_fr_plan"] = plan
        if grad:
            out = _Kernel.apply(run, x, h0, c0, *params)
        else:
            npdt = np.float32 if dtype == torch.float32 else np.float64
            h0n = np.zeros((B, H), npdt) if h0 is None else _np(h0)
            c0n = None if not is_lstm else np.zeros((B, H), npdt) if c0 is None else _np(c0)
            h1, c1 = step(packed, _np(x), h0n, c0n)
            out = (torch.from_numpy(h1),) + ((torch.from_numpy(c1),) if is_lstm else ())
        if unbatched:
            out = tuple(t.reshape(shape) for t in out)
        return out if is_lstm else out[0]


_core.tensor_call_setup(
    (_nn_module._global_backward_pre_hooks, _nn_module._global_backward_hooks,
     _nn_module._global_forward_hooks, _nn_module._global_forward_pre_hooks),
    torch._C._get_tracing_state, _CellMixin.forward)
