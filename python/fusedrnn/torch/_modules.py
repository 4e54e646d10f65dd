"""The drop-in modules: torch.nn subclasses whose forward runs fusedrnn's kernels.

Each class inherits its torch.nn namesake whole (constructor, parameters and their
initialisation, state_dict, repr, pickling) and replaces ``forward``.  A forward makes
one kernel call per layer and direction (never one per step): through
``_Kernel.apply`` (a torch.autograd.Function) when autograd needs gradients, else
straight to the kernels.  Tensors reach the kernels as NumPy views of their memory
(contiguous CPU float32/float64 tensors are never copied), and the kernels' results come
back as tensors over the arrays they wrote (``torch.from_numpy``).

Weights are packed for the kernels once per version: the cache is keyed by each
parameter's storage address and autograd version counter, which every in-place change
through torch (optimizer steps, ``load_state_dict``, ``with torch.no_grad(): p.add_``)
advances.  Writes that bypass the counter (``p.data.add_``, writes through
``p.detach().numpy()``'s array) are invisible to it: call ``flatten_parameters()``
after them, as the README says.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from .. import _core
from ..functional import pack, reverse_rows, sequence_backward, sequence_forward

__all__ = ["LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell", "replace_rnns",
           "from_torch"]

_FLOATS = (torch.float32, torch.float64)

_DOUBLE_BACKWARD = (
    "{name}: double backward (backward or torch.autograd.grad with create_graph=True) "
    "through fusedrnn.torch modules is not supported: the fused kernels compute first "
    "derivatives only.  Use torch.nn.{name} where second derivatives are needed."
)


def _np(t: torch.Tensor) -> np.ndarray:
    """A CPU tensor as a C-contiguous NumPy array: its own memory when it is contiguous."""
    if not t.is_contiguous():
        t = t.contiguous()
    try:
        return t.detach().numpy()
    except RuntimeError as e:  # e.g. torch.func's wrapped tensors, which have no storage
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


class _Run:
    """The non-tensor part of one kernel call: packed weights, layout and what to return.

    ``bs``: the PackedSequence batch sizes (int64 NumPy array) or None for a padded
    (T, B, F) batch.  ``reverse``: the call runs the reverse direction, reading its
    rows through ``perm`` (packed rows) or flipped in time (padded).  ``cell``: a
    single step of a cell, whose x is (B, I) and which returns only the states.
    """

    __slots__ = ("packed", "bs", "perm", "reverse", "is_lstm", "owner", "roles", "cell")

    def __init__(self, packed, bs, perm, reverse, is_lstm, owner, roles, cell=False):
        self.packed, self.bs, self.perm, self.reverse = packed, bs, perm, reverse
        self.is_lstm, self.owner, self.roles, self.cell = is_lstm, owner, roles, cell

    def order(self, a: np.ndarray) -> np.ndarray:
        """The reverse direction's view of rows (its own inverse): a C-contiguous copy."""
        if not self.reverse:
            return a
        if self.perm is None:
            return np.ascontiguousarray(a[::-1])
        return a[self.perm]

    def kernel_x(self, x: np.ndarray) -> np.ndarray:
        return x.reshape((1,) + x.shape) if self.cell else self.order(x)

    def forward_np(self, x, h0, c0, train):
        """The kernels on arrays: (y in the caller's row order (None for a cell), h_n,
        c_n, the x the kernels read, y's shape, workspace)."""
        xd = self.kernel_x(x)
        y, h_n, c_n, ws = sequence_forward(self.packed, xd, h0, c0, train=train,
                                           batch_sizes=self.bs)
        return (None if self.cell else self.order(y)), h_n, c_n, xd, y.shape, ws

    def forward(self, x, h0, c0, train):
        y, h_n, c_n, xd, y_shape, ws = self.forward_np(
            _np(x), _np(h0), None if c0 is None else _np(c0), train)
        outs = [] if self.cell else [torch.from_numpy(y)]
        outs.append(torch.from_numpy(h_n))
        if self.is_lstm:
            outs.append(torch.from_numpy(c_n))
        return outs, xd, y_shape, ws


