"""The one path from a stacked recurrent layer to the kernels.

Shared by the NumPy layers (``fusedrnn.LSTM / GRU / RNN``) and the PyTorch drop-ins
(``fusedrnn.torch``), so that each of these is written once:

- ``Rows``: the rows a kernel call reads, a padded batch (T, B, F) or rows packed
  step by step (N, F), and what the reverse direction reads instead;
- ``Direction``: one layer-direction's forward and backward kernel calls on such rows;
  ``forward_pair`` (``forward_layer_pair``: a layer's, from its states) and
  ``backward_pair``: a bidirectional layer's two at once, side by side on the threads;
- ``run_layers``: the layer x direction loop (directions of a layer side by side,
  dropout between layers);
- ``split_state``: the parsing of a state argument (``hx``: a pair for an LSTM);
- ``Plan``: the NumPy layers' ``lengths`` as packed rows of the batch sorted by length.

Every kernel call goes through ``fusedrnn.functional``.
"""

from __future__ import annotations

import numpy as np

from .functional import (_to_numpy, packed_rows, reverse_rows, sequence_backward,
                         sequence_backward_pair, sequence_forward, sequence_forward_pair)


class Rows:
    """How a batch's rows reach the kernels.

    ``batch_sizes`` None: a padded batch (T, B, F), every sequence T steps long.  Else
    an int64 array (T,) of the rows of each step (non-increasing, torch's
    PackedSequence): the rows (N, F) packed step by step.  ``reverse(a)`` gives the
    reverse direction's view of rows a (a C-contiguous copy; it is its own inverse):
    for a padded batch flipped in time, for packed rows each sequence's steps in
    reverse order (functional.reverse_rows, computed at the first use).
    """

    __slots__ = ("batch_sizes", "_perm")

    def __init__(self, batch_sizes=None):
        self.batch_sizes = batch_sizes
        self._perm = None

    def reverse(self, a: np.ndarray) -> np.ndarray:
        if self.batch_sizes is None:
            return np.ascontiguousarray(a[::-1])
        perm = self._perm
        if perm is None:
            perm = self._perm = reverse_rows(self.batch_sizes)
        return a[perm]


#: The Rows of every padded batch (they hold nothing per batch).
PADDED = Rows(None)


class Direction:
    """One layer-direction: its packed weights, the rows it runs on and whether it runs
    in reverse.  Its inputs and outputs are in the caller's row order; the reverse
    direction's kernels read and write them reversed (see Rows.reverse)."""

    __slots__ = ("packed", "rows", "reverse")

    def __init__(self, packed, rows: Rows, reverse: bool):
        self.packed, self.rows, self.reverse = packed, rows, reverse

    def order(self, a: np.ndarray) -> np.ndarray:
        """The rows as this direction's kernels see them (and back: its own inverse)."""
        return self.rows.reverse(a) if self.reverse else a

    def forward(self, x, h0, c0, train):
        """(y, h_n, c_n, the x the kernels read, workspace); x and y in the caller's order."""
        xd = self.order(x)
        y, h_n, c_n, ws = sequence_forward(self.packed, xd, h0, c0, train=train,
                                           batch_sizes=self.rows.batch_sizes)
        return self.order(y), h_n, c_n, xd, ws

    def forward_kernels_pair(self, packed, xd, h0, c0, train):
        """The forward kernels of a pair of directions like this one (forward_pair): a
        pair of (y, h_n, c_n, workspace), rows in the kernels' order."""
        return sequence_forward_pair(packed, xd, h0, c0, train=train,
                                     batch_sizes=self.rows.batch_sizes)

    def backward(self, xd, ws, dy, dh_n, dc_n, need_dx=True):
        """sequence_backward's dict for the forward that read xd and left ws; dy and the
        returned dx in the caller's row order."""
        g = sequence_backward(self.packed, xd, ws, self.kernel_dy(dy), dh_n, dc_n,
                              batch_sizes=self.rows.batch_sizes, need_dx=need_dx)
        return self.caller_grads(g)

    def kernel_dy(self, dy):
        """dy (caller's order) as the backward kernels read it: ordered, C-contiguous."""
        return self.rows.reverse(dy) if self.reverse else np.ascontiguousarray(dy)

    def caller_grads(self, g):
        """The backward kernels' dict g with dx back in the caller's order."""
        if self.reverse and g["dx"] is not None:
            g["dx"] = self.rows.reverse(g["dx"])
        return g


def forward_pair(runs, x, h0, c0, train):
    """Direction.forward of a bidirectional layer's two directions (runs, a pair) on the
    same x, side by side (functional.sequence_forward_pair): a pair of its results; h0
    a pair, c0 a pair or None."""
    xd = (runs[0].order(x), runs[1].order(x))
    out = runs[0].forward_kernels_pair((runs[0].packed, runs[1].packed), xd, h0, c0, train)
    return [(r.order(y), h_n, c_n, xi, ws) for r, xi, (y, h_n, c_n, ws) in zip(runs, xd, out)]


def forward_layer_pair(runs, k, x, h0, c0, train, record, sort=None):
    """forward_pair of layer-directions k and k + 1 (runs: all of a layer's) from states
    h0[k], h0[k + 1] (c0 likewise, or None), ``sort``-ed first if given (the NumPy layers'
    Plan.sort); returns [record(j, *Direction.forward's results for j) for j in k, k + 1]."""
    ks = (k, k + 1)

    def states(s):
        return tuple(s[j] if sort is None else sort(s[j]) for j in ks)

    outs = forward_pair(runs[k:k + 2], x, states(h0), None if c0 is None else states(c0),
                        train)
    return [record(j, *o) for j, o in zip(ks, outs)]


