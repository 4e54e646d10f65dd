"""Property-based fuzzing of the Python API (docs/api.md): every call either matches the
float64 reference (``fusedrnn.reference``) on the same inputs converted to float64, or
raises ValueError / TypeError / MemoryError whose message names the argument that was bad.
Never a crash, never a silent wrong answer.

Covered: LSTM / GRU (both forms) / RNN (tanh, relu) layers with num_layers, bidirectional,
batch_first, proj_size, bias, lengths and unbatched input; LSTMCell / GRUCell / RNNCell
(``forward``, ``backward`` and the ``__call__`` fast path); ``functional.sequence_forward``
/ ``sequence_backward`` with and without ``batch_sizes``; ``load_state_dict``; sizes so
large that nothing can be allocated.  Inputs come in every memory order (Fortran, strided,
negative strides, read-only, unaligned ``np.frombuffer(..., offset=1)`` views, nested
lists) and dtype (float16/32/64, int, bool, complex, object); one argument at a time is
corrupted (shape, dtype, type, None parts, bad lengths, foreign or reused tapes).

Runs are reproducible (``derandomize=True``) with a small number of examples per test
(FUSEDRNN_FUZZ_EXAMPLES, default 40: the file takes well under a minute).  Setting the
variable gives a longer, randomized run::

    FUSEDRNN_FUZZ_EXAMPLES=2000 python -m pytest tests/test_fuzz.py

What this fuzzer found (huge sizes whose errors did not name the argument; 0-d x and
hx accepted by cells when a size is 1) is fixed and pinned by deterministic regression
tests at the end of the file.
"""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import fusedrnn as fr  # noqa: E402
from fusedrnn import functional as F  # noqa: E402
from fusedrnn import reference as ref  # noqa: E402

from _util import rel_err  # noqa: E402

_ENV = os.environ.get("FUSEDRNN_FUZZ_EXAMPLES")
EXAMPLES = int(_ENV) if _ENV else 40
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=_ENV is None,
    database=None,
    suppress_health_check=list(HealthCheck),
)

OK_EXC = (ValueError, TypeError, MemoryError)
NO_TAPE = object()  # no tape corruption
KINDS = ["lstm", "gru", "gru_reset_before", "rnn_tanh", "rnn_relu"]


def tol(dtype, what):
    if np.dtype(dtype) == np.float64:
        return 1e-10
    return 1e-5 if what == "out" else 1e-4


def check_close(got, want, dtype, what, name):
    got = np.asarray(got)
    assert got.dtype == np.dtype(dtype), f"{name}: dtype {got.dtype}, expected {dtype}"
    assert got.shape == np.shape(want), f"{name}: shape {got.shape} != {np.shape(want)}"
    assert np.all(np.isfinite(got)), f"{name}: not finite"
    # norm-wise relative error.  The sizes here are tiny (a state can be one number), so a
    # value far below the scale of its inputs (cancellation in a float32 pre-activation
    # sum) cannot be computed to 1e-5 of itself in float32: the norm is floored at 0.1
    # per element (RMS) for float32, i.e. an absolute error of ~1e-6.
    e = rel_err(got, want, floor=0.1 if np.dtype(dtype) == np.float32 else 1e-6)
    assert e <= tol(dtype, what), f"{name}: relative error {e:.3e} > {tol(dtype, what):.0e}"


def attempt(fn, bad, must_raise=False):
    """The promise: call fn(); returns (True, result) or (False, None) when it raised an
    allowed exception whose message names `bad` (a string or a tuple of acceptable
    names).  A valid call (bad None) must not raise; other exception types propagate."""
    try:
        out = fn()
    except OK_EXC as e:
        assert bad is not None, f"a valid call raised {type(e).__name__}: {e}"
        names = (bad,) if isinstance(bad, str) else bad
        msg = str(e)
        assert any(re.search(r"(^|\W)" + re.escape(n) + r"($|\W)", msg) for n in names), (
            f"{type(e).__name__} message {msg!r} does not name {names}")
        return False, None
    assert not must_raise, f"invalid {bad} was accepted"
    return True, out


# ----------------------------------------------------------------- memory variants
def unaligned(a, readonly=False):
    a = np.ascontiguousarray(a)
    raw = bytearray(a.nbytes + 1)
    v = np.frombuffer(raw, dtype=a.dtype, offset=1, count=a.size).reshape(a.shape)
    v[...] = a
    if readonly:
        v = np.frombuffer(bytes(raw), dtype=a.dtype, offset=1, count=a.size).reshape(a.shape)
    return v


def strided(a, axis):
    if a.ndim == 0:
        return a
    shape = list(a.shape)
    shape[axis] *= 2
    big = np.zeros(shape, a.dtype)
    idx = [slice(None)] * a.ndim
    idx[axis] = slice(None, None, 2)
    big[tuple(idx)] = a
    return big[tuple(idx)]


def readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def neg(a):
    if a.ndim == 0:
        return a
    return a[::-1].copy()[::-1]


# Values-preserving layouts: the callee must give the same numbers as for a copy.
LAYOUTS = {
    "c": lambda a: a.copy(),
    "fortran": np.asfortranarray,
    "strided_last": lambda a: strided(a, -1),
    "strided_first": lambda a: strided(a, 0),
    "negative": neg,
    "readonly": readonly,
    "unaligned": unaligned,
    "unaligned_ro": lambda a: unaligned(a, readonly=True),
}
layouts = st.sampled_from(sorted(LAYOUTS))

# dtypes that must be refused (TypeError naming the argument)
BAD_DTYPES = [np.int32, np.int64, np.uint8, np.bool_, np.complex64, np.complex128, object]


