"""LSTM over a sequence, forward and backward (lengths, reverse, projection)."""

from __future__ import annotations

import numpy as np

from ._common import bias_or_zeros, check_biases, gather, scatter, schedule, sigmoid


def lstm_forward(x, h0, c0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, *,
                 lengths=None, reverse=False, weight_hr=None):
    """LSTM over a whole sequence.  Returns (y, h_n, c_n, cache); y is (T, B, H), or
    (T, B, P) with the projection ``weight_hr`` (P, H)."""
    check_biases(bias_ih, bias_hh)
    T, B = x.shape[:2]
    H = c0.shape[-1]  # the cell's size; the state h has P columns with a projection
    times, on = schedule(T, B, lengths, reverse)
    b = bias_or_zeros(bias_ih, 4 * H, x.dtype) + bias_or_zeros(bias_hh, 4 * H, x.dtype)
    y = np.zeros(x.shape[:2] + (h0.shape[-1],), x.dtype)
    xs, hs, cs, gates, ms = [], [h0], [c0], [], []
    h, c = h0, c0
    for s in range(T):
        run = on[s][:, None]
        x_s = gather(x, times[s])
        pre = x_s @ weight_ih.T + h @ weight_hh.T + b
        i = sigmoid(pre[:, :H])
        f = sigmoid(pre[:, H : 2 * H])
        g = np.tanh(pre[:, 2 * H : 3 * H])
        o = sigmoid(pre[:, 3 * H :])
        c_new = f * c + i * g
        m = o * np.tanh(c_new)  # the new state before the projection
        h_new = m if weight_hr is None else m @ weight_hr.T
        h = np.where(run, h_new, h)  # finished rows keep their state
        c = np.where(run, c_new, c)
        scatter(y, times[s], on[s], h)
        xs.append(x_s)
        gates.append((i, f, g, o))
        ms.append(m)
        hs.append(h)
        cs.append(c)
    cache = dict(x=x, xs=xs, hs=hs, cs=cs, gates=gates, ms=ms, times=times, on=on,
                 weight_ih=weight_ih, weight_hh=weight_hh, weight_hr=weight_hr,
                 has_bias=bias_ih is not None)
    return y, h, c, cache


def lstm_backward(cache, dy, dh_n=None, dc_n=None):
    """Gradients of an LSTM sequence given dL/dy (and optionally dL/dh_n, dL/dc_n)."""
    xs, hs, cs, gates, ms = cache["xs"], cache["hs"], cache["cs"], cache["gates"], cache["ms"]
    times, on = cache["times"], cache["on"]
    W_ih, W_hh, W_hr = cache["weight_ih"], cache["weight_hh"], cache["weight_hr"]
    dh = np.zeros_like(hs[0]) if dh_n is None else dh_n.copy()
    dc = np.zeros_like(cs[0]) if dc_n is None else dc_n.copy()
    dx = np.zeros_like(cache["x"])
    dW_ih, dW_hh = np.zeros_like(W_ih), np.zeros_like(W_hh)
    dW_hr = None if W_hr is None else np.zeros_like(W_hr)
    db = np.zeros(W_ih.shape[0], cache["x"].dtype)
    for s in reversed(range(len(xs))):
        run = on[s][:, None]
        i, f, g, o = gates[s]
        # dL/dh and dL/dc after step s; a row that has finished passes them through
        # unchanged, a running row sends them into this step's cell
        dh = dh + np.where(run, gather(dy, times[s]), 0)
        dh_cell, dc_cell = np.where(run, dh, 0), np.where(run, dc, 0)
        if W_hr is None:
            dm = dh_cell
        else:
            dW_hr += dh_cell.T @ ms[s]
            dm = dh_cell @ W_hr
        tc = np.tanh(cs[s + 1])
        do = dm * tc
        dc_cell = dc_cell + dm * o * (1 - tc**2)
        di = dc_cell * g
        dg = dc_cell * i
        df = dc_cell * cs[s]
        dpre = np.concatenate(
            [di * i * (1 - i), df * f * (1 - f), dg * (1 - g**2), do * o * (1 - o)], axis=-1
        )
        scatter(dx, times[s], on[s], dpre @ W_ih)
        dW_ih += dpre.T @ xs[s]
        dW_hh += dpre.T @ hs[s]
        db += dpre.sum(0)
        dh = np.where(run, dpre @ W_hh, dh)
        dc = np.where(run, dc_cell * f, dc)
    out = dict(dx=dx, dh0=dh, dc0=dc, weight_ih=dW_ih, weight_hh=dW_hh)
    if W_hr is not None:
        out["weight_hr"] = dW_hr
    if cache["has_bias"]:
        out["bias_ih"] = db
        out["bias_hh"] = db.copy()
    return out
