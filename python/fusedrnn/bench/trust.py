"""When the numbers are not to be trusted: a busy machine (load average against the
cores), a large spread between runs, or training faster than inference in one row.

Each check returns lines of text for the warning block of ``python -m fusedrnn bench``
(empty when all is well); they read the JSON results (``timing.to_json``), so a saved
``--json`` file can be checked again.
"""

from __future__ import annotations

#: A line whose noisiest peer's IQR / median exceeds this (percent) is flagged.
SPREAD_LIMIT = 10.0


def busy(load, cores: int, threads: int, own: float = 0.0) -> list:
    """The load average says other processes compete for the cores: their load (the 1-min
    load average less `own`, this run's own threads) leaves fewer than `threads` cores
    free.  `cores`: every CPU of the machine, since the load average counts them all (a
    run pinned to one CPU with taskset is not warned about load on the others).  load
    None (no load average on this OS): no warning."""
    if load is None:
        return []
    others = max(0.0, load - own)
    if others + threads <= cores:
        return []
    return [f"1-min load average {load:.2f} on {cores} cores"
            + (f" ({others:.1f} of it others)" if own else "")
            + f": fewer than {threads} free core{'s' if threads > 1 else ''} for the timed "
            f"thread{'s' if threads > 1 else ''}"]


def _name(r: dict) -> str:
    n = r["threads"]["ours"]
    return f"{r['kind']} {r['row']} {r['mode']} ({n} thread{'s' if n > 1 else ''})"


def noisy(results: list, limit: float = SPREAD_LIMIT) -> list:
    """Lines whose noisiest peer has a spread (IQR / median) above `limit` percent."""
    out = []
    for r in results:
        spreads = [(p["spread_pct"], name) for name, p in r["peers"].items()
                   if p.get("spread_pct") is not None]
        if spreads and max(spreads)[0] > limit:
            s, peer = max(spreads)
            out.append(f"{_name(r)}: spread {s:.0f}% ({peer}), above {limit:g}%")
    return out


def inverted(results: list) -> list:
    """Rows where a peer's training (forward + backward, 3x the work) took less time than
    its inference: only a machine whose speed changed between the two lines does that."""
    by_key = {(r["kind"], r["row"], r["threads"]["ours"], r["mode"]): r for r in results}
    out = []
    for (kind, row, n, mode), train in by_key.items():
        infer = by_key.get((kind, row, n, "inference"))
        if mode != "training" or infer is None:
            continue
        faster = [p for p, t in train["peers"].items()
                  if p in infer["peers"] and t["median_s"] and infer["peers"][p]["median_s"]
                  and t["median_s"] < infer["peers"][p]["median_s"]]
        if faster:
            out.append(f"{kind} {row} ({n} thread{'s' if n > 1 else ''}): training faster "
                       f"than inference for {', '.join(faster)}")
    return out


def warnings(results: list, load_lines: list = ()) -> list:
    """Every warning of a run: the load ones given, then spread and inverted rows."""
    return [*load_lines, *noisy(results), *inverted(results)]


def warning_block(lines: list) -> list:
    """The printed block: a heading, the lines, and what to do."""
    if not lines:
        return []
    return (["warning: these numbers are not to be trusted:"]
            + [f"  {line}" for line in lines]
            + ["  rerun on a quiet machine (see docs/benchmarks.md, \"Noise\"; one-thread "
               "figures: taskset -c 0)"])
