"""The drop-ins' bridge to the kernels: tensors as arrays, one kernel call with autograd.

``_Run`` is one layer-direction (``fusedrnn._stack.Direction``) or one cell step, on
tensors; ``_Kernel`` (a torch.autograd.Function) runs it with its backward, and
``_PairKernel`` a bidirectional layer's two directions side by side.  Tensors
reach the kernels as NumPy views of their memory (contiguous CPU float32/float64
tensors are never copied), and the kernels' results come back as tensors over the
arrays they wrote (``torch.from_numpy``).
"""

from __future__ import annotations

import functools
import os

import numpy as np
import torch

from .. import _core
from .._stack import Direction, backward_pair, forward_pair

_from_numpy = torch.from_numpy
_is_grad_enabled = torch.is_grad_enabled

_FLOATS = (torch.float32, torch.float64)

_DOUBLE_BACKWARD = (
    "{name}: double backward (backward or torch.autograd.grad with create_graph=True) "
    "through fusedrnn.torch modules is not supported: the fused kernels compute first "
    "derivatives only.  Use torch.nn.{name} where second derivatives are needed."
)


def _torch_openmp_setting() -> bool:
    """FUSEDRNN_TORCH_OPENMP: "1" (the default) or "0"; anything else fails the import."""
    value = os.environ.get("FUSEDRNN_TORCH_OPENMP", "1").strip()
    if value not in ("0", "1"):
        raise ValueError(f"FUSEDRNN_TORCH_OPENMP: expected 0 or 1, got {value!r}")
    return value == "1"


#: Whether the drop-ins' kernel calls run their parallel regions on torch's OpenMP
#: threads (docs/pytorch.md, "Threads"): those threads poll for milliseconds after each
#: torch operation, and a region of fusedrnn's own workers started then would fight them
#: for the cores.  Where torch's runtime is not GNU OpenMP (or not on Linux) it changes
#: nothing.
TORCH_OPENMP = _torch_openmp_setting()
_host_openmp = _core._host_openmp


def on_torch_threads(fn):
    """fn with the calling thread's host OpenMP scope set to TORCH_OPENMP meanwhile."""

    @functools.wraps(fn)
    def scoped(*args, **kwargs):
        before = _host_openmp(TORCH_OPENMP)
        try:
            return fn(*args, **kwargs)
        finally:
            _host_openmp(before)

    return scoped


def _np(t: torch.Tensor) -> np.ndarray:
    """A CPU tensor as a C-contiguous NumPy array: its own memory when it is contiguous."""
    if not t.is_contiguous():
        t = t.contiguous()
    try:
        return t.detach().numpy()
    except RuntimeError as e:  # e.g. torch.func's wrapped tensors, which have no storage
        if t.is_neg():  # a lazy negation (torch._neg_view): its values, made
            return t.resolve_neg().detach().numpy()
        raise RuntimeError(
            f"fusedrnn.torch: the kernels need tensors with memory to read ({e}); "
            "torch.func transforms (grad, vmap, jacrev, ...) over fusedrnn.torch modules "
            "are not supported: use torch.autograd (backward, torch.autograd.grad)") from e


def _role(name: str) -> str:
    """'weight_ih_l1_reverse' -> 'weight_ih' (the kernels' argument for a parameter)."""
    return "_".join(name.split("_")[:2])


