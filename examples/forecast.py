"""A GRU forecasting a seasonal time series, against the naive and seasonal-naive baselines.

    python examples/forecast.py            # full run (about a minute on 2 cores)
    python examples/forecast.py --quick    # a smoke run (a few seconds)

The series is synthetic: a linear trend, a season of PERIOD steps, a slower second
cycle and Gaussian noise.  The model is many-to-one: ``fusedrnn.GRU`` reads a window
of the last WINDOW values and a linear readout of its final hidden state predicts the
next value.  Each window is shifted by its own last value (the model sees and predicts
changes), so the trend never takes it outside the range it was trained on.

Evaluation on the held-out end of the series:
- one step ahead: every test window -> the next value;
- a multi-step forecast: from the start of the test part, each prediction is appended
  to the window and fed back in, step by step, for HORIZON steps.
Both are compared (mean squared error) with the naive forecast (the last value seen)
and the seasonal-naive one (the value one season earlier).  The PNG shows the
multi-step forecast against the truth.
"""

from __future__ import annotations

import numpy as np
from _common import parse_args, plot_skipped, pyplot, report, save

import fusedrnn as fr

PERIOD, WINDOW, HORIZON, NOISE = 24, 48, 72, 0.1


def make_series(n, rng):
    t = np.arange(n)
    return (0.004 * t + np.sin(2 * np.pi * t / PERIOD) + 0.4 * np.sin(2 * np.pi * t / 168)
            + NOISE * rng.standard_normal(n)).astype(np.float32)


def windows(series, start, stop):
    """Windows series[i - WINDOW:i] and targets series[i] for i in [start, stop)."""
    idx = np.arange(start, stop)
    return np.stack([series[i - WINDOW:i] for i in idx]), series[idx]


class Forecaster:
    def __init__(self, hidden, seed):
        self.gru = fr.GRU(1, hidden, batch_first=True, seed=seed)
        self.readout = {"weight": np.zeros((1, hidden), np.float32),
                        "bias": np.zeros(1, np.float32)}

    def predict(self, x, train=False):
        """x: (B, WINDOW) values -> predictions (B,), and what backward needs."""
        last = x[:, -1:]
        _, h_n, tape = self.gru.forward((x - last)[..., None], train=train)
        h = h_n[0]  # (B, hidden): the final state of the one layer
        return (h @ self.readout["weight"].T + self.readout["bias"])[:, 0] + last[:, 0], (h, tape)

    def train_step(self, x, y, opt):
        pred, (h, tape) = self.predict(x, train=True)
        err = pred - y
        d = (2 * err / len(y))[:, None].astype(np.float32)  # dL/dpred for the mean squared error
        _, _, g_gru = self.gru.backward(tape, dstate=(d @ self.readout["weight"])[None])
        g_readout = {"weight": d.T @ h, "bias": d.sum(axis=0)}
        fr.clip_grad_norm([g_gru, g_readout], 1.0)
        opt.step([g_gru, g_readout])
        return float(np.mean(err ** 2))

    def forecast(self, history, steps):
        """Multi-step forecast: each prediction is fed back as the newest input value."""
        window, out = list(history[-WINDOW:]), []
        for _ in range(steps):
            pred, _ = self.predict(np.array([window[-WINDOW:]], np.float32))
            out.append(float(pred[0]))
            window.append(out[-1])
        return np.array(out)


def mse(a, b):
    return float(np.mean((np.asarray(a) - np.asarray(b)) ** 2))


def main():
    args = parse_args(__doc__)
    hidden, n, epochs, batch = (32, 1200, 4, 32) if args.quick else (64, 3000, 25, 32)
    rng = np.random.default_rng(args.seed)
    series = make_series(n, rng)
    split = n - 2 * HORIZON  # the last 2 * HORIZON values are held out
    x_train, y_train = windows(series, WINDOW, split)
    x_test, y_test = windows(series, split, n)
    print(f"series: {n} values (period {PERIOD}, noise sd {NOISE}); GRU hidden {hidden}; "
          f"{len(x_train)} training windows of {WINDOW}; {epochs} epochs")

    model = Forecaster(hidden, args.seed)
    opt = fr.optim.Adam([model.gru, model.readout], lr=3e-3)
    losses = []
    for epoch in range(epochs):
        order = rng.permutation(len(x_train))
        epoch_loss = [model.train_step(x_train[b], y_train[b], opt)
                      for b in np.array_split(order, len(order) // batch)]
        losses.append(float(np.mean(epoch_loss)))
        print(f"epoch {epoch + 1:3d}  train MSE {losses[-1]:.4f}")

    one_step = {"gru": mse(model.predict(x_test)[0], y_test),
                "naive": mse(x_test[:, -1], y_test),
                "seasonal_naive": mse(x_test[:, -PERIOD], y_test)}
    truth = series[split:split + HORIZON]
    history = series[:split]
    multi = {"gru": model.forecast(history, HORIZON),
             "naive": np.full(HORIZON, history[-1]),
             "seasonal_naive": np.resize(history[-PERIOD:], HORIZON)}
    multi_mse = {k: mse(v, truth) for k, v in multi.items()}
    print(f"one-step MSE on {len(y_test)} held-out values:  " +
          "  ".join(f"{k} {v:.4f}" for k, v in one_step.items()))
    print(f"{HORIZON}-step forecast MSE (fed back):   " +
          "  ".join(f"{k} {v:.4f}" for k, v in multi_mse.items()))
    print(f"(the noise alone gives MSE {NOISE ** 2:.4f})")

    plt = pyplot()
    if plt is None:
        plot_skipped("forecast")
    else:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        t_hist = np.arange(split - 3 * PERIOD, split)
        t_fut = np.arange(split, split + HORIZON)
        ax.plot(t_hist, series[t_hist], color="0.4", lw=1, label="history")
        ax.plot(t_fut, truth, color="k", lw=1, label="truth")
        ax.plot(t_fut, multi["seasonal_naive"], ":", label="seasonal naive")
        ax.plot(t_fut, multi["naive"], "--", label="naive")
        ax.plot(t_fut, multi["gru"], lw=2, label="GRU (fed back)")
        ax.set(xlabel="t", title=f"{HORIZON}-step forecast, MSE: GRU {multi_mse['gru']:.3f}, "
               f"seasonal naive {multi_mse['seasonal_naive']:.3f}")
        ax.legend(loc="upper left", fontsize=8)
        save(fig, plt, args.out / "forecast.png")
    report("forecast", first_loss=losses[0], last_loss=losses[-1],
           **{f"one_step_{k}": v for k, v in one_step.items()},
           **{f"multi_{k}": v for k, v in multi_mse.items()})


if __name__ == "__main__":
    main()
