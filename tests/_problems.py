"""Random kernel problems and the check of the kernels against the float64 reference,
shared by test_kernels.py and test_kernels_rows.py (import as ``from _problems import ...``).

A problem is a dict of float64 arrays (weights in torch's layout, x (T, B, I), states,
output gradients) plus per-row ``lengths``, drawn sorted longest first so that row b is
the same row in the padded (T, B, ...) layout of the reference and in the kernels'
packed rows (``batch_sizes[t] = #{b : len_b > t}``).  Tolerances are norm-wise relative
errors: float32 outputs/states <= 1e-5, gradients <= 1e-4; float64 <= 1e-12.
"""

import numpy as np

import fusedrnn
from _util import reference_run, rel_err
from fusedrnn import functional as F

CELLS = ["lstm", "gru", "gru_reset_before", "rnn_tanh", "rnn_relu"]
TOL = {np.float32: (1e-5, 1e-4), np.float64: (1e-12, 1e-12)}


# ----------------------------------------------------------------------------- layouts
def draw_lengths(rng, T, B):
    """Per-row lengths, non-increasing, lengths[0] = T, lengths[-1] = 1 (B > 1), and
    otherwise spread over [1, T] so that several distinct lengths occur."""
    if B == 1:
        return np.array([T], np.int64)
    mid = rng.integers(1, T + 1, B - 2)
    return np.sort(np.concatenate([[T, 1], mid]))[::-1].astype(np.int64)


def batch_sizes_of(lengths, T):
    """torch's batch_sizes for lengths sorted longest first: rows running at each step."""
    bs = np.array([(lengths > t).sum() for t in range(T)], np.int64)
    assert bs[0] == len(lengths) and bs[-1] >= 1 and np.all(np.diff(bs) <= 0)
    return bs


def to_packed(a, bs):
    """(T, B, ...) -> (N, ...): step t's first bs[t] rows, step after step."""
    return np.concatenate([a[t, : bs[t]] for t in range(len(bs))], axis=0)


def to_padded(a, bs, B):
    """(N, ...) -> (T, B, ...) with zeros where a row has finished."""
    out = np.zeros((len(bs), B) + a.shape[1:], a.dtype)
    off = 0
    for t, n in enumerate(bs):
        out[t, :n] = a[off : off + n]
        off += n
    assert off == a.shape[0]
    return out


# ----------------------------------------------------------------------------- problems
def make_problem(cell, T, B, I, H, bias, seed, P=0, lengths=True):
    """Random weights (torch's init range), inputs, states, output gradients and lengths,
    float64.  P > 0: an LSTM with projection (state width P)."""
    rng = np.random.default_rng(seed)
    G = F.CELLS[cell]
    Hr = P or H
    k = 1 / np.sqrt(H)
    p = dict(
        weight_ih=rng.uniform(-k, k, (G * H, I)),
        weight_hh=rng.uniform(-k, k, (G * H, Hr)),
        bias_ih=rng.uniform(-k, k, G * H) if bias else None,
        bias_hh=rng.uniform(-k, k, G * H) if bias else None,
        weight_hr=rng.uniform(-k, k, (P, H)) if P else None,
        x=rng.standard_normal((T, B, I)),
        h0=rng.standard_normal((B, Hr)) * 0.5,
        c0=rng.standard_normal((B, H)) * 0.5 if cell == "lstm" else None,
        dy=rng.standard_normal((T, B, Hr)),
        dh_n=rng.standard_normal((B, Hr)),
        dc_n=rng.standard_normal((B, H)) if cell == "lstm" else None,
    )
    p["lengths"] = draw_lengths(rng, T, B) if lengths else np.full(B, T, np.int64)
    return p


def rounded(p, dtype):
    """The problem rounded to dtype (and back to float64): the reference then sees
    exactly the numbers the kernels see."""
    return {k: (v if v is None or k == "lengths" else v.astype(dtype).astype(np.float64))
            for k, v in p.items()}


