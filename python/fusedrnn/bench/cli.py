"""``python -m fusedrnn bench``: its options, and the run: header, progress, one table per
thread count and unit, warnings, --json and --plot."""

from __future__ import annotations

import argparse
import json
import sys
import time

import fusedrnn as fr

from . import report, table, trust
from .case import Case
from .ceiling import ceiling_line, measure_ceiling
from .grid import KINDS, MODES, PEERS, QUICK_ROW_NAMES, QUICK_T, ROWS, grid, shapes
from .machine import (fma_peak, load_average, machine_info, matplotlib_or_none, missing_peers,
                      set_threads, system_cores, thread_info, thread_line, want_openvino)
from .plot import plot
from .quant import DTYPES, QUANT_ROWS, QUICK_QUANT_ROWS
from .timing import measure, to_json

DESCRIPTION = """\
Time fusedrnn's LSTM/GRU/RNN against the NumPy reference, PyTorch, fusedrnn.torch's drop-in
torch.nn modules and ONNX Runtime (those three when importable; OpenVINO with --openvino), in
one process, the peers alternating, and numpy.matmul of each row's input projection.  Every
ratio is the other code's time / fusedrnn's: > 1 means fusedrnn is faster.  Columns, ratios,
spread and noise: docs/benchmarks.md.

--quant: the quantized rows instead (inference): fusedrnn.quantize_dynamic's int8, float16
and bfloat16 modules against our float32 module, torch's quantize_dynamic (qint8, float16)
and ONNX Runtime's DynamicQuantizeLSTM, each time with its max-abs error against our
float32 output (docs/benchmarks.md, "Quantized rows")."""


def names(choices):
    """argparse type: a comma-separated subset of `choices`."""

    def parse(text):
        picked = [n.strip() for n in text.split(",") if n.strip()]
        bad = [n for n in picked if n not in choices]
        if bad or not picked:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of {', '.join(choices)}; got {text!r}")
        return picked

    return parse


def positive(text):
    """argparse type: an int >= 1."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {text!r}")
    return n


def thread_counts(text):
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


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `bench` (every one with its help)."""
    p.add_argument("--quick", action="store_true",
                   help=f"seconds-long subset: T cut to {QUICK_T}, rows "
                   f"{','.join(QUICK_ROW_NAMES)} unless --rows, short time budget")
    p.add_argument("--kinds", type=names(list(KINDS)), help="e.g. lstm,gru (default: all)")
    p.add_argument("--rows", type=names([s.name for s in ROWS]),
                   help="e.g. S1,S2,cell; L2bi (2-layer bidirectional), len (variable "
                   "lengths) (default: all)")
    p.add_argument("--modes", type=names(list(MODES)), help="inference,training (default: both)")
    p.add_argument("--quant", type=names(list(DTYPES)), nargs="?", const=list(DTYPES),
                   metavar="DTYPE[,DTYPE...]",
                   help="the quantized tables instead (inference only): our quantized "
                   f"modules in {','.join(DTYPES)} (default: all three) against our float32 "
                   "module, torch's quantize_dynamic (qint8, float16) and ONNX Runtime's "
                   "DynamicQuantizeLSTM, with each one's max-abs error against our float32 "
                   f"output; rows {','.join(QUANT_ROWS)} (--quick: "
                   f"{','.join(QUICK_QUANT_ROWS)})")
    p.add_argument("--threads", type=thread_counts, default=[1], metavar="N[,N...]",
                   help="thread counts, one table each: fusedrnn.set_num_threads, "
                   "torch.set_num_threads (the drop-in gets both) and ORT's "
                   "intra_op_num_threads (default 1)")
    p.add_argument("--openvino", action="store_true",
                   help="also time OpenVINO (inference; needs `pip install openvino` and torch: "
                   "its model is openvino.convert_model of the torch module); column x OV")
    p.add_argument("--wide", action="store_true",
                   help="every column: the peers' times, the drop-in's overhead over ours "
                   "and the runs per peer (about 190 characters wide)")
    p.add_argument("--min-runs", type=positive, help="timed runs per peer at least (default 3)")
    p.add_argument("--max-runs", type=positive, default=50,
                   help="timed runs per peer at most (default 50)")
    p.add_argument("--budget", type=float,
                   help="seconds per line after which no more runs start, once --min-runs "
                   "are done (default 2, quick 0.25)")
    p.add_argument("--skip-ref-above", type=float, metavar="SECONDS",
                   help="a reference whose first run takes longer is measured once only "
                   "(default 5, quick 0.2)")
    p.add_argument("--json", metavar="PATH", help="write every measurement, the thread "
                   "counts, the peak, the warnings and the machine to PATH")
    p.add_argument("--plot", metavar="PATH", help="write a PNG bar chart of the ratios "
                   "(> 1: fusedrnn faster) to PATH (needs matplotlib)")
    p.add_argument("--plot-scale", choices=("log", "linear"), default="log",
                   help="y axis of --plot (default log)")


