"""The benchmark grid, shared with ``python -m fusedrnn bench``.

It is defined in the package (``fusedrnn/bench/grid.py``) so that the CLI of an installed
wheel has it too; this module re-exports it for the suites in bench/ and chooses the
subset: FUSEDRNN_BENCH_QUICK=1 gives the grid of the CLI's ``--quick`` (rows S1, S4,
cell, and the LSTM rows L2bi and len, T cut to QUICK_T).
"""

import os

from fusedrnn.bench.grid import KINDS, MODES, PEERS, QUICK_T, ROWS, grid

__all__ = ["CASES", "KINDS", "MODES", "PEERS", "QUICK", "QUICK_T", "ROWS"]

QUICK = os.environ.get("FUSEDRNN_BENCH_QUICK", "") not in ("", "0")

#: (kind, shape, mode) triples of this run, in table order.
CASES = grid(quick=QUICK)
