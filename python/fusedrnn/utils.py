"""Training helpers for the NumPy API."""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["clip_grad_norm"]


def clip_grad_norm(grads, max_norm, norm_type=2.0, error_if_nonfinite=False) -> float:
    """Clip gradients by their total norm, in place, as ``torch.nn.utils.clip_grad_norm_``.

    grads: a dict of arrays (as returned by ``backward``) or an iterable of arrays.
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
    if isinstance(grads, np.ndarray):
        arrays = [grads]
    elif hasattr(grads, "values") and hasattr(grads, "keys"):
        arrays = list(grads.values())
        names = [f"grads[{k!r}]" for k in grads.keys()]
    else:
        try:
            arrays = list(grads)
        except TypeError as e:
            raise TypeError("grads: expected a dict of arrays or an iterable of arrays, got "
                            f"{type(grads).__name__}") from e
    if not (hasattr(grads, "values") and hasattr(grads, "keys")):
        names = [f"grads[{i}]" for i in range(len(arrays))]
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
