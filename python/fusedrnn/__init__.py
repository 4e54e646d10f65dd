"""fusedrnn: fused LSTM, GRU and RNN kernels for the CPU, forward and backward.

Layers and cells follow torch.nn (names, shapes, gate order, semantics) on NumPy
arrays; ``fusedrnn.reference`` is the plain NumPy specification they are tested
against.  ``fusedrnn.quantize_dynamic`` makes int8 / 16-bit inference copies
(``fusedrnn.quantized``, docs/quantization.md).  See README.md.
"""

import os

from . import _core, convert, functional, optim, reference
from .layers import GRU, LSTM, RNN, GRUCell, IncompatibleKeys, LSTMCell, RNNCell, Tape
from . import quantized  # noqa: E402, I001  (after the layers it quantizes)
from .quantized import quantize_dynamic
from .utils import clip_grad_norm

__version__ = "0.1.0"

__all__ = [
    "LSTM",
    "GRU",
    "RNN",
    "LSTMCell",
    "GRUCell",
    "RNNCell",
    "Tape",
    "IncompatibleKeys",
    "clip_grad_norm",
    "quantize_dynamic",
    "quantized",
    "cpu_info",
    "set_num_threads",
    "get_num_threads",
    "convert",
    "functional",
    "optim",
    "reference",
    "__version__",
]


def cpu_info() -> dict:
    """The kernels' instruction set: {"isa": selected, "available": [...], "compiled": [...],
    "emulated": [...]}.

    "available" lists the ISAs compiled into this build that this CPU (and its OS) can
    run, best first; the best is selected once per process unless the environment
    variable FUSEDRNN_ISA (generic|avx2|avx512) forces another.  "emulated" is empty
    except in test builds made with the CMake option FUSEDRNN_EMULATE_AVX512, where it is
    ["avx512"]: those kernels run with AVX2 instructions, for testing, not for speed.
    """
    return _core.cpu_info()


def set_num_threads(n: int) -> None:
    """Set the number of threads fusedrnn's kernels use (default: the CPUs this process may run on).

    This setting alone governs fusedrnn; ``torch.set_num_threads`` and OMP_NUM_THREADS
    do not; the environment variable FUSEDRNN_NUM_THREADS sets it at import.  Small
    problems use fewer threads than this where a step is too short to share.  Results
    are bit-identical for any thread count.

    A count set here (or by FUSEDRNN_NUM_THREADS) is used as given.  The default count
    instead adapts to contention: when other processes take the CPUs so that a thread
    of the team waits for a descheduled one, the team runs fewer threads for a while
    and probes for more later (docs/architecture.md, "Threading").
    """
    if isinstance(n, bool) or not isinstance(n, (int,)) and not hasattr(n, "__index__"):
        raise TypeError(f"n: expected an int, got {type(n).__name__}")
    n = int(n.__index__())
    if n < 1:
        raise ValueError(f"n: expected n >= 1, got {n}")
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """The number of threads fusedrnn's kernels may use (see set_num_threads)."""
    return _core.get_num_threads()


def _threads_from_environment() -> None:
    value = os.environ.get("FUSEDRNN_NUM_THREADS", "").strip()
    if not value:
        return
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"FUSEDRNN_NUM_THREADS: expected an integer >= 1, got {value!r}")
    _core.set_num_threads(n)


_threads_from_environment()