def backward_pair(runs, xd, ws, dy, dh_n, dc_n, need_dx=True):
    """Direction.backward of both directions side by side: xd, ws, dy pairs (dy in the
    caller's order), dh_n and dc_n pairs or None; a pair of its dicts."""
    dyd = (runs[0].kernel_dy(dy[0]), runs[1].kernel_dy(dy[1]))
    gs = sequence_backward_pair((runs[0].packed, runs[1].packed), xd, ws, dyd, dh_n, dc_n,
                                batch_sizes=runs[0].rows.batch_sizes, need_dx=need_dx)
    return [r.caller_grads(g) for r, g in zip(runs, gs)]


def run_layers(num_layers, D, x, direction, concat, dropout=None, pair=None):
    """The layer x direction loop of a stacked layer, in torch's order.

    ``direction(k, layer_input)`` runs layer-direction k = layer * D + d and returns its
    output, rows in the input's order; ``pair(k, layer_input)`` (needed when D = 2) runs
    a bidirectional layer's k and k + 1 at once (forward_layer_pair) and returns their
    two outputs;
    ``concat(outputs)`` joins a layer's D outputs on the feature axis (forward
    direction first); ``dropout(output)``, if given, is applied to the output of every
    layer but the last.  Returns the last layer's output.
    """
    inp = x
    last = num_layers - 1
    for layer in range(num_layers):
        k = layer * D
        out = direction(k, inp) if D == 1 else concat(pair(k, inp))
        if dropout is not None and layer < last:
            out = dropout(out)
        inp = out
    return inp


def split_state(value, arg, is_lstm, parts=("h_0", "c_0"), *, single, pair_note="",
                owner=None):
    """The parts of a state argument ``value`` named ``arg`` (hx, dstate, ...), each with
    its name for messages: ((h, "hx[0] (h_0)"), (c, "hx[1] (c_0)")) for an LSTM, which
    takes a tuple (or list) of two, else ((value, "hx"),).  The wrong structure raises
    a TypeError naming ``arg`` (after "owner: " when an owner is given); ``single`` says
    what a non-LSTM state must be ("a tensor h_0"), ``pair_note`` adds to an LSTM's."""
    if is_lstm:
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise TypeError(f"{_prefix(owner)}{arg}: expected a tuple ({parts[0]}, "
                            f"{parts[1]}){pair_note}, got {type(value).__name__}")
        return ((value[0], f"{arg}[0] ({parts[0]})"), (value[1], f"{arg}[1] ({parts[1]})"))
    if isinstance(value, (tuple, list)):
        raise TypeError(f"{_prefix(owner)}{arg}: expected {single}, got a "
                        f"{type(value).__name__}")
    return ((value, arg),)


def _prefix(owner):
    return "" if owner is None else f"{owner}: "


def check_lengths(lengths, T, B):
    """``lengths`` (B,) integers in [1, T] as int64."""
    a = _to_numpy(lengths)
    if a.dtype.kind not in "iu":
        raise ValueError(f"lengths: expected integers, got dtype {a.dtype}")
    if a.shape != (B,):
        raise ValueError(f"lengths: expected shape ({B},) (one length per sequence), got "
                         f"{a.shape}")
    if B and (a.min() < 1 or a.max() > T):
        raise ValueError(f"lengths: expected values in [1, {T}] (T = {T} steps), got min "
                         f"{a.min()}, max {a.max()}")
    return a.astype(np.int64)


class Plan:
    """How the NumPy layers' batch (T, B, F), time-major, maps onto the kernels' rows.

    Without lengths: the padded batch itself.  With lengths: the batch is sorted by
    length, longest first (stable, as torch's PackedSequence); step t then runs rows
    [0, bs[t]), stored at packed rows off[t] + j (steps past the longest sequence are
    left out).  ``index`` gives the packed rows' positions in the flattened
    time-major (T*B) padded array, ``order`` the sorted batch (both None without
    lengths: the identity), ``rows`` the Rows the kernels run on.
    """

    def __init__(self, T, B, lengths):
        self.T, self.B = T, B
        if lengths is None:
            self.order = self.index = None
            self.N = T * B
            self.rows = PADDED
            return
        order = np.argsort(-lengths, kind="stable")
        sl = lengths[order]
        # Steps past the longest sequence have no rows: the kernels stop before them.
        steps = int(sl[0])
        bs = (sl[None, :] > np.arange(steps)[:, None]).sum(1).astype(np.int64)
        off, t_of, j_of = packed_rows(bs)
        self.N = int(off[-1])
        self.order = order
        self.index = t_of * B + order[j_of]
        self.rows = Rows(bs)

    def shape(self, F):
        """The shape of the kernels' rows of F features."""
        return (self.T, self.B, F) if self.index is None else (self.N, F)

    def pack(self, a):
        """(T, B, F) -> the kernels' rows: itself, or (N, F) packed rows."""
        if self.index is None:
            return a
        return a.reshape(self.T * self.B, a.shape[-1])[self.index]

    def unpack(self, p):
        """The kernels' rows -> (T, B, F), zero past each sequence's end."""
        if self.index is None:
            return p
        out = np.zeros((self.T * self.B, p.shape[-1]), p.dtype)
        out[self.index] = p
        return out.reshape(self.T, self.B, p.shape[-1])

    def sort(self, s):
        """(B, F) in the caller's batch order -> sorted (C-contiguous)."""
        return np.ascontiguousarray(s if self.order is None else s[self.order])

    def unsort(self, s):
        if self.order is None:
            return s
        out = np.empty_like(s)
        out[self.order] = s
        return out
