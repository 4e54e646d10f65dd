"""Vanishing and exploding gradients: why LSTM and GRU exist, and what clipping does.

    python examples/gradients.py            # full run (a few minutes on 2 cores)
    python examples/gradients.py --quick    # a smoke run (about 10 s)

A long-lag task: a sequence of LAG + 1 noise vectors; the class to predict at the end
is the sign of the FIRST vector's first entry, so the only useful information is LAG
steps away from the loss.  Recurrent layers of the same width are compared: RNN
(tanh), RNN (relu), GRU, LSTM, and an LSTM whose forget gates start open (forget-gate
bias 1 instead of torch's uniform initialisation).  For each, ``backward`` gives dL/dx_t for every
step; the script plots the mean ||dL/dx_t|| against the distance LAG - t to the loss,
at initialisation and after training, and prints the ratio ||dL/dx_0|| / ||dL/dx_LAG||
(how much of the gradient survives LAG steps).  Vanilla RNNs lose it geometrically;
the LSTM's additive cell path and the GRU's update gate carry it further.

Second picture: a relu RNN whose recurrent matrix has spectral radius above 1 (an
exploding one), trained with plain SGD with and without ``fusedrnn.clip_grad_norm``.
Without clipping one huge step sends the weights (and the loss) to inf or NaN.
"""

from __future__ import annotations

import numpy as np
from _common import parse_args, plot_skipped, pyplot, report, save, softmax_cross_entropy

import fusedrnn as fr

INPUT = 4
MODELS = {"RNN tanh": lambda H, s: fr.RNN(INPUT, H, nonlinearity="tanh", seed=s),
          "RNN relu": lambda H, s: fr.RNN(INPUT, H, nonlinearity="relu", seed=s),
          "GRU": lambda H, s: fr.GRU(INPUT, H, seed=s),
          "LSTM": lambda H, s: fr.LSTM(INPUT, H, seed=s),
          "LSTM, forget bias 1": lambda H, s: forget_bias(fr.LSTM(INPUT, H, seed=s), 1.0)}


def forget_bias(lstm, value):
    """The usual LSTM trick: start the forget gates open (gate order i, f, g, o)."""
    sd, H = lstm.state_dict(), lstm.hidden_size
    sd["bias_ih_l0"][H:2 * H], sd["bias_hh_l0"][H:2 * H] = value, 0.0
    lstm.load_state_dict(sd)
    return lstm


def make_batch(rng, batch, lag):
    x = rng.standard_normal((lag + 1, batch, INPUT)).astype(np.float32)
    return x, (x[0, :, 0] > 0).astype(np.int64)


def final_h(state):
    return (state[0] if isinstance(state, tuple) else state)[-1]  # (B, H), last layer


def loss_and_grads(layer, readout, x, labels):
    """Loss, the gradients [layer's, readout's] and ||dL/dx_t|| per step (mean over batch)."""
    _, state, tape = layer.forward(x, train=True)
    h = final_h(state)
    loss, d = softmax_cross_entropy(h @ readout["weight"].T + readout["bias"], labels)
    dh = (d @ readout["weight"])[None]
    dx, _, g = layer.backward(tape, dstate=(dh, None) if isinstance(state, tuple) else dh)
    norms = np.linalg.norm(dx, axis=2).mean(axis=1)  # (T,)
    return loss, [g, {"weight": d.T @ h, "bias": d.sum(axis=0)}], norms


def new_readout(hidden, rng):
    return {"weight": rng.uniform(-0.1, 0.1, (2, hidden)).astype(np.float32),
            "bias": np.zeros(2, np.float32)}


def train(layer, readout, rng, steps, lag, opt, clip=None):
    losses = []
    for _ in range(steps):
        x, labels = make_batch(rng, 32, lag)
        with np.errstate(all="ignore"):  # an exploding run overflows on purpose
            loss, grads, _ = loss_and_grads(layer, readout, x, labels)
            if clip is not None:
                fr.clip_grad_norm(grads, clip)
            opt.step(grads)
        losses.append(loss)
    return losses


def exploding_rnn(hidden, seed, radius):
    """A relu RNN whose recurrent matrix is a random orthogonal matrix times ``radius``."""
    rnn = fr.RNN(INPUT, hidden, nonlinearity="relu", seed=seed)
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((hidden, hidden)))
    rnn.load_state_dict({**rnn.state_dict(), "weight_hh_l0": (radius * q).astype(np.float32)})
    return rnn


