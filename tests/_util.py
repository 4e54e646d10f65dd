"""Small helpers shared by the test files (import as ``from _util import ...``)."""

from __future__ import annotations

import numpy as np

TINY = np.finfo(np.float64).tiny


def rel_err(a, b, floor: float = 0.0) -> float:
    """Norm-wise relative error ||a - b|| / max(||b||, floor * sqrt(b.size), tiny), in float64."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, f"shape {a.shape} != {b.shape}"
    denom = max(np.linalg.norm(b), floor * np.sqrt(b.size), TINY)
    return float(np.linalg.norm(a - b) / denom)


def assert_close(a, b, tol, what=""):
    """rel_err(a, b) <= tol, with a message that names the quantity."""
    e = rel_err(a, b)
    assert e <= tol, f"{what}: relative error {e:.3e} > {tol:.1e}"
