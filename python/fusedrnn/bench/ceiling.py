"""The "ceiling" line of a row: ``numpy.matmul`` of the row's input-projection shape,
measured in the same run as the row, with its GFLOP/s and fraction of the FMA peak.

The input projection is the largest product of a recurrent layer: x (N, I) times W_ih^T
(I, G*H) for all N = T*B rows at once (N = the sum of the lengths in the len row, B in
the cell rows; the first layer, one direction in L2bi).  NumPy's BLAS (OpenBLAS here) is a
tuned SGEMM, so its rate on that shape is what a large product reaches on this machine:
the bar that fusedrnn's own products are measured against (docs/benchmarks.md).  The
line also gives fusedrnn's own large product (``_core._matmul``, the kernel of the input
projection, dx and dW; its weights packed once, as a layer's are) on the same shape,
timed in turns with NumPy's, and its speed relative to NumPy's.  With more than one
thread, each turn starts 0.1 s after the other library's last call: both keep their
idle threads busy for about that long after a call (OpenBLAS spinning, ours polling with
sched_yield), and a product started meanwhile shares the cores with them (2 threads:
half speed or less; docs/benchmarks.md, "Noise").

NumPy's BLAS gets the table's thread count when ``threadpoolctl`` is installed; without
it the BLAS keeps its own (OPENBLAS_NUM_THREADS, or every core), which the line says.
"""

from __future__ import annotations

import contextlib
import os
import time

import numpy as np

from .. import _core
from .grid import Kind, Shape


# How long the idle threads of either library stay busy after a call (measured: a
# 2-thread product of ours ran at 110-145 GFLOP/s up to 50 ms after a 2-thread
# numpy.matmul, 218 from 0.1 s; NumPy's at 61 right after ours; cpu/threads.cc's workers
# poll for 100 ms).
IDLE_SPIN_S = 0.1


def input_projection_shape(kind: Kind, shape: Shape) -> tuple:
    """(M, K, N) of the row's input projection: (rows, I) x (I, G*H)."""
    rows = shape.B if shape.is_cell else shape.steps()
    return rows, shape.I, kind.gates * shape.H


@contextlib.contextmanager
def blas_threads(n: int):
    """NumPy's BLAS limited to n threads while inside, if threadpoolctl is importable;
    yields the thread count the BLAS uses (None: unknown, its default)."""
    try:
        import threadpoolctl
    except ImportError:
        env = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
        yield int(env) if env and env.isdigit() else None
        return
    with threadpoolctl.threadpool_limits(limits=n, user_api="blas"):
        yield n


def measure_ceiling(kind: Kind, shape: Shape, threads: int, peak_gflops: float, *,
                    min_runs: int = 3, budget_s: float = 0.5, min_sample_s: float = 0.01) -> dict:
    """Median time of np.matmul(x, w, out=c) over >= min_runs timed runs (each repeating
    the product to last min_sample_s), after one untimed call; as a JSON-ready dict."""
    m, k, n = input_projection_shape(kind, shape)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((k, n)).astype(np.float32)
    w_rows = np.ascontiguousarray(w.T)  # (N, K): torch's layout, what _matmul packs
    c = np.empty((m, n), np.float32)
    with blas_threads(threads) as used:
        t0 = time.perf_counter()
        np.matmul(x, w, out=c)
        first = time.perf_counter() - t0
        inner = max(1, int(min_sample_s / first)) if first > 0 else 1
        base = used if used is not None else threads
        times, ours, start = [], [], time.perf_counter()
        while len(times) < min_runs or time.perf_counter() - start < budget_s:
            if base > 1:
                time.sleep(IDLE_SPIN_S)
            ours.append(_core._matmul(x, w_rows, reps=inner)[1])
            if base > 1:
                time.sleep(IDLE_SPIN_S)
            t0 = time.perf_counter()
            for _ in range(inner):
                np.matmul(x, w, out=c)
            times.append((time.perf_counter() - t0) / inner)
            if len(times) >= 50:
                break
    median, ours_median = float(np.median(times)), float(np.median(ours))
    flop = 2.0 * m * k * n
    gflops = flop / median / 1e9
    return {"kind": kind.name, "row": shape.name, "M": m, "K": k, "N": n,
            "blas_threads": used, "times_s": times, "median_s": median, "gflops": gflops,
            "pct_peak": 100 * gflops / (peak_gflops * base) if peak_gflops else None,
            "ours_times_s": ours, "ours_median_s": ours_median,
            "ours_gflops": flop / ours_median / 1e9}


def ceiling_line(c: dict, is_cell: bool, widths: tuple) -> str:
    """The table line of a ceiling: kind, row, "matmul" in the mode column, its time (in
    the table's unit), GFLOP/s and %peak in their columns, then what was multiplied."""
    scale = 1e6 if is_cell else 1e3
    t = c["median_s"] * scale
    time_text = f"{t:.0f}" if t >= 100 else f"{t:.1f}" if t >= 10 else f"{t:.2f}"
    pct = "" if c["pct_peak"] is None else f"{c['pct_peak']:.1f}"
    threads = ("default BLAS threads" if c["blas_threads"] is None
               else f"{c['blas_threads']} BLAS thread{'s' if c['blas_threads'] > 1 else ''}")
    cells = [c["kind"], c["row"], "matmul", time_text, f"{c['gflops']:.1f}", pct]
    text = "  ".join(v.ljust(w) if i < 3 else v.rjust(w) for i, (v, w) in enumerate(zip(cells, widths)))
    return (f"{text}  ceiling: numpy.matmul ({c['M']}, {c['K']}) x ({c['K']}, {c['N']}), "
            f"{threads}; ours {c['ours_gflops']:.1f} GFLOP/s "
            f"({c['median_s'] / c['ours_median_s']:.2f}x)")
