"""fusedrnn: fused LSTM, GRU and RNN kernels for the CPU, forward and backward.

Layers and cells follow torch.nn (names, shapes, gate order, semantics) on NumPy
arrays; ``fusedrnn.reference`` is the plain NumPy specification they are tested
against.  See README.md.
"""

from . import _core, functional, reference
from .layers import GRU, LSTM, RNN, GRUCell, IncompatibleKeys, LSTMCell, RNNCell, Tape

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
    "cpu_info",
    "functional",
    "reference",
    "__version__",
]


def cpu_info() -> dict:
    """The kernels' instruction set: {"isa": selected, "available": [...], "compiled": [...]}.

    This version compiles the portable "generic" path only; SIMD paths and the
    FUSEDRNN_ISA override (generic|avx2|avx512) choose among them once per process.
    """
    return _core.cpu_info()
