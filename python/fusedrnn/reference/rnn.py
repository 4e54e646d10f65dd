"""Elman RNN over a sequence, forward and backward (tanh or relu, lengths, reverse)."""

from __future__ import annotations

import numpy as np

from ._common import activation, bias_or_zeros, check_biases, gather, scatter, schedule


def rnn_forward(x, h0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, nonlinearity="tanh",
                *, lengths=None, reverse=False):
    """Elman RNN over a whole sequence.  Returns (y, h_n, cache)."""
    check_biases(bias_ih, bias_hh)
    act = activation(nonlinearity)
    T, B = x.shape[:2]
    H = h0.shape[-1]
    times, on = schedule(T, B, lengths, reverse)
    b = bias_or_zeros(bias_ih, H, x.dtype) + bias_or_zeros(bias_hh, H, x.dtype)
    y = np.zeros(x.shape[:2] + (H,), x.dtype)
    xs, hs = [], [h0]
    h = h0
    for s in range(T):
        x_s = gather(x, times[s])
        h = np.where(on[s][:, None], act(x_s @ weight_ih.T + h @ weight_hh.T + b), h)
        scatter(y, times[s], on[s], h)
        xs.append(x_s)
        hs.append(h)
    cache = dict(x=x, xs=xs, hs=hs, times=times, on=on, weight_ih=weight_ih,
                 weight_hh=weight_hh, has_bias=bias_ih is not None, nonlinearity=nonlinearity)
    return y, h, cache


def rnn_backward(cache, dy, dh_n=None):
    """Gradients of an Elman RNN sequence given dL/dy (and optionally dL/dh_n)."""
    xs, hs = cache["xs"], cache["hs"]
    times, on = cache["times"], cache["on"]
    W_ih, W_hh = cache["weight_ih"], cache["weight_hh"]
    x = cache["x"]
    dh = np.zeros_like(hs[0]) if dh_n is None else dh_n.copy()
    dx = np.zeros_like(x)
    dW_ih, dW_hh = np.zeros_like(W_ih), np.zeros_like(W_hh)
    db = np.zeros(W_ih.shape[0], x.dtype)
    for s in reversed(range(len(xs))):
        run = on[s][:, None]
        h = hs[s + 1]
        # dL/dh after step s: passed through by a finished row, into the cell by a running one
        dh = dh + np.where(run, gather(dy, times[s]), 0)
        dh_cell = np.where(run, dh, 0)
        if cache["nonlinearity"] == "tanh":
            dpre = dh_cell * (1 - h**2)
        else:
            dpre = dh_cell * (h > 0)
        scatter(dx, times[s], on[s], dpre @ W_ih)
        dW_ih += dpre.T @ xs[s]
        dW_hh += dpre.T @ hs[s]
        db += dpre.sum(0)
        dh = np.where(run, dpre @ W_hh, dh)
    out = dict(dx=dx, dh0=dh, weight_ih=dW_ih, weight_hh=dW_hh)
    if cache["has_bias"]:
        out["bias_ih"] = db
        out["bias_hh"] = db.copy()
    return out
