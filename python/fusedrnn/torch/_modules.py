"""The drop-in modules: torch.nn subclasses whose forward runs fusedrnn's kernels.

Each class inherits its torch.nn namesake whole (constructor, parameters and their
initialisation, state_dict, repr, pickling) and replaces ``forward``.  A forward makes
one kernel call per layer and direction (never one per step): through
``_Kernel.apply`` (a torch.autograd.Function) when autograd needs gradients, else
straight to the kernels (``_kernel.py``: tensors as arrays, no copies of contiguous
CPU tensors).  The layer x direction loop, the state parsing and the reverse
direction's rows are the NumPy layers' own (``fusedrnn._stack``); every kernel call
goes through ``fusedrnn.functional``.  Here: the layers' forward and the classes;
``_cell.py``: the cells' forward; ``_fused.py``: what both share; ``_plan.py``: the
call plans that let a repeat call skip the checks.

Weights are packed for the kernels once per version: the cache is keyed by each
parameter's storage address and autograd version counter, which every in-place change
through torch (optimizer steps, ``load_state_dict``, ``with torch.no_grad(): p.add_``)
advances.  Writes that bypass the counter (``p.data.add_``, writes through
``p.detach().numpy()``'s array) are invisible to it: call ``flatten_parameters()``
after them, as docs/pytorch.md says.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from .._stack import PADDED, Rows, forward_layer_pair, run_layers, split_state
from ._cell import _CellMixin
from ._fused import _empty, _Fused
from ._kernel import (_check_tensor, _Kernel, _np, _PairKernel, _role, _Run, kernel_apply,
                      on_torch_threads)
from ._plan import Plan, cacheable

_is_grad_enabled = torch.is_grad_enabled

__all__ = ["LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell", "replace_rnns",
           "from_torch"]

def _cat_tensors(outs):
    return torch.cat(outs, -1)


def _cat_arrays(outs):
    return np.concatenate(outs, -1)


class _LayerMixin(_Fused):
    def _fr_cell(self):
        cells = {"LSTM": "lstm", "GRU": "gru", "RNN_TANH": "rnn_tanh", "RNN_RELU": "rnn_relu"}
        if self.mode not in cells:
            raise ValueError(f"{type(self).__name__}: mode {self.mode!r} is not supported")
        return cells[self.mode]

    def forward(self, input, hx=None):  # noqa: A002 -- torch.nn's argument name
        plan = self.__dict__.get("_fr_plan")
        if plan is not None:
            states = plan.states(self, input, hx, (self.mode, self.batch_first))
            if states is not None:
                unbatched, batch_first, runs, is_lstm, h_shape, c_shape = plan.data
                if unbatched:
                    x = input.unsqueeze(1)
                    states = tuple(t.unsqueeze(1) for t in states)
                else:
                    x = input.transpose(0, 1).contiguous() if batch_first else input
                output, h_n, c_n = self._fr_run(
                    runs, x, states[0] if states else None,
                    states[1] if len(states) == 2 else None, plan.params, plan.dtype,
                    is_lstm, h_shape, c_shape, kernel_apply)
                return self._fr_output(input, output, h_n, c_n, is_lstm, unbatched)
        return self._fr_forward(input, hx)

    def _fr_forward(self, input, hx):  # noqa: A002
        """The checked call: every worded error; leaves a plan for the next call."""
        owner = type(self).__name__
        cell = self._fr_cell()
        is_lstm = cell == "lstm"
        params = [getattr(self, n) for names in self._all_weights for n in names]
        dtype = self._fr_check_params(params)
        D = 2 if self.bidirectional else 1
        L, H = self.num_layers, self.hidden_size
        Hr = self.proj_size if self.proj_size > 0 else H
        x, bs, unbatched, sorted_idx = self._fr_input(input, owner, dtype)
        B = x.shape[1] if bs is None else int(bs[0])
        h_shape, c_shape = (L * D, B, Hr), (L * D, B, H)
        h0, c0 = self._fr_states(hx, owner, dtype, is_lstm, unbatched, h_shape, c_shape,
                                 sorted_idx)
        if B == 0:
            D_out = D * Hr
            outs = _empty([x, h0, c0], params, dtype,
                          [(x.shape[0], 0, D_out), h_shape] + ([c_shape] if is_lstm else []))
            output, h_n, c_n = outs[0], outs[1], (outs[2] if is_lstm else None)
            return self._fr_output(input, output, h_n, c_n, is_lstm, unbatched)
        rows = PADDED if bs is None else Rows(bs)
        runs, i = [], 0
        for k, names in enumerate(self._all_weights):
            ps = params[i:i + len(names)]
            i += len(names)
            runs.append(_Run(self._fr_packed(k, names, ps, cell), rows, k % D == 1,
                             is_lstm, owner, [_role(n) for n in names],
                             lead=len(self._all_weights) == 1))
        if bs is None and cacheable(params):
            if hx is None:
                hx_shapes = None
            else:
                hs = [(s[0], s[2]) if unbatched else s for s in (h_shape, c_shape)]
                hx_shapes = tuple(hs) if is_lstm else (hs[0],)
            self.__dict__["_fr_plan"] = Plan(
                self, params, dtype, tuple(input.shape), hx_shapes, (self.mode, self.batch_first),
                (unbatched, self.batch_first, runs, is_lstm, h_shape, c_shape))
        output, h_n, c_n = self._fr_run(runs, x, h0, c0, params, dtype, is_lstm, h_shape,
                                        c_shape)
        return self._fr_output(input, output, h_n, c_n, is_lstm, unbatched)

    @on_torch_threads
    def _fr_run(self, runs, x, h0, c0, params, dtype, is_lstm, h_shape, c_shape,
                apply=_Kernel.apply):
        """The layer x direction loop on checked tensors: (output, h_n, c_n or None).
        x (T, B, I) or packed rows, h0 / c0 (L*D, B, F) contiguous or None (zeros);
        ``apply``: _Kernel's (kernel_apply for plain tensors that matched a plan)."""
        D = 2 if self.bidirectional else 1
        L = self.num_layers
        grad = _is_grad_enabled() and (
            x.requires_grad or (h0 is not None and h0.requires_grad)
            or (c0 is not None and c0.requires_grad) or any(p.requires_grad for p in params))
        drop = self.dropout if self.training else 0.0
        hs, cs = [], []
        if grad:  # autograd: one _Kernel per layer-direction, torch ops between them
            groups, i = [], 0
            for names in self._all_weights:
                groups.append(params[i:i + len(names)])
                i += len(names)

            def states(k):
                return None if h0 is None else h0[k], None if c0 is None else c0[k]

            def direction(k, layer_in):
                out = apply(runs[k], layer_in, *states(k), *groups[k])
                hs.append(out[1])
                if is_lstm:
                    cs.append(out[2])
                return out[0]

            def pair(k, layer_in):  # a bidirectional layer: both directions side by side
                out = _PairKernel.apply((runs[k], runs[k + 1]), layer_in, *states(k),
                                        *states(k + 1), *groups[k], *groups[k + 1])
                n = 3 if is_lstm else 2
                for o in (out[:n], out[n:]):
                    hs.append(o[1])
                    if is_lstm:
                        cs.append(o[2])
                return [out[0], out[n]]

            output = run_layers(L, D, x, direction, _cat_tensors,
                                (lambda t: F.dropout(t, drop, True)) if drop else None, pair)
            # One layer-direction: its state as it came from the kernels, (1, B, F) (no
            # copy, no view op).
            h_n = hs[0] if len(hs) == 1 else torch.stack(hs)
            c_n = None if not is_lstm else cs[0] if len(cs) == 1 else torch.stack(cs)
        else:  # inference: NumPy arrays from the input to the outputs, no torch ops between
            npdt = np.float32 if dtype == torch.float32 else np.float64
            h0n = np.zeros(h_shape, npdt) if h0 is None else _np(h0)
            c0n = None if not is_lstm else np.zeros(c_shape, npdt) if c0 is None else _np(c0)

            def record(k, y, h, c, _xd, _ws):  # a layer-direction's results: y returned
                hs.append(h)
                cs.append(c)
                return y

            def direction(k, layer_in):
                return record(k, *runs[k].forward(
                    layer_in, h0n[k], None if c0n is None else c0n[k], False))

            def pair(k, layer_in):  # a bidirectional layer: both directions side by side
                return forward_layer_pair(runs, k, layer_in, h0n, c0n, False, record)

            output = torch.from_numpy(run_layers(
                L, D, _np(x), direction, _cat_arrays,
                # training mode without autograd: torch's RNG
                (lambda a: _np(F.dropout(torch.from_numpy(a), drop, True))) if drop else None,
                pair))
            h_n = torch.from_numpy(hs[0][None] if len(hs) == 1 else np.stack(hs))
            c_n = (None if not is_lstm else
                   torch.from_numpy(cs[0][None] if len(cs) == 1 else np.stack(cs)))
        return output, h_n, c_n

    def _fr_input(self, input, owner, dtype):  # noqa: A002
        """(x (T, B, I) or packed rows (N, I), contiguous; PackedSequence batch sizes as
        an int64 array or None; unbatched; the PackedSequence's sorted_indices)."""
        if isinstance(input, PackedSequence):
            x, batch_sizes, sorted_idx, _ = input
            _check_tensor(x, "input.data", dtype, owner)
            if x.dim() != 2 or x.shape[1] != self.input_size:
                raise ValueError(f"{owner}: input.data: expected shape (N, {self.input_size}) "
                                 f"(input_size {self.input_size}), got {tuple(x.shape)}")
            if (not isinstance(batch_sizes, torch.Tensor) or batch_sizes.dtype != torch.int64
                    or batch_sizes.device.type != "cpu" or batch_sizes.dim() != 1
                    or batch_sizes.numel() == 0):
                raise ValueError(f"{owner}: input.batch_sizes: expected a non-empty 1-D CPU "
                                 "int64 tensor, as torch.nn.utils.rnn.pack_padded_sequence "
                                 "makes")
            bs = np.array(batch_sizes.numpy(), np.int64)  # a copy: the runs keep it
            if bs.min() < 1 or np.any(np.diff(bs) > 0) or bs.sum() != x.shape[0]:
                raise ValueError(
                    f"{owner}: input.batch_sizes: expected non-increasing values >= 1 "
                    f"summing to input.data's {x.shape[0]} rows, got {bs.tolist()}")
            return x.contiguous(), bs, False, sorted_idx
        _check_tensor(input, "input", dtype, owner)
        if input.dim() not in (2, 3):
            lay = "B, T" if self.batch_first else "T, B"
            raise ValueError(f"{owner}: input: expected 3 dimensions ({lay}, input_size) "
                             "or 2 (T, input_size) for an unbatched sequence, got shape "
                             f"{tuple(input.shape)}")
        if input.shape[-1] != self.input_size:
            raise ValueError(f"{owner}: input: expected input_size {self.input_size} on "
                             f"the last axis, got shape {tuple(input.shape)}")
        unbatched = input.dim() == 2
        if unbatched:
            x = input.unsqueeze(1)
        else:
            x = input.transpose(0, 1) if self.batch_first else input
        if x.shape[0] == 0:  # (an empty batch, B = 0, is accepted, as torch.nn does)
            raise ValueError(f"{owner}: input: expected at least one time step (as torch.nn), "
                             f"got shape {tuple(input.shape)}")
        return x.contiguous(), None, unbatched, None

    def _fr_output(self, input, output, h_n, c_n, is_lstm, unbatched):  # noqa: A002
        """torch.nn's return value from the last layer's output and the states."""
        if isinstance(input, PackedSequence):
            _, batch_sizes, sorted_idx, unsorted_idx = input
            if unsorted_idx is not None:
                h_n = h_n.index_select(1, unsorted_idx)
                c_n = c_n.index_select(1, unsorted_idx) if is_lstm else None
            output = PackedSequence(output, batch_sizes, sorted_idx, unsorted_idx)
        elif unbatched:
            output = output.squeeze(1)
            h_n = h_n.squeeze(1)
            c_n = c_n.squeeze(1) if is_lstm else None
        else:
            output = output.transpose(0, 1) if self.batch_first else output
        return output, ((h_n, c_n) if is_lstm else h_n)

    def _fr_states(self, hx, owner, dtype, is_lstm, unbatched, h_shape, c_shape, sorted_idx):
        """(h0, c0 or None), each (L*D, B, F) contiguous, in the kernels' batch order;
        (None, None) for hx None (zeros, made by the caller)."""
        if hx is None:
            return None, None
        out = []
        parts = split_state(hx, "hx", is_lstm, single="a tensor h_0", owner=owner)
        for (t, arg), shape in zip(parts, (h_shape, c_shape)):
            _check_tensor(t, arg, dtype, owner)
            want = (shape[0], shape[2]) if unbatched else shape
            if tuple(t.shape) != want:
                raise ValueError(f"{owner}: {arg}: expected shape {want}, got "
                                 f"{tuple(t.shape)}")
            if unbatched:
                t = t.unsqueeze(1)
            if sorted_idx is not None:
                t = t.index_select(1, sorted_idx)
            out.append(t.contiguous())
        return out[0], (out[1] if is_lstm else None)


