"""The PyTorch peers of a Case: ``torch`` (torch.nn on the CPU), ``dropin``
(``fusedrnn.torch``'s drop-in module) and ``torch_pad`` (torch on the padded batch).

``torch``: ``torch.nn.LSTM/GRU/RNN`` (the cell row: ``LSTMCell/...``) with the case's
weights; in a ragged row its input is a PackedSequence, and packing and unpacking are
timed with it.  ``dropin``: ``fusedrnn.torch.from_torch`` of a deep copy of the torch
module (same weights, its own Parameters and gradients), called through the same code,
so that torch / dropin is the gain of swapping the module and dropin / ours the cost of
autograd and the torch glue over the NumPy API.  ``torch_pad`` (ragged one-layer rows
only): the torch module on the padded batch, y masked past each end.
"""

from __future__ import annotations

import copy

import numpy as np

from .grid import applies
from .machine import dropin_or_none, torch_or_none


def as_numpy(a):
    """A torch tensor (or an array) as a NumPy array, without copying."""
    return a.detach().numpy() if hasattr(a, "detach") else a


def attach(case) -> None:
    """Add the torch peers that import here to ``case.peers``; set
    ``case._torch_module`` and ``case._dropin_module`` (None when absent)."""
    torch = torch_or_none()
    if torch is None:
        return
    peers = TorchPeers(case, torch)
    case._torch_module = peers.module
    case.peers["torch"] = peers.torch
    frt = dropin_or_none()
    if frt is not None:
        # A copy: its own Parameters, so that its .grad never mixes with torch's.
        peers.dropin_module = frt.from_torch(copy.deepcopy(peers.module))
        case._dropin_module = peers.dropin_module
        case.peers["dropin"] = peers.dropin
    if applies("torch_pad", case.shape, case.mode):
        case.peers["torch_pad"] = peers.torch_pad


class TorchPeers:
    """The case's inputs as tensors and the torch module with its weights."""

    def __init__(self, case, torch):
        self.case, self.t = case, torch
        s = case.shape
        if s.is_cell:
            m = getattr(torch.nn, case.kind.cell)(s.I, s.H)
        else:
            m = getattr(torch.nn, case.kind.layer)(s.I, s.H, num_layers=s.num_layers,
                                                   bidirectional=s.bidirectional)
        m.load_state_dict({n: torch.from_numpy(a) for n, a in case.module.state_dict().items()})
        self.module, self.dropin_module = m, None
        self.x, self.dy = torch.from_numpy(case.x), torch.from_numpy(case.dy)
        self.states = tuple(torch.from_numpy(a) for a in case.states0)
        if case.lengths is not None:
            self.lengths = torch.from_numpy(case.lengths)  # int64 on the CPU, as pack wants
            # torch_pad: y past each end set to zero, h_n read at each sequence's last step
            mask = np.arange(s.T)[:, None] < case.lengths[None, :]
            self.mask = torch.from_numpy(mask[:, :, None].astype(np.float32))
            self.last = torch.from_numpy(case.lengths - 1)
            self.batch = torch.arange(s.B)

    def torch(self) -> dict:
        return self._call(self.module)

    def dropin(self) -> dict:
        """The drop-in module, called exactly as torch's."""
        return self._call(self.dropin_module)

    def _run(self, x, m):
        """Module m on x (T, B, I): a PackedSequence in and out in a ragged row."""
        if self.case.lengths is None:
            return m(x)
        rnn = self.t.nn.utils.rnn
        packed = rnn.pack_padded_sequence(x, self.lengths, enforce_sorted=False)
        out, state = m(packed)
        y, _ = rnn.pad_packed_sequence(out, total_length=self.case.shape.T)
        return y, state

    def _call(self, m) -> dict:
        """Module m (torch.nn's or the drop-in) on the case's inputs: inference under
        torch.inference_mode; training = forward and backward of sum(y * dy) from a fresh
        leaf x, the gradients read from x.grad and each Parameter's .grad."""
        case, torch = self.case, self.t
        if case.shape.is_cell and case.mode == "inference":
            with torch.inference_mode():
                return case.named_state(m(self.x, case.hx(self.states)))
        if case.shape.is_cell:  # training: sum(h' * dy)
            m.zero_grad(set_to_none=True)
            x = torch.from_numpy(case.x).requires_grad_()
            out = m(x, case.hx(self.states))
            ((out[0] if case.kind.has_c else out) * self.dy).sum().backward()
            return {**case.named_state(out), "dx": as_numpy(x.grad),
                    **case.grads((n, p.grad) for n, p in m.named_parameters())}
        if case.mode == "inference":
            with torch.inference_mode():
                y, state = self._run(self.x, m)
            return {"y": as_numpy(y), **case.named_state(state)}
        m.zero_grad(set_to_none=True)
        x = torch.from_numpy(case.x).requires_grad_()  # a fresh leaf per call
        y, state = self._run(x, m)
        (y * self.dy).sum().backward()
        return self._training(m, x, y, case.named_state(state))

    def _training(self, m, x, y, state: dict) -> dict:
        return {"y": as_numpy(y), **state, "dx": as_numpy(x.grad),
                **self.case.grads((n, p.grad) for n, p in m.named_parameters())}

    def torch_pad(self) -> dict:
        """torch on the padded batch, no packing: every sequence runs all T steps.  What a
        user needs from it is y masked past each end and h at each sequence's last step
        (c_n there is not in its outputs); the loss is sum(masked y * dy)."""
        case, torch, m = self.case, self.t, self.module
        if case.mode == "inference":
            with torch.inference_mode():
                y, _ = m(self.x)
                h_n = y[self.last, self.batch]
                y = y * self.mask
            return {"y": as_numpy(y), **case.named_state(h_n)}
        m.zero_grad(set_to_none=True)
        x = torch.from_numpy(case.x).requires_grad_()
        y, _ = m(x)
        h_n = y[self.last, self.batch]
        y = y * self.mask
        (y * self.dy).sum().backward()
        return self._training(m, x, y, case.named_state(h_n))
