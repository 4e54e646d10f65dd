"""The exact NumPy reference of fusedrnn's quantization scheme.

This module specifies, in plain NumPy, the arithmetic the compiled kernels perform, so
that the tests can compare the kernels' integer results *exactly* and their float32
epilogue within float32 rounding.

Weights (quantized once, from the float weights):

- int8, per output row ``r`` of a weight matrix (torch layout, rows are output units):
  ``amax = max(|w[r]|)`` in float64, ``scale[r] = float32(amax / 127)``,
  ``q[r] = clip(rint(w[r] / scale[r]), -127, 127)`` (division in float64, round half to
  even). A row of zeros gets ``scale = 1`` and ``q = 0``. Symmetric: no zero point, and
  the values lie in [-127, 127] (never -128).
- float16: ``w.astype(float16)``.
- bfloat16: the upper 16 bits of the float32 bits, rounded to nearest even (NaN stays
  NaN), stored as uint16 (NumPy has no bfloat16 type).

Activations (int8 mode), each row on its own: every row of x (once per call), and at every
step every row of h_{t-1}, of the LSTM projection's input ``r_t = o_t * tanh(c_t)`` (the
product with W_hr gives h_t, no bias) and, for GRU reset_after=False, of ``r_t * h_{t-1}``
(the input of W_hn), each computed in float32 by the kernel first; all in float32:
``amax = max(|a|)``; if ``amax == 0`` then ``scale = 0`` and ``q = 0``; otherwise
``scale = amax / 127`` and ``inv = min(127 / amax, FLT_MAX)`` (float32 divisions) and
``q = clip(rint(a * inv), -127, 127)`` (float32 product, round half to even).

Products: ``acc[b, n] = sum_k qa[b, k] * qw[n, k]`` exactly in integers, then
``pre = float32(acc) * (scale_a[b] * scale_w[n])`` in float32, then the biases and the
cell's element-wise update in float32 (as the float kernels: GRU reset_after=True adds
b_hn to the recurrent part of the candidate before the reset gate multiplies it).

16-bit weights: the weights are converted exactly to float32 and the cell runs in float32
as the float kernels do; activations are not quantized.
"""

import numpy as np

__all__ = ["quantize_weight", "quantize_rows", "to_bfloat16_bits", "from_bfloat16_bits",
           "quant_matmul"]


