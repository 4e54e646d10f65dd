"""The thread team under CPU contention: one thread against the default thread count.

    PYTHONPATH=python python tools/contention.py                 # idle, then busy
    PYTHONPATH=python python tools/contention.py --load busy --rounds 9
    PYTHONPATH=python python tools/contention.py --bidirectional   # directions side by side

Times an LSTM forward + backward (T=64, B=32, I=H=256 by default, float32) in two
worker processes that take turns, round after round: one with
``fusedrnn.set_num_threads(1)``, one with the default thread count (never set, so the
team adapts to contention; see docs/architecture.md, "Threading").  Under ``--load busy``
a busy process (``python3 -c "while True: pass"``) is pinned to each CPU of the
machine with ``taskset -c i`` for the duration, then killed.  Prints, per load, each
configuration's median, quartiles and range in ms, the ratio default / 1 thread, and
the default worker's policy state (stalls, shrinks, probes).

The workers import fusedrnn from PYTHONPATH (or ``--pythonpath``), so two builds can be
compared by pointing it at each in turn.  Not a test: timings are for people to read.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

WORKER = r"""
import json, sys, time
import numpy as np
import fusedrnn
threads, T, B, I, H, D = sys.argv[1], *map(int, sys.argv[2:7])
if threads != "default":
    fusedrnn.set_num_threads(int(threads))
lstm = fusedrnn.LSTM(I, H, seed=0, bidirectional=D == 2)
x = np.random.default_rng(0).standard_normal((T, B, I)).astype(np.float32)
dy = np.random.default_rng(1).standard_normal((T, B, D * H)).astype(np.float32)
def once():
    y, _, tape = lstm.forward(x, train=True)
    return lstm.backward(tape, dy)[0]
first = once()
print(json.dumps({"ready": fusedrnn.get_num_threads()}), flush=True)
for line in sys.stdin:
    reps = int(line)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        dx = once()
        times.append(time.perf_counter() - t0)
    assert np.array_equal(dx, first), "results changed between calls"
    state = getattr(fusedrnn._core, "_adaptive_threads", lambda: {})()
    print(json.dumps({"times": times, "state": state}), flush=True)
"""


class Worker:
    def __init__(self, threads: str, shape, env):
        self.name = threads
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, threads, *map(str, shape)], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.ready = json.loads(self.proc.stdout.readline())["ready"]
        self.times: list[float] = []
        self.state: dict = {}

    def run(self, reps: int) -> None:
        self.proc.stdin.write(f"{reps}\n")
        self.proc.stdin.flush()
        out = json.loads(self.proc.stdout.readline())
        self.times += out["times"]
        self.state = out["state"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def start_busy(cpus) -> list[subprocess.Popen]:
    return [subprocess.Popen(["taskset", "-c", str(c), sys.executable, "-c", "while True: pass"])
            for c in cpus]


def stop(procs) -> None:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


def summary(times) -> dict:
    ms = sorted(t * 1e3 for t in times)
    q = statistics.quantiles(ms, n=4) if len(ms) >= 2 else [ms[0]] * 3
    return {"median": statistics.median(ms), "q1": q[0], "q3": q[2], "min": ms[0],
            "max": ms[-1], "runs": len(ms)}


def measure(load: str, args, env) -> dict:
    shape = (args.T, args.B, args.I, args.H, 2 if args.bidirectional else 1)
    busy = start_busy(range(os.cpu_count() or 1)) if load == "busy" else []
    try:
        time.sleep(0.5 if busy else 0)
        workers = [Worker("1", shape, env), Worker("default", shape, env)]
        for w in workers:
            w.run(1)  # warm, then forget
            w.times.clear()
        for r in range(args.rounds):
            for w in (workers if r % 2 == 0 else workers[::-1]):
                w.run(args.reps)
        for w in workers:
            w.close()
    finally:
        stop(busy)
    one, default = (summary(w.times) for w in workers)
    return {"load": load, "default_threads": workers[1].ready, "one": one, "default": default,
            "ratio": default["median"] / one["median"], "policy": workers[1].state,
            "loadavg": os.getloadavg()[0]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--load", choices=["idle", "busy", "both"], default="both")
    ap.add_argument("--rounds", type=int, default=7, help="turns of each worker (default 7)")
    ap.add_argument("--reps", type=int, default=3, help="timed calls per turn (default 3)")
    ap.add_argument("--pythonpath", help="where the workers import fusedrnn from")
    ap.add_argument("--json", help="write the results here too")
    for dim, default in (("T", 64), ("B", 32), ("I", 256), ("H", 256)):
        ap.add_argument(f"-{dim}", type=int, default=default)
    ap.add_argument("--bidirectional", action="store_true",
                    help="a bidirectional layer (its directions run side by side)")
    args = ap.parse_args(argv)
    env = dict(os.environ)
    if args.pythonpath:
        env["PYTHONPATH"] = args.pythonpath
    env.pop("FUSEDRNN_NUM_THREADS", None)
    results = []
    for load in (["idle", "busy"] if args.load == "both" else [args.load]):
        res = measure(load, args, env)
        results.append(res)
        print(f"{load}: T={args.T} B={args.B} I={args.I} H={args.H}"
              f"{', bidirectional' if args.bidirectional else ''}, forward + backward, "
              f"{res['one']['runs']} runs each, 1-min load average after {res['loadavg']:.2f}")
        for label, key in (("1 thread", "one"), (f"default ({res['default_threads']})", "default")):
            s = res[key]
            print(f"  {label:12s} median {s['median']:8.1f} ms  quartiles {s['q1']:.1f}-{s['q3']:.1f}"
                  f"  range {s['min']:.1f}-{s['max']:.1f}")
        print(f"  default / 1 thread: {res['ratio']:.2f}")
        if res["policy"]:
            p = res["policy"]
            print(f"  policy: cap {p['cap']}, stalls {p['stalls']}, shrinks {p['shrinks']}, "
                  f"probes {p['probes']} ({p['probes_failed']} stalled)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
