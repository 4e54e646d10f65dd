"""Weights in Keras' layout: ``to_keras`` / ``from_keras`` (see the package docstring)."""

from __future__ import annotations

import numpy as np

from ._common import (_GATES, _KERAS_ORDER, _array, _inverse, _kind, _layers_list, _names,
                      _reorder, _shaped)


def _check_reset_after(module, kind: str, reset_after) -> None:
    """The `reset_after` argument of the Keras functions: None or the module's."""
    if reset_after is None:
        return
    if kind != "GRU":
        raise ValueError(f"reset_after: only a GRU has it; got reset_after={reset_after!r} for a "
                         f"{kind}")
    if bool(reset_after) != module.reset_after:
        raise ValueError(f"reset_after: Keras' GRU(reset_after={bool(reset_after)}) computes a "
                         f"different cell from this GRU(reset_after={module.reset_after}); "
                         "build the fusedrnn.GRU with the same reset_after")



# -------------------------------------------------------------------------------- Keras
def to_keras(module, *, reset_after=None) -> list:
    """The module's weights as Keras holds them: one entry per layer.

    A unidirectional layer's entry is ``[kernel, recurrent_kernel, bias]`` as Keras'
    ``LSTM`` / ``GRU`` / ``SimpleRNN`` ``get_weights()`` gives it (``[kernel,
    recurrent_kernel]`` when ``module.bias`` is False: Keras ``use_bias=False``);
    kernel (I_k, G*H), recurrent_kernel (H, G*H), bias (G*H,) or, for a
    GRU with reset_after=True, (2, G*H).  Gate columns: LSTM i, f, c, o; GRU z, r, h.
    A bidirectional layer's entry is the tuple ``(forward_weights, backward_weights)``.

    The Keras layers to load them into: ``LSTM(H)``, ``SimpleRNN(H, activation=
    module.nonlinearity)``, ``GRU(H, reset_after=module.reset_after)`` (``reset_after``
    here, if given, must equal the module's), each with ``use_bias=module.bias`` and
    their default activations.  LSTM and SimpleRNN (and GRU with reset_after=False)
    biases are ``bias_ih + bias_hh``.  ValueError for an LSTM with ``proj_size > 0``.
    """
    kind = _kind(module, "to_keras")
    _check_reset_after(module, kind, reset_after)
    order = _KERAS_ORDER[kind]
    two_biases = kind == "GRU" and module.reset_after
    sd = module.state_dict()
    out = []
    for layer in _names(module):
        per_dir = []
        for n in layer:
            w = [np.ascontiguousarray(_reorder(sd[n["weight_ih"]], order).T),
                 np.ascontiguousarray(_reorder(sd[n["weight_hh"]], order).T)]
            if module.bias:
                b_ih = _reorder(sd[n["bias_ih"]], order)
                b_hh = _reorder(sd[n["bias_hh"]], order)
                w.append(np.stack([b_ih, b_hh]) if two_biases else b_ih + b_hh)
            per_dir.append(w)
        out.append(per_dir[0] if len(per_dir) == 1 else tuple(per_dir))
    return out


def _keras_directions(entry, name: str, n: int, D: int) -> list:
    """One layer's Keras entry as a list of D lists of n arrays."""
    if not isinstance(entry, (list, tuple)):
        raise TypeError(f"{name}: expected a list of Keras weight arrays, got "
                        f"{type(entry).__name__}")
    what = "[kernel, recurrent_kernel, bias]" if n == 3 else "[kernel, recurrent_kernel]"
    if D == 1:
        if len(entry) == 2 and n == 3 and all(isinstance(e, (list, tuple)) for e in entry):
            raise ValueError(f"{name}: got a (forward, backward) pair of a bidirectional layer, "
                             "but the module has bidirectional=False")
        if len(entry) != n:
            raise ValueError(f"{name}: expected {n} arrays {what}"
                             f"{' (the module has bias=False)' if n == 2 else ''}, got "
                             f"{len(entry)}")
        return [list(entry)]
    if len(entry) == 2 and all(isinstance(e, (list, tuple)) for e in entry):
        dirs = [list(e) for e in entry]
        for d, e in zip(("forward", "backward"), dirs):
            if len(e) != n:
                raise ValueError(f"{name} ({d} weights): expected {n} arrays {what}"
                                 f"{' (the module has bias=False)' if n == 2 else ''}, got "
                                 f"{len(e)}")
        return dirs
    if len(entry) == 2 * n:  # Keras' Bidirectional.get_weights(): forward then backward
        return [list(entry[:n]), list(entry[n:])]
    raise ValueError(f"{name}: the module is bidirectional: expected a pair (forward_weights, "
                     f"backward_weights) of {n} arrays each, or the {2 * n} arrays of Keras' "
                     f"Bidirectional.get_weights(), got {len(entry)} entries")


