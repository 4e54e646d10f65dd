"""One step of each cell (the oracle of the one-step cells)."""

from __future__ import annotations

import numpy as np

from ._common import activation, bias_or_zeros, sigmoid


def lstm_cell(x_t, h, c, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    """One LSTM step: returns (h', c')."""
    H = h.shape[-1]
    pre = (
        x_t @ weight_ih.T
        + bias_or_zeros(bias_ih, 4 * H, x_t.dtype)
        + h @ weight_hh.T
        + bias_or_zeros(bias_hh, 4 * H, x_t.dtype)
    )
    i, f, g, o = (pre[..., k * H : (k + 1) * H] for k in range(4))
    c_new = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    h_new = sigmoid(o) * np.tanh(c_new)
    return h_new, c_new


def gru_cell(x_t, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None, reset_after=True):
    """One GRU step: returns h'."""
    H = h.shape[-1]
    gi = x_t @ weight_ih.T + bias_or_zeros(bias_ih, 3 * H, x_t.dtype)
    b_hh = bias_or_zeros(bias_hh, 3 * H, x_t.dtype)
    W_hr, W_hz, W_hn = weight_hh[:H], weight_hh[H : 2 * H], weight_hh[2 * H :]
    b_hr, b_hz, b_hn = b_hh[:H], b_hh[H : 2 * H], b_hh[2 * H :]
    r = sigmoid(gi[..., :H] + h @ W_hr.T + b_hr)
    z = sigmoid(gi[..., H : 2 * H] + h @ W_hz.T + b_hz)
    if reset_after:
        n = np.tanh(gi[..., 2 * H :] + r * (h @ W_hn.T + b_hn))
    else:
        n = np.tanh(gi[..., 2 * H :] + (r * h) @ W_hn.T + b_hn)
    return (1 - z) * n + z * h


def rnn_cell(x_t, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None, nonlinearity="tanh"):
    """One Elman RNN step: returns h'."""
    G = weight_ih.shape[0]
    pre = (
        x_t @ weight_ih.T
        + bias_or_zeros(bias_ih, G, x_t.dtype)
        + h @ weight_hh.T
        + bias_or_zeros(bias_hh, G, x_t.dtype)
    )
    return activation(nonlinearity)(pre)