class _Kernel(torch.autograd.Function):
    """One layer-direction (or one cell step) with gradients: the fused kernels' forward
    and backward.  Inputs: (run, x, h0, c0 or None, *weights in run.roles order);
    outputs: (y, h_n[, c_n]), for a cell (h'[, c'])."""

    @staticmethod
    def forward(ctx, run, x, h0, c0, *weights):
        outs, xd, y_shape, ws = run.forward(x, h0, c0, train=True)
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
    def backward(ctx, *grads):
        run = ctx.run
        if torch.is_grad_enabled():
            raise RuntimeError(_DOUBLE_BACKWARD.format(name=run.owner))
        saved = ctx.saved_tensors  # raises if x or a weight was modified in place
        x = saved[0]
        xd = ctx.xd if ctx.xd is not None else _np(x)
        if run.cell:
            dy, rest = None, grads
        else:
            dy, rest = grads[0], grads[1:]
        dt = xd.dtype
        dy = np.zeros(ctx.y_shape, dt) if dy is None else run.order(_np(dy))
        dh = None if rest[0] is None else _np(rest[0])
        dc = None if (not run.is_lstm or rest[1] is None) else _np(rest[1])
        need = ctx.needs_input_grad
        # An input that needs no gradient (a first layer's data): dx's product skipped.
        g = sequence_backward(run.packed, xd, ctx.ws, dy, dh, dc, batch_sizes=run.bs,
                              need_dx=need[1])
        dx = None
        if need[1]:
            dx = g["dx"] if run.cell else run.order(g["dx"])
            dx = torch.from_numpy(dx.reshape(x.shape))
        out = [None, dx,
               torch.from_numpy(g["dh0"]) if need[2] else None,
               torch.from_numpy(g["dc0"]) if (ctx.has_c0 and need[3]) else None]
        for i, role in enumerate(run.roles):
            out.append(torch.from_numpy(g[role]) if need[4 + i] else None)
        return tuple(out)


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

        if not all(isinstance(p, nn.Parameter) and not p.is_inference() for p in params):
            # Pack for this call only when the weights are not the module's own parameters
            # (torch.func.functional_call's or a parametrization's tensors: gradcheck
            # perturbs those in place without advancing their version counter), or were
            # made under torch.inference_mode() (no version counter at all).
            return packed_now()
        key = tuple((p.data_ptr(), p._version) for p in params)
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

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_fr_cache", None)  # packed kernels' copies: rebuilt after unpickling
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self.__dict__["_fr_cache"] = None


class _LayerMixin(_Fused):
    def _fr_cell(self):
        cells = {"LSTM": "lstm", "GRU": "gru", "RNN_TANH": "rnn_tanh", "RNN_RELU": "rnn_relu"}
        if self.mode not in cells:
            raise ValueError(f"{type(self).__name__}: mode {self.mode!r} is not supported")
        return cells[self.mode]

    def forward(self, input, hx=None):  # noqa: A002 -- torch.nn's argument name
        owner = type(self).__name__
        cell = self._fr_cell()
        is_lstm = cell == "lstm"
        params = [getattr(self, n) for names in self._all_weights for n in names]
        dtype = self._fr_check_params(params)
        D = 2 if self.bidirectional else 1
        L, H = self.num_layers, self.hidden_size
        Hr = self.proj_size if self.proj_size > 0 else H

        sorted_idx = unsorted_idx = None
        if isinstance(input, PackedSequence):
            x, batch_sizes, sorted_idx, unsorted_idx = input
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
            B, unbatched = int(bs[0]), False
            x = x.contiguous()
        else:
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
            if x.shape[0] == 0 or x.shape[1] == 0:
                raise ValueError(f"{owner}: input: expected at least one time step and one "
                                 f"sequence, got shape {tuple(input.shape)}")
            x = x.contiguous()
            B, bs = x.shape[1], None

        h_shape, c_shape = (L * D, B, Hr), (L * D, B, H)
        h0, c0 = self._fr_states(hx, owner, dtype, is_lstm, unbatched, h_shape, c_shape,
                                 sorted_idx)
        grad = torch.is_grad_enabled() and (
            x.requires_grad or (h0 is not None and h0.requires_grad)
            or (c0 is not None and c0.requires_grad) or any(p.requires_grad for p in params))
        perm = reverse_rows(bs) if (D == 2 and bs is not None) else None
        runs, i = [], 0
        for k, names in enumerate(self._all_weights):
            ps = params[i:i + len(names)]
            i += len(names)
            runs.append((_Run(self._fr_packed(k, names, ps, cell), bs, perm, k % D == 1,
                              is_lstm, owner, [_role(n) for n in names]), ps))
        drop = self.dropout if self.training else 0.0

        hs, cs = [], []
        if grad:  # autograd: one _Kernel per layer-direction, torch ops between them
            if h0 is None:
                h0 = torch.zeros(h_shape, dtype=dtype)
                c0 = torch.zeros(c_shape, dtype=dtype) if is_lstm else None
            layer_in = x
            for layer in range(L):
                outs = []
                for k in range(layer * D, layer * D + D):
                    run, ps = runs[k]
                    out = _Kernel.apply(run, layer_in, h0[k], c0[k] if is_lstm else None, *ps)
                    outs.append(out[0])
                    hs.append(out[1])
                    if is_lstm:
                        cs.append(out[2])
                layer_in = outs[0] if D == 1 else torch.cat(outs, -1)
                if drop and layer < L - 1:
                    layer_in = F.dropout(layer_in, drop, True)
            # One layer-direction: its state as it came from the kernels (no copy).
            h_n = hs[0].unsqueeze(0) if len(hs) == 1 else torch.stack(hs)
            c_n = (None if not is_lstm else
                   cs[0].unsqueeze(0) if len(cs) == 1 else torch.stack(cs))
        else:  # inference: NumPy arrays from the input to the outputs, no torch ops between
            npdt = np.float32 if dtype == torch.float32 else np.float64
            h0n = np.zeros(h_shape, npdt) if h0 is None else _np(h0)
            c0n = None if not is_lstm else np.zeros(c_shape, npdt) if c0 is None else _np(c0)
            layer_in = _np(x)
            for layer in range(L):
                outs = []
                for k in range(layer * D, layer * D + D):
                    y, h, c, *_ = runs[k][0].forward_np(
                        layer_in, h0n[k], None if c0n is None else c0n[k], False)
                    outs.append(y)
                    hs.append(h)
                    cs.append(c)
                layer_in = outs[0] if D == 1 else np.concatenate(outs, -1)
                if drop and layer < L - 1:  # training mode without autograd: torch's RNG
                    layer_in = _np(F.dropout(torch.from_numpy(layer_in), drop, True))
            layer_in = torch.from_numpy(layer_in)
            h_n = torch.from_numpy(hs[0][None] if len(hs) == 1 else np.stack(hs))
            c_n = (None if not is_lstm else
                   torch.from_numpy(cs[0][None] if len(cs) == 1 else np.stack(cs)))
        if unsorted_idx is not None:
            h_n = h_n.index_select(1, unsorted_idx)
            c_n = c_n.index_select(1, unsorted_idx) if is_lstm else None
        if bs is not None:
            output = PackedSequence(layer_in, batch_sizes, sorted_idx, unsorted_idx)
        elif unbatched:
            output = layer_in.squeeze(1)
            h_n = h_n.squeeze(1)
            c_n = c_n.squeeze(1) if is_lstm else None
        else:
            output = layer_in.transpose(0, 1) if self.batch_first else layer_in
        return output, ((h_n, c_n) if is_lstm else h_n)

    def _fr_states(self, hx, owner, dtype, is_lstm, unbatched, h_shape, c_shape, sorted_idx):
        """(h0, c0 or None), each (L*D, B, F) contiguous, in the kernels' batch order;
        (None, None) for hx None (zeros, made by the caller)."""
        if hx is None:
            return None, None
        if is_lstm:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"{owner}: hx: expected a tuple (h_0, c_0), got "
                                f"{type(hx).__name__}")
            parts = [(hx[0], "hx[0] (h_0)", h_shape), (hx[1], "hx[1] (c_0)", c_shape)]
        else:
            if isinstance(hx, (tuple, list)):
                raise TypeError(f"{owner}: hx: expected a tensor h_0, got a "
                                f"{type(hx).__name__}")
            parts = [(hx, "hx", h_shape)]
        out = []
        for t, arg, shape in parts:
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


