"""Accuracy of the vector exp, sigmoid and tanh (csrc/simd/math-inl.h) on their own.

Every ISA this CPU can run, through ``_core._activation`` (the selected ISA's vector code
for full vectors, its scalar code for the tail).  float32 against float64 NumPy over the
whole float32 line: errors in units of the float32 spacing of the correctly rounded
result (2^-149 in the subnormal range), at most 4; exact saturation; NaN in -> NaN out
at every lane position; tanh odd to the bit.  float64 against libm-accurate NumPy.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import fusedrnn
from fusedrnn import _core

ISAS = fusedrnn.cpu_info()["available"]
FUNCS = ("exp", "sigmoid", "tanh")
MAX_ULP = 4.0
F32 = np.finfo(np.float32)
TINY = np.float32(2.0**-149)  # the smallest subnormal


@pytest.fixture(params=ISAS)
def isa(request):
    """Selects each available ISA in turn, restoring the original one afterwards."""
    original = fusedrnn.cpu_info()["isa"]
    _core._use_isa(request.param)
    try:
        yield request.param
    finally:
        _core._use_isa(original)


def reference(which, x):
    """The function in float64 (accurate to ~1e-16 relative, far below float32's ULP)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        if which == "exp":
            return np.exp(x)
        if which == "tanh":
            return np.tanh(x)
        e = np.exp(-np.abs(x))  # 1 / (1 + e^-x) written so that nothing overflows
        return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def ulp_error(got, ref64):
    """|got - ref| in units of the spacing of float32(ref): ulp(r) = 2^(exponent(r) - 23),
    and 2^-149 below the normal range (0 included).  Infinities must match exactly."""
    with np.errstate(over="ignore"):
        ref32 = ref64.astype(np.float32)
    _, e = np.frexp(np.abs(ref32).astype(np.float64))
    ulp = np.ldexp(1.0, np.maximum(e - 24, -149))
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(got.astype(np.float64) - ref64) / ulp
    special = np.isinf(ref32) | ~np.isfinite(got)
    err[special] = np.where(got[special] == ref32[special], 0.0, np.inf)
    return err


def f32_range(lo, hi, step=1):
    """Every `step`-th float32 in [lo, hi] (both of one sign, |lo| <= |hi| order free)."""
    a, b = sorted((abs(np.float32(lo)), abs(np.float32(hi))))
    bits = np.arange(a.view(np.int32), b.view(np.int32) + 1, step, dtype=np.int32)
    x = bits.view(np.float32)
    return -x if lo < 0 or hi < 0 else x


SPECIALS = np.array(
    [0.0, F32.max, F32.tiny, TINY, F32.tiny - TINY, np.inf, 1.0, 0.5, 2.0**-24, 2.0**-12,
     # edges: exp overflow / subnormal / zero, sigmoid and tanh saturation, tanh's switch
     88.72283, 88.72284, 87.33654, 87.33655, 103.27893, 103.97208, 103.97209, 104.0,
     16.635532, 17.32868, 17.32869, 9.010913, 9.010914, 0.625, 0.62499994, 0.62500006],
    dtype=np.float32,
)


def sweep_inputs():
    """The whole line at a stride, plus every float32 (or a fine stride) where it matters."""
    # Every 2003rd 32-bit pattern (2003 is prime, so the low mantissa bits vary too).
    pos = np.arange(0, 0x7F800000, 2003, dtype=np.int64).astype(np.int32).view(np.float32)
    parts = [
        pos,
        f32_range(0, F32.tiny, 97),  # subnormal inputs
        f32_range(0, 64 * TINY),  # the smallest subnormals
        f32_range(87.0, 104.5, 5),  # exp(-x), sigmoid(-x): subnormal results, then 0
        f32_range(87.33, 87.34),  # the normal / subnormal boundary of the result
        f32_range(103.95, 104.0),  # where the result rounds to 0
        f32_range(88.70, 88.75),  # exp's overflow
        f32_range(16.5, 17.5, 3),  # sigmoid -> 1
        f32_range(17.25, 17.45),
        f32_range(8.9, 9.1),  # tanh -> 1
        f32_range(0.615, 0.635),  # tanh: the switch from the polynomial to exp
        f32_range(0.0, 1e-3, 1009),
        SPECIALS,
    ]
    x = np.concatenate(parts)
    return np.concatenate([x, -x])


INPUTS = sweep_inputs()


@functools.lru_cache(maxsize=None)
def inputs_reference(which):
    """reference(which, INPUTS) and its float32 rounding, computed once per function."""
    ref = reference(which, INPUTS)
    with np.errstate(over="ignore"):
        return ref, ref.astype(np.float32)


@pytest.mark.parametrize("which", FUNCS)
def test_float32_ulp_over_the_whole_line(isa, which):
    x = INPUTS
    got = _core._activation(which, x)
    ref, _ = inputs_reference(which)
    err = ulp_error(got, ref)
    i = int(np.argmax(err))
    assert err[i] <= MAX_ULP, (
        f"{isa} {which}: max error {err[i]:.3f} ULP at x={x[i]!r} "
        f"(bits {x.view(np.uint32)[i]:#x}): got {got[i]!r}, float64 reference {ref[i]!r}"
    )
    print(f"{isa} {which}: max error {err[i]:.3f} ULP over {x.size} inputs")  # noqa: T201


@pytest.mark.parametrize("which", FUNCS)
def test_float32_saturation_is_exact(isa, which):
    x = INPUTS
    got = _core._activation(which, x)
    _, ref32 = inputs_reference(which)
    # Where the true value rounds to 1 (sigmoid, tanh: -1 too) or to +inf, exactly that.
    for target in (1.0, -1.0, np.inf):
        m = ref32 == target
        bad = np.flatnonzero(m & (got != target))
        assert bad.size == 0, f"{isa} {which}: x={x[bad[:5]]} give {got[bad[:5]]}, not {target}"
    # Where the true value rounds to 0 (exp, sigmoid: the far left), exactly 0.
    if which != "tanh":
        m = ref32 == 0
        assert m.sum() > 1000
        bad = np.flatnonzero(m & (got != 0))
        assert bad.size == 0, f"{isa} {which}: x={x[bad[:5]]} give {got[bad[:5]]}, not 0"


def test_float32_special_values(isa):
    def f(which, *vals):
        return _core._activation(which, np.array(vals, dtype=np.float32)).tolist()

    inf = np.inf
    assert f("exp", -inf, inf, 0.0, -0.0, -200.0, 200.0) == [0.0, inf, 1.0, 1.0, 0.0, inf]
    assert f("sigmoid", -inf, inf, 0.0, -0.0, -200.0, 200.0, 40.0) == [0, 1, 0.5, 0.5, 0, 1, 1]
    assert f("tanh", -inf, inf, -200.0, 200.0, -20.0, 20.0) == [-1, 1, -1, 1, -1, 1]
    # Signed zeros and subnormals pass through tanh unchanged.
    x = np.array([0.0, -0.0, TINY, -TINY, F32.tiny / 2], dtype=np.float32)
    assert _core._activation("tanh", x).view(np.uint32).tolist() == x.view(np.uint32).tolist()
    # Subnormal results, within the ULP bound (ULP 2^-149 there).
    for which, v in (("exp", -100.0), ("sigmoid", -95.0), ("exp", -90.0), ("sigmoid", -103.0)):
        got = _core._activation(which, np.array([v] * 19, dtype=np.float32))
        ref = reference(which, np.float64(v))
        assert 0 < ref < F32.tiny
        assert np.all(np.abs(got.astype(np.float64) - ref) <= MAX_ULP * 2.0**-149), (which, v)


@pytest.mark.parametrize("which", FUNCS)
def test_nan_in_nan_out_at_every_lane(isa, which):
    rng = np.random.default_rng(7)
    nans = np.array([0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FFFFFFF], dtype=np.uint32)
    nans = nans.view(np.float32)  # quiet, negative quiet, signalling, all ones
    for n in range(1, 40):  # not multiples of the vector width: tails too
        base = rng.uniform(-30, 30, n).astype(np.float32)
        clean = _core._activation(which, base)
        for p in range(n):
            x = base.copy()
            x[p] = nans[p % nans.size]
            y = _core._activation(which, x)
            assert np.isnan(y[p]), f"{isa} {which}: n={n}, NaN at {p} gave {y[p]}"
            others = np.arange(n) != p
            assert np.array_equal(y[others], clean[others]), f"{isa} {which}: n={n}, p={p}"


def test_tanh_is_odd_to_the_bit(isa):
    x = INPUTS[: INPUTS.size // 2]  # the positive half; -x is the other
    pos = _core._activation("tanh", x)
    neg = _core._activation("tanh", -x)
    assert np.array_equal((-pos).view(np.uint32), neg.view(np.uint32))


@pytest.mark.parametrize("which", FUNCS)
def test_tail_matches_vector_lanes(isa, which):
    # A value gives the same bits in a full vector as in a tail (one-element call).
    x = np.concatenate([SPECIALS, -SPECIALS, np.linspace(-110, 110, 301, dtype=np.float32)])
    full = _core._activation(which, x)
    one = np.concatenate([_core._activation(which, x[i : i + 1]) for i in range(x.size)])
    assert np.array_equal(full.view(np.uint32), one.view(np.uint32))


@pytest.mark.parametrize("which", FUNCS)
def test_float64(isa, which):
    rng = np.random.default_rng(3)
    x = np.concatenate([
        np.arange(0, 0x7F800000, 100_003, dtype=np.int64).astype(np.int32).view(np.float32),
        rng.uniform(-40, 40, 20_001),
        rng.uniform(-700, 700, 20_001),
    ]).astype(np.float64)
    x = np.concatenate([x, -x, [np.inf, -np.inf, 0.0, -0.0, 800.0, -800.0]])
    got = _core._activation(which, x)
    ref = reference(which, x)
    normal = np.isfinite(ref) & (np.abs(ref) >= np.finfo(np.float64).tiny)
    rel = np.abs(got[normal] - ref[normal]) / np.abs(ref[normal])
    assert rel.max() <= 1e-15, f"{isa} {which}: float64 max rel. error {rel.max():.3g}"
    # Subnormal or zero results (exp, sigmoid far left) within a few subnormal spacings;
    # infinities exactly.
    sub = ~normal & np.isfinite(ref)
    assert np.all(np.abs(got[sub] - ref[sub]) <= 4 * 2.0**-1074)
    assert np.array_equal(got[np.isinf(ref)], ref[np.isinf(ref)])
    nan = _core._activation(which, np.full(11, np.nan))
    assert np.isnan(nan).all()
