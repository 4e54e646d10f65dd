"""The compiled quantized kernels (``_core.QuantWeights`` / ``_core.quant_forward`` and the
probes ``_quantize_rows`` / ``_quant_matmul``) against the NumPy specification of the
scheme (``fusedrnn.quantized.reference``), on every ISA this CPU can run (and, on AVX-512,
with and without the VNNI tiles).

- The probes are compared exactly: the integer products and the quantizer have one right
  answer, at sizes around the tiles (K, N, M not multiples of the tile sizes, 1, primes).
- One step of every cell kind and option is compared with a float64 computation of the
  same scheme on the same float32 inputs: the integer parts agree exactly, so the
  difference is float32 rounding of the epilogue (plus, for the products whose input the
  kernel computes itself -- the LSTM projection's o * tanh(c), GRU reset_after=False's
  r * h -- possibly one quantization level flipped by that rounding: allowed for).
- A whole sequence equals, bit for bit, the same kernel run one step at a time on its
  own states, packed rows equal each sequence run alone, and 1 and 2 threads agree.
"""

import numpy as np
import pytest

import fusedrnn
from fusedrnn import _core
from fusedrnn.quantized import reference as Q

from _quant import CELLS, F32, F64, MODES, kernel, make_weights  # noqa: F401 (fixture)


# ---- probes ---------------------------------------------------------------------------

MATMUL_SIZES = [(1, 1, 1), (1, 17, 3), (2, 16, 4), (3, 31, 5), (4, 64, 8), (5, 65, 13),
                (7, 130, 31), (9, 7, 257), (13, 97, 100), (8, 192, 512)]


@pytest.mark.parametrize("M,N,K", MATMUL_SIZES)
def test_quant_matmul_is_exact(kernel, M, N, K):
    rng = np.random.default_rng(M * 1000 + N * 10 + K)
    a = rng.integers(-127, 128, (M, K)).astype(np.int8)
    w = rng.integers(-127, 128, (N, K)).astype(np.int8)
    out = _core._quant_matmul(a, w)
    assert out.dtype == np.int32 and out.shape == (M, N)
    np.testing.assert_array_equal(out, Q.quant_matmul(a, w))


@pytest.mark.parametrize("K", [4099, 133000])
def test_quant_matmul_extremes(kernel, K):
    # All +-127: the largest sums, where a saturating int16 step (vpmaddubsw) would fail;
    # K = 133000, the largest the binding takes: |sums| just below 2^31.
    a = np.full((3, K), 127, np.int8)
    a[1] = -127
    w = np.full((5, K), -127, np.int8)
    w[2] = 127
    w[4, ::2] = 127
    out = _core._quant_matmul(a, w)
    np.testing.assert_array_equal(out, Q.quant_matmul(a, w))
    assert out[0, 0] == -127 * 127 * K


@pytest.mark.parametrize("M,K", [(1, 1), (3, 7), (4, 16), (5, 33), (9, 257)])
def test_quantize_rows_is_exact(kernel, M, K):
    rng = np.random.default_rng(K)
    a = (rng.standard_normal((M, K)) * rng.uniform(0.01, 10, (M, 1))).astype(np.float32)
    a[0, : min(K, 3)] = 0.0
    if M > 2:
        a[2] = 0.0  # a zero row: scale 0, q 0
    if M > 3:
        a[3, 0] = 1e-40  # subnormal amax
        a[3, 1:] = 0
    q, s = _core._quantize_rows(a)
    qr, sr = Q.quantize_rows(a)
    np.testing.assert_array_equal(q, qr)
    np.testing.assert_array_equal(s, sr)


