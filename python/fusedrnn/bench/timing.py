"""Timing one Case: the peers run alternately; medians, spreads, ratios and the JSON of
one line."""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass

import numpy as np

import fusedrnn as fr

from .case import Case
from .grid import OPTIONAL_PEERS, PEERS, TOLERANCE, applies
from .machine import openvino_wanted, thread_info

#: A peer needs this many timed runs for its spread (interquartile range) to be shown.
SPREAD_MIN_RUNS = 3


def time_call(fn, inner: int = 1):
    """Seconds per call of fn over `inner` back-to-back calls (GC paused), and its last
    result."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(inner):
            result = fn()
        return (time.perf_counter() - t0) / inner, result
    finally:
        if gc_was_enabled:
            gc.enable()


def iqr_pct(times) -> float | None:
    """The interquartile range of `times` as a percentage of their median; None for
    fewer than SPREAD_MIN_RUNS times."""
    if times is None or len(times) < SPREAD_MIN_RUNS:
        return None
    q1, med, q3 = np.percentile(times, [25, 50, 75])
    return float(100 * (q3 - q1) / med) if med > 0 else None


@dataclass
class Measurement:
    """Timings of one case: per peer, the seconds of each timed run, and its errors.

    errors: peer -> ||peer - reference|| / ||reference||; vs_ours: peer -> ||peer - ours||
    / ||ours|| (the other peers' check: a wrong weight conversion shows there).
    """

    case: Case
    times: dict  # peer -> [seconds per call, ...]
    errors: dict  # peer -> relative error against the reference
    once: set  # peers measured once only (their first run was over the limit)
    vs_ours: dict = None  # peer -> relative error against ours (not for ours, reference)
    threads: dict = None  # the thread counts of this measurement (thread_info())

    def median(self, peer):
        t = self.times.get(peer)
        return float(np.median(t)) if t else None

    def spread(self, peer):
        """IQR / median of the peer's runs in percent (None: too few runs)."""
        return None if peer in self.once else iqr_pct(self.times.get(peer))

    def worst_spread(self):
        """(spread, peer) of the peer with the largest spread, or (None, None): every
        ratio involves two peers' times, so a line is as noisy as its noisiest peer."""
        spreads = [(s, p) for p in self.times if (s := self.spread(p)) is not None]
        return max(spreads) if spreads else (None, None)

    def agrees(self, peer="ours") -> bool:
        """ours: whether it matched the reference; another peer: whether it matched ours
        (False for a NaN error too)."""
        if peer == "ours" or not self.vs_ours or peer not in self.vs_ours:
            return self.errors[peer] < TOLERANCE
        return self.vs_ours[peer] < TOLERANCE

    def disagreeing(self) -> list:
        """The peers besides ours and the reference whose results differ from ours."""
        return [p for p in (self.vs_ours or {}) if not self.agrees(p)]

    def ok(self) -> bool:
        return self.agrees() and not self.disagreeing()


def _warm_up(case: Case, ref_limit_s, min_sample_s):
    """One untimed call per peer, the reference first (its result becomes the case's
    oracle): returns the results, the calls per timed run of each peer (enough for
    min_sample_s) and the peers measured once (a reference over ref_limit_s, whose
    first run is its time)."""
    inner, once, results, first = {}, set(), {}, {}
    for peer in sorted(case.peers, key=lambda p: p != "reference"):
        t, results[peer] = time_call(case.peers[peer])
        inner[peer] = max(1, int(min_sample_s / t)) if t > 0 else 1
        if peer == "reference":
            case.expected = results[peer]
            if ref_limit_s is not None and t > ref_limit_s:
                first[peer] = t
                once.add(peer)
    return results, inner, once, first


def measure(case: Case, *, min_runs=3, max_runs=50, budget_s=2.0, ref_limit_s=None,
            min_sample_s=0.01) -> Measurement:
    """Time every peer of `case`, alternating (ours, reference, torch, dropin, ort,
    openvino, ours, ...).

    A first round warms up (weight packing, allocations) and gives the results that
    are checked against the reference (and the other peers against ours); its times
    are not kept, but they decide two things: calls shorter than `min_sample_s` are
    repeated back to back within each timed run (the cell rows), and a reference slower
    than `ref_limit_s` seconds is not run again -- that first run is its only
    measurement.  Then timed rounds run until there are at least `min_runs` and either
    `budget_s` seconds have passed or there are `max_runs`.

    With more than one thread the peers alternate in blocks: a 50 ms pause (the other
    peers' thread pools stop spinning: torch's OpenMP and ONNX Runtime's pools busy-wait
    after a call, and on a 2-core machine would take the cores from the peer being
    timed), one untimed call (this peer's pool is awake: a sleeping worker can take
    milliseconds to wake on a virtual machine), then three timed calls.
    """
    results, inner, once, first = _warm_up(case, ref_limit_s, min_sample_s)
    times = {p: [first[p]] if p in first else [] for p in case.peers}
    errors = {peer: case.check(r, peer) for peer, r in results.items()}
    vs_ours = {peer: case.check_vs(peer, r, results["ours"]) for peer, r in results.items()
               if peer not in ("ours", "reference")}
    active = {p: case.peers[p] for p in case.peers if p not in once}
    _rounds(active, inner, times, min_runs, max(max_runs, min_runs), budget_s)
    return Measurement(case, times, errors, once, vs_ours, thread_info())


def _rounds(peers: dict, inner: dict, times: dict, min_runs, max_runs, budget_s):
    """The timed rounds of measure(), appending to times[peer]."""
    settle = fr.get_num_threads() > 1
    start, rounds = time.perf_counter(), 0
    while rounds < max_runs and (rounds < min_runs or time.perf_counter() - start < budget_s):
        for peer, fn in peers.items():
            if settle:
                time.sleep(0.05)
                time_call(fn, inner[peer])
                for _ in range(2):
                    times[peer].append(time_call(fn, inner[peer])[0])
            times[peer].append(time_call(fn, inner[peer])[0])
        rounds += 1


def speedup(m: Measurement, peer: str):
    """Peer time / ours time (> 1: ours is faster), or None without that peer."""
    v, ours = m.median(peer), m.median("ours")
    return v / ours if v is not None and ours else None


def torch_over_dropin(m: Measurement):
    """torch.nn's time / the drop-in's time (> 1: swapping in fusedrnn.torch is faster),
    or None without either."""
    t, d = m.median("torch"), m.median("dropin")
    return t / d if t is not None and d else None


def gflops(m: Measurement) -> float:
    return m.case.flops / m.median("ours") / 1e9


def pct_peak(m: Measurement, peak_gflops: float) -> float:
    """Ours' GFLOP/s as a percentage of peak_gflops x the threads ours was given."""
    return 100 * gflops(m) / (peak_gflops * m.threads["ours"])


def to_json(m: Measurement, peak_gflops=None) -> dict:
    """One line of the tables as a JSON-ready dict (the "results" of --json)."""
    c = m.case
    doc = {
        "kind": c.kind.name, "row": c.shape.name, "mode": c.mode,
        "T": c.shape.T, "B": c.shape.B, "I": c.shape.I, "H": c.shape.H,
        "num_layers": c.shape.num_layers, "bidirectional": c.shape.bidirectional,
        "lengths": None if c.lengths is None else c.lengths.tolist(),
        "flops": c.flops, "threads": m.threads, "gflops": gflops(m),
        "pct_peak": pct_peak(m, peak_gflops) if peak_gflops else None,
        "ok": m.ok(),
        # torch.nn time / drop-in time, both called the same way (> 1: the drop-in faster);
        # the drop-in's own "speedup" is its time / ours (its autograd and glue overhead).
        "torch_over_dropin": torch_over_dropin(m),
        # The largest of the peers' IQR / median, in percent (None: too few runs).
        "spread_pct": m.worst_spread()[0],
        "peers": {p: _peer_json(m, p) for p in c.peers},
    }
    # Peers that have no line here (ort in training, torch_pad outside ragged rows) are
    # left out; missing_peers: those that would, but are not importable.
    doc["missing_peers"] = [p for p in PEERS + OPTIONAL_PEERS * openvino_wanted()
                            if p not in c.peers and applies(p, c.shape, c.mode)]
    return doc


def _peer_json(m: Measurement, p: str) -> dict:
    return {"times_s": m.times[p], "median_s": m.median(p), "runs": len(m.times[p]),
            "measured_once": p in m.once, "rel_error": m.errors[p],
            "rel_error_vs_ours": (m.vs_ours or {}).get(p),
            "speedup": speedup(m, p) if p != "ours" else None,
            "spread_pct": m.spread(p)}
