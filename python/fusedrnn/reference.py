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

Formulas (``*`` is element-wise, ``@`` a matrix product, ``s`` the logistic sigmoid):

LSTM::

    i, f, g, o = split(x_t @ W_ih.T + b_ih + h @ W_hh.T + b_hh, 4)
    c' = s(f) * c + s(i) * tanh(g)
    h' = s(o) * tanh(c')

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

import numpy as np

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
]


def sigmoid(x):
    """Logistic function 1 / (1 + exp(-x)), without overflow for large |x|."""
    x = np.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def _check_biases(bias_ih, bias_hh):
    if (bias_ih is None) != (bias_hh is None):
        raise ValueError("bias_ih, bias_hh: give both or neither")


def _bias(b, rows, dtype):
    return np.zeros(rows, dtype) if b is None else b


# ----------------------------------------------------------------------------- cells
def lstm_cell(x_t, h, c, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    """One LSTM step: returns (h', c')."""
    H = h.shape[-1]
    pre = (
        x_t @ weight_ih.T
        + _bias(bias_ih, 4 * H, x_t.dtype)
        + h @ weight_hh.T
        + _bias(bias_hh, 4 * H, x_t.dtype)
    )
    i, f, g, o = (pre[..., k * H : (k + 1) * H] for k in range(4))
    c_new = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    h_new = sigmoid(o) * np.tanh(c_new)
    return h_new, c_new


def gru_cell(x_t, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None, reset_after=True):
    """One GRU step: returns h'."""
    H = h.shape[-1]
    gi = x_t @ weight_ih.T + _bias(bias_ih, 3 * H, x_t.dtype)
    b_hh = _bias(bias_hh, 3 * H, x_t.dtype)
    W_hr, W_hz, W_hn = weight_hh[:H], weight_hh[H : 2 * H], weight_hh[2 * H :]
    b_hr, b_hz, b_hn = b_hh[:H], b_hh[H : 2 * H], b_hh[2 * H :]
    r = sigmoid(gi[..., :H] + h @ W_hr.T + b_hr)
    z = sigmoid(gi[..., H : 2 * H] + h @ W_hz.T + b_hz)
    if reset_after:
        n = np.tanh(gi[..., 2 * H :] + r * (h @ W_hn.T + b_hn))
    else:
        n = np.tanh(gi[..., 2 * H :] + (r * h) @ W_hn.T + b_hn)
    return (1 - z) * n + z * h


def _activation(name):
    if name == "tanh":
        return np.tanh
    if name == "relu":
        return lambda v: np.maximum(v, 0)
    raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {name!r}")


def rnn_cell(x_t, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None, nonlinearity="tanh"):
    """One Elman RNN step: returns h'."""
    G = weight_ih.shape[0]
    pre = (
        x_t @ weight_ih.T
        + _bias(bias_ih, G, x_t.dtype)
        + h @ weight_hh.T
        + _bias(bias_hh, G, x_t.dtype)
    )
    return _activation(nonlinearity)(pre)


# ----------------------------------------------------------------------------- LSTM
def lstm_forward(x, h0, c0, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    """LSTM over a whole sequence.  Returns (y, h_n, c_n, cache); y is (T, B, H)."""
    _check_biases(bias_ih, bias_hh)
    T = x.shape[0]
    H = h0.shape[-1]
    b = _bias(bias_ih, 4 * H, x.dtype) + _bias(bias_hh, 4 * H, x.dtype)
    y = np.empty(x.shape[:2] + (H,), x.dtype)
    hs, cs, gates = [h0], [c0], []
    h, c = h0, c0
    for t in range(T):
        pre = x[t] @ weight_ih.T + h @ weight_hh.T + b
        i = sigmoid(pre[:, :H])
        f = sigmoid(pre[:, H : 2 * H])
        g = np.tanh(pre[:, 2 * H : 3 * H])
        o = sigmoid(pre[:, 3 * H :])
        c = f * c + i * g
        h = o * np.tanh(c)
        y[t] = h
        gates.append((i, f, g, o))
        hs.append(h)
        cs.append(c)
    cache = dict(x=x, hs=hs, cs=cs, gates=gates, weight_ih=weight_ih, weight_hh=weight_hh,
                 has_bias=bias_ih is not None)
    return y, h, c, cache


def lstm_backward(cache, dy, dh_n=None, dc_n=None):
    """Gradients of an LSTM sequence given dL/dy (and optionally dL/dh_n, dL/dc_n)."""
    x, hs, cs, gates = cache["x"], cache["hs"], cache["cs"], cache["gates"]
    W_ih, W_hh = cache["weight_ih"], cache["weight_hh"]
    T = x.shape[0]
    dh = np.zeros_like(hs[0]) if dh_n is None else dh_n.copy()
    dc = np.zeros_like(cs[0]) if dc_n is None else dc_n.copy()
    dx = np.zeros_like(x)
    dW_ih, dW_hh = np.zeros_like(W_ih), np.zeros_like(W_hh)
    db = np.zeros(W_ih.shape[0], x.dtype)
    for t in reversed(range(T)):
        i, f, g, o = gates[t]
        dh = dh + dy[t]
        tc = np.tanh(cs[t + 1])
        do = dh * tc
        dc = dc + dh * o * (1 - tc**2)
        di = dc * g
        dg = dc * i
        df = dc * cs[t]
        dpre = np.concatenate(
            [di * i * (1 - i), df * f * (1 - f), dg * (1 - g**2), do * o * (1 - o)], axis=-1
        )
        dx[t] = dpre @ W_ih
        dW_ih += dpre.T @ x[t]
        dW_hh += dpre.T @ hs[t]
        db += dpre.sum(0)
        dh = dpre @ W_hh
        dc = dc * f
    out = dict(dx=dx, dh0=dh, dc0=dc, weight_ih=dW_ih, weight_hh=dW_hh)
    if cache["has_bias"]:
        out["bias_ih"] = db
        out["bias_hh"] = db.copy()
    return out


# ----------------------------------------------------------------------------- GRU
def gru_forward(x, h0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, reset_after=True):
    """GRU over a whole sequence.  Returns (y, h_n, cache)."""
    _check_biases(bias_ih, bias_hh)
    T = x.shape[0]
    H = h0.shape[-1]
    b_ih = _bias(bias_ih, 3 * H, x.dtype)
    b_hh = _bias(bias_hh, 3 * H, x.dtype)
    W_hrz, W_hn = weight_hh[: 2 * H], weight_hh[2 * H :]
    y = np.empty(x.shape[:2] + (H,), x.dtype)
    hs, steps = [h0], []
    h = h0
    for t in range(T):
        gi = x[t] @ weight_ih.T + b_ih
        grz = h @ W_hrz.T + b_hh[: 2 * H]
        r = sigmoid(gi[:, :H] + grz[:, :H])
        z = sigmoid(gi[:, H : 2 * H] + grz[:, H:])
        if reset_after:
            hn = h @ W_hn.T + b_hh[2 * H :]  # recurrent part of the candidate
            n = np.tanh(gi[:, 2 * H :] + r * hn)
        else:
            hn = r * h  # what enters the candidate's recurrent product
            n = np.tanh(gi[:, 2 * H :] + hn @ W_hn.T + b_hh[2 * H :])
        h = (1 - z) * n + z * h
        y[t] = h
        hs.append(h)
        steps.append((r, z, n, hn))
    cache = dict(x=x, hs=hs, steps=steps, weight_ih=weight_ih, weight_hh=weight_hh,
                 has_bias=bias_ih is not None, reset_after=reset_after)
    return y, h, cache


def gru_backward(cache, dy, dh_n=None):
    """Gradients of a GRU sequence given dL/dy (and optionally dL/dh_n)."""
    x, hs, steps = cache["x"], cache["hs"], cache["steps"]
    W_ih, W_hh = cache["weight_ih"], cache["weight_hh"]
    H = hs[0].shape[-1]
    W_hrz, W_hn = W_hh[: 2 * H], W_hh[2 * H :]
    T = x.shape[0]
    dh = np.zeros_like(hs[0]) if dh_n is None else dh_n.copy()
    dx = np.zeros_like(x)
    dW_ih, dW_hh = np.zeros_like(W_ih), np.zeros_like(W_hh)
    db_ih = np.zeros(3 * H, x.dtype)
    db_hh = np.zeros(3 * H, x.dtype)
    for t in reversed(range(T)):
        r, z, n, hn = steps[t]
        h_prev = hs[t]
        dh = dh + dy[t]
        dn = dh * (1 - z) * (1 - n**2)  # gradient of the candidate's pre-activation
        dz = dh * (h_prev - n) * z * (1 - z)
        dh_prev = dh * z
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
        dx[t] = dgi @ W_ih
        dW_ih += dgi.T @ x[t]
        db_ih += dgi.sum(0)
        dh = dh_prev
    out = dict(dx=dx, dh0=dh, weight_ih=dW_ih, weight_hh=dW_hh)
    if cache["has_bias"]:
        out["bias_ih"] = db_ih
        out["bias_hh"] = db_hh
    return out


# ----------------------------------------------------------------------------- RNN
def rnn_forward(x, h0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, nonlinearity="tanh"):
    """Elman RNN over a whole sequence.  Returns (y, h_n, cache)."""
    _check_biases(bias_ih, bias_hh)
    act = _activation(nonlinearity)
    T = x.shape[0]
    H = h0.shape[-1]
    b = _bias(bias_ih, H, x.dtype) + _bias(bias_hh, H, x.dtype)
    y = np.empty(x.shape[:2] + (H,), x.dtype)
    hs = [h0]
    h = h0
    for t in range(T):
        h = act(x[t] @ weight_ih.T + h @ weight_hh.T + b)
        y[t] = h
        hs.append(h)
    cache = dict(x=x, hs=hs, weight_ih=weight_ih, weight_hh=weight_hh,
                 has_bias=bias_ih is not None, nonlinearity=nonlinearity)
    return y, h, cache


def rnn_backward(cache, dy, dh_n=None):
    """Gradients of an Elman RNN sequence given dL/dy (and optionally dL/dh_n)."""
    x, hs = cache["x"], cache["hs"]
    W_ih, W_hh = cache["weight_ih"], cache["weight_hh"]
    T = x.shape[0]
    dh = np.zeros_like(hs[0]) if dh_n is None else dh_n.copy()
    dx = np.zeros_like(x)
    dW_ih, dW_hh = np.zeros_like(W_ih), np.zeros_like(W_hh)
    db = np.zeros(W_ih.shape[0], x.dtype)
    for t in reversed(range(T)):
        h = hs[t + 1]
        dh = dh + dy[t]
        if cache["nonlinearity"] == "tanh":
            dpre = dh * (1 - h**2)
        else:
            dpre = dh * (h > 0)
        dx[t] = dpre @ W_ih
        dW_ih += dpre.T @ x[t]
        dW_hh += dpre.T @ hs[t]
        db += dpre.sum(0)
        dh = dpre @ W_hh
    out = dict(dx=dx, dh0=dh, weight_ih=dW_ih, weight_hh=dW_hh)
    if cache["has_bias"]:
        out["bias_ih"] = db
        out["bias_hh"] = db.copy()
    return out