def from_keras(module, weights, *, reset_after=None):
    """Load weights in Keras' layout (see ``to_keras``) into `module`; returns it.

    `weights` has one entry per layer: ``[kernel, recurrent_kernel, bias]`` (``[kernel,
    recurrent_kernel]`` for a module with ``bias=False``), or for a bidirectional layer
    ``(forward_weights, backward_weights)`` or the flat list of Keras' ``Bidirectional``
    (forward's arrays, then backward's).  A one-bias Keras cell (LSTM, SimpleRNN,
    GRU(reset_after=False)) loads its bias into ``bias_ih`` and zeros into ``bias_hh``;
    a GRU(reset_after=True) bias (2, G*H) loads its rows into ``bias_ih`` and ``bias_hh``.
    A GRU's bias shape tells Keras' reset_after, which must equal the module's (as must
    ``reset_after`` here if given).  Nothing is changed unless all weights are valid.
    """
    kind = _kind(module, "from_keras")
    _check_reset_after(module, kind, reset_after)
    inv = _inverse(_KERAS_ORDER[kind])
    G, H = _GATES[kind], module.hidden_size
    GH = G * H
    shapes = {k: a.shape for k, a in module.state_dict().items()}
    layers = _layers_list(weights, module, "Keras")
    n = 3 if module.bias else 2
    sd = {}
    for k, (entry, layer) in enumerate(zip(layers, _names(module))):
        dirs = _keras_directions(entry, f"weights[{k}] (layer {k})", n, len(layer))
        for d, (arrays, names) in enumerate(zip(dirs, layer)):
            where = f"weights[{k}]" + ("" if len(layer) == 1 else f"[{d}]")
            where_l = f" (layer {k}{'' if len(layer) == 1 else ', ' + ('forward', 'backward')[d]})"
            I_k = shapes[names["weight_ih"]][1]
            kernel = _shaped(arrays[0], f"{where}[0] (kernel){where_l}", (I_k, GH))
            rec = _shaped(arrays[1], f"{where}[1] (recurrent_kernel){where_l}", (H, GH))
            sd[names["weight_ih"]] = _reorder(kernel.T, inv)
            sd[names["weight_hh"]] = _reorder(rec.T, inv)
            if not module.bias:
                continue
            bname = f"{where}[2] (bias){where_l}"
            bias = _array(arrays[2], bname)
            if kind == "GRU" and bias.shape in ((GH,), (2, GH)):
                keras_ra = bias.ndim == 2
                if keras_ra != module.reset_after:
                    raise ValueError(
                        f"reset_after: {bname} has shape {bias.shape}, the bias of Keras' "
                        f"GRU(reset_after={keras_ra}), but the module has reset_after="
                        f"{module.reset_after}; build the fusedrnn.GRU with the same reset_after")
            expected = (2, GH) if kind == "GRU" and module.reset_after else (GH,)
            bias = _shaped(bias, bname, expected)
            if bias.ndim == 2:
                b_ih, b_hh = bias[0], bias[1]
            else:
                b_ih, b_hh = bias, np.zeros_like(bias)
            sd[names["bias_ih"]] = _reorder(b_ih, inv)
            sd[names["bias_hh"]] = _reorder(b_hh, inv)
    module.load_state_dict(sd)
    return module