def quantize_weight(w):
    """Symmetric int8 quantization of a weight matrix, one scale per row.

    ``w``: float array (N, K) (any float dtype; computed in float64).
    Returns ``(q, scale)``: ``q`` int8 (N, K) in [-127, 127], ``scale`` float32 (N,), with
    ``w[r] ~= q[r] * scale[r]``. ``scale[r] = float32(max|w[r]| / 127)``, ``q[r] =
    clip(rint(w[r] / scale[r]), -127, 127)`` with the division in float64 by the float32
    scale; a row of zeros gets scale 1 and q 0.
    """
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 2:
        raise ValueError(f"w: expected a 2-D array, got shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError("w: non-finite values cannot be quantized")
    amax = np.max(np.abs(w), axis=1) if w.shape[1] else np.zeros(w.shape[0])
    scale = (amax / 127.0).astype(np.float32)
    scale[amax == 0] = 1.0
    # a tiny amax may underflow to a float32 zero: use the smallest positive scale then
    scale[(scale == 0) & (amax > 0)] = np.finfo(np.float32).smallest_subnormal
    q = np.clip(np.rint(w / scale.astype(np.float64)[:, None]), -127, 127).astype(np.int8)
    return q, scale


def quantize_rows(a):
    """The kernels' dynamic quantization of activations, one scale per row, in float32.

    ``a``: float32 (M, K), finite. Returns ``(q, scale)``: ``q`` int8 (M, K), ``scale``
    float32 (M,). Per row: ``amax = max|a|``; ``amax == 0`` gives scale 0 and q 0; else
    ``scale = amax / 127``, ``inv = min(127 / amax, FLT_MAX)`` (float32 divisions) and
    ``q = clip(rint(a * inv), -127, 127)`` (float32 product, round half to even).
    """
    a = np.asarray(a)
    if a.dtype != np.float32:
        raise TypeError(f"a: expected float32, got {a.dtype}")
    if a.ndim != 2:
        raise ValueError(f"a: expected a 2-D array, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("a: non-finite values cannot be quantized")
    amax = np.max(np.abs(a), axis=1) if a.shape[1] else np.zeros(a.shape[0], np.float32)
    amax = amax.astype(np.float32)
    nz = amax > 0
    scale = np.zeros(a.shape[0], np.float32)
    inv = np.zeros(a.shape[0], np.float32)
    with np.errstate(divide="ignore", over="ignore"):
        scale[nz] = amax[nz] / np.float32(127.0)
        inv[nz] = np.minimum(np.float32(127.0) / amax[nz], np.finfo(np.float32).max)
    prod = (a * inv[:, None]).astype(np.float32)
    q = np.clip(np.rint(prod), -127, 127).astype(np.int8)
    return q, scale


def to_bfloat16_bits(w):
    """float32 -> bfloat16 bits (uint16), round to nearest even; NaN stays NaN."""
    w = np.ascontiguousarray(w, dtype=np.float32)
    u = w.view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    out = rounded.astype(np.uint16)
    nan = np.isnan(w)
    out[nan] = ((u[nan] >> 16) | 0x0040).astype(np.uint16)  # keep sign, force a quiet NaN
    return out


def from_bfloat16_bits(u):
    """bfloat16 bits (uint16) -> float32 (exact)."""
    u = np.asarray(u)
    if u.dtype != np.uint16:
        raise TypeError(f"u: expected uint16 bfloat16 bits, got {u.dtype}")
    return (u.astype(np.uint32) << 16).view(np.float32)


def quant_matmul(qa, qw):
    """The exact integer product ``acc[m, n] = sum_k qa[m, k] * qw[n, k]`` as int64.

    ``qa``: int8 (M, K) activations; ``qw``: int8 (N, K) weights in torch's (out, in)
    layout. The kernels accumulate in int32, which is exact for K <= 133,000.
    """
    qa = np.asarray(qa)
    qw = np.asarray(qw)
    if qa.dtype != np.int8 or qw.dtype != np.int8:
        raise TypeError("qa, qw: expected int8 arrays")
    return qa.astype(np.int64) @ qw.astype(np.int64).T


# ----------------------------------------------------------------------------- layers
# What follows runs whole quantized layers and cells on top of the functions above and
# the cell formulas of ``fusedrnn.reference``.  Parameters are the quantized modules'
# state_dict (``weight_ih_l0`` int8 with ``weight_ih_l0_scale``, or float16, or uint16
# bfloat16 bits; ``bias_ih_l0`` float32; ...).  The float epilogue, in float32, runs in
# this order at every step (P(a, W) is one product, dequantized):
#
#   P(a, W)  = float32(acc) * (scale_a[b] * scale_w[n]),  acc = quant_matmul(quant(a), q_W)
#              (16-bit weights: a @ float32(W).T, rounded once to float32)
#   gx = P(x_t, W_ih) + b_ih;   gh = P(h, W_hh) + b_hh
#   LSTM:  i, f, g, o = s(gx + gh), tanh for g;  c' = f * c + i * g;  m = o * tanh(c')
#          h' = m, or with a projection h' = P(m, W_hr) (no bias)
#   GRU:   r, z = s(gx_r + gh_r), s(gx_z + gh_z)
#          reset_after:  n = tanh(gx_n + r * gh_n)
#          reset_before: n = tanh(gx_n + (P(r * h, W_hn) + b_hn))   (r * h quantized per row)
#          h' = (1 - z) * n + z * h
#   RNN:   h' = act(gx + gh)
#
# The logistic and tanh functions are evaluated in float64 and rounded to float32 (the
# kernels' vector versions differ from that by a few float32 ulps).
from ..reference import _common as _fref  # noqa: E402  (the float cells' schedule helpers)

__all__ += ["weight_mode", "quantized_forward", "quantized_cell"]

_KINDS = {"lstm": 4, "gru": 3, "gru_reset_before": 3, "rnn_tanh": 1, "rnn_relu": 1}
_ROLES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")


def weight_mode(w):
    """The mode a stored weight array belongs to: int8 -> "int8", float16 ->
    "float16", uint16 (bfloat16 bits) -> "bfloat16"."""
    modes = {np.dtype(np.int8): "int8", np.dtype(np.float16): "float16",
             np.dtype(np.uint16): "bfloat16"}
    dt = np.asarray(w).dtype
    if dt not in modes:
        raise TypeError(f"weight: expected int8, float16 or uint16 (bfloat16 bits), got {dt}")
    return modes[dt]


class _Weight:
    """One stored weight matrix and the product P(a, W) of the scheme.

    ``dequantized=True``: the model the quantized one approximates, for checking the
    wiring: the dequantized weights in float64 (q * scale, or the 16-bit values) and
    activations that are not quantized, in float64."""

    def __init__(self, w, scale, dequantized):
        self.mode = weight_mode(w)
        self.dequantized = dequantized
        if self.mode == "int8":
            self.q, self.scale = np.asarray(w), np.asarray(scale, np.float32)
            wf = self.q.astype(np.float64) * self.scale.astype(np.float64)[:, None]
        elif self.mode == "float16":
            wf = np.asarray(w).astype(np.float64)
        else:
            wf = from_bfloat16_bits(w).astype(np.float64)
        self.wf = wf  # the weights' exact values (float64)

    def rows(self, lo, hi):
        """The product with output rows lo:hi only (per-row scales: a slice of rows)."""
        out = _Weight.__new__(_Weight)
        out.mode, out.dequantized, out.wf = self.mode, self.dequantized, self.wf[lo:hi]
        if self.mode == "int8":
            out.q, out.scale = self.q[lo:hi], self.scale[lo:hi]
        return out

    def __call__(self, a, ties=None):
        """P(a, W); ``ties``: None, or a list that gets the smallest distance of a scaled
        activation a * inv from a rounding tie (k + 1/2), in quantization steps."""
        if self.dequantized:
            return np.asarray(a, np.float64) @ self.wf.T
        if self.mode != "int8":
            return (np.asarray(a, np.float64) @ self.wf.T).astype(np.float32)
        a = np.ascontiguousarray(a, np.float32)
        qa, sa = quantize_rows(a)
        if ties is not None and a.size:
            amax = np.max(np.abs(a), axis=1)
            with np.errstate(divide="ignore", over="ignore"):
                inv = np.where(amax > 0, np.minimum(np.float32(127.0) / amax,
                                                    np.finfo(np.float32).max), 0)
            inv = inv.astype(np.float32)  # quantize_rows' inv
            scaled = (a * inv[:, None]).astype(np.float64)
            ties.append(float(np.min(np.abs(scaled - np.floor(scaled) - 0.5))))
        acc = quant_matmul(qa, self.q)
        return acc.astype(np.float32) * (sa[:, None] * self.scale[None, :])


def _sig(v):
    return _fref.sigmoid(v.astype(np.float64)).astype(v.dtype)


def _tanh(v):
    return np.tanh(v.astype(np.float64)).astype(v.dtype)


def _step(kind, x_t, h, c, w, dt, ties):
    """One step of every row: (h', c') (c' None except LSTM).  ties: (for x_t, for h,
    for what the step computes), each None or the list of quantized_forward's ``ties``."""
    H = w["weight_hh"].wf.shape[0] // _KINDS[kind]
    gx = w["weight_ih"](x_t, ties[0]) + w["bias_ih"].astype(dt)
    b_hh = w["bias_hh"].astype(dt)
    if kind == "gru_reset_before":
        gh = w["weight_hh"].rows(0, 2 * H)(h, ties[1]) + b_hh[:2 * H]
    else:
        gh = w["weight_hh"](h, ties[1]) + b_hh
    if kind == "lstm":
        pre = gx + gh
        i, f, o = _sig(pre[:, :H]), _sig(pre[:, H:2 * H]), _sig(pre[:, 3 * H:])
        g = _tanh(pre[:, 2 * H:3 * H])
        c_new = f * c + i * g
        m = o * _tanh(c_new)
        return (m if w["weight_hr"] is None else w["weight_hr"](m, ties[2])), c_new
    if kind.startswith("gru"):
        r = _sig(gx[:, :H] + gh[:, :H])
        z = _sig(gx[:, H:2 * H] + gh[:, H:2 * H])
        if kind == "gru":
            n = _tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:])
        else:
            hn = w["weight_hh"].rows(2 * H, 3 * H)(r * h, ties[2]) + b_hh[2 * H:]
            n = _tanh(gx[:, 2 * H:] + hn)
        return (1 - z) * n + z * h, None
    pre = gx + gh
    return (_tanh(pre) if kind == "rnn_tanh" else np.maximum(pre, 0)), None


