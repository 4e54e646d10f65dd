"""Multi-layer, optionally bidirectional networks chained from the single-layer
functions, with torch.nn's parameter names and state layout."""

from __future__ import annotations

import numpy as np

from .gru import gru_backward, gru_forward
from .lstm import lstm_backward, lstm_forward
from .rnn import rnn_backward, rnn_forward


# kind -> (cell, number of gates, keyword arguments of its *_forward)
_STACK_KINDS = {
    "lstm": ("lstm", 4, {}),
    "gru": ("gru", 3, {"reset_after": True}),
    "gru_reset_before": ("gru", 3, {"reset_after": False}),
    "rnn_tanh": ("rnn", 1, {"nonlinearity": "tanh"}),
    "rnn_relu": ("rnn", 1, {"nonlinearity": "relu"}),
}
_PARAM_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")


def _suffix(layer, direction):
    """torch's parameter-name suffix: '_l0', '_l1_reverse', ..."""
    return f"_l{layer}" + ("_reverse" if direction else "")


def _state(a, shape, dtype, name):
    if a is None:
        return np.zeros(shape, dtype)
    if a.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {a.shape}")
    return a


def stack_forward(kind, x, hx, params, *, num_layers=1, bidirectional=False, lengths=None,
                  dropout_masks=None):
    """A multi-layer, optionally bidirectional network, like torch.nn.LSTM/GRU/RNN with
    ``batch_first=False``.  Returns (y, h_n, c_n, cache); c_n is None except for LSTM.

    kind: "lstm", "gru" (reset_after=True), "gru_reset_before" (reset_after=False),
    "rnn_tanh" or "rnn_relu".  params: torch's state_dict names and shapes,
    ``weight_ih_l{k}``, ``weight_hh_l{k}``, optional ``bias_ih_l{k}``/``bias_hh_l{k}``
    (both absent: bias=False), optional ``weight_hr_l{k}`` (LSTM projection), and the same
    with the suffix ``_reverse`` for the reverse direction.  With D = 2 if bidirectional
    else 1 and H_out = P with a projection else H:

        x   (T, B, I)             layer k > 0 reads the (T, B, D*H_out) output of layer k-1
        hx  LSTM: (h0, c0), h0 (L*D, B, H_out), c0 (L*D, B, H); else h0 (L*D, B, H);
            None (or None for either of h0, c0) means zeros.  Layer l, direction d
            (0 forward, 1 reverse) is index l*D + d.
        y   (T, B, D*H_out)       forward direction in the first H_out columns, then reverse
        h_n (L*D, B, H_out), c_n (L*D, B, H)

    lengths: as for the single-layer functions, for every layer.  dropout_masks: None or
    num_layers - 1 arrays, mask k of the shape of layer k's output, multiplied into the
    input of layer k + 1 (already scaled by the caller, e.g. 0 or 1/(1-p)).
    """
    if kind not in _STACK_KINDS:
        raise ValueError(f"kind: expected one of {list(_STACK_KINDS)}, got {kind!r}")
    cell, G, kw = _STACK_KINDS[kind]
    L, D = num_layers, (2 if bidirectional else 1)
    T, B = x.shape[:2]
    H = params["weight_hh_l0"].shape[0] // G
    H_out = params["weight_hr_l0"].shape[0] if "weight_hr_l0" in params else H

    expected = {n + _suffix(l, d) for l in range(L) for d in range(D) for n in _PARAM_NAMES}
    unknown = set(params) - expected
    if unknown:
        raise ValueError(f"params: unexpected names {sorted(unknown)} for num_layers={L}, "
                         f"bidirectional={bidirectional}")
    if dropout_masks is not None and len(dropout_masks) != L - 1:
        raise ValueError(f"dropout_masks: expected {L - 1} masks (num_layers - 1), "
                         f"got {len(dropout_masks)}")

    if cell == "lstm":
        h0, c0 = (None, None) if hx is None else hx
        c0 = _state(c0, (L * D, B, H), x.dtype, "c0")
    else:
        h0 = hx
    h0 = _state(h0, (L * D, B, H_out), x.dtype, "h0")
    h_n = np.zeros((L * D, B, H_out), x.dtype)
    c_n = np.zeros((L * D, B, H), x.dtype) if cell == "lstm" else None

    caches = []  # caches[l][d]: the single-layer cache of layer l, direction d
    layer_in = x
    for l in range(L):
        if l > 0 and dropout_masks is not None:
            layer_in = layer_in * dropout_masks[l - 1]
        ys, caches_l = [], []
        for d in range(D):
            k = l * D + d
            p = {n: params.get(n + _suffix(l, d)) for n in _PARAM_NAMES}
            w = (p["weight_ih"], p["weight_hh"], p["bias_ih"], p["bias_hh"])
            opts = dict(lengths=lengths, reverse=(d == 1))
            if cell == "lstm":
                y_d, h_n[k], c_n[k], cache = lstm_forward(layer_in, h0[k], c0[k], *w, **opts,
                                                          weight_hr=p["weight_hr"])
            elif cell == "gru":
                y_d, h_n[k], cache = gru_forward(layer_in, h0[k], *w, **kw, **opts)
            else:
                y_d, h_n[k], cache = rnn_forward(layer_in, h0[k], *w, **kw, **opts)
            ys.append(y_d)
            caches_l.append(cache)
        caches.append(caches_l)
        layer_in = np.concatenate(ys, axis=-1)
    cache = dict(kind=kind, num_layers=L, directions=D, H_out=H_out, caches=caches,
                 dropout_masks=dropout_masks)
    return layer_in, h_n, c_n, cache


def stack_backward(cache, dy, dh_n=None, dc_n=None):
    """Gradients of ``stack_forward`` given dL/dy (T, B, D*H_out) and optionally dL/dh_n,
    dL/dc_n (L*D, B, ...).  Returns a dict: dx, dh0, dc0 (LSTM only) and the gradient
    of every parameter under its name in ``params`` (e.g. ``weight_hh_l1_reverse``)."""
    L, D, H_out = cache["num_layers"], cache["directions"], cache["H_out"]
    masks = cache["dropout_masks"]
    cell = _STACK_KINDS[cache["kind"]][0]
    backward = {"lstm": lstm_backward, "gru": gru_backward, "rnn": rnn_backward}[cell]
    grads, dh0, dc0 = {}, [None] * (L * D), [None] * (L * D)
    d_out = dy  # dL/d(output of the current layer)
    for l in reversed(range(L)):
        d_in = 0  # dL/d(input of layer l): the sum over its directions
        for d in range(D):
            k = l * D + d
            douts = [d_out[..., d * H_out : (d + 1) * H_out], None if dh_n is None else dh_n[k]]
            if cell == "lstm":
                douts.append(None if dc_n is None else dc_n[k])
            g = backward(cache["caches"][l][d], *douts)
            dh0[k] = g.pop("dh0")
            if cell == "lstm":
                dc0[k] = g.pop("dc0")
            d_in = d_in + g.pop("dx")
            grads.update((name + _suffix(l, d), v) for name, v in g.items())
        d_out = d_in * masks[l - 1] if l > 0 and masks is not None else d_in
    out = dict(dx=d_out, dh0=np.stack(dh0))
    if cell == "lstm":
        out["dc0"] = np.stack(dc0)
    out.update(grads)
    return out
