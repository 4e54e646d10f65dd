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
    "stack_forward",
    "stack_backward",
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


# ----------------------------------------------------------------------------- schedule
def _check_lengths(lengths, T, B):
    """lengths as an int array (B,), all of them T when None."""
    if lengths is None:
        return np.full(B, T, dtype=np.int64)
    lengths = np.asarray(lengths)
    if lengths.shape != (B,) or lengths.dtype.kind not in "iu":
        raise ValueError(f"lengths: expected integers of shape ({B},), "
                         f"got {lengths.dtype} of shape {lengths.shape}")
    if lengths.size and (lengths.min() < 1 or lengths.max() > T):
        raise ValueError(f"lengths: expected 1 <= length <= T = {T}, got {lengths.tolist()}")
    return lengths.astype(np.int64)


def _schedule(T, B, lengths, reverse):
    """Which time index each row reads at each step, and whether it is still running.

    Returns (times, on), both (T, B).  At step s, row b reads x[times[s, b], b] and
    writes y[times[s, b], b] if on[s, b] (that is s < len_b); otherwise the row has
    finished: it keeps its state and writes nothing (times is then 0, a placeholder).
    Forward: times[s, b] = s; reverse: times[s, b] = len_b - 1 - s.
    """
    lengths = _check_lengths(lengths, T, B)
    steps = np.arange(T)[:, None]
    on = steps < lengths[None, :]
    times = lengths[None, :] - 1 - steps if reverse else np.broadcast_to(steps, (T, B))
    return np.where(on, times, 0), on


def _gather(a, times_s):
    """Row b of a[times_s[b]] for every row b: (T, B, ...) -> (B, ...)."""
    return a[times_s, np.arange(a.shape[1])]


def _scatter(a, times_s, on_s, v):
    """a[times_s[b], b] = v[b] for the rows b that are running (on_s[b])."""
    a[times_s[on_s], np.arange(a.shape[1])[on_s]] = v[on_s]


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
def lstm_forward(x, h0, c0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, *,
                 lengths=None, reverse=False, weight_hr=None):
    """LSTM over a whole sequence.  Returns (y, h_n, c_n, cache); y is (T, B, H), or
    (T, B, P) with the projection ``weight_hr`` (P, H)."""
    _check_biases(bias_ih, bias_hh)
    T, B = x.shape[:2]
    H = c0.shape[-1]  # the cell's size; the state h has P columns with a projection
    times, on = _schedule(T, B, lengths, reverse)
    b = _bias(bias_ih, 4 * H, x.dtype) + _bias(bias_hh, 4 * H, x.dtype)
    y = np.zeros(x.shape[:2] + (h0.shape[-1],), x.dtype)
    xs, hs, cs, gates, ms = [], [h0], [c0], [], []
    h, c = h0, c0
    for s in range(T):
        run = on[s][:, None]
        x_s = _gather(x, times[s])
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
        _scatter(y, times[s], on[s], h)
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
        dh = dh + np.where(run, _gather(dy, times[s]), 0)
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
        _scatter(dx, times[s], on[s], dpre @ W_ih)
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


# ----------------------------------------------------------------------------- GRU
def gru_forward(x, h0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, reset_after=True,
                *, lengths=None, reverse=False):
    """GRU over a whole sequence.  Returns (y, h_n, cache)."""
    _check_biases(bias_ih, bias_hh)
    T, B = x.shape[:2]
    H = h0.shape[-1]
    times, on = _schedule(T, B, lengths, reverse)
    b_ih = _bias(bias_ih, 3 * H, x.dtype)
    b_hh = _bias(bias_hh, 3 * H, x.dtype)
    W_hrz, W_hn = weight_hh[: 2 * H], weight_hh[2 * H :]
    y = np.zeros(x.shape[:2] + (H,), x.dtype)
    xs, hs, steps = [], [h0], []
    h = h0
    for s in range(T):
        x_s = _gather(x, times[s])
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
        _scatter(y, times[s], on[s], h)
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
        dh = dh + np.where(run, _gather(dy, times[s]), 0)
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
        _scatter(dx, times[s], on[s], dgi @ W_ih)
        dW_ih += dgi.T @ xs[s]
        db_ih += dgi.sum(0)
        dh = np.where(run, dh_prev, dh)
    out = dict(dx=dx, dh0=dh, weight_ih=dW_ih, weight_hh=dW_hh)
    if cache["has_bias"]:
        out["bias_ih"] = db_ih
        out["bias_hh"] = db_hh
    return out


