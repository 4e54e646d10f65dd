"""Weights of the recurrent layers in the layouts of Keras and of the ONNX operators.

The layers (``fusedrnn.LSTM``, ``GRU``, ``RNN``) keep torch's layout: per layer ``k``
and direction, ``weight_ih_l{k}`` (G*H, I_k), ``weight_hh_l{k}`` (G*H, H), ``bias_ih_l{k}``
and ``bias_hh_l{k}`` (G*H,), the reverse direction with the suffix ``_reverse``; gate
blocks LSTM i, f, g, o, GRU r, z, n.  This module converts them both ways:

Keras (``to_keras`` / ``from_keras``): one entry per layer, each the list that Keras'
``LSTM`` / ``GRU`` / ``SimpleRNN`` ``get_weights()`` gives (``set_weights()`` takes)::

    kernel            (I_k, G*H)   = weight_ih.T, gate columns in Keras' order
    recurrent_kernel  (H, G*H)     = weight_hh.T
    bias              LSTM, SimpleRNN, GRU(reset_after=False): (G*H,)
                      GRU(reset_after=True): (2, G*H) = [input bias; recurrent bias]

Keras' gate order is LSTM i, f, c, o (torch's) and GRU z, r, h (torch's r, z, n with the
first two swapped).  Without biases (``bias=False``, Keras ``use_bias=False``) the list
is ``[kernel, recurrent_kernel]``.  A bidirectional layer's entry is the pair
``(forward_weights, backward_weights)``, the ``get_weights()`` of the ``forward_layer``
and ``backward_layer`` of Keras' ``Bidirectional`` wrapper (whose own ``get_weights()``
is their concatenation, ``[*forward_weights, *backward_weights]``; ``from_keras`` takes
either form).  A stack of ``num_layers`` Keras layers with ``return_sequences=True``
(``merge_mode="concat"`` for the bidirectional ones) computes what the module computes.

ONNX (``to_onnx`` / ``from_onnx``): one dict per layer with the inputs of the ONNX
``LSTM`` / ``GRU`` / ``RNN`` operator, direction "forward" (or "bidirectional" for a
bidirectional module; num_directions D = 1 or 2, forward first)::

    "W"  (D, G*H, I_k)   gate blocks LSTM i, o, f, c; GRU z, r, h; RNN one block
    "R"  (D, G*H, H)
    "B"  (D, 2*G*H)      = [Wb, Rb] (input biases, then recurrent biases)
    "linear_before_reset"   GRU only: 1 for reset_after=True, 0 for reset_after=False

Without ``from_onnx(..., attributes=)`` the node's other settings are assumed to be
what the operator defaults to (activations Sigmoid/Tanh, Tanh or ``Relu`` for an RNN as
its ``nonlinearity`` says, no clip, ``input_forget=0``) and its ``hidden_size`` the
module's; with it, each attribute is checked and honoured or refused by name.  A
reverse-only ONNX layer (direction "reverse") has no counterpart here.

ONNX models (``to_onnx_model`` / ``from_onnx_model``, which import ``onnx``): a ready
model of a module, one node per layer, and the LSTM / GRU / RNN nodes of a model as
``OnnxRNN`` objects (the module, the inputs the node takes, and ``run()``, the node's
exact outputs, reverse direction included); see docs/onnx.md.

Files: ``_common`` (shared helpers), ``_keras``, ``_onnx_weights`` (to_onnx /
from_onnx), ``_onnx_attributes`` (a node's attributes, honoured or refused),
``_onnx_model`` (from_onnx_model, OnnxRNN), ``_onnx_export`` (to_onnx_model).

Both formats fold torch's two biases where their cell has only one: Keras' LSTM,
SimpleRNN and GRU(reset_after=False) bias is ``bias_ih + bias_hh`` (exact for these
formulas), and importing it sets ``bias_ih`` to it and ``bias_hh`` to zeros.  ONNX keeps
both biases.  LSTM projections (``proj_size > 0``) and ONNX peepholes have no
counterpart in the other format and are refused.

Every ``from_*`` checks everything (count, types and shapes of the arrays, options)
before it changes the module, then loads the weights with ``load_state_dict`` (which
casts them to the module's dtype) and returns the module.  ``to_*`` returns new arrays
of the module's dtype.
"""

from __future__ import annotations

from ._keras import from_keras, to_keras
from ._onnx_export import to_onnx_model
from ._onnx_model import OnnxRNN, from_onnx_model
from ._onnx_weights import from_onnx, to_onnx

__all__ = ["to_keras", "from_keras", "to_onnx", "from_onnx", "from_onnx_model", "to_onnx_model",
           "OnnxRNN"]
