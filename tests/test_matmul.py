"""The large-product kernel alone (csrc/gemm: the input projection, dx and dW products),
through ``_core._matmul(a, w)`` = a @ w.T, on every ISA this CPU can run.

Its sums are checked against float64 NumPy with a bound that grows with K (the kernel
is a plain dot product per element, in blocks of k), at sizes on both sides of every
blocking edge: the tile's rows (MR) and columns (NR), the row block (MC = 48) and the
slice of k (KC = 512 floats, 256 doubles); K = 0 gives zeros.  Its results do not
depend on the thread count (a row's sum never depends on who computes it), and bad
arguments are refused by name.
"""

from __future__ import annotations

import numpy as np
import pytest

import fusedrnn
from fusedrnn import _core

pytestmark = pytest.mark.usefixtures("isa")

# (M, N, K): tile edges (1, 5-7 rows; 15-17, 63-65 columns), the row block (47-49, 97),
# the k slices (255-257 doubles, 511-513 floats, 1025), and shapes of the benchmark's
# products cut down (S4's I = H = 128 with G = 4, 3).
SHAPES = [
    (1, 1, 1), (1, 17, 5), (5, 16, 7), (6, 15, 33), (7, 64, 1), (12, 65, 128),
    (13, 63, 129), (47, 31, 255), (48, 64, 256), (49, 129, 257), (11, 40, 511),
    (50, 17, 512), (97, 130, 513), (20, 70, 1025), (64, 512, 128), (50, 384, 300),
    (3, 8, 0), (0, 5, 4),
]


def _bound(a, w, dtype):
    """|error| allowed per element: a K-term sum's rounding, 2 K eps sum_k |a w|."""
    eps = np.finfo(dtype).eps
    K = a.shape[1]
    return 2 * max(K, 1) * eps * (np.abs(a.astype(np.float64)) @ np.abs(w.astype(np.float64)).T) + 1e-30


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("M,N,K", SHAPES)
def test_matmul_matches_float64(M, N, K, dtype):
    rng = np.random.default_rng(M * 10007 + N * 101 + K)
    a = rng.standard_normal((M, K)).astype(dtype)
    w = rng.standard_normal((N, K)).astype(dtype)
    c, seconds = _core._matmul(a, w)
    assert c.dtype == dtype and c.shape == (M, N)
    assert seconds >= 0
    want = a.astype(np.float64) @ w.astype(np.float64).T
    err = np.abs(c - want)
    assert np.all(err <= _bound(a, w, dtype)), f"max error {err.max() if err.size else 0}"
    if K == 0:
        assert np.all(c == 0)


def test_matmul_repeats_give_the_same_product():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((30, 200)).astype(np.float32)
    w = rng.standard_normal((70, 200)).astype(np.float32)
    once, _ = _core._matmul(a, w)
    again, _ = _core._matmul(a, w, reps=3)
    np.testing.assert_array_equal(once, again)


@pytest.mark.parametrize("shape", [(96, 640, 300), (200, 40, 260)])  # split by panels, by rows
def test_matmul_bit_identical_across_thread_counts(shape, restore_threads):
    M, N, K = shape
    rng = np.random.default_rng(M + N + K)
    a = rng.standard_normal((M, K)).astype(np.float32)
    w = rng.standard_normal((N, K)).astype(np.float32)
    fusedrnn.set_num_threads(1)
    one, _ = _core._matmul(a, w)
    assert _core._last_region_threads() == 1
    fusedrnn.set_num_threads(2)
    two, _ = _core._matmul(a, w)
    assert _core._last_region_threads() == 2, "the product was not shared: proves nothing"
    np.testing.assert_array_equal(one, two)


def test_matmul_rows_are_independent_of_the_other_rows():
    """The product of a block of rows equals those rows of the whole product, bit for
    bit (what lets the inference projection run in blocks of steps)."""
    rng = np.random.default_rng(5)
    a = rng.standard_normal((100, 300)).astype(np.float32)
    w = rng.standard_normal((96, 300)).astype(np.float32)
    whole, _ = _core._matmul(a, w)
    for r0, r1 in [(0, 1), (7, 19), (48, 100), (93, 100)]:
        part, _ = _core._matmul(np.ascontiguousarray(a[r0:r1]), w)
        np.testing.assert_array_equal(part, whole[r0:r1])


def test_matmul_refuses_bad_arguments():
    a = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match="a, w: expected shapes"):
        _core._matmul(a, np.zeros((5, 3), np.float32))
    with pytest.raises(TypeError, match="w: expected dtype float32"):
        _core._matmul(a, np.zeros((5, 4), np.float64))
    with pytest.raises(ValueError, match="reps: expected >= 1"):
        _core._matmul(a, np.zeros((5, 4), np.float32), reps=0)
    with pytest.raises(ValueError, match="a: expected a C-contiguous"):
        _core._matmul(np.zeros((4, 3), np.float32).T, np.zeros((5, 4), np.float32))