def key(name):
    return name.replace(",", "").replace(" ", "_")


def main():
    args = parse_args(__doc__)
    hidden, lag, steps = (32, 30, 60) if args.quick else (64, 20, 800)
    rng = np.random.default_rng(args.seed)
    probe = make_batch(np.random.default_rng(args.seed + 100), 256, lag)
    profiles, survive = {}, {}
    for name, make in MODELS.items():
        layer, readout = make(hidden, args.seed), new_readout(hidden, rng)
        at_init = loss_and_grads(layer, readout, *probe)[2]
        opt = fr.optim.Adam([layer, readout], lr=3e-3)
        losses = train(layer, readout, rng, steps, lag, opt, clip=1.0)
        loss, _, trained = loss_and_grads(layer, readout, *probe)
        acc = np.mean((final_h(layer(probe[0])[1]) @ readout["weight"].T).argmax(1) == probe[1])
        profiles[name] = (at_init[::-1], trained[::-1])  # index = distance to the loss
        survive[name] = (float(at_init[0] / at_init[-1]), float(trained[0] / trained[-1]))
        print(f"{name:19s} ||dL/dx_0|| / ||dL/dx_{lag}||: at init {survive[name][0]:.2e}, "
              f"after {steps} steps {survive[name][1]:.2e};  loss {np.mean(losses[:10]):.3f} "
              f"-> {loss:.3f}, accuracy {acc:.0%}")

    # Exploding: the same relu RNN (radius 2 recurrent matrix), SGD with and without clipping.
    explode = {}
    for clip in (None, 1.0):
        rnn = exploding_rnn(hidden, args.seed, 2.0)
        readout = new_readout(hidden, np.random.default_rng(args.seed + 1))
        opt = fr.optim.SGD([rnn, readout], lr=0.05)
        explode[clip] = train(rnn, readout, np.random.default_rng(args.seed), steps // 2, lag,
                              opt, clip)
        finite = np.isfinite(explode[clip])
        first_bad = int(np.argmin(finite)) if not finite.all() else None
        print(f"exploding relu RNN, SGD, clip_grad_norm {clip}: loss "
              f"{explode[clip][0]:.3g} -> {explode[clip][-1]:.3g}"
              + (f" (non-finite from step {first_bad + 1})" if first_bad is not None else ""))

    plt = pyplot()
    if plt is None:
        plot_skipped("gradient profiles")
    else:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), sharey=True)
        for ax, which, title in zip(axes, (0, 1), ("at initialisation", f"after {steps} steps")):
            for name, prof in profiles.items():
                ax.semilogy(prof[which], label=name)
            ax.set(xlabel="distance to the loss (steps)", title=title)
        axes[0].set_ylabel("mean ||dL/dx_t||")
        axes[0].legend(fontsize=8)
        save(fig, plt, args.out / "gradients_vanishing.png")
        fig, ax = plt.subplots(figsize=(5, 3))
        for clip, losses in explode.items():
            finite = np.isfinite(losses)
            label = "no clipping" if clip is None else f"clip_grad_norm({clip})"
            if not finite.all():
                ax.axvline(np.argmin(finite) + 1, color="C0", ls=":")
                label += f": inf/NaN from step {np.argmin(finite) + 1}"
            ax.semilogy(np.arange(1, len(losses) + 1), np.where(finite, losses, np.nan), "o-",
                        ms=3, label=label)
        ax.set(xlabel="SGD step", ylabel="loss", title="Exploding relu RNN")
        ax.legend()
        save(fig, plt, args.out / "gradients_exploding.png")
    report("gradients", lag=lag,
           **{f"survive_init_{key(k)}": v[0] for k, v in survive.items()},
           **{f"survive_trained_{key(k)}": v[1] for k, v in survive.items()},
           explode_noclip_finite=bool(np.isfinite(explode[None]).all()),
           explode_clip_finite=bool(np.isfinite(explode[1.0]).all()),
           explode_clip_first_loss=float(explode[1.0][0]),
           explode_clip_last_loss=float(explode[1.0][-1]))


if __name__ == "__main__":
    main()
