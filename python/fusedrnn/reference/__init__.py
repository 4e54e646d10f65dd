"""NumPy reference implementation of the recurrent cells: the oracle of the tests.

Written to be read, not to be fast.  Every function works in the floating dtype of
its inputs (float32 or float64; use float64 as the oracle).  Shapes follow torch.nn
with ``batch_first=False``:

    x        (T, B, I)     input sequence
    h0, c0   (B, H)        initial states of one layer and direction
    weight_ih (G*H, I), weight_hh (G*H, H), bias_ih (G*H,), bias_hh (G*H,)

with G = 4 gates for LSTM (rows i, f, g, o), 3 for GRU (rows r, z, n) and 1 for RNN,
exactly PyTorch's layout.  Biases may be ``None`` (``bias=False``).

Each ``*_forward`` returns the outputs and a ``cache``; the matching ``*_backward``
takes that cache and the gradients of the outputs and returns a dict with the
gradients of the input (``dx``), of the initial states (``dh0``, ``dc0``) and of
every parameter under its torch name (``weight_ih``, ``weight_hh``, ``bias_ih``,
``bias_hh``; the bias keys only when the biases were given).

Keyword-only options of the three ``*_forward`` functions (the backward follows them):

* ``lengths`` (B,) ints, 1 <= len_b <= T, any order: PyTorch's packed-sequence rule.
  Row b runs its first len_b steps only; ``y[t, b] = 0`` for t >= len_b (and dL/dy
  there is ignored); its final state is the one after its own last step, and the
  gradient of that final state enters there.
* ``reverse=True``: the reverse half of a bidirectional layer.  Row b reads
  x[len_b - 1], ..., x[0] starting from h0[b]; ``y[t, b]`` is the state after reading
  x[t] (y stays aligned with x), and the final state is the one after x[0].
* ``weight_hr`` (P, H), ``lstm_forward`` only: an LSTM with projection (torch's
  ``proj_size = P``).  The state h has P columns (h0, y, h_n; weight_hh is (4H, P)),
  the cell c keeps H, and ``lstm_backward`` also returns ``weight_hr``.

``stack_forward`` / ``stack_backward`` chain these into a multi-layer, optionally
bidirectional network like ``torch.nn.LSTM/GRU/RNN``, with torch's parameter names
(``weight_ih_l0``, ``weight_hh_l1_reverse``, ``weight_hr_l0``, ...) and state layout
(index ``layer * D + direction``); see ``stack_forward``.

Formulas (``*`` is element-wise, ``@`` a matrix product, ``s`` the logistic sigmoid):

LSTM::

    i, f, g, o = split(x_t @ W_ih.T + b_ih + h @ W_hh.T + b_hh, 4)
    c' = s(f) * c + s(i) * tanh(g)
    h' = s(o) * tanh(c')                  (with projection: (s(o) * tanh(c')) @ W_hr.T)

GRU, ``reset_after=True`` (PyTorch, cuDNN)::

    gi = x_t @ W_ih.T + b_ih;  gh = h @ W_hh.T + b_hh
    r = s(gi_r + gh_r);  z = s(gi_z + gh_z)
    n = tanh(gi_n + r * gh_n)
    h' = (1 - z) * n + z * h

GRU, ``reset_after=False`` (Cho et al. 2014): as above except that the reset gate
multiplies the state before the recurrent product of the candidate::

    n = tanh(gi_n + (r * h) @ W_hn.T + b_hn)

RNN::

    h' = act(x_t @ W_ih.T + b_ih + h @ W_hh.T + b_hh),  act = tanh or relu
"""

from __future__ import annotations

from ._common import sigmoid
from .cells import gru_cell, lstm_cell, rnn_cell
from .gru import gru_backward, gru_forward
from .lstm import lstm_backward, lstm_forward
from .rnn import rnn_backward, rnn_forward
from .stack import stack_backward, stack_forward

__all__ = [
    "sigmoid",
    "lstm_cell",
    "gru_cell",
    "rnn_cell",
    "lstm_forward",
    "lstm_backward",
    "gru_forward",
    "gru_backward",
    "rnn_forward",
    "rnn_backward",
    "stack_forward",
    "stack_backward",
]
