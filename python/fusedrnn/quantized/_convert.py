"""``fusedrnn.quantize_dynamic``: a float layer or cell -> its quantized copy."""

from __future__ import annotations

from .. import cells as _fc
from .. import layers as _fl
from . import cells as _qc
from . import layers as _ql
from ._base import as_mode

#: float class -> quantized class (subclasses of the float classes map as their base).
_QUANTIZED = {_fl.LSTM: _ql.LSTM, _fl.GRU: _ql.GRU, _fl.RNN: _ql.RNN,
              _fc.LSTMCell: _qc.LSTMCell, _fc.GRUCell: _qc.GRUCell, _fc.RNNCell: _qc.RNNCell}


def quantize_dynamic(module, dtype="int8"):
    """An inference-only quantized copy of a fusedrnn layer or cell.

    module: ``fusedrnn.LSTM``, ``GRU``, ``RNN``, ``LSTMCell``, ``GRUCell`` or
    ``RNNCell`` (float32 or float64; every option).  dtype: "int8" (per-row int8
    weights, activations quantized per row at every step), "float16" or "bfloat16"
    (16-bit weights, float32 arithmetic); np.int8 and np.float16 are accepted too.
    Returns ``fusedrnn.quantized.LSTM`` (etc.), which computes in float32; the float
    module is left as it is.  See docs/quantization.md.
    """
    mode = as_mode(dtype)
    for float_cls, q_cls in _QUANTIZED.items():
        if isinstance(module, float_cls):
            return q_cls._from_float(module, mode)
    if isinstance(module, tuple(_QUANTIZED.values())):
        raise TypeError(f"module: {type(module).__name__} is already quantized "
                        f"(dtype={module.dtype}); call dequantize() first to requantize")
    raise TypeError("module: expected a fusedrnn.LSTM, GRU, RNN, LSTMCell, GRUCell or RNNCell, "
                    f"got {type(module).__module__}.{type(module).__qualname__}")
