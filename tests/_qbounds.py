"""Error bounds of the int8 scheme against the float64 model (docs/quantization.md,
"Error analysis"), as interval enclosures (import as ``from _qbounds import ...``).

``product_bounds`` encloses the int8 product P(a, W) of any activation row in a box
[a_lo, a_hi], with W quantized per row; ``step_bounds`` carries boxes through one cell
step (every function of the cells is monotone or a product, so interval arithmetic
encloses it), and ``layer_bounds`` through a layer's steps.  Both the float64 model
(exact weights, no quantization) and the quantized one lie in the boxes.
"""

from __future__ import annotations

import numpy as np

from fusedrnn import reference as ref

#: |q - a / s| <= 1/2 + 127 * 3 * 2**-24 for the float32 quantizer (inv and the product
#: rounded), and |w - q_w s_w| <= s_w / 2 (+ 127 * 2**-24 s_w when clipped to 127).
HALF = 0.5 + 127 * 3 * 2.0**-24
#: Relative float32 rounding of one dequantization (float(acc) * (s_a * s_w)): 3 roundings.
DEQ = 3 * 2.0**-24
#: Slack for the float32 epilogue of one step (bias adds, exp/tanh within a few ulps,
#: the state update), relative to 1 + |value|.
EPI = 2e-6


def product_bounds(a_lo, a_hi, w, scale_w):
    """(lo, hi) (B, N): every int8 product P(a, W) = dequant(quant(a) . q_W) of a row a
    with a_lo <= a <= a_hi, and a . w itself, lie in [lo, hi].

    For one a:  a.w - P = (a - a^).w + a^.(w - w^), |a_k - a^_k| <= HALF s_a,
    |w_k - w^_k| <= HALF s_w, |a^_k| <= |a_k| + HALF s_a, so
    |a.w - P| <= HALF (s_a ||w||_1 + s_w (||a||_1 + K HALF s_a)),
    plus DEQ |a^|.|w^| for the float32 dequantization; s_a <= max|a| / 127 (1 + 2**-23)."""
    a_lo, a_hi = np.asarray(a_lo, np.float64), np.asarray(a_hi, np.float64)
    w = np.asarray(w, np.float64)
    s_w = np.asarray(scale_w, np.float64)
    K = w.shape[1]
    c, r = (a_lo + a_hi) / 2, (a_hi - a_lo) / 2
    mag = np.maximum(np.abs(a_lo), np.abs(a_hi))
    s_a = mag.max(axis=1, initial=0.0) / 127 * (1 + 2.0**-23)
    a1 = mag.sum(axis=1)
    w1 = np.abs(w).sum(axis=1)
    quant = HALF * (s_a[:, None] * w1[None, :] + s_w[None, :] * (a1 + K * HALF * s_a)[:, None])
    deq = DEQ * (mag + HALF * s_a[:, None]) @ (np.abs(w) + HALF * s_w[:, None]).T
    mid = c @ w.T
    spread = r @ np.abs(w).T + quant + deq
    return mid - spread, mid + spread


def _mul(a, b):
    """Interval product of a = (lo, hi) and b = (lo, hi)."""
    p = [a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1]]
    return np.minimum.reduce(p), np.maximum.reduce(p)


def _add(*xs):
    return sum(x[0] for x in xs), sum(x[1] for x in xs)


def _f(fn, a):
    return fn(a[0]), fn(a[1])  # fn monotone non-decreasing


def _widen(a, rel=EPI):
    m = rel * (1 + np.maximum(np.abs(a[0]), np.abs(a[1])))
    return a[0] - m, a[1] + m


def _cols(a, lo, hi):
    return a[0][:, lo:hi], a[1][:, lo:hi]


