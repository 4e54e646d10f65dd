"""Small helpers shared by the test files (import as ``from _util import ...``)."""

from __future__ import annotations

import numpy as np

TINY = np.finfo(np.float64).tiny


def rel_err(a, b) -> float:
    """Norm-wise relative error ||a - b|| / max(||b||, tiny), computed in float64."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, f"shape {a.shape} != {b.shape}"
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), TINY))


def assert_close(a, b, tol, what=""):
    """rel_err(a, b) <= tol, with a message that names the quantity."""
    e = rel_err(a, b)
    assert e <= tol, f"{what}: relative error {e:.3e} > {tol:.1e}"
