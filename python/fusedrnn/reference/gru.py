"""GRU over a sequence, forward and backward (reset after or before the product,
lengths, reverse)."""

from __future__ import annotations

import numpy as np

from ._common import bias_or_zeros, check_biases, gather, scatter, schedule, sigmoid


def gru_forward(x, h0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, reset_after=True,
                *, lengths=None, reverse=False):
    """GRU over a whole sequence.  Returns (y, h_n, cache)."""
    check_biases(bias_ih, bias_hh)
    T, B = x.shape[:2]
    H = h0.shape[-1]
    times, on = schedule(T, B, lengths, reverse)
    b_ih = bias_or_zeros(bias_ih, 3 * H, x.dtype)
    b_hh = bias_or_zeros(bias_hh, 3 * H, x.dtype)
    W_hrz, W_hn = weight_hh[: 2 * H], weight_hh[2 * H :]
    y = np.zeros(x.shape[:2] + (H,), x.dtype)
    xs, hs, steps = [], [h0], []
    h = h0
    for s in range(T):
        x_s = gather(x, times[s])
        gi = x_s @ weight_ih.T + b_ih
        grz = h @ W_hrz.T + b_hh[: 2 * H]
        r = sigmoid(gi[:, :H] + grz[:, :H])
        z = sigmoid(gi[:, H : 2 * H] + grz[:, H:])
        if reset_after:
            hn = h @ W_hn.T + b_hh[2 * H :]  # recurrent part of the candidate
            n = np.tanh(gi[:, 2 * H :] + r * hn)
        else:
            hn = r * h  # what enters the candidate's recurrent product
            n = np.tanh(gi[:, 2 * H :] + hn @ W_hn.T + b_hh[2 * H :])
        h = np.where(on[s][:, None], (1 - z) * n + z * h, h)  # finished rows keep theirs
        scatter(y, times[s], on[s], h)
        xs.append(x_s)
        hs.append(h)
        steps.append((r, z, n, hn))
    cache = dict(x=x, xs=xs, hs=hs, steps=steps, times=times, on=on,
                 weight_ih=weight_ih, weight_hh=weight_hh,
                 has_bias=bias_ih is not None, reset_after=reset_after)
    return y, h, cache


def gru_backward(cache, dy, dh_n=None):
    """Gradients of a GRU sequence given dL/dy (and optionally dL/dh_n)."""
    xs, hs, steps = cache["xs"], cache["hs"], cache["steps"]
    times, on = cache["times"], cache["on"]
    W_ih, W_hh = cache["weight_ih"], cache["weight_hh"]
    H = hs[0].shape[-1]
    W_hrz, W_hn = W_hh[: 2 * H], W_hh[2 * H :]
    x = cache["x"]
    dh = np.zeros_like(hs[0]) if dh_n is None else dh_n.copy()
    dx = np.zeros_like(x)
    dW_ih, dW_hh = np.zeros_like(W_ih), np.zeros_like(W_hh)
    db_ih = np.zeros(3 * H, x.dtype)
    db_hh = np.zeros(3 * H, x.dtype)
    for s in reversed(range(len(xs))):
        run = on[s][:, None]
        r, z, n, hn = steps[s]
        h_prev = hs[s]
        # dL/dh after step s: passed through by a finished row, into the cell by a running one
        dh = dh + np.where(run, gather(dy, times[s]), 0)
        dh_cell = np.where(run, dh, 0)
        dn = dh_cell * (1 - z) * (1 - n**2)  # gradient of the candidate's pre-activation
        dz = dh_cell * (h_prev - n) * z * (1 - z)
        dh_prev = dh_cell * z
        if cache["reset_after"]:
            dr = dn * hn * r * (1 - r)
            dgh_n = dn * r  # gradient of W_hn h + b_hn
            dh_prev = dh_prev + dgh_n @ W_hn
            dW_hh[2 * H :] += dgh_n.T @ h_prev
            db_hh[2 * H :] += dgh_n.sum(0)
        else:
            drh = dn @ W_hn  # gradient of r * h
            dr = drh * h_prev * r * (1 - r)
            dh_prev = dh_prev + drh * r
            dW_hh[2 * H :] += dn.T @ hn
            db_hh[2 * H :] += dn.sum(0)
        drz = np.concatenate([dr, dz], axis=-1)
        dh_prev = dh_prev + drz @ W_hrz
        dW_hh[: 2 * H] += drz.T @ h_prev
        db_hh[: 2 * H] += drz.sum(0)
        dgi = np.concatenate([dr, dz, dn], axis=-1)
        scatter(dx, times[s], on[s], dgi @ W_ih)
        dW_ih += dgi.T @ xs[s]
        db_ih += dgi.sum(0)
        dh = np.where(run, dh_prev, dh)
    out = dict(dx=dx, dh0=dh, weight_ih=dW_ih, weight_hh=dW_hh)
    if cache["has_bias"]:
        out["bias_ih"] = db_ih
        out["bias_hh"] = db_hh
    return out
