"""The benchmark behind ``python -m fusedrnn bench`` and the pytest-benchmark suite in
bench/ (docs/benchmarks.md: how to run it and read it).

One job per module:

- grid: the rows, kinds, modes and peers, and the FLOPs of a line;
- machine: what is importable, threads, versions, FMA peak, load average;
- case: one line's inputs and weights, ours and the reference, the checks;
- peer_torch, peer_ort: the torch.nn / drop-in / padded-torch peers and ONNX Runtime;
- timing: the alternating runs, medians, spreads, ratios, the JSON of a line;
- table: the narrow and --wide tables; report: the header and legend;
- trust: the warnings (load, spread, training faster than inference);
- plot: --plot; cli: the `bench` command's options and run;
- quant, peer_quant, quant_table, quant_cli: `bench --quant`, the quantized rows (our
  int8/float16/bfloat16 modules, torch's quantize_dynamic, ORT's DynamicQuantizeLSTM).

The names below are the ones the tests and bench/ use; ``grid`` here is the function
(the module is ``fusedrnn.bench.grid`` to the import system).
"""

from .case import Case, rel_error
from .grid import (KINDS, MODES, OTHERS, PEERS, QUICK_ROW_NAMES, QUICK_T, ROWS, TOLERANCE,
                   Kind, Shape, applies, flops, grid, shapes)
from .machine import (dropin_or_none, fma_peak, machine_info, matplotlib_or_none,
                      missing_peers, ort_or_none, set_threads, thread_info, thread_line,
                      torch_or_none)
from .table import set_ascii, table_header, table_row
from .timing import (Measurement, gflops, measure, pct_peak, speedup, time_call,
                     to_json, torch_over_dropin)

__all__ = [
    "KINDS", "MODES", "OTHERS", "PEERS", "QUICK_ROW_NAMES", "QUICK_T", "ROWS", "TOLERANCE",
    "Case", "Kind", "Measurement", "Shape", "applies", "dropin_or_none", "flops",
    "fma_peak", "gflops", "grid", "machine_info", "matplotlib_or_none", "measure",
    "missing_peers", "ort_or_none", "pct_peak", "rel_error", "set_ascii",
    "set_threads", "shapes", "speedup", "table_header", "table_row", "thread_info",
    "thread_line", "time_call", "to_json", "torch_or_none", "torch_over_dropin",
]
