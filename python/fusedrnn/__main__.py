"""Command line: ``python -m fusedrnn {bench,info,demo}``.

bench  time LSTM/GRU/RNN against the NumPy reference, PyTorch, fusedrnn.torch's
       drop-in torch.nn modules and ONNX Runtime (those three when installed)
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
def _thread_counts(text):
    """argparse type: one thread count or a comma-separated list of them, each >= 1."""
    try:
        counts = [int(n) for n in text.split(",") if n.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(
            f"expected a thread count >= 1 or a comma-separated list of them (e.g. 1,2); "
            f"got {text!r}")
    return list(dict.fromkeys(counts))  # in the order given, each once


def _can_print(text) -> bool:
    try:
        text.encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _print_header(info, shapes, peak, counts, min_runs, budget, ref_limit):
    """What was measured, where and how: the lines above the tables."""
    v, isa = info["versions"], info["fusedrnn_cpu_info"]["isa"]
    torch, ort = v["torch"] is not None, v["onnxruntime"] is not None
    drop = _bench.dropin_or_none() is not None
    ragged = any(s.ragged for s in shapes)
    peers = (["ours", "ref"] + ["torch"] * torch + ["drop"] * drop + ["ort"] * ort
             + ["tpad"] * (torch and ragged))
    found = [f"torch {v['torch']}"] * torch + [f"onnxruntime {v['onnxruntime']}"] * ort
    none = _bench.NONE
    print(f"fusedrnn {fr.__version__} (isa {isa}) on {info['cpu']}, {info['cpu_count']} CPUs; "
          + "; ".join([f"Python {v['python']}, NumPy {v['numpy']}"] + found))
    print(f"peak: {peak:.1f} GFLOP/s = float32 FMAs of one thread (fusedrnn._core.fma_peak, "
          f"{isa}, registers only)")
    print(f"threads: {', '.join(map(str, counts))} (a table each): ours "
          "fusedrnn.set_num_threads(n)" + ("; torch torch.set_num_threads(n)" if torch else "")
          + ("; drop both (kernels; torch's operations around them)" if drop else ""))
    if ort:
        print("         ort SessionOptions intra_op_num_threads=n, inter_op_num_threads=1")
    plain = [s.describe() for s in shapes if s.is_plain]
    others = [s.describe() for s in shapes if not s.is_plain]
    print("rows: " + " | ".join(plain or others[:1]))
    for line in others[0 if plain else 1:]:
        print("      " + line)
    print("peers: ref   fusedrnn.reference (NumPy, float32)")
    if torch:
        print("       torch torch.nn.LSTM/GRU/RNN, cell row LSTMCell/GRUCell/RNNCell; "
              "inference under torch.inference_mode")
        if ragged:
            print("             len row: a PackedSequence, pack_padded_sequence(enforce_sorted="
                  "False) and pad_packed_sequence(total_length=T) timed with it")
            print("       tpad  len row only: torch on the padded batch, no packing (all T "
                  "steps for every sequence), y masked, h_n read at each end;")
            print("             torch / tpad = PackedSequence's cost over padding")
    if drop:
        print("       drop  fusedrnn.torch.LSTM/GRU/RNN (cells: LSTMCell/...), the drop-in "
              "torch.nn modules: from_torch(a deep copy of the torch module), called as "
              "torch is")
        print("             (same inputs, inference_mode, PackedSequence in the len row, "
              "backward of sum(y*dy) and .grad in training)")
    if ort:
        print("       ort   ONNX Runtime LSTM/GRU/RNN operator, inference only; cell row: one "
              "step, state as initial_h/c")
        if any(not s.is_plain for s in shapes):
            print("             one operator per layer (fusedrnn.convert.to_onnx's weights; "
                  "Transpose+Reshape to (T, B, 2H) after a bidirectional one); len row: "
                  "sequence_lens")
    for line in _bench.missing_peers():
        print(f"not installed: {line}; shown as {none}")
    print(f"timing: median of >= {min_runs} runs per peer, alternating {'/'.join(peers)}, "
          f"about {budget:g} s per line")
    print(f"columns: ours ms (cell row: {_bench.CELL_UNIT} per call); GFLOP/s = "
          "2*T*B*G*H*(I+H) / time, G = 4/3/1, training 3x;")
    if any(not s.is_plain for s in shapes):
        print("         summed over layers and directions (I = 2H after a bidirectional "
              "layer); len row: sum(lengths) in place of T*B (valid steps only)")
    print("         %peak = GFLOP/s / (peak x ours threads); x peer = peer time / ours time "
          "(> 1: ours faster);")
    if drop:
        print("         x drop = drop time / ours time: the drop-in's overhead over the NumPy "
              "API (autograd.Function, torch glue);")
        print("         torch/drop = torch time / drop time: > 1: the drop-in is faster than "
              "the torch.nn module it replaces;")
    print(f"         runs = ours/ref/torch/drop/ort/tpad; {none} = peer not installed, ort in "
          "training, or tpad outside the len row")
    print("training = forward + backward to x and all weights")
    print(f"check: ok/FAIL and max ||ours - ref|| / ||ref|| over outputs and gradients, ok below "
          f"{_bench.TOLERANCE:g};")
    print("       torch!/drop!/ort!/tpad! after it = that peer's outputs differ from ours by more "
          "than that (tpad: y, h_n and gradients; its c_n is at step T)")
    print(f"* = measured once: its first run took over {ref_limit:g} s (--skip-ref-above)",
          flush=True)


def bench(args) -> int:
    started = time.perf_counter()
    if args.plot and _bench.matplotlib_or_none() is None:
        print("error: --plot needs matplotlib, which is not importable here; install it "
              "(pip install matplotlib, or the package's bench extra: pip install "
              "'fusedrnn[bench]') or drop --plot", file=sys.stderr)
        return 2
    _bench.set_ascii(not _can_print("\u2014\u00b5"))
    quick = args.quick
    min_runs = args.min_runs if args.min_runs is not None else 3
    budget = args.budget if args.budget is not None else (0.25 if quick else 2.0)
    ref_limit = (args.skip_ref_above if args.skip_ref_above is not None
                 else (0.2 if quick else 5.0))
    counts = args.threads
    peak = _bench.fma_peak(0.2)  # once, before anything else runs
    _bench.set_threads(counts[0])
    info = _bench.machine_info()
    cases = _bench.grid(args.kinds, args.rows, args.modes, quick=quick)
    # Sequence rows (ms) first, then the cell rows (µs per call): one table each.
    sections = [("ms", [c for c in cases if not c[1].is_cell]),
                (_bench.CELL_UNIT, [c for c in cases if c[1].is_cell])]

    _print_header(info, _bench.shapes(args.rows, quick), peak, counts, min_runs, budget,
                  ref_limit)

    results, tables, failed = [], [], False
    for n in counts:
        _bench.set_threads(n)
        threads = _bench.thread_info()
        tables.append({"threads": n, "thread_info": threads})
        print(f"\n== {n} thread{'s' if n > 1 else ''}: " + _bench.thread_line(threads, ""))
        for unit, group in sections:
            if not group:
                continue
            print()
            print(_bench.table_header(unit))
            for kind, shape, mode in group:
                case = _bench.Case(kind, shape, mode, threads=n)
                m = _bench.measure(case, min_runs=min_runs, max_runs=args.max_runs,
                                   budget_s=budget, ref_limit_s=ref_limit)
                failed |= not m.ok()
                results.append(_bench.to_json(m, peak))
                print(_bench.table_row(m, peak), flush=True)
                del case, m  # free the layer, workspaces and reference caches before the next

    elapsed = time.perf_counter() - started
    print(f"\n{len(results)} lines in {elapsed:.1f} s")
    if args.json:
        doc = {"machine": info, "fma_peak_gflops": peak, "thread_counts": counts,
               "tables": tables, "peers": list(_bench.PEERS),
               "missing_peers": _bench.missing_peers(),
               "settings": {k: v for k, v in vars(args).items() if k != "func"},
               "effective": {"min_runs": min_runs, "budget_s": budget,
                             "skip_ref_above_s": ref_limit},
               "elapsed_s": elapsed, "results": results}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"wrote {args.json}")
    if args.plot:
        title = (f"fusedrnn {fr.__version__} ({info['fusedrnn_cpu_info']['isa']}) on "
                 f"{info['cpu']}: speedup = peer time / ours time (> 1: ours faster)")
        _bench.plot(results, args.plot, title=title, scale=args.plot_scale)
        print(f"wrote {args.plot}")
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
                       description="Time fusedrnn against the NumPy reference, PyTorch, "
                       "fusedrnn.torch's drop-in torch.nn modules and ONNX Runtime (those three "
                       "when importable) over the grid of DESIGN.md section 6.")
    p.add_argument("--quick", action="store_true",
                   help=f"seconds-long subset: T cut to {_bench.QUICK_T}, rows "
                   f"{','.join(_bench.QUICK_ROW_NAMES)} unless --rows, short time budget")
    p.add_argument("--kinds", type=_names(list(_bench.KINDS)),
                   help="e.g. lstm,gru (default: all)")
    p.add_argument("--rows", type=_names([s.name for s in _bench.ROWS]),
                   help="e.g. S1,S2,cell; L2bi (2-layer bidirectional) and len (variable "
                   "lengths) are LSTM rows (default: all)")
    p.add_argument("--modes", type=_names(list(_bench.MODES)),
                   help="inference,training (default: both)")
    p.add_argument("--threads", type=_thread_counts, default=[1], metavar="N[,N...]",
                   help="thread counts, one table each: fusedrnn.set_num_threads, "
                   "torch.set_num_threads (the drop-in gets both) and ORT's "
                   "intra_op_num_threads (default 1)")
    p.add_argument("--min-runs", type=_positive,
                   help="timed runs per peer at least (default 3)")
    p.add_argument("--max-runs", type=_positive, default=50, help="timed runs per peer at most")
    p.add_argument("--budget", type=float,
                   help="seconds per line after which no more runs start, once --min-runs "
                   "are done (default 2, quick 0.25)")
    p.add_argument("--skip-ref-above", type=float, metavar="SECONDS",
                   help="a reference whose first run takes longer is measured once only "
                   "(default 5, quick 0.2)")
    p.add_argument("--json", metavar="PATH", help="write every measurement, the thread "
                   "counts, the peak and the machine to PATH")
    p.add_argument("--plot", metavar="PATH", help="write a PNG bar chart of the speedups "
                   "(peer time / ours) to PATH (needs matplotlib)")
    p.add_argument("--plot-scale", choices=("log", "linear"), default="log",
                   help="y axis of --plot (default log)")
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