def convert(a, how, dtype):
    """Input array `a` (float64 values) as passed by a user: exact dtype conversions are
    allowed (float16 -> float32/64, float32 -> float64); returns the array."""
    return LAYOUTS[how](a.astype(dtype))


def ok_dtypes(layer_dtype):
    return [np.float16, np.float32] if layer_dtype == np.float32 else [
        np.float16, np.float32, np.float64]


def rand(rng, shape, scale=1.0):
    return rng.uniform(-scale, scale, shape)


# ------------------------------------------------------------------------- layers
def make_layer(kind, I, H, L, bidir, bf, P, bias, dtype, seed=0):
    common = dict(num_layers=L, bias=bias, batch_first=bf, bidirectional=bidir, dtype=dtype,
                  seed=seed)
    if kind == "lstm":
        return fr.LSTM(I, H, proj_size=P, **common)
    if kind.startswith("gru"):
        return fr.GRU(I, H, reset_after=kind == "gru", **common)
    return fr.RNN(I, H, nonlinearity=kind[4:], **common)


def to_tm(a, layout):
    """Caller layout -> time-major (T, B, F) float64."""
    a = np.asarray(a, np.float64)
    if layout == "unbatched":
        return a[:, None, :]
    if layout == "batch_first":
        return a.transpose(1, 0, 2)
    return a


def from_tm(a, layout):
    if layout == "unbatched":
        return a[:, 0, :]
    if layout == "batch_first":
        return a.transpose(1, 0, 2)
    return a


LAYER_CORRUPTIONS = [None] * 6 + [
    "x_dtype", "x_ndim", "x_input_size", "x_T0", "x_type",
    "hx_shape", "hx_dtype", "hx_type", "hx_none_part",
    "lengths_zero", "lengths_gt_T", "lengths_negative", "lengths_shape", "lengths_float",
    "lengths_unbatched",
    "dy_shape", "dy_dtype", "dstate_shape", "dstate_dtype", "dstate_type",
    "tape_other", "tape_type",
]


