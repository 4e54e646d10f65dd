"""One layer call's median time in this process: the driver of A/B comparisons of two
builds, run in alternating processes.

    PYTHONPATH=python python tools/layer_time.py --kind gru --shape 200,32,128,128 \\
        --bidirectional --mode training --threads 2
    for i in 1 2 3 4 5; do                      # two builds, alternating processes
      PYTHONPATH=/path/to/old/python python tools/layer_time.py --kind lstm --layers 2 --bidirectional
      PYTHONPATH=python python tools/layer_time.py --kind lstm --layers 2 --bidirectional
    done

Builds a NumPy layer (``fusedrnn.LSTM``, ``GRU`` or ``RNN``, seed 0) of the given
``--shape`` T,B,I,H (default L2bi's 100,16,256,256), times ``layer(x)`` (inference) or
``layer.forward(x, train=True)`` plus ``layer.backward`` (training) for at least
``--seconds`` after three untimed calls, and prints the median in ms.  ``--threads``
pins the count (``fusedrnn.set_num_threads``).  Not a test: timings are for people to
read; quiet machine, one-thread figures pinned with ``taskset -c 0``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import fusedrnn


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kind", choices=["lstm", "gru", "rnn"], default="lstm")
    ap.add_argument("--shape", default="100,16,256,256", help="T,B,I,H")
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--bidirectional", action="store_true")
    ap.add_argument("--mode", choices=["inference", "training"], default="inference")
    ap.add_argument("--threads", type=int, help="fusedrnn.set_num_threads (default: not set)")
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args(argv)
    T, B, I, H = (int(v) for v in args.shape.split(","))
    if args.threads:
        fusedrnn.set_num_threads(args.threads)
    cls = {"lstm": fusedrnn.LSTM, "gru": fusedrnn.GRU, "rnn": fusedrnn.RNN}[args.kind]
    layer = cls(I, H, num_layers=args.layers, bidirectional=args.bidirectional, seed=0)
    D = 2 if args.bidirectional else 1
    x = np.random.default_rng(0).standard_normal((T, B, I)).astype(np.float32)
    dy = np.random.default_rng(1).standard_normal((T, B, D * H)).astype(np.float32)

    def call():
        if args.mode == "inference":
            layer(x)
        else:
            _, _, tape = layer.forward(x, train=True)
            layer.backward(tape, dy)

    for _ in range(3):
        call()
    times = []
    end = time.perf_counter() + args.seconds
    while time.perf_counter() < end or len(times) < 5:
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    print(f"{1e3 * statistics.median(times):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
