"""Training helpers for the NumPy API."""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["clip_grad_norm"]


def clip_grad_norm(grads, max_norm, norm_type=2.0, error_if_nonfinite=False) -> float:
    """Clip gradients by their total norm, in place, as ``torch.nn.utils.clip_grad_norm_``.

    grads: a dict of arrays (as returned by ``backward``), an iterable of arrays, or a
    list of such dicts (one per params source, as ``fusedrnn.optim``'s ``step`` takes);
    None values in a dict (no gradient) are skipped.
    The total norm is the ``norm_type`` norm (a float >= 0 or ``inf``) of all their
    elements together.  When ``max_norm / (total_norm + 1e-6) < 1`` every array is
    multiplied in place by that factor.  Returns the total norm (before clipping) as a
    float.  ``error_if_nonfinite``: raise ValueError when the total norm is NaN or inf
    (nothing is then changed); otherwise such a norm gives NaN gradients, as in torch.
    """
    if isinstance(max_norm, bool) or not isinstance(max_norm, numbers.Real):
        raise TypeError(f"max_norm: expected a number, got {type(max_norm).__name__}")
    max_norm = float(max_norm)
    if not max_norm >= 0:
        raise ValueError(f"max_norm: expected a number >= 0, got {max_norm}")
    if isinstance(norm_type, bool) or not isinstance(norm_type, numbers.Real):
        raise TypeError(f"norm_type: expected a number or inf, got {type(norm_type).__name__}")
    norm_type = float(norm_type)
    if not norm_type >= 0:
        raise ValueError(f"norm_type: expected a number >= 0 or inf, got {norm_type}")
    names, arrays = _flatten(grads)
    for name, a in zip(names, arrays):
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{name}: expected a numpy array, got {type(a).__name__}")
        if a.dtype.kind != "f":
            raise TypeError(f"{name}: expected a floating array, got dtype {a.dtype}")
        if not a.flags.writeable:
            raise ValueError(f"{name}: the array is read-only; it must be clipped in place")
    if not arrays:
        return 0.0
    # Each array's norm in float64, then the norm of those norms (torch's order).
    if math.isinf(norm_type):
        norms = [float(np.max(np.abs(a))) if a.size else 0.0 for a in arrays]
        total = max(norms)
        if any(math.isnan(n) for n in norms):
            total = math.nan
    else:
        norms = [float(np.linalg.norm(a.ravel().astype(np.float64), norm_type)) if a.size
                 else 0.0 for a in arrays]
        total = float(np.linalg.norm(np.asarray(norms, np.float64), norm_type))
    if error_if_nonfinite and not math.isfinite(total):
        raise ValueError(f"grads: the total norm of order {norm_type} is {total}; with "
                         "error_if_nonfinite=True the gradients are left unchanged")
    coef = max_norm / (total + 1e-6)
    if not coef >= 1.0:  # also for NaN, as torch (clamp(max=1) keeps NaN)
        with np.errstate(invalid="ignore", over="ignore"):  # inf * 0 -> NaN, as in torch
            for a in arrays:
                a *= a.dtype.type(coef)
    return total


def _is_mapping(obj):
    return hasattr(obj, "values") and hasattr(obj, "keys")


def _flatten(grads):
    """(names, arrays): the arrays of an array, a dict, an iterable of arrays and/or dicts."""
    if isinstance(grads, np.ndarray):
        return ["grads[0]"], [grads]
    if _is_mapping(grads):
        items = [(f"grads[{k!r}]", v) for k, v in grads.items() if v is not None]
        return [n for n, _ in items], [a for _, a in items]
    try:
        seq = list(grads)
    except TypeError as e:
        raise TypeError("grads: expected a dict of arrays, an iterable of arrays or a list of "
                        f"dicts of arrays, got {type(grads).__name__}") from e
    names, arrays = [], []
    for i, g in enumerate(seq):
        if _is_mapping(g):
            for k, v in g.items():
                if v is not None:
                    names.append(f"grads[{i}][{k!r}]")
                    arrays.append(v)
        else:
            names.append(f"grads[{i}]")
            arrays.append(g)
    return names, arrays