@FUZZ
@given(data=st.data())
def test_fuzz_layer(data):
    d = data.draw
    kind = d(st.sampled_from(KINDS), "kind")
    dtype = d(st.sampled_from([np.float32, np.float64]), "dtype")
    L = d(st.integers(1, 2), "num_layers")
    bidir = d(st.booleans(), "bidirectional")
    bf = d(st.booleans(), "batch_first")
    I = d(st.integers(1, 4), "I")
    H = d(st.integers(1, 4), "H")
    P = d(st.integers(0, H - 1), "proj_size") if kind == "lstm" and H > 1 else 0
    bias = d(st.booleans(), "bias")
    T = d(st.integers(1, 5), "T")
    B = d(st.integers(1, 4), "B")
    unbatched = d(st.integers(0, 5), "unbatched?") == 0
    corrupt = d(st.sampled_from(LAYER_CORRUPTIONS), "corrupt")
    seed = d(st.integers(0, 2**32 - 1), "seed")
    rng = np.random.default_rng(seed)
    m = make_layer(kind, I, H, L, bidir, bf, P, bias, dtype, seed=seed % 1000)
    lstm = kind == "lstm"
    D = 2 if bidir else 1
    Hr = P or H
    layout = "unbatched" if unbatched else ("batch_first" if bf else "seq")
    if unbatched:
        B = 1

    def caller(shape_tm):  # (T, B, F) -> the caller's shape
        T_, B_, F_ = shape_tm
        return {"unbatched": (T_, F_), "batch_first": (B_, T_, F_), "seq": shape_tm}[layout]

    def st_shape(F_):
        return (L * D, F_) if unbatched else (L * D, B, F_)

    # ---- valid inputs, in random dtypes and layouts
    x_dt = d(st.sampled_from(ok_dtypes(dtype)), "x dtype")
    x = convert(rand(rng, caller((T, B, I)), 2.0), d(layouts, "x layout"), x_dt)
    hx = None
    if d(st.booleans(), "hx?"):
        h0 = convert(rand(rng, st_shape(Hr)), d(layouts, "h0 layout"), dtype)
        if lstm:
            c0 = convert(rand(rng, st_shape(H)), d(layouts, "c0 layout"), dtype)
            hx = (h0, c0) if d(st.booleans(), "tuple?") else [h0, c0]
        else:
            hx = h0
    lengths = None
    if not unbatched and d(st.booleans(), "lengths?"):
        lengths = rng.integers(1, T + 1, B)
        lengths = lengths.astype(d(st.sampled_from([np.int64, np.int32, np.uint8]), "len dt"))
        if d(st.booleans(), "lengths as list?"):
            lengths = lengths.tolist()
    dy = None
    if d(st.integers(0, 4), "dy?"):
        dy = convert(rand(rng, caller((T, B, D * Hr))), d(layouts, "dy layout"), dtype)
    dstate = None
    if d(st.booleans(), "dstate?"):
        dh = convert(rand(rng, st_shape(Hr)), d(layouts, "dh layout"), dtype)
        if lstm:
            dc = convert(rand(rng, st_shape(H)), d(layouts, "dc layout"), dtype)
            dstate = d(st.sampled_from([(dh, dc), (None, dc), (dh, None), (None, None)]))
        else:
            dstate = dh

    # ---- corrupt one argument
    fwd_bad = None
    bwd_bad = None
    tape_override = NO_TAPE
    if corrupt == "x_dtype":
        bad_dt = d(st.sampled_from(BAD_DTYPES + ([np.float64] if dtype == np.float32 else [])))
        x, fwd_bad = np.asarray(x).astype(bad_dt), "x"
    elif corrupt == "x_ndim":
        x, fwd_bad = np.zeros(d(st.sampled_from([(I,), (1, 1, 1, I), ()])), dtype), "x"
    elif corrupt == "x_input_size":
        x, fwd_bad = np.zeros(caller((T, B, d(st.sampled_from([0, I + 1, I + 3])))), dtype), "x"
    elif corrupt == "x_T0":
        x, fwd_bad = np.zeros(caller((0, B, I)), dtype), "x"
    elif corrupt == "x_type":
        x, fwd_bad = d(st.sampled_from([None, "abc", [[1.0], [1.0, 2.0]], {"a": 1}])), "x"
    elif corrupt == "hx_shape":
        which = d(st.integers(0, 1)) if lstm else 0
        F_ = Hr if which == 0 else H
        shape = d(st.sampled_from([st_shape(F_ + 1), st_shape(F_)[1:], (L * D + 1,)
                                   + st_shape(F_)[1:], st_shape(F_) + (1,)]))
        parts = list(hx) if lstm and hx is not None else [np.zeros(st_shape(Hr), dtype),
                                                           np.zeros(st_shape(H), dtype)]
        parts[which] = np.zeros(shape, dtype)
        hx, fwd_bad = (tuple(parts) if lstm else parts[0]), "hx"
    elif corrupt == "hx_dtype":
        bad_dt = d(st.sampled_from(BAD_DTYPES))
        parts = [np.zeros(st_shape(Hr), dtype), np.zeros(st_shape(H), dtype)]
        which = d(st.integers(0, 1)) if lstm else 0
        parts[which] = parts[which].astype(bad_dt)
        hx, fwd_bad = (tuple(parts) if lstm else parts[0]), "hx"
    elif corrupt == "hx_type":
        h = np.zeros(st_shape(Hr), dtype)
        hx = d(st.sampled_from([(h,), (h, h, h), "abc", 3])) if lstm else (h,)
        fwd_bad = "hx"
    elif corrupt == "hx_none_part" and lstm:
        h = np.zeros(st_shape(Hr), dtype)
        c = np.zeros(st_shape(H), dtype)
        hx, fwd_bad = d(st.sampled_from([(None, c), (h, None)])), "hx"
    elif corrupt == "lengths_unbatched":
        if unbatched:
            lengths, fwd_bad = np.array([T]), "lengths"
    elif corrupt and corrupt.startswith("lengths") and not unbatched:
        fwd_bad = "lengths"
        good = rng.integers(1, T + 1, B)
        i = int(rng.integers(0, B))
        if corrupt == "lengths_zero":
            good[i] = 0
        elif corrupt == "lengths_gt_T":
            good[i] = T + d(st.integers(1, 2**40))
        elif corrupt == "lengths_negative":
            good[i] = -d(st.integers(1, 2**62))
        elif corrupt == "lengths_shape":
            good = d(st.sampled_from([good[:-1], np.append(good, 1), good[None], good[:, None],
                                      np.int64(T)]))
        elif corrupt == "lengths_float":
            good = good.astype(d(st.sampled_from([np.float64, np.float32, object, np.bool_])))
        lengths = good
    elif corrupt == "dy_shape":
        shape = d(st.sampled_from([caller((T, B, D * Hr + 1)), caller((T + 1, B, D * Hr)),
                                   (T, B, D * Hr, 1), (D * Hr,)]))
        dy, bwd_bad = np.zeros(shape, dtype), "dy"
    elif corrupt == "dy_dtype":
        bad_dt = d(st.sampled_from(BAD_DTYPES + ([np.float64] if dtype == np.float32 else [])))
        dy, bwd_bad = np.zeros(caller((T, B, D * Hr)), bad_dt), "dy"
    elif corrupt == "dstate_shape":
        which = d(st.integers(0, 1)) if lstm else 0
        F_ = Hr if which == 0 else H
        parts = [None, None]
        parts[which] = np.zeros(st_shape(F_ + 1), dtype)
        dstate, bwd_bad = (tuple(parts) if lstm else parts[0]), "dstate"
    elif corrupt == "dstate_dtype":
        which = d(st.integers(0, 1)) if lstm else 0
        F_ = Hr if which == 0 else H
        parts = [None, None]
        parts[which] = np.zeros(st_shape(F_), d(st.sampled_from(BAD_DTYPES)))
        dstate, bwd_bad = (tuple(parts) if lstm else parts[0]), "dstate"
    elif corrupt == "dstate_type":
        h = np.zeros(st_shape(Hr), dtype)
        dstate = (h, h, h) if lstm else (h,)
        bwd_bad = "dstate"
    elif corrupt == "tape_other":
        other = make_layer(kind, I, H, L, bidir, bf, P, bias, dtype)
        _, _, tape_override = other.forward(x, train=True)
        bwd_bad = "tape"
    elif corrupt == "tape_type":
        tape_override, bwd_bad = d(st.sampled_from([None, "tape", object(), ()])), "tape"

    # ---- forward
    ok, out = attempt(lambda: m.forward(x, hx, lengths=lengths, train=True), fwd_bad,
                      must_raise=fwd_bad is not None)
    if not ok:
        # nothing changed: a valid call still works
        m.forward(np.zeros(caller((T, B, I)), dtype), train=True)
        return
    y, state, tape = out

    # ---- the reference on the same values in float64
    kin = {"lstm": "lstm", "gru": "gru", "gru_reset_before": "gru_reset_before",
           "rnn_tanh": "rnn_tanh", "rnn_relu": "rnn_relu"}[kind]
    params = {k: v.astype(np.float64) for k, v in m.state_dict().items()}
    x64 = to_tm(x, layout)
    if hx is None:
        hx64 = None
    elif lstm:
        hx64 = tuple(np.asarray(a, np.float64).reshape(L * D, B, -1) for a in hx)
    else:
        hx64 = np.asarray(hx, np.float64).reshape(L * D, B, Hr)
    L64 = None if lengths is None else np.asarray(lengths).astype(np.int64)
    ry, rh, rc, cache = ref.stack_forward(kin, x64, hx64, params, num_layers=L,
                                          bidirectional=bidir, lengths=L64)
    check_close(y, from_tm(ry, layout), dtype, "out", "y")
    h_n = state[0] if lstm else state
    check_close(h_n, rh.reshape(np.shape(h_n)), dtype, "out", "h_n")
    if lstm:
        check_close(state[1], rc.reshape(np.shape(state[1])), dtype, "out", "c_n")
    # inference gives the same numbers
    y_inf, _ = m(x, hx, lengths=lengths)
    np.testing.assert_allclose(y_inf, y, rtol=0, atol=tol(dtype, "grad"))

    # ---- backward
    use_tape = tape if tape_override is NO_TAPE else tape_override
    ok, g = attempt(lambda: m.backward(use_tape, dy, dstate), bwd_bad,
                    must_raise=bwd_bad is not None)
    if not ok:
        g = m.backward(tape, None, None)  # the tape still works
        return
    dx, dstate0, grads = g
    dy64 = np.zeros(ry.shape) if dy is None else to_tm(dy, layout)
    dh64 = dc64 = None
    if dstate is not None:
        parts = dstate if lstm else (dstate, None)
        dh64 = None if parts[0] is None else np.asarray(parts[0], np.float64).reshape(
            L * D, B, Hr)
        dc64 = None if parts[1] is None else np.asarray(parts[1], np.float64).reshape(
            L * D, B, H)
    rg = ref.stack_backward(cache, dy64, dh64, dc64)
    check_close(dx, from_tm(rg["dx"], layout), dtype, "grad", "dx")
    dh0 = dstate0[0] if lstm else dstate0
    check_close(dh0, rg["dh0"].reshape(np.shape(dh0)), dtype, "grad", "dh0")
    if lstm:
        check_close(dstate0[1], rg["dc0"].reshape(np.shape(dstate0[1])), dtype, "grad", "dc0")
    assert list(grads) == list(m.state_dict())
    for k, v in grads.items():
        check_close(v, rg[k], dtype, "grad", k)
    # a tape can be reused: the same result, bit for bit
    dx2, _, grads2 = m.backward(tape, dy, dstate)
    np.testing.assert_array_equal(dx2, dx)
    for k in grads:
        np.testing.assert_array_equal(grads2[k], grads[k])