def test_quantize_rows_ties_round_to_even(kernel):
    # amax 127 gives inv = 1 exactly: a * inv = a, so these are true ties.
    a = np.array([[127.0, 0.5, 1.5, 2.5, -0.5, -2.5, 3.5, 126.5]], np.float32)
    q, s = _core._quantize_rows(a)
    np.testing.assert_array_equal(q, [[127, 0, 2, 2, 0, -2, 4, 126]])
    assert s[0] == np.float32(1.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_quantize_rows_refuses_non_finite(kernel, bad):
    a = np.zeros((2, 5), np.float32)
    a[1, 3] = bad
    with pytest.raises(ValueError, match="a: non-finite"):
        _core._quantize_rows(a)


def test_probe_argument_checks():
    with pytest.raises(ValueError, match="a: expected a C-contiguous float32"):
        _core._quantize_rows(np.zeros((2, 3)))
    with pytest.raises(TypeError, match="a_q: expected dtype int8"):
        _core._quant_matmul(np.zeros((2, 3), np.int16), np.zeros((2, 3), np.int8))
    with pytest.raises(ValueError, match="a_q, w_q: expected the same number of columns"):
        _core._quant_matmul(np.zeros((2, 3), np.int8), np.zeros((2, 4), np.int8))
    with pytest.raises(ValueError, match="w_q: int8 weights must lie in"):
        _core._quant_matmul(np.zeros((2, 3), np.int8), np.full((2, 3), -128, np.int8))
    with pytest.raises(ValueError, match="a_q: at most 133000 columns"):
        _core._quant_matmul(np.zeros((1, 133001), np.int8), np.zeros((1, 133001), np.int8))


# ---- quant_forward against the scheme --------------------------------------------------


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _prod(spec, name, a, rows=slice(None)):
    """a (float32, B x K) times W[rows]^T under the scheme, in float64; and the bound on
    the change one flipped quantization level of a would make."""
    a = np.asarray(a, F32)
    deq = spec[name + "_deq"][rows]
    if spec["mode"] != "int8":
        return a.astype(F64) @ deq.T, 0.0
    q, s = spec[name]
    qa, sa = Q.quantize_rows(a)
    acc = Q.quant_matmul(qa, q[rows]).astype(F64)
    flip = float(sa.max(initial=0)) * float(np.abs(deq).max(initial=0))
    return acc * (sa.astype(F64)[:, None] * s[rows].astype(F64)[None, :]), flip


def ref_step(spec, x, h, c=None):
    """One step of the scheme in float64 from float32 x, h (and c): (h1, c1, tolerance)."""
    cell, H = spec["cell"], spec["H"]
    gi, _ = _prod(spec, "ih", x)
    gi = gi + spec["b_ih"]
    bh = spec["b_hh"]
    flip = 0.0
    c1 = None
    if cell == "gru_reset_before":
        gh, _ = _prod(spec, "hh", h, slice(0, 2 * H))
        r = _sigmoid(gi[:, :H] + gh[:, :H] + bh[:H])
        z = _sigmoid(gi[:, H:2 * H] + gh[:, H:] + bh[H:2 * H])
        gn, flip = _prod(spec, "hh", (r * h).astype(F32), slice(2 * H, 3 * H))
        n = np.tanh(gi[:, 2 * H:] + gn + bh[2 * H:])
        h1 = (1 - z) * n + z * h
    else:
        gh, _ = _prod(spec, "hh", h)
        if cell == "lstm":
            g = gi + gh + bh
            i, f, gg, o = (g[:, j * H:(j + 1) * H] for j in range(4))
            c1 = _sigmoid(f) * c + _sigmoid(i) * np.tanh(gg)
            r = _sigmoid(o) * np.tanh(c1)
            h1 = r
            if spec["P"]:
                h1, flip = _prod(spec, "hr", r.astype(F32))
        elif cell == "gru":
            r = _sigmoid(gi[:, :H] + gh[:, :H] + bh[:H])
            z = _sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H] + bh[H:2 * H])
            n = np.tanh(gi[:, 2 * H:] + r * (gh[:, 2 * H:] + bh[2 * H:]))
            h1 = (1 - z) * n + z * h
        else:
            pre = gi + gh + bh
            h1 = np.tanh(pre) if cell == "rnn_tanh" else np.maximum(pre, 0)
    # float32 epilogue vs float64: a few ulps of the pre-activations' size; 16-bit weights
    # also sum in float32 (K terms).
    tol = 2e-5 if spec["mode"] == "int8" else 1e-4
    return h1, c1, tol + 2.5 * flip


def run_steps(qw, spec, x, h0, c0):
    """The kernel one step at a time (T = 1 calls), each step checked against ref_step on
    the kernel's own state; returns the stacked outputs and final states."""
    ys, h, c = [], h0, c0
    for t in range(x.shape[0]):
        y, h1, c1 = _core.quant_forward(qw, x[t:t + 1], h, c)
        r_h, r_c, tol = ref_step(spec, x[t], h, c)
        np.testing.assert_allclose(h1, r_h, rtol=0, atol=tol * max(1.0, np.abs(r_h).max()))
        if c is not None:
            np.testing.assert_allclose(c1, r_c, rtol=0, atol=tol * max(1.0, np.abs(r_c).max()))
        np.testing.assert_array_equal(y[0], h1)
        ys.append(y[0])
        h, c = h1, c1
    return np.stack(ys), h, c


