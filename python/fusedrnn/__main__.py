"""Command line: ``python -m fusedrnn {bench,info,demo}``.

bench  time LSTM/GRU/RNN against the NumPy reference and PyTorch (if installed)
info   the kernels' instruction set, versions and thread counts
demo   train a tiny LSTM on a toy task with the NumPy API
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

import fusedrnn as fr
from fusedrnn import _bench


def _names(choices):
    """argparse type: a comma-separated subset of `choices`."""

    def parse(text):
        names = [n.strip() for n in text.split(",") if n.strip()]
        bad = [n for n in names if n not in choices]
        if bad or not names:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of {', '.join(choices)}; got {text!r}")
        return names

    return parse


def _positive(text):
    """argparse type: an int >= 1."""
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {text!r}")
    return n


# -------------------------------------------------------------------------------- bench
def _print_header(info, shapes, min_runs, budget, ref_limit):
    """What was measured, where and how: the lines above the table."""
    v = info["versions"]
    torch = v["torch"] is not None
    print(f"fusedrnn {fr.__version__} (isa {info['fusedrnn_cpu_info']['isa']}) on {info['cpu']}, "
          f"{info['cpu_count']} CPUs; Python {v['python']}, NumPy {v['numpy']}, "
          + (f"torch {v['torch']}" if torch else "torch not importable (no torch column)"))
    print(_bench.thread_line(info["threads"]))
    print("rows: " + " | ".join(s.describe() for s in shapes))
    print("peers: ref = fusedrnn.reference in float32"
          + ("; torch = torch.nn on the CPU (inference_mode)" if torch else ""))
    peers = "ours/ref/torch" if torch else "ours/ref"
    print(f"timing: median of >= {min_runs} runs per peer, alternating {peers}, about "
          f"{budget:g} s per line")
    print(f"x ref, x torch = peer time / ours time (> 1: ours faster); runs = {peers}")
    print("training = forward + backward to x and all weights, counted as 3x the forward FLOPs")
    print(f"check = max ||ours - ref|| / ||ref|| over outputs and gradients, ok below "
          f"{_bench.TOLERANCE:g}")
    print(f"* = measured once: its first run took over {ref_limit:g} s (--skip-ref-above)",
          flush=True)


def bench(args) -> int:
    started = time.perf_counter()
    quick = args.quick
    min_runs = args.min_runs if args.min_runs is not None else (5 if quick else 3)
    budget = args.budget if args.budget is not None else (0.5 if quick else 2.0)
    _bench.set_threads(args.threads)
    info = _bench.machine_info()
    cases = _bench.grid(args.kinds, args.rows, args.modes, quick=quick)
    # Sequence rows (ms) first, then the cell rows (us per call): one table each.
    sections = [("ms", [c for c in cases if not c[1].is_cell]),
                ("us", [c for c in cases if c[1].is_cell])]

    _print_header(info, _bench.shapes(args.rows, quick), min_runs, budget, args.skip_ref_above)

    results, failed = [], False
    for unit, group in sections:
        if not group:
            continue
        print()
        print(_bench.table_header(unit))
        for kind, shape, mode in group:
            case = _bench.Case(kind, shape, mode)
            m = _bench.measure(case, min_runs=min_runs, max_runs=args.max_runs,
                               budget_s=budget, ref_limit_s=args.skip_ref_above)
            failed |= not m.agrees()
            results.append(_bench.to_json(m))
            print(_bench.table_row(m), flush=True)
            del case, m  # free the layer, workspaces and reference caches before the next

    elapsed = time.perf_counter() - started
    print(f"\n{len(results)} lines in {elapsed:.1f} s")
    if args.json:
        doc = {"machine": info, "settings": {k: v for k, v in vars(args).items()
                                              if k != "func"},
               "elapsed_s": elapsed, "results": results}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"wrote {args.json}")
    return 1 if failed else 0


# --------------------------------------------------------------------------------- info
def info(args) -> int:
    i = _bench.machine_info()
    print(f"fusedrnn {fr.__version__}")
    print(f"cpu_info: {i['fusedrnn_cpu_info']}")
    print(f"cpu: {i['cpu']} ({i['machine']}), {i['cpu_count']} CPUs"
          + (f", {i['affinity']} usable" if i["affinity"] is not None else ""))
    print(f"system: {i['system']}")
    print("versions: " + ", ".join(f"{k} {v if v else 'not importable'}"
                                   for k, v in i["versions"].items()))
    print(_bench.thread_line(i["threads"]))
    return 0


# --------------------------------------------------------------------------------- demo
def demo(args) -> int:
    """Teach an LSTM to echo its input one step later, with plain gradient descent.

    Forward with train=True, backward from dL/dy, and an SGD step written back with
    load_state_dict; the linear read-out on top is plain NumPy.
    """
    rng = np.random.default_rng(0)
    T, batch, H = 12, 64, 16
    x = rng.uniform(-1, 1, (T, batch, 1)).astype(np.float32)
    target = np.zeros_like(x)
    target[1:] = x[:-1]  # y_t = x_{t-1}: the LSTM must remember one step
    lstm = fr.LSTM(1, H, seed=0)
    w_out = (rng.standard_normal((H, 1)) / np.sqrt(H)).astype(np.float32)
    b_out = np.zeros(1, np.float32)
    print(f"{lstm} + linear read-out, echo task (T={T}, batch {batch}), SGD lr {args.lr}; "
          f"predicting zeros scores {np.mean(target ** 2):.4f}")
    for step in range(args.steps + 1):
        y, _, tape = lstm.forward(x, train=True)
        err = y @ w_out + b_out - target
        loss = float(np.mean(err ** 2))
        if step % args.every == 0:
            print(f"step {step:4d}  loss {loss:.4f}")
        if step == args.steps:
            break
        dpred = 2 * err / err.size  # dL/d(prediction)
        _, _, grads = lstm.backward(tape, dpred @ w_out.T)
        params = lstm.state_dict()
        lstm.load_state_dict({k: params[k] - args.lr * grads[k] for k in params})
        w_out -= args.lr * (y.reshape(-1, H).T @ dpred.reshape(-1, 1))
        b_out -= args.lr * dpred.sum((0, 1))
    return 0


# ---------------------------------------------------------------------------------- CLI
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fusedrnn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("bench", help="time the kernels against their peers",
                       description="Time fusedrnn against the NumPy reference and PyTorch "
                       "(when importable) over the grid of DESIGN.md section 6.")
    p.add_argument("--quick", action="store_true",
                   help=f"seconds-long subset: T cut to {_bench.QUICK_T}, rows "
                   f"{','.join(_bench.QUICK_ROW_NAMES)} unless --rows, short time budget")
    p.add_argument("--kinds", type=_names(list(_bench.KINDS)),
                   help="e.g. lstm,gru (default: all)")
    p.add_argument("--rows", type=_names([s.name for s in _bench.ROWS]),
                   help="e.g. S1,S2,cell (default: all)")
    p.add_argument("--modes", type=_names(list(_bench.MODES)),
                   help="inference,training (default: both)")
    p.add_argument("--threads", type=_positive, default=1,
                   help="torch.set_num_threads (default 1; ours is single-threaded)")
    p.add_argument("--min-runs", type=_positive,
                   help="timed runs per peer at least (default 3, quick 5)")
    p.add_argument("--max-runs", type=_positive, default=50, help="timed runs per peer at most")
    p.add_argument("--budget", type=float,
                   help="seconds per line after which no more runs start, once --min-runs "
                   "are done (default 2, quick 0.5)")
    p.add_argument("--skip-ref-above", type=float, default=5.0, metavar="SECONDS",
                   help="a reference whose first run takes longer is measured once only "
                   "(default 5)")
    p.add_argument("--json", metavar="PATH", help="write every measurement to PATH")
    p.set_defaults(func=bench)

    p = sub.add_parser("info", help="instruction set, versions and threads")
    p.set_defaults(func=info)

    p = sub.add_parser("demo", help="train a tiny LSTM with the NumPy API")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=0.3)
    p.add_argument("--every", type=int, default=30, help="print the loss every N steps")
    p.set_defaults(func=demo)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