# -------------------------------------------------------------------------- cells
def make_cell(kind, I, H, bias, dtype, seed=0):
    if kind == "lstm":
        return fr.LSTMCell(I, H, bias=bias, dtype=dtype, seed=seed)
    if kind.startswith("gru"):
        return fr.GRUCell(I, H, bias=bias, reset_after=kind == "gru", dtype=dtype, seed=seed)
    return fr.RNNCell(I, H, bias=bias, nonlinearity=kind[4:], dtype=dtype, seed=seed)


CELL_CORRUPTIONS = [None] * 4 + [
    "x_dtype", "x_shape", "x_type", "hx_shape", "hx_dtype", "hx_type",
    "hx_none_part", "dstate_shape", "dstate_dtype", "tape_other", "tape_type",
]


@FUZZ
@given(data=st.data())
def test_fuzz_cell(data):
    d = data.draw
    kind = d(st.sampled_from(KINDS), "kind")
    dtype = d(st.sampled_from([np.float32, np.float64]), "dtype")
    I = d(st.integers(1, 5), "I")
    H = d(st.integers(1, 5), "H")
    B = d(st.integers(1, 4), "B")
    bias = d(st.booleans(), "bias")
    unbatched = d(st.integers(0, 4), "unbatched?") == 0
    corrupt = d(st.sampled_from(CELL_CORRUPTIONS), "corrupt")
    seed = d(st.integers(0, 2**32 - 1), "seed")
    rng = np.random.default_rng(seed)
    m = make_cell(kind, I, H, bias, dtype, seed=seed % 1000)
    lstm = kind == "lstm"
    if d(st.booleans(), "packed first?"):  # later calls take the per-step fast path
        m(np.zeros((1, I), dtype))
    xs = (I,) if unbatched else (B, I)
    ss = (H,) if unbatched else (B, H)
    x = convert(rand(rng, xs, 2.0), d(layouts), d(st.sampled_from(ok_dtypes(dtype))))
    hx = None
    if d(st.booleans(), "hx?"):
        h = convert(rand(rng, ss), d(layouts), d(st.sampled_from(ok_dtypes(dtype))))
        hx = (h, convert(rand(rng, ss), d(layouts), dtype)) if lstm else h
    dstate = None
    if d(st.booleans(), "dstate?"):
        dh = convert(rand(rng, ss), d(layouts), dtype)
        dstate = d(st.sampled_from([(dh, dh * 0.5), (None, dh), (dh, None)])) if lstm else dh
    fwd_bad = bwd_bad = None
    tape_override = NO_TAPE
    if corrupt == "x_dtype":
        x, fwd_bad = np.asarray(x).astype(d(st.sampled_from(BAD_DTYPES))), "x"
    elif corrupt == "x_shape":
        x = np.zeros(d(st.sampled_from([(B, I + 1), (I + 2,), (1, B, I), (B, 0)]
                                       + [()])), dtype)
        fwd_bad = "x"
    elif corrupt == "x_type":
        x, fwd_bad = d(st.sampled_from([None, "abc", [[1.0], []]])), "x"
    elif corrupt == "hx_shape":
        bad = np.zeros(d(st.sampled_from([ss[:-1] + (H + 1,), (B + 1, H), (1,) + ss])), dtype)
        hx = (bad, np.zeros(ss, dtype)) if lstm and d(st.booleans()) else (
            (np.zeros(ss, dtype), bad) if lstm else bad)
        fwd_bad = "hx"
    elif corrupt == "hx_dtype":
        bad = np.zeros(ss, d(st.sampled_from(BAD_DTYPES)))
        hx, fwd_bad = ((np.zeros(ss, dtype), bad) if lstm else bad), "hx"
    elif corrupt == "hx_type":
        h = np.zeros(ss, dtype)
        hx, fwd_bad = (d(st.sampled_from([(h,), (h, h, h), h])) if lstm else (h, h)), "hx"
    elif corrupt == "hx_none_part" and lstm:
        hx, fwd_bad = (None, np.zeros(ss, dtype)), "hx"
    elif corrupt == "dstate_shape":
        bad = np.zeros(ss[:-1] + (H + 1,), dtype)
        dstate, bwd_bad = ((None, bad) if lstm else bad), "dstate"
    elif corrupt == "dstate_dtype":
        bad = np.zeros(ss, d(st.sampled_from(BAD_DTYPES)))
        dstate, bwd_bad = ((bad, None) if lstm else bad), "dstate"
    elif corrupt == "tape_other":
        _, tape_override = make_cell(kind, I, H, bias, dtype).forward(x)
        bwd_bad = "tape"
    elif corrupt == "tape_type":
        tape_override, bwd_bad = d(st.sampled_from([None, object(), "t"])), "tape"

    # inference (fast path or general path)
    ok, s_inf = attempt(lambda: m(x, hx), fwd_bad, must_raise=fwd_bad is not None)
    ok2, out = attempt(lambda: m.forward(x, hx, train=True), fwd_bad,
                       must_raise=fwd_bad is not None)
    assert ok == ok2
    if not ok:
        return
    s_train, tape = out
    # the reference: one step of the sequence function
    p = {k: v.astype(np.float64) for k, v in m.state_dict().items()}
    w = (p["weight_ih"], p["weight_hh"], p.get("bias_ih"), p.get("bias_hh"))
    x64 = np.asarray(x, np.float64).reshape(1, -1, I)
    Bk = x64.shape[1]
    zero = np.zeros((Bk, H))
    if lstm:
        h64, c64 = (zero, zero) if hx is None else (np.asarray(a, np.float64).reshape(Bk, H)
                                                    for a in hx)
        _, rh, rc, cache = ref.lstm_forward(x64, h64, c64, *w)
        want = (rh, rc)
    else:
        h64 = zero if hx is None else np.asarray(hx, np.float64).reshape(Bk, H)
        if kind.startswith("gru"):
            _, rh, cache = ref.gru_forward(x64, h64, *w, reset_after=kind == "gru")
        else:
            _, rh, cache = ref.rnn_forward(x64, h64, *w, nonlinearity=kind[4:])
        want = (rh,)
    for s, what in ((s_inf, "inference"), (s_train, "train")):
        got = s if lstm else (s,)
        for a, b, n in zip(got, want, ("h'", "c'")):
            check_close(a, b.reshape(ss), dtype, "out", f"{what} {n}")
    use_tape = tape if tape_override is NO_TAPE else tape_override
    ok, g = attempt(lambda: m.backward(use_tape, dstate), bwd_bad,
                    must_raise=bwd_bad is not None)
    if not ok:
        return
    dx, ds0, grads = g
    dh64 = dc64 = None
    if dstate is not None:
        parts = dstate if lstm else (dstate, None)
        dh64, dc64 = (None if a is None else np.asarray(a, np.float64).reshape(Bk, H)
                      for a in parts)
    dy64 = np.zeros((1, Bk, H))
    if lstm:
        rg = ref.lstm_backward(cache, dy64, dh64, dc64)
    elif kind.startswith("gru"):
        rg = ref.gru_backward(cache, dy64, dh64)
    else:
        rg = ref.rnn_backward(cache, dy64, dh64)
    check_close(dx, rg["dx"].reshape(xs), dtype, "grad", "dx")
    got0 = ds0 if lstm else (ds0,)
    for a, n in zip(got0, ("dh0", "dc0")):
        check_close(a, rg[n].reshape(ss), dtype, "grad", n)
    for k, v in grads.items():
        check_close(v, rg[k], dtype, "grad", k)
    dx2, _, grads2 = m.backward(tape, dstate)  # reuse
    np.testing.assert_array_equal(dx2, dx)