class _CellMixin(_Fused):
    _fr_one_step = True

    def forward(self, input, hx=None):  # noqa: A002 -- torch.nn's argument name
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
        if B == 0:
            raise ValueError(f"{owner}: input: expected at least one row, got shape "
                             f"{tuple(input.shape)}")
        shape = (H,) if unbatched else (B, H)
        h0 = c0 = None  # None: zeros
        if hx is not None:
            if is_lstm:
                if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                    raise TypeError(f"{owner}: hx: expected a tuple (h_0, c_0), got "
                                    f"{type(hx).__name__}")
                parts = [(hx[0], "hx[0] (h_0)"), (hx[1], "hx[1] (c_0)")]
            else:
                if isinstance(hx, (tuple, list)):
                    raise TypeError(f"{owner}: hx: expected a tensor, got a "
                                    f"{type(hx).__name__}")
                parts = [(hx, "hx")]
            states = []
            for t, arg in parts:
                _check_tensor(t, arg, dtype, owner)
                if tuple(t.shape) != shape:
                    raise ValueError(f"{owner}: {arg}: expected shape {shape}, got "
                                     f"{tuple(t.shape)}")
                states.append((t.unsqueeze(0) if unbatched else t).contiguous())
            h0, c0 = states[0], (states[1] if is_lstm else None)
        packed = self._fr_packed(0, names, params, cell)
        grad = torch.is_grad_enabled() and (
            x.requires_grad or (h0 is not None and h0.requires_grad)
            or (c0 is not None and c0.requires_grad) or any(p.requires_grad for p in params))
        if grad:
            if h0 is None:
                h0 = torch.zeros((B, H), dtype=dtype)
                c0 = torch.zeros((B, H), dtype=dtype) if is_lstm else None
            run = _Run(packed, None, None, False, is_lstm, owner, [_role(n) for n in names],
                       cell=True)
            out = _Kernel.apply(run, x, h0, c0, *params)
        else:
            npdt = np.float32 if dtype == torch.float32 else np.float64
            h0n = np.zeros((B, H), npdt) if h0 is None else _np(h0)
            c0n = None if not is_lstm else np.zeros((B, H), npdt) if c0 is None else _np(c0)
            h1, c1 = _core.step(packed, _np(x), h0n, c0n)
            out = (torch.from_numpy(h1),) + ((torch.from_numpy(c1),) if is_lstm else ())
        if unbatched:
            out = tuple(t.reshape(shape) for t in out)
        return out if is_lstm else out[0]


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
