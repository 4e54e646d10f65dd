"""Quantized inference for fusedrnn's layers and cells: int8 weights with per-row scales
(dynamic per-row activation quantization) and 16-bit (float16 / bfloat16) weights.

``fusedrnn.quantize_dynamic(module, dtype="int8")`` makes the inference-only copies
defined here (``LSTM``, ``GRU``, ``RNN``, ``LSTMCell``, ``GRUCell``, ``RNNCell``).
The exact NumPy specification of the arithmetic is :mod:`fusedrnn.quantized.reference`.
See docs/quantization.md.
"""

from . import reference
from ._convert import quantize_dynamic
from .cells import GRUCell, LSTMCell, RNNCell
from .layers import GRU, LSTM, RNN

__all__ = ["LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell", "quantize_dynamic",
           "reference"]