# -------------------------------------------------------------------- functional
FUNC_CORRUPTIONS = [None] * 4 + [
    "x_layout", "x_dtype", "x_shape", "h0_shape", "h0_dtype", "h0_layout", "c0",
    "batch_sizes_increasing", "batch_sizes_zero", "batch_sizes_sum", "batch_sizes_dtype",
    "batch_sizes_big", "batch_sizes_shape",
    "dy_shape", "dy_dtype", "dy_layout", "dh_n_shape", "workspace",
]


@FUZZ
@given(data=st.data())
def test_fuzz_functional(data):
    d = data.draw
    kind = d(st.sampled_from(KINDS), "kind")
    dtype = d(st.sampled_from([np.float32, np.float64]), "dtype")
    I, H = d(st.integers(1, 5), "I"), d(st.integers(1, 5), "H")
    T, B = d(st.integers(1, 5), "T"), d(st.integers(1, 4), "B")
    lstm = kind == "lstm"
    P = d(st.integers(0, H - 1), "P") if lstm and H > 1 else 0
    Hr = P or H
    bias = d(st.booleans(), "bias")
    packed_rows = d(st.booleans(), "batch_sizes?")
    corrupt = d(st.sampled_from(FUNC_CORRUPTIONS), "corrupt")
    seed = d(st.integers(0, 2**32 - 1), "seed")
    rng = np.random.default_rng(seed)
    G = F.CELLS[kind]
    w_ih, w_hh = rand(rng, (G * H, I), 0.5), rand(rng, (G * H, Hr), 0.5)
    b_ih = rand(rng, (G * H,), 0.5) if bias else None
    b_hh = rand(rng, (G * H,), 0.5) if bias else None
    w_hr = rand(rng, (P, H), 0.5) if P else None
    c = lambda a: None if a is None else np.ascontiguousarray(a, dtype)  # noqa: E731
    packed = F.pack(kind, c(w_ih), c(w_hh), c(b_ih), c(b_hh), weight_hr=c(w_hr))
    # accepted without conversion: C-contiguous arrays of the weights' dtype, whatever
    # their alignment or writeability
    ok_layout = st.sampled_from(["c", "readonly", "unaligned", "unaligned_ro"])
    if packed_rows:
        lengths = np.sort(rng.integers(1, T + 1, B))[::-1]
        bs = (lengths[None, :] > np.arange(lengths[0])[:, None]).sum(1).astype(np.int64)
        N = int(bs.sum())
        x = rand(rng, (N, I), 2.0)
    else:
        lengths, bs = None, None
        x = rand(rng, (T, B, I), 2.0)
    x = LAYOUTS[d(ok_layout)](x.astype(dtype))
    h0 = LAYOUTS[d(ok_layout)](rand(rng, (B, Hr)).astype(dtype))
    c0 = LAYOUTS[d(ok_layout)](rand(rng, (B, H)).astype(dtype)) if lstm else None
    fbad = bbad = None
    other = np.float64 if dtype == np.float32 else np.float32
    if corrupt == "x_layout":
        x, fbad = LAYOUTS[d(st.sampled_from(["fortran", "strided_last", "strided_first",
                                              "negative"]))](x), "x"
        if x.flags.c_contiguous:  # e.g. one row: still contiguous, hence valid
            fbad = None
    elif corrupt == "x_dtype":
        x, fbad = x.astype(d(st.sampled_from(BAD_DTYPES + [np.float16, other]))), "x"
    elif corrupt == "x_shape":
        x, fbad = np.zeros(x.shape[:-1] + (I + 1,), dtype), "x"
    elif corrupt == "h0_shape":
        h0, fbad = np.zeros(d(st.sampled_from([(B + 1, Hr), (B, Hr + 1), (Hr,)])), dtype), "h0"
    elif corrupt == "h0_dtype":
        h0, fbad = h0.astype(d(st.sampled_from(BAD_DTYPES + [other]))), "h0"
    elif corrupt == "h0_layout" and B > 1 and Hr > 1:
        h0, fbad = np.asfortranarray(h0), "h0"
    elif corrupt == "c0":
        c0 = None if lstm else np.zeros((B, H), dtype)
        fbad = "c0"
    elif corrupt and corrupt.startswith("batch_sizes") and packed_rows:
        fbad = "batch_sizes"
        b2 = bs.copy()
        if corrupt == "batch_sizes_increasing" and len(bs) > 1 and bs[-1] < bs[0]:
            b2 = bs[::-1].copy()
        elif corrupt == "batch_sizes_zero":
            b2 = np.append(bs, 0)
        elif corrupt == "batch_sizes_sum":
            b2 = bs.copy()
            b2[0] += 1
        elif corrupt == "batch_sizes_dtype":
            b2 = bs.astype(d(st.sampled_from([np.float64, np.int32, np.bool_, object])))
        elif corrupt == "batch_sizes_big":
            b2 = bs.copy()
            b2[0] = d(st.sampled_from([2**31, 2**40, 2**62, -1]))
        elif corrupt == "batch_sizes_shape":
            b2 = bs[None]
        else:
            fbad = None
        bs = b2
    ok, out = attempt(lambda: F.sequence_forward(packed, x, h0, c0, train=True,
                                                 batch_sizes=bs), fbad,
                      must_raise=fbad is not None)
    if not ok:
        return
    y, h_n, c_n, ws = out
    # reference, in padded layout
    x64 = np.asarray(x, np.float64)
    if packed_rows:
        xp = np.zeros((T, B, I))
        off = np.concatenate([[0], np.cumsum(bs)])
        for t in range(len(bs)):
            xp[t, :bs[t]] = x64[off[t]:off[t + 1]]
        Lr = lengths.astype(np.int64)
    else:
        xp, Lr = x64, None
    wp = (w_ih, w_hh, b_ih, b_hh)
    wp = tuple(None if a is None else np.asarray(c(a), np.float64) for a in wp)
    wr = None if w_hr is None else np.asarray(c(w_hr), np.float64)
    h64 = np.asarray(h0, np.float64)
    if lstm:
        ry, rh, rc, cache = ref.lstm_forward(xp, h64, np.asarray(c0, np.float64), *wp,
                                             lengths=Lr, weight_hr=wr)
    elif kind.startswith("gru"):
        ry, rh, cache = ref.gru_forward(xp, h64, *wp, reset_after=kind == "gru", lengths=Lr)
    else:
        ry, rh, cache = ref.rnn_forward(xp, h64, *wp, nonlinearity=kind[4:], lengths=Lr)

    def pack_rows(a):
        if not packed_rows:
            return a
        return np.concatenate([a[t, :bs[t]] for t in range(len(bs))])

    check_close(y, pack_rows(ry), dtype, "out", "y")
    check_close(h_n, rh, dtype, "out", "h_n")
    if lstm:
        check_close(c_n, rc, dtype, "out", "c_n")
    else:
        assert c_n is None

    dy = LAYOUTS[d(ok_layout)](rand(rng, y.shape).astype(dtype))
    dh = None if d(st.booleans()) else rand(rng, (B, Hr)).astype(dtype)
    dc = rand(rng, (B, H)).astype(dtype) if lstm and d(st.booleans()) else None
    if corrupt == "dy_shape":
        dy, bbad = np.zeros(d(st.sampled_from([y.shape[:-1] + (Hr + 1,), y.shape[1:],
                                               (y.shape[0] + 1,) + y.shape[1:]])), dtype), "dy"
    elif corrupt == "dy_dtype":
        dy, bbad = dy.astype(d(st.sampled_from(BAD_DTYPES + [other, np.float16]))), "dy"
    elif corrupt == "dy_layout" and y.shape[-1] > 1:
        dy, bbad = strided(np.ascontiguousarray(dy), -1), "dy"
    elif corrupt == "dh_n_shape":
        dh, bbad = np.zeros((B, Hr + 1), dtype), "dh_n"
    elif corrupt == "workspace":
        ws, bbad = d(st.sampled_from([ws[:-1], np.append(ws, 0), ws.astype(other)])), \
            "workspace"
    ok, g = attempt(lambda: F.sequence_backward(packed, x, ws, dy, dh, dc, batch_sizes=bs),
                    bbad, must_raise=bbad is not None)
    if not ok:
        return
    dy_p = np.asarray(dy, np.float64)
    if packed_rows:
        dyp = np.zeros((T, B, Hr))
        for t in range(len(bs)):
            dyp[t, :bs[t]] = dy_p[off[t]:off[t + 1]]
    else:
        dyp = dy_p
    dh64 = None if dh is None else dh.astype(np.float64)
    if lstm:
        rg = ref.lstm_backward(cache, dyp, dh64, None if dc is None else dc.astype(np.float64))
    elif kind.startswith("gru"):
        rg = ref.gru_backward(cache, dyp, dh64)
    else:
        rg = ref.rnn_backward(cache, dyp, dh64)
    check_close(g["dx"], pack_rows(rg["dx"]), dtype, "grad", "dx")
    for k in ("dh0", "dc0", "weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"):
        if k in rg and rg[k] is not None:
            check_close(g[k], rg[k], dtype, "grad", k)
    g2 = F.sequence_backward(packed, x, ws, dy, dh, dc, batch_sizes=bs)  # workspace reuse
    np.testing.assert_array_equal(g2["dx"], g["dx"])


