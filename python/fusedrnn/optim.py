"""Optimizers for training without a framework: SGD, Adam and AdamW.

The update rules are torch.optim's (single-tensor form, the one torch uses on the CPU),
so a float64 run follows torch step by step.  Parameters are fusedrnn layers and cells
(updated through their ``load_state_dict``, which repacks the kernels' weights) and
dicts of plain NumPy float arrays (updated in place)::

    opt = fusedrnn.optim.Adam([lstm, {"weight": W, "bias": b}], lr=2e-3)
    ...
    opt.step([g_lstm, {"weight": dW, "bias": db}])   # one grads dict per params source

There is no ``zero_grad``: ``backward`` returns fresh gradients, nothing accumulates.
A key that is absent (or None) in a grads dict means no gradient for that parameter
this step: it is skipped, as a torch parameter whose ``.grad`` is None.
"""

from __future__ import annotations

import numpy as np

from ._optimizer import Optimizer, _flag, _number

__all__ = ["Optimizer", "SGD", "Adam", "AdamW"]


# ------------------------------------------------------------------------------------ SGD
class SGD(Optimizer):
    """Stochastic gradient descent with momentum, as torch.optim.SGD.

    Per parameter p with gradient g (all in p's dtype)::

        g = -g if maximize
        g = g + weight_decay * p                       if weight_decay != 0
        if momentum != 0:
            b = g (first step)  or  b = momentum * b + (1 - dampening) * g
            g = g + momentum * b  if nesterov  else  b
        p = p - lr * g

    State per parameter: "momentum_buffer" (only with momentum).  No ``zero_grad``:
    gradients are passed to ``step``, not accumulated.
    """

    _state_keys = ("momentum_buffer",)

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, maximize=False):
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening,
                    "weight_decay": weight_decay, "nesterov": nesterov, "maximize": maximize}
        self._check_group(defaults, None)
        super().__init__(params, defaults)

    def _check_group(self, g, where):
        n = lambda k: self._name(where, k)  # noqa: E731
        g["lr"] = _number(g["lr"], n("lr"))
        g["momentum"] = _number(g["momentum"], n("momentum"))
        g["dampening"] = _number(g["dampening"], n("dampening"))
        g["weight_decay"] = _number(g["weight_decay"], n("weight_decay"))
        g["nesterov"] = _flag(g["nesterov"], n("nesterov"))
        g["maximize"] = _flag(g["maximize"], n("maximize"))
        if g["nesterov"] and (g["momentum"] <= 0 or g["dampening"] != 0):
            raise ValueError(f"{n('nesterov')}: Nesterov momentum needs momentum > 0 and "
                             f"dampening == 0, got momentum={g['momentum']}, "
                             f"dampening={g['dampening']}")

    def _update(self, p, g, state, group):
        lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
        if group["maximize"]:
            g = -g
        if wd != 0:
            g = g + wd * p
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(g, copy=True)
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * g
            g = g + momentum * buf if group["nesterov"] else buf
        p += (-lr) * g


# ------------------------------------------------------------------------------ Adam(W)
class Adam(Optimizer):
    """Adam (Kingma and Ba), as torch.optim.Adam; ``amsgrad`` as in Reddi et al.

    Per parameter p with gradient g, at step t = 1, 2, ...::

        g = -g if maximize
        g = g + weight_decay * p              if weight_decay != 0 (Adam: L2 in the gradient)
        m = m + (1 - beta1) * (g - m)          (torch's lerp)
        v = beta2 * v + (1 - beta2) * g * g
        v_max = max(v_max, v)                  if amsgrad (then used instead of v below)
        p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    State per parameter: "step", "exp_avg", "exp_avg_sq" and, with amsgrad,
    "max_exp_avg_sq".  No ``zero_grad``: gradients are passed to ``step``.
    """

    _state_keys = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, maximize=False):
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
                    "amsgrad": amsgrad, "maximize": maximize}
        self._check_group(defaults, None)
        super().__init__(params, defaults)

    def _check_group(self, g, where):
        n = lambda k: self._name(where, k)  # noqa: E731
        g["lr"] = _number(g["lr"], n("lr"))
        b = g["betas"]
        if not isinstance(b, (tuple, list)) or len(b) != 2:
            raise TypeError(f"{n('betas')}: expected a pair (beta1, beta2), got {b!r}")
        g["betas"] = (_number(b[0], n("betas") + "[0]", high=1.0, high_open=True),
                      _number(b[1], n("betas") + "[1]", high=1.0, high_open=True))
        g["eps"] = _number(g["eps"], n("eps"))
        g["weight_decay"] = _number(g["weight_decay"], n("weight_decay"))
        g["amsgrad"] = _flag(g["amsgrad"], n("amsgrad"))
        g["maximize"] = _flag(g["maximize"], n("maximize"))

    def _update(self, p, g, state, group):
        lr, (beta1, beta2), wd = group["lr"], group["betas"], group["weight_decay"]
        if group["maximize"]:
            g = -g
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(p)
            state["exp_avg_sq"] = np.zeros_like(p)
        if group["amsgrad"] and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = np.zeros_like(p)
        state["step"] += 1
        if wd != 0:
            if self._decoupled:
                p *= 1 - lr * wd
            else:
                g = g + wd * p
        m, v = state["exp_avg"], state["exp_avg_sq"]
        w = 1 - beta1
        if abs(w) < 0.5:  # torch's lerp, both branches
            m += w * (g - m)
        else:
            m[...] = g - (g - m) * (1 - w)
        v *= beta2
        v += (1 - beta2) * g * g
        t = state["step"]
        bias_correction1 = 1 - beta1**t
        bias_correction2_sqrt = (1 - beta2**t) ** 0.5
        step_size = lr / bias_correction1
        if group["amsgrad"]:
            vmax = state["max_exp_avg_sq"]
            np.maximum(vmax, v, out=vmax)
            v = vmax
        denom = np.sqrt(v) / bias_correction2_sqrt + group["eps"]
        p += (-step_size) * m / denom


class AdamW(Adam):
    """AdamW (Loshchilov and Hutter), as torch.optim.AdamW: Adam with decoupled weight
    decay, ``p = p * (1 - lr * weight_decay)`` before the Adam update (the gradient is not
    changed); default weight_decay 1e-2.  Otherwise the rules of :class:`Adam`."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, maximize=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize)