# ----------------------------------------------------------------------------- RNN
def rnn_forward(x, h0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, nonlinearity="tanh",
                *, lengths=None, reverse=False):
    """Elman RNN over a whole sequence.  Returns (y, h_n, cache)."""
    _check_biases(bias_ih, bias_hh)
    act = _activation(nonlinearity)
    T, B = x.shape[:2]
    H = h0.shape[-1]
    times, on = _schedule(T, B, lengths, reverse)
    b = _bias(bias_ih, H, x.dtype) + _bias(bias_hh, H, x.dtype)
    y = np.zeros(x.shape[:2] + (H,), x.dtype)
    xs, hs = [], [h0]
    h = h0
    for s in range(T):
        x_s = _gather(x, times[s])
        h = np.where(on[s][:, None], act(x_s @ weight_ih.T + h @ weight_hh.T + b), h)
        _scatter(y, times[s], on[s], h)
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
        dh = dh + np.where(run, _gather(dy, times[s]), 0)
        dh_cell = np.where(run, dh, 0)
        if cache["nonlinearity"] == "tanh":
            dpre = dh_cell * (1 - h**2)
        else:
            dpre = dh_cell * (h > 0)
        _scatter(dx, times[s], on[s], dpre @ W_ih)
        dW_ih += dpre.T @ xs[s]
        dW_hh += dpre.T @ hs[s]
        db += dpre.sum(0)
        dh = np.where(run, dpre @ W_hh, dh)
    out = dict(dx=dx, dh0=dh, weight_ih=dW_ih, weight_hh=dW_hh)
    if cache["has_bias"]:
        out["bias_ih"] = db
        out["bias_hh"] = db.copy()
    return out


# ----------------------------------------------------------------------------- stacks
# kind -> (cell, number of gates, keyword arguments of its *_forward)
_STACK_KINDS = {
    "lstm": ("lstm", 4, {}),
    "gru": ("gru", 3, {"reset_after": True}),
    "gru_reset_before": ("gru", 3, {"reset_after": False}),
    "rnn_tanh": ("rnn", 1, {"nonlinearity": "tanh"}),
    "rnn_relu": ("rnn", 1, {"nonlinearity": "relu"}),
}
_PARAM_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")


def _suffix(layer, direction):
    """torch's parameter-name suffix: '_l0', '_l1_reverse', ..."""
    return f"_l{layer}" + ("_reverse" if direction else "")


def _state(a, shape, dtype, name):
    if a is None:
        return np.zeros(shape, dtype)
    if a.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {a.shape}")
    return a