def duration(seconds: float) -> str:
    """'45s', '1m20s', '1h02m'."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Progress:
    """"[k/N] kind row mode (n threads) ... eta 1m20s" on stderr before each line: on a
    terminal rewritten in place (and cleared before the table line), else one line each.
    The eta is the mean time of the lines done so far times the lines left (before the
    first: the time budget per line)."""

    def __init__(self, total: int, budget: float, stream=None):
        self.total, self.budget, self.done = total, budget, 0
        self.stream = stream if stream is not None else sys.stderr
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.started = time.perf_counter()

    def line(self, kind, shape, mode, n) -> str:
        left = self.total - self.done
        per_line = ((time.perf_counter() - self.started) / self.done if self.done
                    else self.budget)
        return (f"[{self.done + 1}/{self.total}] {kind.name} {shape.name} {mode} "
                f"({n} thread{'s' if n > 1 else ''}) ... eta {duration(per_line * left)}")

    def start(self, kind, shape, mode, n) -> None:
        text = self.line(kind, shape, mode, n)
        self.stream.write(f"\r{text}\033[K" if self.tty else text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        self.done += 1
        if self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()


def can_print(text) -> bool:
    try:
        text.encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def settings(args):
    """(min_runs, budget_s, skip_ref_above_s) after the --quick defaults."""
    quick = args.quick
    return (args.min_runs if args.min_runs is not None else 3,
            args.budget if args.budget is not None else (0.25 if quick else 2.0),
            args.skip_ref_above if args.skip_ref_above is not None else (0.2 if quick else 5.0))


def _print(lines) -> None:
    for line in lines:
        print(line)
    sys.stdout.flush()


class Run:
    """One `bench` command: the tables, then the warnings, JSON and plot."""

    def __init__(self, args):
        self.args, self.started = args, time.perf_counter()
        self.settings = settings(args)
        self.peak = fma_peak(0.2)  # once, before anything else runs
        self.load_start = load_average()
        want_openvino(getattr(args, "openvino", False))
        self.ceilings = []
        set_threads(args.threads[0])
        self.info = machine_info()
        self.cases = grid(args.kinds, args.rows, args.modes, quick=args.quick)
        self.results, self.tables, self.failed = [], [], False
        self.progress = Progress(len(self.cases) * len(args.threads), self.settings[1])

    def tables_for(self, n: int) -> None:
        """The tables of n threads: sequence rows (ms), then the cell rows (µs per call)."""
        set_threads(n)
        threads = thread_info()
        self.tables.append({"threads": n, "thread_info": threads})
        print(f"\n== {n} thread{'s' if n > 1 else ''}: " + thread_line(threads, ""))
        for unit, is_cell in (("ms", False), (table.CELL_UNIT, True)):
            group = [c for c in self.cases if c[1].is_cell == is_cell]
            if group:
                print()
                print(table.table_header(unit, self.args.wide), flush=True)
                for i, (kind, shape, mode) in enumerate(group):
                    self.line(kind, shape, mode, n)
                    if i + 1 == len(group) or group[i + 1][:2] != (kind, shape):
                        self.ceiling(kind, shape, n)

    def line(self, kind, shape, mode, n) -> None:
        min_runs, budget, ref_limit = self.settings
        self.progress.start(kind, shape, mode, n)
        case = Case(kind, shape, mode, threads=n)
        m = measure(case, min_runs=min_runs, max_runs=self.args.max_runs, budget_s=budget,
                    ref_limit_s=ref_limit)
        self.failed |= not m.ok()
        self.results.append(to_json(m, self.peak))
        self.progress.finish()
        print(table.table_row(m, self.peak, self.args.wide), flush=True)

    def ceiling(self, kind, shape, n) -> None:
        """The ceiling line after a kind and row's lines: numpy.matmul of its input
        projection (bench/ceiling.py)."""
        c = measure_ceiling(kind, shape, n, self.peak, budget_s=min(self.settings[1], 0.5))
        c["threads"] = n
        self.ceilings.append(c)
        widths = [w for _, w, _ in table.columns(self.args.wide)[:6]]
        print(ceiling_line(c, shape.is_cell, widths), flush=True)

    def warnings(self) -> list:
        counts = self.args.threads
        self.load_end = load_average()
        load = trust.busy(self.load_start, system_cores(), max(counts))
        end = trust.busy(self.load_end, system_cores(), counts[-1], own=counts[-1])
        return trust.warnings(self.results, load + [f"at the end: {w}" for w in end])

    def json(self, path, warnings, elapsed) -> None:
        args = self.args
        min_runs, budget, ref_limit = self.settings
        doc = {"machine": self.info, "fma_peak_gflops": self.peak,
               "thread_counts": args.threads, "tables": self.tables,
               "peers": list(PEERS) + ["openvino"] * bool(getattr(args, "openvino", False)),
               "missing_peers": missing_peers(),
               "settings": {k: v for k, v in vars(args).items() if k != "func"},
               "effective": {"min_runs": min_runs, "budget_s": budget,
                             "skip_ref_above_s": ref_limit},
               "load_average": [self.load_start, self.load_end], "warnings": warnings,
               "elapsed_s": elapsed, "results": self.results, "ceilings": self.ceilings}
        with open(path, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"wrote {path}")

    def plot(self, path) -> None:
        info = self.info
        title = (f"fusedrnn {fr.__version__} ({info['fusedrnn_cpu_info']['isa']}) on "
                 f"{info['cpu']}: x faster = other time / fusedrnn time (> 1: fusedrnn faster)")
        plot(self.results, path, title=title, scale=self.args.plot_scale)
        print(f"wrote {path}")


def run(args) -> int:
    """The `bench` command; exit status 1 if a check failed, 2 for --plot without
    matplotlib (or an option that --quant does not take)."""
    if args.plot and matplotlib_or_none() is None:
        print("error: --plot needs matplotlib, which is not importable here; install it "
              "(pip install matplotlib, or the package's bench extra: pip install "
              "'fusedrnn[bench]') or drop --plot", file=sys.stderr)
        return 2
    table.set_ascii(not can_print("\u2014\u00b5"))
    if args.quant:
        from . import quant_cli  # noqa: PLC0415 -- it imports this module

        return quant_cli.run(args)
    r = Run(args)
    _print(report.header(r.info, shapes(args.rows, args.quick), r.peak, args.threads,
                         r.settings, args.wide))
    _print(trust.warning_block(trust.busy(r.load_start, system_cores(), max(args.threads))))
    for n in args.threads:
        r.tables_for(n)
    elapsed = time.perf_counter() - r.started
    warnings = r.warnings()
    print()
    _print(trust.warning_block(warnings))
    print(f"{len(r.results)} lines in {elapsed:.1f} s")
    if args.json:
        r.json(args.json, warnings, elapsed)
    if args.plot:
        r.plot(args.plot)
    return 1 if r.failed else 0