class LSTM(_LayerMixin, nn.LSTM):
    """torch.nn.LSTM (``proj_size`` included) on fusedrnn's fused CPU kernels."""


class GRU(_LayerMixin, nn.GRU):
    """torch.nn.GRU on fusedrnn's fused CPU kernels."""


class RNN(_LayerMixin, nn.RNN):
    """torch.nn.RNN (tanh or relu) on fusedrnn's fused CPU kernels."""


class LSTMCell(_CellMixin, nn.LSTMCell):
    """torch.nn.LSTMCell on fusedrnn's kernels."""

    _fr_kind = "lstm"


class GRUCell(_CellMixin, nn.GRUCell):
    """torch.nn.GRUCell on fusedrnn's kernels."""

    _fr_kind = "gru"


class RNNCell(_CellMixin, nn.RNNCell):
    """torch.nn.RNNCell (tanh or relu) on fusedrnn's kernels."""

    _fr_kind = "rnn"


#: torch.nn class -> ours.  Exact types only: a user's subclass may override forward.
_OURS = {nn.LSTM: LSTM, nn.GRU: GRU, nn.RNN: RNN, nn.LSTMCell: LSTMCell,
         nn.GRUCell: GRUCell, nn.RNNCell: RNNCell}


def from_torch(module: nn.Module) -> nn.Module:
    """The fusedrnn.torch counterpart of one torch.nn recurrent module, to be used in its
    place: it shares the original's whole state (the same ``nn.Parameter`` objects, so an
    optimizer made before keeps working; buffers, hooks and their handles, training flag),
    so changes to one show in the other.  A module that is already ours is returned as
    it is.  To keep the original separate, pass ``copy.deepcopy(module)``."""
    if type(module) in _OURS.values():
        return module
    cls = _OURS.get(type(module))
    if cls is None:
        raise TypeError(
            "module: expected a torch.nn.LSTM, GRU, RNN, LSTMCell, GRUCell or RNNCell "
            f"(exactly those classes; a subclass may override forward), got "
            f"{type(module).__module__}.{type(module).__qualname__}"
        )
    new = cls.__new__(cls)
    # The same state, containers included (so hook handles made before still remove
    # their hooks): the new module takes the original's place.
    new.__dict__.update(module.__dict__)
    new.__dict__["_fr_cache"] = None
    new.__dict__["_fr_plan"] = None
    return new


def replace_rnns(model: nn.Module) -> nn.Module:
    """Swap every torch.nn.LSTM/GRU/RNN/LSTMCell/GRUCell/RNNCell inside ``model`` (at any
    depth; exact classes, not subclasses) for fusedrnn.torch's, weights kept (shared,
    see from_torch).  Works in place and returns the model; if ``model`` is itself one
    of those modules, returns its replacement."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if type(model) in _OURS:
        return from_torch(model)
    done = {}
    for parent in list(model.modules()):
        for name, child in list(parent._modules.items()):
            if child is not None and type(child) in _OURS:
                if id(child) not in done:  # a module used twice stays one module
                    done[id(child)] = from_torch(child)
                parent._modules[name] = done[id(child)]
    return model