def _weights(params, suffix, G, H, dequantized, where):
    w = {}
    for role in _ROLES:
        name = role + suffix
        a = params.get(name)
        if role.startswith("weight"):
            w[role] = None if a is None else _Weight(a, params.get(name + "_scale"), dequantized)
        else:
            w[role] = np.zeros(G * H, np.float32) if a is None else np.asarray(a, np.float32)
    if w["weight_ih"] is None or w["weight_hh"] is None:
        raise ValueError(f"params: {where}: weight_ih{suffix} and weight_hh{suffix} are needed")
    return w


def _direction(kind, x, h0, c0, w, lengths, reverse, dt, ties, x_computed):
    T, B = x.shape[:2]
    times, on = _fref.schedule(T, B, lengths, reverse)
    y = np.zeros((T, B, h0.shape[-1]), dt)
    h, c = h0, c0
    for s in range(T):
        run = on[s][:, None]
        t3 = (ties if x_computed else None, ties if s else None, ties)
        h_new, c_new = _step(kind, _fref.gather(x, times[s]), h, c, w, dt, t3)
        h = np.where(run, h_new, h)  # finished rows keep their state
        if c is not None:
            c = np.where(run, c_new, c)
        _fref.scatter(y, times[s], on[s], h)
    return y, h, c


