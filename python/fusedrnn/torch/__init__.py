"""fusedrnn for PyTorch: drop-in ``torch.nn`` recurrent modules that run fusedrnn's kernels.

``fusedrnn.torch.LSTM``, ``GRU``, ``RNN``, ``LSTMCell``, ``GRUCell`` and ``RNNCell``
subclass their ``torch.nn`` namesakes: the same constructor arguments, parameters
(names, shapes, initialisation), state dicts, forward signature and return values,
``PackedSequence`` input included.  Only ``forward`` differs: it runs the fused CPU
kernels, with autograd through a ``torch.autograd.Function``.

    import fusedrnn.torch as frt
    lstm = frt.LSTM(128, 256, num_layers=2, batch_first=True)   # as torch.nn.LSTM
    model = frt.replace_rnns(model)     # every torch.nn recurrent module inside, swapped
    qmodel = frt.quantize_dynamic(model, dtype=torch.qint8)   # inference: int8 weights

Threads: ``fusedrnn.set_num_threads`` alone governs the fused kernels;
``torch.set_num_threads`` governs torch's own operations around them.  See docs/pytorch.md.

This module needs PyTorch; ``import fusedrnn`` alone never imports it.
"""

try:
    import torch as _torch  # noqa: F401  (the absolute top-level package, not this one)
except ImportError as e:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "fusedrnn.torch needs PyTorch, which is not importable here "
        f"({e}).  Install the CPU build, e.g.: pip install torch==2.13.0 "
        "(the version this repository's CI tests with; an unpinned `pip install torch` "
        "may pull several GB of CUDA packages).  The NumPy API, `import fusedrnn`, works "
        "without it."
    ) from e

from ._modules import (  # noqa: E402
    GRU,
    LSTM,
    RNN,
    GRUCell,
    LSTMCell,
    RNNCell,
    from_torch,
    replace_rnns,
)
from ._plan import weight_cache  # noqa: E402
from . import quantized  # noqa: E402
from ._quantize import quantize_dynamic  # noqa: E402

__all__ = ["LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell", "replace_rnns",
           "from_torch", "weight_cache", "quantize_dynamic", "quantized"]
