"""Where a layer call's time goes: the kernels' own per-part timers, row by row.

    PYTHONPATH=python taskset -c 0 python tools/breakdown.py --threads 1
    PYTHONPATH=python python tools/breakdown.py --threads 2 --kinds lstm --rows S2,S4

For each kind, row (the benchmark grid's S1..S4) and mode, runs the layer call several
times with ``fusedrnn._core._profile(True)`` and prints, in ms per call, the median wall
time and thread 0's parts (cpu/profile.h):

  inproj   the input projection x W_ih^T + b (one product before the loop, or blocks of
           steps inside it for LSTM and GRU inference, and training up to 16 MB of
           weights)
  steps    the time loop's fused tiles: h_{t-1} W_hh^T (backward: dg_{t+1} W_hh) with the
           cell's element-wise work done on the tile in registers
  strips   copying h_{t-1} (dg_{t+1}) into MR-row strips every step
  barrier  waiting at the loop's barriers (1 thread: the barrier's own cost, ~0)
  dx, dw, bias   after the backward loop: dx = dg W_ih; dW_ih, dW_hh with their operands'
           packing; the bias column sums
  other    the wall time not in those parts: argument checks, allocation, packing of
           the state, copies of the final states, the region's start and join

and the GFLOP/s of the two product parts (steps: the recurrent FLOPs over that time, so
the element-wise work fused into it counts against it).  Training prints two lines:
the forward with its workspace (fwd) and the backward (bwd).

Not a test: timings are for people to read; quiet machine, one-thread figures pinned.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

import fusedrnn
from fusedrnn import _core
from fusedrnn.bench.grid import ROWS

PARTS = ("input_projection", "steps", "strips", "barrier", "dx", "dw", "bias")
SHORT = ("inproj", "steps", "strips", "barrier", "dx", "dw", "bias")


def layer_of(kind, shape):
    cls = {"lstm": fusedrnn.LSTM, "gru": fusedrnn.GRU, "rnn": fusedrnn.RNN}[kind]
    return cls(shape.I, shape.H, seed=0)


def profiled(fn, reps):
    """Median wall seconds of fn() over reps calls, and thread 0's (and the slowest
    thread's) mean seconds per part per call."""
    fn()
    walls = []
    _core._profile(True)
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
    ranks = _core._profile()
    _core._profile(False)
    parts = {p: ranks[0][p] / reps for p in PARTS} if ranks else dict.fromkeys(PARTS, 0.0)
    return statistics.median(walls), parts, len(ranks)


def line(label, wall, parts, nranks, gates, shape):
    N, H, I = shape.T * shape.B, shape.H, shape.I
    flops_rec = 2.0 * N * gates * H * H
    flops_in = 2.0 * N * gates * H * I
    ms = {p: parts[p] * 1e3 for p in PARTS}
    other = wall * 1e3 - sum(ms.values())
    gf = lambda f, s: f"{f / s / 1e9:6.1f}" if s > 1e-9 else "     —"  # noqa: E731
    cells = " ".join(f"{ms[p]:8.2f}" for p in PARTS)
    return (f"{label:<24} {wall * 1e3:8.2f} {cells} {other:8.2f}   "
            f"{gf(flops_in, parts['input_projection'] or parts['dx'])} "
            f"{gf(flops_rec, parts['steps'])}  {nranks}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kinds", default="lstm,gru,rnn")
    ap.add_argument("--rows", default="S1,S2,S3,S4")
    ap.add_argument("--modes", default="inference,training")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=0, help="calls per line (0: about 1 s)")
    args = ap.parse_args(argv)
    fusedrnn.set_num_threads(args.threads)
    rows = {r.name: r for r in ROWS}
    print(f"fusedrnn {fusedrnn.__version__}, isa {fusedrnn.cpu_info()['isa']}, "
          f"{args.threads} thread(s); ms per call, thread 0's parts; load "
          f"{open('/proc/loadavg').read().split()[0] if sys.platform == 'linux' else '?'}")
    head = " ".join(f"{s:>8}" for s in SHORT)
    print(f"{'kind row mode':<24} {'wall':>8} {head} {'other':>8}   "
          f"{'GF/s in':>7} {'steps':>6}  thr")
    for kind in args.kinds.split(","):
        gates = {"lstm": 4, "gru": 3, "rnn": 1}[kind]
        for rname in args.rows.split(","):
            shape = rows[rname]
            layer = layer_of(kind, shape)
            rng = np.random.default_rng(0)
            x = rng.standard_normal((shape.T, shape.B, shape.I)).astype(np.float32)
            dy = rng.standard_normal((shape.T, shape.B, shape.H)).astype(np.float32)
            t0 = time.perf_counter()
            layer(x)
            once = time.perf_counter() - t0
            reps = args.reps or max(3, min(50, int(1.0 / max(once, 1e-4))))
            for mode in args.modes.split(","):
                if mode == "inference":
                    r = profiled(lambda: layer(x), reps)
                    print(line(f"{kind} {rname} inference", *r, gates, shape), flush=True)
                    continue
                r = profiled(lambda: layer.forward(x, train=True), reps)
                print(line(f"{kind} {rname} training fwd", *r, gates, shape), flush=True)
                _, _, tape = layer.forward(x, train=True)
                r = profiled(lambda: layer.backward(tape, dy), reps)
                print(line(f"{kind} {rname} training bwd", *r, gates, shape), flush=True)


if __name__ == "__main__":
    main()
