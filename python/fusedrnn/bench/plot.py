"""``--plot``: a PNG bar chart of the ratios of the table per line: peer time / ours
time, and for the drop-in torch.nn's time / the drop-in's (> 1: fusedrnn faster)."""

from __future__ import annotations

import math

from .grid import OTHERS
from .machine import matplotlib_or_none

COLORS = {"reference": "#999999", "torch": "#ee4c2c", "dropin": "#38a169", "ort": "#2b6cb0",
          "torch_pad": "#f6ad55"}


def ratio(r: dict, peer: str):
    """The bar of `peer` in result `r`: its speedup, the drop-in's torch_over_dropin."""
    if peer == "dropin":
        return r.get("torch_over_dropin") if peer in r["peers"] else None
    return r["peers"].get(peer, {}).get("speedup")


def _label(r: dict) -> str:
    return f"{r['kind']} {r['row']}\n{r['mode'][:5]}"


def plot(results: list, path: str, title: str = "", scale: str = "log") -> None:
    """A PNG bar chart: per line of the tables (kind, row, mode), one bar per peer (see
    ratio), a line at 1x; one panel per thread count.

    results: the to_json() dicts (with their "threads").  Needs matplotlib.
    """
    plt = matplotlib_or_none()
    if plt is None:
        raise ImportError("matplotlib is not importable")
    counts = sorted({r["threads"]["ours"] for r in results})
    labels = list(dict.fromkeys(_label(r) for r in results))
    fig, axes = plt.subplots(len(counts), 1, squeeze=False,
                             figsize=(min(24.0, max(7.0, 0.5 * len(labels) + 2)),
                                      3.6 * len(counts)))
    for ax, n in zip(axes[:, 0], counts):
        _panel(ax, [r for r in results if r["threads"]["ours"] == n], labels, scale)
        ax.set_title(f"{n} thread{'s' if n > 1 else ''}", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _panel(ax, results: list, labels: list, scale: str) -> None:
    """One thread count's bars."""
    from matplotlib.ticker import FuncFormatter

    rows = {_label(r): r for r in results}
    peers = [p for p in OTHERS if any(p in r["peers"] for r in results)]
    width = 0.8 / max(1, len(peers))
    for j, p in enumerate(peers):
        xs, ys = [], []
        for i, label in enumerate(labels):
            s = ratio(rows[label], p) if label in rows else None
            if s is not None and s > 0 and math.isfinite(s):
                xs.append(i + (j - (len(peers) - 1) / 2) * width)
                ys.append(s)
        name = "drop-in vs torch" if p == "dropin" else f"vs {OTHERS[p]}"
        ax.bar(xs, ys, width, label=name, color=COLORS.get(p))
    ax.axhline(1.0, color="black", linewidth=1, linestyle="--")
    ax.set_yscale(scale)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}\u00d7"))
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.set_ylabel("x faster: fusedrnn\n(other time / fusedrnn's)")
    ax.grid(axis="y", which="both", alpha=0.3)
    if peers:
        ax.legend(fontsize=7, loc="upper right")