def stack_forward(kind, x, hx, params, *, num_layers=1, bidirectional=False, lengths=None,
                  dropout_masks=None):
    """A multi-layer, optionally bidirectional network, like torch.nn.LSTM/GRU/RNN with
    ``batch_first=False``.  Returns (y, h_n, c_n, cache); c_n is None except for LSTM.

    kind: "lstm", "gru" (reset_after=True), "gru_reset_before" (reset_after=False),
    "rnn_tanh" or "rnn_relu".  params: torch's state_dict names and shapes,
    ``weight_ih_l{k}``, ``weight_hh_l{k}``, optional ``bias_ih_l{k}``/``bias_hh_l{k}``
    (both absent: bias=False), optional ``weight_hr_l{k}`` (LSTM projection), and the same
    with the suffix ``_reverse`` for the reverse direction.  With D = 2 if bidirectional
    else 1 and H_out = P with a projection else H:

        x   (T, B, I)             layer k > 0 reads the (T, B, D*H_out) output of layer k-1
        hx  LSTM: (h0, c0), h0 (L*D, B, H_out), c0 (L*D, B, H); else h0 (L*D, B, H);
            None (or None for either of h0, c0) means zeros.  Layer l, direction d
            (0 forward, 1 reverse) is index l*D + d.
        y   (T, B, D*H_out)       forward direction in the first H_out columns, then reverse
        h_n (L*D, B, H_out), c_n (L*D, B, H)

    lengths: as for the single-layer functions, for every layer.  dropout_masks: None or
    num_layers - 1 arrays, mask k of the shape of layer k's output, multiplied into the
    input of layer k + 1 (already scaled by the caller, e.g. 0 or 1/(1-p)).
    """
    if kind not in _STACK_KINDS:
        raise ValueError(f"kind: expected one of {list(_STACK_KINDS)}, got {kind!r}")
    cell, G, kw = _STACK_KINDS[kind]
    L, D = num_layers, (2 if bidirectional else 1)
    T, B = x.shape[:2]
    H = params["weight_hh_l0"].shape[0] // G
    H_out = params["weight_hr_l0"].shape[0] if "weight_hr_l0" in params else H

    expected = {n + _suffix(l, d) for l in range(L) for d in range(D) for n in _PARAM_NAMES}
    unknown = set(params) - expected
    if unknown:
        raise ValueError(f"params: unexpected names {sorted(unknown)} for num_layers={L}, "
                         f"bidirectional={bidirectional}")
    if dropout_masks is not None and len(dropout_masks) != L - 1:
        raise ValueError(f"dropout_masks: expected {L - 1} masks (num_layers - 1), "
                         f"got {len(dropout_masks)}")

    if cell == "lstm":
        h0, c0 = (None, None) if hx is None else hx
        c0 = _state(c0, (L * D, B, H), x.dtype, "c0")
    else:
        h0 = hx
    h0 = _state(h0, (L * D, B, H_out), x.dtype, "h0")
    h_n = np.zeros((L * D, B, H_out), x.dtype)
    c_n = np.zeros((L * D, B, H), x.dtype) if cell == "lstm" else None

    caches = []  # caches[l][d]: the single-layer cache of layer l, direction d
    layer_in = x
    for l in range(L):
        if l > 0 and dropout_masks is not None:
            layer_in = layer_in * dropout_masks[l - 1]
        ys, caches_l = [], []
        for d in range(D):
            k = l * D + d
            p = {n: params.get(n + _suffix(l, d)) for n in _PARAM_NAMES}
            w = (p["weight_ih"], p["weight_hh"], p["bias_ih"], p["bias_hh"])
            opts = dict(lengths=lengths, reverse=(d == 1))
            if cell == "lstm":
                y_d, h_n[k], c_n[k], cache = lstm_forward(layer_in, h0[k], c0[k], *w, **opts,
                                                          weight_hr=p["weight_hr"])
            elif cell == "gru":
                y_d, h_n[k], cache = gru_forward(layer_in, h0[k], *w, **kw, **opts)
            else:
                y_d, h_n[k], cache = rnn_forward(layer_in, h0[k], *w, **kw, **opts)
            ys.append(y_d)
            caches_l.append(cache)
        caches.append(caches_l)
        layer_in = np.concatenate(ys, axis=-1)
    cache = dict(kind=kind, num_layers=L, directions=D, H_out=H_out, caches=caches,
                 dropout_masks=dropout_masks)
    return layer_in, h_n, c_n, cache


def stack_backward(cache, dy, dh_n=None, dc_n=None):
    """Gradients of ``stack_forward`` given dL/dy (T, B, D*H_out) and optionally dL/dh_n,
    dL/dc_n (L*D, B, ...).  Returns a dict: dx, dh0, dc0 (LSTM only) and the gradient
    of every parameter under its name in ``params`` (e.g. ``weight_hh_l1_reverse``)."""
    L, D, H_out = cache["num_layers"], cache["directions"], cache["H_out"]
    masks = cache["dropout_masks"]
    cell = _STACK_KINDS[cache["kind"]][0]
    backward = {"lstm": lstm_backward, "gru": gru_backward, "rnn": rnn_backward}[cell]
    grads, dh0, dc0 = {}, [None] * (L * D), [None] * (L * D)
    d_out = dy  # dL/d(output of the current layer)
    for l in reversed(range(L)):
        d_in = 0  # dL/d(input of layer l): the sum over its directions
        for d in range(D):
            k = l * D + d
            douts = [d_out[..., d * H_out : (d + 1) * H_out], None if dh_n is None else dh_n[k]]
            if cell == "lstm":
                douts.append(None if dc_n is None else dc_n[k])
            g = backward(cache["caches"][l][d], *douts)
            dh0[k] = g.pop("dh0")
            if cell == "lstm":
                dc0[k] = g.pop("dc0")
            d_in = d_in + g.pop("dx")
            grads.update((name + _suffix(l, d), v) for name, v in g.items())
        d_out = d_in * masks[l - 1] if l > 0 and masks is not None else d_in
    out = dict(dx=d_out, dh0=np.stack(dh0))
    if cell == "lstm":
        out["dc0"] = np.stack(dc0)
    out.update(grads)
    return out