def pack_weights(cell, p, dtype):
    def c(a):
        return None if a is None else np.ascontiguousarray(a, dtype)

    return F.pack(cell, c(p["weight_ih"]), c(p["weight_hh"]), c(p["bias_ih"]), c(p["bias_hh"]),
                  weight_hr=c(p["weight_hr"]))


def kernel_run(cell, p, dtype, packed_rows):
    """The kernels' outputs and gradients, in the padded layout (zeros where a row has
    finished) whichever layout the call used.  packed_rows: call with batch_sizes.
    Also checks that the inference forward equals the training forward bit for bit and
    that the workspace has workspace_size's length."""

    def c(a):
        return None if a is None else np.ascontiguousarray(a, dtype)

    T, B = p["x"].shape[:2]
    bs = batch_sizes_of(p["lengths"], T) if packed_rows else None
    if packed_rows:
        x, dy = to_packed(p["x"], bs), to_packed(p["dy"], bs)
    else:
        assert np.all(p["lengths"] == T)
        x, dy = p["x"], p["dy"]
    w = pack_weights(cell, p, dtype)
    y, h_n, c_n, ws = F.sequence_forward(w, c(x), c(p["h0"]), c(p["c0"]), train=True,
                                         batch_sizes=bs)
    yi, h_ni, c_ni, ws_i = F.sequence_forward(w, c(x), c(p["h0"]), c(p["c0"]), batch_sizes=bs)
    assert ws_i is None
    np.testing.assert_array_equal(yi, y)
    np.testing.assert_array_equal(h_ni, h_n)
    if cell == "lstm":
        np.testing.assert_array_equal(c_ni, c_n)
    else:
        assert c_n is None and c_ni is None
    H = p["weight_ih"].shape[0] // F.CELLS[cell]
    P = 0 if p["weight_hr"] is None else p["weight_hr"].shape[0]
    N = int(bs.sum()) if packed_rows else T * B
    assert ws.shape == (fusedrnn._core.workspace_size(cell, T, B, H, P, N),)
    g = F.sequence_backward(w, c(x), ws, c(dy), c(p["dh_n"]), c(p["dc_n"]), batch_sizes=bs)
    # need_dx=False (an input without a gradient): dx is left out, the rest unchanged.
    g_nodx = F.sequence_backward(w, c(x), ws, c(dy), c(p["dh_n"]), c(p["dc_n"]),
                                 batch_sizes=bs, need_dx=False)
    assert g_nodx.pop("dx") is None and set(g_nodx) == set(g) - {"dx"}
    for k, v in g_nodx.items():
        np.testing.assert_array_equal(v, g[k], err_msg=f"{k} with need_dx=False")
    out = dict(y=y, h_n=h_n)
    if cell == "lstm":
        out["c_n"] = c_n
    for v in list(out.values()) + list(g.values()):
        assert v.dtype == dtype
    if packed_rows:
        assert y.shape == (N, P or H) and g["dx"].shape == x.shape
        out["y"] = to_padded(y, bs, B)
        g["dx"] = to_padded(g["dx"], bs, B)
    return out, g


def check_against_reference(cell, p, dtype, packed_rows):
    p = rounded(p, dtype)
    ref_out, ref_g = reference_run(cell, p)
    out, g = kernel_run(cell, p, dtype, packed_rows)
    tol_fwd, tol_grad = TOL[dtype]
    # A result that cancels to almost zero (at H = B = 1 a single output can) is only
    # accurate to the scale of its terms, so for float32 the denominator is floored at
    # 0.01 per element, well below the typical |y| ~ 0.1 to 1 of these problems.
    floor = 1e-2 if dtype == np.float32 else 0.0
    assert set(out) == set(ref_out)
    for k in ref_out:
        assert out[k].shape == ref_out[k].shape, k
        e = rel_err(out[k], ref_out[k], floor)
        assert e <= tol_fwd, (k, e)
    assert set(g) == set(ref_g), (sorted(g), sorted(ref_g))
    for k in ref_g:
        assert g[k].shape == ref_g[k].shape, k
        e = rel_err(g[k], ref_g[k], floor)
        assert e <= tol_grad, (k, e)