# ------------------------------------------------------------------ load_state_dict
SD_CORRUPTIONS = [None] * 4 + [
    "missing", "extra", "extra_reverse", "extra_weight_hr", "shape", "dtype", "not_mapping",
    "value_type", "float16", "list_value", "torch_like_strided",
]


@FUZZ
@given(data=st.data())
def test_fuzz_load_state_dict(data):
    d = data.draw
    kind = d(st.sampled_from(KINDS), "kind")
    dtype = d(st.sampled_from([np.float32, np.float64]), "dtype")
    cell = d(st.integers(0, 3), "cell?") == 0
    I, H = d(st.integers(1, 4)), d(st.integers(1, 4))
    bias = d(st.booleans())
    if cell:
        m = make_cell(kind, I, H, bias, dtype)
        L, bidir, P = 1, False, 0
    else:
        L, bidir = d(st.integers(1, 2)), d(st.booleans())
        P = d(st.integers(0, H - 1)) if kind == "lstm" and H > 1 else 0
        m = make_layer(kind, I, H, L, bidir, False, P, bias, dtype)
    strict = d(st.booleans(), "strict")
    before = m.state_dict()
    rng = np.random.default_rng(d(st.integers(0, 2**32 - 1)))
    sd = {k: rand(rng, v.shape).astype(dtype) for k, v in before.items()}
    keys = list(sd)
    k = d(st.sampled_from(keys), "key")
    corrupt = d(st.sampled_from(SD_CORRUPTIONS), "corrupt")
    bad = None
    if corrupt == "missing":
        del sd[k]
        bad = "state_dict" if strict else None
    elif corrupt in ("extra", "extra_reverse", "extra_weight_hr"):
        name = {"extra": "weight_ih_l9", "extra_reverse": "weight_ih_l0_reverse",
                "extra_weight_hr": "weight_hr_l0"}[corrupt]
        if name not in sd:
            sd[name] = np.zeros((1, 1), dtype)
            bad = "state_dict" if strict else None
    elif corrupt == "shape":
        shape = d(st.sampled_from([sd[k].shape + (1,), sd[k].shape[1:],
                                   (sd[k].shape[0] + 1,) + sd[k].shape[1:]]))
        sd[k], bad = np.zeros(shape, dtype), "state_dict"
    elif corrupt == "dtype":
        sd[k] = sd[k].astype(d(st.sampled_from([np.int32, np.bool_, np.complex64, object])))
        bad = "state_dict"
    elif corrupt == "not_mapping":
        sd, bad = d(st.sampled_from([list(sd.items()), None, 3])), "state_dict"
    elif corrupt == "value_type":
        sd[k], bad = d(st.sampled_from([None, "abc", object()])), "state_dict"
    elif corrupt == "float16":
        sd[k] = sd[k].astype(np.float16)  # cast, as torch's copy_
    elif corrupt == "list_value":
        sd[k] = sd[k].tolist()
    elif corrupt == "torch_like_strided":
        sd[k] = LAYOUTS[d(st.sampled_from(["fortran", "strided_last", "negative",
                                           "unaligned", "readonly"]))](sd[k])
    ok, res = attempt(lambda: m.load_state_dict(sd, strict=strict), bad,
                      must_raise=bad is not None)
    after = m.state_dict()
    if not ok:
        for n in before:  # nothing changed
            np.testing.assert_array_equal(after[n], before[n])
        return
    for n in before:
        if n in sd:
            np.testing.assert_array_equal(after[n], np.asarray(sd[n], np.float64).astype(dtype))
        else:
            np.testing.assert_array_equal(after[n], before[n])
        assert after[n].dtype == dtype
    # the kernels use the new weights
    p = {n: v.astype(np.float64) for n, v in after.items()}
    x = rand(rng, (3, 2, I)).astype(dtype)
    if cell:
        s = m(x[0])
        h = s[0] if kind == "lstm" else s
        w = (p["weight_ih"], p["weight_hh"], p.get("bias_ih"), p.get("bias_hh"))
        z = np.zeros((2, H))
        if kind == "lstm":
            want = ref.lstm_forward(x[:1].astype(np.float64), z, z, *w)[1]
        elif kind.startswith("gru"):
            want = ref.gru_forward(x[:1].astype(np.float64), z, *w, reset_after=kind == "gru")[1]
        else:
            want = ref.rnn_forward(x[:1].astype(np.float64), z, *w, nonlinearity=kind[4:])[1]
        check_close(h, want, dtype, "out", "h'")
    else:
        y, _ = m(x)
        ry = ref.stack_forward(kind, x.astype(np.float64), None, p, num_layers=L,
                               bidirectional=bidir)[0]
        check_close(y, ry, dtype, "out", "y")


