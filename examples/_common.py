"""What the example scripts share: their command line, the final result line, the
softmax cross-entropy and the optional matplotlib plots.

Each example ends by printing one line ``RESULT {...}`` (JSON) with its key numbers,
which tests/test_examples.py reads.
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np


def parse_args(doc: str, add_arguments=None) -> argparse.Namespace:
    """--quick, --seed and --out DIR (for the PNGs), plus the script's own options."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a small model and a few steps (about 10-20 s): a smoke run")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("."),
                        help="folder for the PNG files (default: the current folder)")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def report(example: str, **result) -> None:
    """Print the final line: RESULT {"example": ..., key numbers}."""
    clean = {k: (float(v) if isinstance(v, (np.floating, np.integer)) else v)
             for k, v in result.items()}
    print("RESULT " + json.dumps({"example": example, **clean}))


def softmax_cross_entropy(logits, targets, mask=None):
    """Mean cross-entropy of integer ``targets`` under ``logits`` (..., classes), and its
    gradient with respect to the logits.  ``mask`` (same shape as targets, 0/1) leaves
    positions out of the mean."""
    z = logits - logits.max(axis=-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    picked = np.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
    if mask is None:
        mask = np.ones(targets.shape, logits.dtype)
    n = max(float(mask.sum()), 1.0)
    loss = -float((picked * mask).sum()) / n
    grad = np.exp(logp)
    np.put_along_axis(grad, targets[..., None],
                      np.take_along_axis(grad, targets[..., None], axis=-1) - 1, axis=-1)
    grad *= (mask / n)[..., None]
    return loss, grad.astype(logits.dtype)


def pyplot():
    """matplotlib.pyplot (non-interactive backend), or None when matplotlib is missing."""
    try:
        import matplotlib  # noqa: PLC0415 - optional
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def save(fig, plt, path: pathlib.Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    print(f"saved {path}")


def plot_skipped(what: str) -> None:
    print(f"plot skipped ({what}): matplotlib is not installed "
          "(pip install 'fusedrnn[examples]')")