def step_bounds(kind, x, h, c, p):
    """Boxes of one step: x, h, c each (lo, hi) (c None except LSTM); p: the float
    weights ("weight_ih", ..., "weight_hr" or None) and their per-row scales
    ("weight_ih_scale", ...).  Returns (h', c') boxes."""
    G = {"lstm": 4, "gru": 3, "gru_reset_before": 3}.get(kind, 1)
    H = p["weight_hh"].shape[0] // G
    b_ih = p.get("bias_ih")
    b_hh = p.get("bias_hh")
    b_ih = np.zeros(G * H) if b_ih is None else np.asarray(b_ih, np.float64)
    b_hh = np.zeros(G * H) if b_hh is None else np.asarray(b_hh, np.float64)
    gx = product_bounds(*x, p["weight_ih"], p["weight_ih_scale"])
    gx = (gx[0] + b_ih, gx[1] + b_ih)
    W, S = p["weight_hh"], p["weight_hh_scale"]
    if kind == "gru_reset_before":
        gh = product_bounds(*h, W[:2 * H], S[:2 * H])
        gh = (gh[0] + b_hh[:2 * H], gh[1] + b_hh[:2 * H])
    else:
        gh = product_bounds(*h, W, S)
        gh = (gh[0] + b_hh, gh[1] + b_hh)
    sig = ref.sigmoid
    if kind == "lstm":
        pre = _widen(_add(gx, gh))
        i, f, o = (_f(sig, _cols(pre, k * H, (k + 1) * H)) for k in (0, 1, 3))
        g = _f(np.tanh, _cols(pre, 2 * H, 3 * H))
        c_new = _widen(_add(_mul(f, c), _mul(i, g)))
        m = _widen(_mul(o, _f(np.tanh, c_new)))
        if p.get("weight_hr") is None:
            return m, c_new
        return _widen(product_bounds(*m, p["weight_hr"], p["weight_hr_scale"])), c_new
    if kind.startswith("gru"):
        r = _f(sig, _widen(_add(_cols(gx, 0, H), _cols(gh, 0, H))))
        z = _f(sig, _widen(_add(_cols(gx, H, 2 * H), _cols(gh, H, 2 * H))))
        if kind == "gru":
            n_pre = _add(_cols(gx, 2 * H, 3 * H), _mul(r, _cols(gh, 2 * H, 3 * H)))
        else:
            rh = _mul(r, h)
            hn = product_bounds(*rh, W[2 * H:], S[2 * H:])
            n_pre = _add(_cols(gx, 2 * H, 3 * H), (hn[0] + b_hh[2 * H:], hn[1] + b_hh[2 * H:]))
        n = _f(np.tanh, _widen(n_pre))
        one_minus_z = (1 - z[1], 1 - z[0])
        return _widen(_add(_mul(one_minus_z, n), _mul(z, h))), None
    pre = _widen(_add(gx, gh))
    act = np.tanh if kind == "rnn_tanh" else (lambda v: np.maximum(v, 0))
    return _f(act, pre), None


def layer_bounds(kind, x, h0, c0, p, x_hi=None):
    """Boxes of a single-direction layer run over x (T, B, I) (padded) from exact h0, c0:
    (y box, h_n box, c_n box or None).  ``x_hi``: x is then the box (x, x_hi)."""
    h = (h0, h0)
    c = None if c0 is None else (c0, c0)
    x_hi = x if x_hi is None else x_hi
    ys_lo, ys_hi = [], []
    for t in range(x.shape[0]):
        h, c = step_bounds(kind, (x[t], x_hi[t]), h, c, p)
        ys_lo.append(h[0])
        ys_hi.append(h[1])
    return (np.stack(ys_lo), np.stack(ys_hi)), h, c


def stack_bounds(kind, x, h0, c0, params, num_layers=1, bidirectional=False):
    """Boxes of a stacked (padded) layer: params has the float weights and the scales
    under the quantized state_dict's names; h0, c0 (L*D, B, ...) exact.  Returns the box
    of y (T, B, D*H_out)."""
    D = 2 if bidirectional else 1
    lo = hi = np.asarray(x, np.float64)
    for layer in range(num_layers):
        outs = []
        for d in range(D):
            k = layer * D + d
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            p = {}
            for role in ("weight_ih", "weight_hh", "weight_hr", "bias_ih", "bias_hh"):
                p[role] = params.get(role + sfx)
                p[role + "_scale"] = params.get(role + sfx + "_scale")
            xl, xh = (lo[::-1], hi[::-1]) if d else (lo, hi)
            (ylo, yhi), _, _ = layer_bounds(kind, xl, h0[k], None if c0 is None else c0[k], p,
                                            x_hi=xh)
            outs.append((ylo[::-1], yhi[::-1]) if d else (ylo, yhi))
        lo = np.concatenate([o[0] for o in outs], axis=-1)
        hi = np.concatenate([o[1] for o in outs], axis=-1)
    return lo, hi


def assert_within(v, box, what):
    lo, hi = box
    v = np.asarray(v, np.float64)
    bad = (v < lo) | (v > hi)
    assert not bad.any(), (f"{what}: {bad.sum()} values outside the error bound, e.g. "
                           f"{v[bad][:3]} not in [{lo[bad][:3]}, {hi[bad][:3]}]")