# ---------------------------------------------------------------- huge dimensions
# Every parameter set below needs >= 16 TiB: the allocation is refused at once (no
# overcommitted pages get touched).  G*H*I elements for a huge input_size, G*H*H for a
# huge hidden_size.
HUGE_I = st.sampled_from([2**41, 2**48, 2**62, 2**63 - 1])
HUGE_H = st.sampled_from([2**41, 2**48, 2**62, 2**63 - 1])


@FUZZ
@given(data=st.data())
def test_fuzz_huge_sizes_at_construction(data):
    """Sizes whose parameters cannot be allocated: MemoryError or ValueError, never a
    crash or a hang.  (That the message names the argument is pinned by the
    regression tests below.)"""
    d = data.draw
    which = d(st.sampled_from(["input_size", "hidden_size", "both"]))
    I = d(HUGE_I) if which != "hidden_size" else d(st.integers(1, 4))
    H = d(HUGE_H) if which != "input_size" else d(st.integers(1, 4))
    cls = d(st.sampled_from([fr.LSTM, fr.GRU, fr.RNN, fr.LSTMCell, fr.GRUCell, fr.RNNCell]))
    kw = {}
    if cls in (fr.LSTM, fr.GRU, fr.RNN):
        kw = dict(num_layers=d(st.integers(1, 3)), bidirectional=d(st.booleans()))
    with pytest.raises((MemoryError, ValueError)):
        cls(I, H, dtype=d(st.sampled_from([np.float32, np.float64])), **kw)


