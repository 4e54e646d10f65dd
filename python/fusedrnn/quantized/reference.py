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
