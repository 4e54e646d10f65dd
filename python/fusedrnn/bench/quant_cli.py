"""``python -m fusedrnn bench --quant``: the quantized tables.  The options are those of
`bench` (cli.add_arguments); this module checks the ones that apply and runs: header,
progress, one table per thread count and unit, warnings, --json."""

from __future__ import annotations

import json
import sys
import time

from . import quant_table, trust
from .cli import Progress, _print
from .grid import KINDS
from .machine import (load_average, machine_info, missing_peers, set_threads, system_cores,
                      thread_info, thread_line)
from .quant import PEERS, QUANT_ROWS, QuantCase, measure_quant, quant_shapes, to_json


def problems(args) -> list:
    """What in `args` does not apply to the quantized rows (each a sentence)."""
    out = []
    rows = [r for r in (args.rows or ()) if r not in QUANT_ROWS]
    if rows:
        out.append(f"--rows {','.join(rows)}: the quantized rows are {','.join(QUANT_ROWS)}")
    if args.modes and args.modes != ["inference"]:
        out.append("--modes: the quantized modules are inference-only (leave --modes out)")
    if args.plot:
        out.append("--plot: not drawn for the quantized rows (use --json)")
    if args.skip_ref_above is not None:
        out.append("--skip-ref-above: the quantized rows have no reference peer")
    return out


class QuantRun:
    """One `bench --quant` command: the tables, then the warnings and JSON."""

    def __init__(self, args):
        self.args, self.started = args, time.perf_counter()
        self.settings = (args.min_runs if args.min_runs is not None else 3,
                         args.budget if args.budget is not None else
                         (0.25 if args.quick else 2.0))
        self.load_start = load_average()
        set_threads(args.threads[0])
        self.info = machine_info()
        self.shapes = quant_shapes(args.rows, args.quick)
        self.cases = [(KINDS[k], s) for k in (args.kinds or KINDS) for s in self.shapes]
        self.results, self.tables, self.failed = [], [], False
        self.progress = Progress(len(self.cases) * len(args.threads), self.settings[1])

    def tables_for(self, n: int) -> None:
        """The tables of n threads: sequence rows (ms), then the cell rows (µs per call)."""
        set_threads(n)
        threads = thread_info()
        self.tables.append({"threads": n, "thread_info": threads})
        print(f"\n== {n} thread{'s' if n > 1 else ''}: " + thread_line(threads, ""))
        for unit, is_cell in (("ms", False), (quant_table.table.CELL_UNIT, True)):
            group = [c for c in self.cases if c[1].is_cell == is_cell]
            if group:
                print()
                print(quant_table.table_header(unit, self.args.wide), flush=True)
                for kind, shape in group:
                    self.line(kind, shape, n)

    def line(self, kind, shape, n) -> None:
        min_runs, budget = self.settings
        self.progress.start(kind, shape, "quant", n)
        case = QuantCase(kind, shape, self.args.quant, threads=n)
        m = measure_quant(case, min_runs=min_runs, max_runs=self.args.max_runs,
                          budget_s=budget)
        self.failed |= not m.ok()
        self.results.append(to_json(m))
        self.progress.finish()
        _print(quant_table.table_rows(m, self.args.wide))

    def warnings(self) -> list:
        counts = self.args.threads
        self.load_end = load_average()
        load = trust.busy(self.load_start, system_cores(), max(counts))
        end = trust.busy(self.load_end, system_cores(), counts[-1], own=counts[-1])
        unavailable = sorted({f"{p}: {why}" for r in self.results
                              for p, why in r["unavailable"].items()})
        return trust.warnings(self.results, load + [f"at the end: {w}" for w in end]) + [
            f"peer not built, shown as —: {u}" for u in unavailable]

    def json(self, path, warnings, elapsed) -> None:
        args = self.args
        min_runs, budget = self.settings
        doc = {"machine": self.info, "quant": True, "dtypes": args.quant,
               "thread_counts": args.threads, "tables": self.tables,
               "peers": ["ours_" + d for d in args.quant] + ["ours_float32", *PEERS],
               "missing_peers": missing_peers(),
               "settings": {k: v for k, v in vars(args).items() if k != "func"},
               "effective": {"min_runs": min_runs, "budget_s": budget},
               "load_average": [self.load_start, self.load_end], "warnings": warnings,
               "elapsed_s": elapsed, "results": self.results}
        with open(path, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"wrote {path}")


def run(args) -> int:
    """`bench --quant`; exit status 1 if a check failed, 2 for options that do not apply."""
    bad = problems(args)
    if bad:
        for line in bad:
            print(f"error: --quant: {line}", file=sys.stderr)
        return 2
    r = QuantRun(args)
    _print(quant_table.header(r.info, r.shapes, args.threads, args.quant, r.settings,
                              args.wide))
    _print(trust.warning_block(trust.busy(r.load_start, system_cores(), max(args.threads))))
    for n in args.threads:
        r.tables_for(n)
    elapsed = time.perf_counter() - r.started
    warnings = r.warnings()
    print()
    _print(trust.warning_block(warnings))
    print(f"{len(r.results)} kinds x rows in {elapsed:.1f} s")
    if args.json:
        r.json(args.json, warnings, elapsed)
    return 1 if r.failed else 0