def quantized_forward(kind, x, hx, params, *, num_layers=1, bidirectional=False, lengths=None,
                      dequantized=False, ties=None):
    """A whole quantized layer, exactly as the scheme computes it (float32 epilogue).

    kind: "lstm", "gru", "gru_reset_before", "rnn_tanh" or "rnn_relu".  x (T, B, I)
    (time-major); hx as ``fusedrnn.reference.stack_forward``'s (None: zeros; an LSTM's
    (h0, c0)); params: the quantized module's state_dict (see above); lengths: torch's
    packed-sequence rule, as the float reference.  Returns (y, h_n, c_n) in float32
    (c_n None except LSTM), y (T, B, D * H_out), states (L * D, B, ...).

    ``dequantized=True`` runs the same wiring in float64 with the dequantized weights
    and unquantized activations: it equals ``fusedrnn.reference.stack_forward`` on the
    dequantized weights (the check that this function wires the cells right).

    ``ties``: None, or a list that gets, for each quantization of an activation the
    layer computed (not x of the first layer, not h0), the smallest distance of a scaled
    value from a rounding tie, in quantization steps.  Where it is not tiny, float32
    rounding differences in the epilogue (the kernels' vector exp/tanh) cannot change a
    quantized value: the tests compare the kernels with this function on such inputs.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind: expected one of {list(_KINDS)}, got {kind!r}")
    G, L, D = _KINDS[kind], num_layers, (2 if bidirectional else 1)
    dt = np.float64 if dequantized else np.float32
    x = np.asarray(x, dt)
    T, B = x.shape[:2]
    H = np.asarray(params["weight_hh_l0"]).shape[0] // G
    Hr = np.asarray(params["weight_hr_l0"]).shape[0] if "weight_hr_l0" in params else H
    h0, c0 = (hx if kind == "lstm" else (hx, None)) if hx is not None else (None, None)
    h0 = np.zeros((L * D, B, Hr), dt) if h0 is None else np.asarray(h0, dt)
    if kind == "lstm":
        c0 = np.zeros((L * D, B, H), dt) if c0 is None else np.asarray(c0, dt)
    h_n = np.zeros((L * D, B, Hr), dt)
    c_n = np.zeros((L * D, B, H), dt) if kind == "lstm" else None
    inp = x
    for layer in range(L):
        ys = []
        for d in range(D):
            k = layer * D + d
            suffix = f"_l{layer}" + ("_reverse" if d else "")
            w = _weights(params, suffix, G, H, dequantized, f"layer {layer}")
            y, h_n[k], c = _direction(kind, inp, h0[k], None if c0 is None else c0[k], w,
                                      lengths, d == 1, dt, ties, layer > 0)
            if c is not None:
                c_n[k] = c
            ys.append(y)
        inp = ys[0] if D == 1 else np.concatenate(ys, axis=-1)
    return inp, h_n, c_n


def quantized_cell(kind, x, hx, params, *, dequantized=False, ties=None):
    """One step of a quantized cell: x (B, I); hx None (zeros), h (B, H) or an LSTM's
    (h, c); params: the quantized cell's state_dict (``weight_ih``, ``weight_ih_scale``,
    ...).  Returns h' or, for an LSTM, (h', c'), float32 (float64 if ``dequantized``)."""
    p = {}
    for k, v in params.items():  # weight_ih -> weight_ih_l0, weight_ih_scale -> ..._l0_scale
        role = "_".join(k.split("_")[:2])
        p[role + "_l0" + k[len(role):]] = v
    dt = np.float64 if dequantized else np.float32
    hx3 = None
    if hx is not None:
        hx3 = (tuple(np.asarray(t, dt)[None] for t in hx) if kind == "lstm"
               else np.asarray(hx, dt)[None])
    _, h_n, c_n = quantized_forward(kind, np.asarray(x, dt)[None], hx3, p,
                                    dequantized=dequantized, ties=ties)
    return (h_n[0], c_n[0]) if kind == "lstm" else h_n[0]