def _check_tensor(t, arg: str, dtype, owner: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{owner}: {arg}: expected a torch.Tensor, got {type(t).__name__}")
    if t.device.type != "cpu":
        raise TypeError(
            f"{owner}: {arg} is on {t.device}; fusedrnn's kernels run on the CPU only. "
            f"Use torch.nn.{owner} for {t.device.type} tensors (fusedrnn.torch does not fall "
            "back to torch silently)."
        )
    if t.layout != torch.strided or t.is_quantized:
        raise TypeError(f"{owner}: {arg}: expected a dense (strided) tensor, got layout "
                        f"{t.layout}")
    if t.dtype != dtype:
        if t.dtype in _FLOATS:
            raise TypeError(
                f"{owner}: {arg} is {t.dtype} but the parameters are {dtype}; convert one "
                "to the other (torch.nn requires the same dtype too)"
            )
        raise TypeError(
            f"{owner}: {arg} is {t.dtype}; fusedrnn's kernels run torch.float32 and "
            f"torch.float64 only.  Convert it, or use torch.nn.{owner} for {t.dtype}."
        )


def _np_grad(t: torch.Tensor) -> np.ndarray:
    """An incoming gradient as a C-contiguous array: NumPy makes the copy of a strided
    one (an expanded gradient, as ``.sum()``'s backward gives), cheaper than torch's
    ``contiguous`` for these small tensors."""
    try:
        a = t.numpy()
    except RuntimeError:  # a lazy negation or conjugation, or no memory: as _np does
        return _np(t)
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


class _Run(Direction):
    """One kernel call (a layer-direction or a cell's step) with what autograd needs:
    the layer-direction (packed weights, rows: padded or PackedSequence batch sizes,
    reverse or not) plus whether it is an LSTM, the module's name for messages, the
    weights' roles in _Kernel's inputs, and ``cell``: a single step of a cell, whose x
    is (B, I) and which returns only the states; ``lead``: the states come out as
    (1, B, F), a layer's h_n when it has one layer-direction (no view op for autograd)."""

    __slots__ = ("is_lstm", "owner", "roles", "cell", "lead")

    def __init__(self, packed, rows, reverse, is_lstm, owner, roles, cell=False, lead=False):
        self.packed, self.rows, self.reverse = packed, rows, reverse
        self.is_lstm, self.owner, self.roles, self.cell = is_lstm, owner, roles, cell
        self.lead = lead

    def forward_tensors(self, x, h0, c0, train):
        """Direction.forward on tensors: (outputs as tensors (y, h_n[, c_n]), for a cell
        (h_n[, c_n]); the x the kernels read; y's shape; workspace)."""
        xn = _np(x)
        if self.cell:
            xn = xn.reshape((1,) + xn.shape)
        y, h_n, c_n, xd, ws = self.forward(xn, *self.states(xn, h0, c0), train)
        return self.outputs(y, h_n, c_n), xd, y.shape, ws

    def states(self, xn, h0, c0):
        """The initial states as arrays, (h0, c0 or None); zeros where h0 is None."""
        if h0 is None:  # zeros (then c0 is None too): made here, no tensors needed
            bs = self.rows.batch_sizes
            B = xn.shape[1] if bs is None else int(bs[0])
            H = self.packed.hidden_size
            return (np.zeros((B, self.packed.proj_size or H), xn.dtype),
                    np.zeros((B, H), xn.dtype) if self.is_lstm else None)
        return _np(h0), None if c0 is None else _np(c0)

    def outputs(self, y, h_n, c_n):
        """The forward kernels' arrays as _Kernel's output tensors."""
        outs = [] if self.cell else [_from_numpy(y)]
        if self.lead:
            h_n = h_n[None]
            c_n = None if c_n is None else c_n[None]
        outs.append(_from_numpy(h_n))
        if self.is_lstm:
            outs.append(_from_numpy(c_n))
        return outs

    def grads_in(self, ctx_y_shape, dtype, grads):
        """Autograd's incoming gradients for this run's outputs as the backward kernels'
        arrays: (dy (zeros where None), dh_n or None, dc_n or None)."""
        if self.cell:
            dy, rest = None, grads
        else:
            dy, rest = grads[0], grads[1:]
        dy = np.zeros(ctx_y_shape, dtype) if dy is None else _np_grad(dy)
        dh = None if rest[0] is None else _np_grad(rest[0])
        dc = None if (not self.is_lstm or rest[1] is None) else _np_grad(rest[1])
        if self.lead:  # (1, B, F) -> (B, F)
            dh = None if dh is None else dh[0]
            dc = None if dc is None else dc[0]
        return dy, dh, dc


class _Kernel(torch.autograd.Function):
    """One layer-direction (or one cell step) with gradients: the fused kernels' forward
    and backward.  Inputs: (run, x, h0 or None (zeros, and c0 None too), c0 or None,
    *weights in run.roles order);
    outputs: (y, h_n[, c_n]), for a cell (h'[, c'])."""

    @staticmethod
    def forward(ctx, run, x, h0, c0, *weights):
        outs, xd, y_shape, ws = run.forward_tensors(x, h0, c0, train=True)
        ctx.run, ctx.ws, ctx.y_shape = run, ws, y_shape
        ctx.has_c0 = c0 is not None
        # The reverse direction's reordered x is a private copy; the forward direction
        # reads x itself, saved so that autograd reports an in-place change of it (and of
        # the weights) before backward, as torch.nn does.
        ctx.xd = xd if (run.reverse or run.cell) else None
        ctx.save_for_backward(x, *weights)
        ctx.set_materialize_grads(False)
        return tuple(outs)

    @staticmethod
    @on_torch_threads
    def backward(ctx, *grads):
        run = ctx.run
        if _is_grad_enabled():
            raise RuntimeError(_DOUBLE_BACKWARD.format(name=run.owner))
        saved = ctx.saved_tensors  # raises if x or a weight was modified in place
        x = saved[0]
        xd = ctx.xd if ctx.xd is not None else _np(x)
        dy, dh, dc = run.grads_in(ctx.y_shape, xd.dtype, grads)
        need = ctx.needs_input_grad
        # An input that needs no gradient (a first layer's data): dx's product skipped.
        g = run.backward(xd, ctx.ws, dy, dh, dc, need_dx=need[1])
        out = [None, _from_numpy(g["dx"].reshape(x.shape)) if need[1] else None,
               _from_numpy(g["dh0"]) if need[2] else None,
               _from_numpy(g["dc0"]) if (ctx.has_c0 and need[3]) else None]
        for i, role in enumerate(run.roles):
            out.append(_from_numpy(g[role]) if need[4 + i] else None)
        return tuple(out)


class _PairKernel(torch.autograd.Function):
    """A bidirectional layer's two directions on the same x, with gradients, side by side
    on the threads (fusedrnn._stack.forward_pair / backward_pair).  Inputs: (runs (a
    pair of _Run, never cells), x, h0 and c0 of direction 0, h0 and c0 of direction 1
    (as _Kernel's: None for zeros), *direction 0's weights, *direction 1's); outputs:
    direction 0's (y, h_n[, c_n]) then direction 1's."""

    @staticmethod
    def forward(ctx, runs, x, h0a, c0a, h0b, c0b, *weights):
        xn = _np(x)
        sa, sb = runs[0].states(xn, h0a, c0a), runs[1].states(xn, h0b, c0b)
        res = forward_pair(runs, xn, (sa[0], sb[0]), None if sa[1] is None else (sa[1], sb[1]),
                           True)
        ctx.runs = runs
        ctx.ws = [r[4] for r in res]
        ctx.y_shapes = [r[0].shape for r in res]
        ctx.has_c0 = (c0a is not None, c0b is not None)
        # The forward direction reads x itself (saved, so that autograd reports an in-place
        # change of it); the reverse direction's reordered x is a private copy.
        ctx.xd = [None if not r.reverse else o[3] for r, o in zip(runs, res)]
        ctx.save_for_backward(x, *weights)
        ctx.set_materialize_grads(False)
        return tuple(runs[0].outputs(*res[0][:3]) + runs[1].outputs(*res[1][:3]))

    @staticmethod
    @on_torch_threads
    def backward(ctx, *grads):
        runs = ctx.runs
        if _is_grad_enabled():
            raise RuntimeError(_DOUBLE_BACKWARD.format(name=runs[0].owner))
        saved = ctx.saved_tensors  # raises if x or a weight was modified in place
        x = saved[0]
        xn = _np(x)
        xd = [xn if d is None else d for d in ctx.xd]
        n = 3 if runs[0].is_lstm else 2
        ins = [r.grads_in(shape, xn.dtype, g)
               for r, shape, g in zip(runs, ctx.y_shapes, (grads[:n], grads[n:]))]
        need = ctx.needs_input_grad
        gs = backward_pair(runs, xd, ctx.ws, [i[0] for i in ins], [i[1] for i in ins],
                           [i[2] for i in ins], need_dx=need[1])
        out = [None, _from_numpy((gs[0]["dx"] + gs[1]["dx"]).reshape(x.shape))
               if need[1] else None]
        for d, g in enumerate(gs):
            out.append(_from_numpy(g["dh0"]) if need[2 + 2 * d] else None)
            out.append(_from_numpy(g["dc0"]) if (ctx.has_c0[d] and need[3 + 2 * d]) else None)
        i = 6
        for r, g in zip(runs, gs):
            for role in r.roles:
                out.append(_from_numpy(g[role]) if need[i] else None)
                i += 1
        return tuple(out)


_functorch_active = torch._C._are_functorch_transforms_active
#: _Kernel's apply without torch.autograd.Function.apply's Python wrapper (its functorch
#: handling, about 3 µs a call): for calls that passed the plan's checks, when no
#: torch.func transform is active.
_apply_direct = torch._C._FunctionBase.__dict__["apply"].__get__(None, _Kernel)


def kernel_apply(*args):
    """_Kernel.apply(*args), through the direct entry where that is the same."""
    if _functorch_active():
        return _Kernel.apply(*args)
    return _apply_direct(*args)