@FUZZ
@given(data=st.data())
def test_fuzz_huge_inputs(data):
    """x, states and lengths so large (as zero-stride broadcast views, free to make) that
    the T*B*H products cannot be allocated: MemoryError or ValueError, never a crash."""
    d = data.draw
    kind = d(st.sampled_from(KINDS))
    m = make_layer(kind, 1, 2, 1, d(st.booleans()), False, 0, True, np.float32)
    T = d(st.sampled_from([1, 2**20, 2**31, 2**40]))
    B = d(st.sampled_from([1, 2**20, 2**31, 2**40]))
    if T * B >= 2**62:  # beyond what numpy can represent even as a view
        T = 1
    if T * B < 2**40:  # at least 4 TiB of float32: refused at once, nothing is touched
        B = 2**40 // T
    assert 2**40 <= T * B < 2**62
    x = np.broadcast_to(np.zeros((1, 1, 1), np.float32), (T, B, 1))
    lengths = np.broadcast_to(np.int64(1), (B,)) if d(st.booleans()) else None
    with pytest.raises((MemoryError, ValueError)):
        m.forward(x, lengths=lengths, train=d(st.booleans()))


# ------------------------------------------------ regression tests for the findings
def test_huge_hidden_size_message_names_argument():
    with pytest.raises((MemoryError, ValueError), match=r"hidden_size"):
        fr.LSTM(4, 2**40)


def test_overflowing_hidden_size_message_names_argument():
    with pytest.raises((MemoryError, ValueError), match=r"hidden_size"):
        fr.GRUCell(4, 2**62)


def test_huge_input_size_message_names_argument():
    with pytest.raises((MemoryError, ValueError), match=r"input_size"):
        fr.RNN(2**40, 2)


def test_huge_x_message_names_argument():
    x = np.broadcast_to(np.zeros(1, np.float32), (2**20, 2**20, 1))
    with pytest.raises((MemoryError, ValueError), match=r"^x\b"):
        fr.RNN(1, 2)(x)


@pytest.mark.parametrize("call", ["call", "forward"])
def test_cell_rejects_0d_x(call):
    m = fr.GRUCell(1, 3, seed=0)
    x = np.array(0.5, np.float32)
    with pytest.raises(ValueError, match=r"^x\b"):
        m(x) if call == "call" else m.forward(x)


def test_cell_rejects_0d_hx():
    m = fr.RNNCell(2, 1, seed=0)
    with pytest.raises(ValueError, match=r"^hx\b"):
        m(np.ones(2, np.float32), np.array(0.2, np.float32))