SIZES = [(3, 1, 1, 1), (2, 3, 5, 7), (3, 9, 19, 17), (2, 4, 16, 33), (2, 5, 40, 100)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("T,B,I,H", SIZES)
def test_forward_matches_scheme(kernel, cell, mode, T, B, I, H):
    seed = T * 100 + B * 10 + H
    kw, spec = make_weights(cell, mode, I, H, seed=seed)
    qw = _core.QuantWeights(cell, mode, **kw)
    assert (qw.cell, qw.mode, qw.input_size, qw.hidden_size, qw.proj_size) == (cell, mode, I, H, 0)
    assert qw.isa == kernel.split("-")[0] and qw.has_bias
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal((T, B, I)).astype(F32)
    h0 = (0.5 * rng.standard_normal((B, H))).astype(F32)
    c0 = rng.standard_normal((B, H)).astype(F32) if cell == "lstm" else None
    ys, h_s, c_s = run_steps(qw, spec, x, h0, c0)
    y, h_n, c_n = _core.quant_forward(qw, x, h0, c0)
    # The whole sequence in one call is the same arithmetic as the steps, bit for bit.
    np.testing.assert_array_equal(y, ys)
    np.testing.assert_array_equal(h_n, h_s)
    if cell == "lstm":
        np.testing.assert_array_equal(c_n, c_s)
    else:
        assert c_n is None


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("I,H,P", [(3, 7, 1), (5, 17, 5), (16, 33, 20)])
def test_lstm_projection_matches_scheme(kernel, mode, I, H, P):
    kw, spec = make_weights("lstm", mode, I, H, P=P, seed=H + P)
    qw = _core.QuantWeights("lstm", mode, **kw)
    assert qw.proj_size == P
    rng = np.random.default_rng(P)
    T, B = 3, 4
    x = rng.standard_normal((T, B, I)).astype(F32)
    h0 = (0.3 * rng.standard_normal((B, P))).astype(F32)
    c0 = rng.standard_normal((B, H)).astype(F32)
    ys, h_s, c_s = run_steps(qw, spec, x, h0, c0)
    y, h_n, c_n = _core.quant_forward(qw, x, h0, c0)
    assert y.shape == (T, B, P) and h_n.shape == (B, P) and c_n.shape == (B, H)
    np.testing.assert_array_equal(y, ys)
    np.testing.assert_array_equal(c_n, c_s)


@pytest.mark.parametrize("cell", CELLS)
def test_forward_without_bias(kernel, cell):
    kw, spec = make_weights(cell, "int8", 6, 9, bias=False, seed=3)
    qw = _core.QuantWeights(cell, "int8", **kw)
    assert not qw.has_bias
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 6)).astype(F32)
    h0 = np.zeros((3, 9), F32)  # a zero row: scale 0
    c0 = np.zeros((3, 9), F32) if cell == "lstm" else None
    run_steps(qw, spec, x, h0, c0)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cell", ["lstm", "gru_reset_before", "rnn_relu"])
def test_packed_rows_equal_each_sequence_alone(kernel, cell, mode):
    I, H = 5, 18
    kw, _ = make_weights(cell, mode, I, H, seed=7)
    qw = _core.QuantWeights(cell, mode, **kw)
    lengths = [6, 4, 4, 1]
    B = len(lengths)
    bs = np.array([sum(L > t for L in lengths) for t in range(max(lengths))], np.int64)
    rng = np.random.default_rng(8)
    seqs = [rng.standard_normal((L, I)).astype(F32) for L in lengths]
    x = np.concatenate([np.stack([seqs[b][t] for b in range(bs[t])]) for t in range(len(bs))])
    h0 = (0.5 * rng.standard_normal((B, H))).astype(F32)
    c0 = rng.standard_normal((B, H)).astype(F32) if cell == "lstm" else None
    y, h_n, c_n = _core.quant_forward(qw, x, h0, c0, batch_sizes=bs)
    assert y.shape == (sum(lengths), H)
    off = np.concatenate([[0], np.cumsum(bs)])
    for b, L in enumerate(lengths):
        yb, hb, cb = _core.quant_forward(qw, seqs[b][:, None, :], h0[b:b + 1],
                                         None if c0 is None else c0[b:b + 1])
        np.testing.assert_array_equal(np.stack([y[off[t] + b] for t in range(L)]), yb[:, 0])
        np.testing.assert_array_equal(h_n[b], hb[0])
        if c0 is not None:
            np.testing.assert_array_equal(c_n[b], cb[0])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_whole_sequence_near_free_running_scheme(kernel, cell):
    # Free-running float64 scheme (its own states): within a few quantization levels.
    T, B, I, H = 12, 3, 8, 24
    kw, spec = make_weights(cell, "int8", I, H, seed=11)
    qw = _core.QuantWeights(cell, "int8", **kw)
    rng = np.random.default_rng(12)
    x = rng.standard_normal((T, B, I)).astype(F32)
    h = np.zeros((B, H), F32)
    c = np.zeros((B, H), F32) if cell == "lstm" else None
    y, _, _ = _core.quant_forward(qw, x, h, c)
    for t in range(T):
        h64, c64, _ = ref_step(spec, x[t], h, c)
        h, c = h64.astype(F32), (None if c64 is None else c64.astype(F32))
        assert np.abs(y[t] - h64).max() < 4 / 127


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cell", ["lstm", "gru_reset_before"])
def test_threads_give_identical_results(kernel, restore_threads, cell, mode):
    T, B, I, H = 4, 8, 48, 64
    kw, _ = make_weights(cell, mode, I, H, P=0, seed=13)
    qw = _core.QuantWeights(cell, mode, **kw)
    rng = np.random.default_rng(14)
    x = rng.standard_normal((T, B, I)).astype(F32)
    h0 = (0.5 * rng.standard_normal((B, H))).astype(F32)
    c0 = rng.standard_normal((B, H)).astype(F32) if cell == "lstm" else None
    fusedrnn.set_num_threads(1)
    one = _core.quant_forward(qw, x, h0, c0)
    assert _core._last_region_threads() == 1
    fusedrnn.set_num_threads(2)
    two = _core.quant_forward(qw, x, h0, c0)
    assert _core._last_region_threads() == 2
    for a, b in zip(one, two):
        if a is not None:
            np.testing.assert_array_equal(a, b)
