"""A character-level LSTM language model trained with the NumPy API, then sampled.

    python examples/text_generation.py            # full run (several minutes on 2 cores)
    python examples/text_generation.py --quick    # a smoke run (about 10 s)

The text is this repository's own documentation (README.md and docs/*.md).  The model
reads one-hot characters, ``fusedrnn.LSTM`` (batch_first) runs over windows of the text,
and a linear readout (a plain dict of NumPy arrays) predicts the next character.  The
loss is the softmax cross-entropy; its gradient goes back through the readout by hand
and through the LSTM with ``lstm.backward``.  ``fusedrnn.clip_grad_norm`` clips the
gradients of both together and ``fusedrnn.optim.Adam`` updates both in place.

Sampling runs one character at a time: ``fusedrnn.LSTMCell.from_layer`` copies each
layer's weights into a cell, whose state is the tuple ``(h, c)``; the next character
is drawn from ``softmax(logits / temperature)`` with a seeded generator.

The text is small (tens of kB), so a model this size starts to memorise it: the
validation loss is checked 10 times and the weights with the lowest one are kept
(early stopping).
"""

from __future__ import annotations

import pathlib
import time

import numpy as np
from _common import parse_args, plot_skipped, pyplot, report, save, softmax_cross_entropy

import fusedrnn as fr

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_text():
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return "\n".join(f.read_text(encoding="utf-8") for f in files if f.exists())


class CharModel:
    """LSTM over one-hot characters -> linear readout to next-character logits."""

    def __init__(self, vocab, hidden, layers, seed):
        self.V = len(vocab)
        self.lstm = fr.LSTM(self.V, hidden, num_layers=layers, batch_first=True, seed=seed)
        rng = np.random.default_rng(seed + 1)
        bound = 1 / np.sqrt(hidden)
        self.readout = {"weight": rng.uniform(-bound, bound, (self.V, hidden)).astype(np.float32),
                        "bias": np.zeros(self.V, np.float32)}

    def one_hot(self, ids):
        return np.eye(self.V, dtype=np.float32)[ids]

    def loss(self, ids, targets, train):
        """Mean cross-entropy; with ``train`` also the gradients [lstm's, readout's]."""
        y, _, tape = self.lstm.forward(self.one_hot(ids), train=train)
        W, b = self.readout["weight"], self.readout["bias"]
        loss, dlogits = softmax_cross_entropy(y @ W.T + b, targets)
        if not train:
            return loss, None
        d_readout = {"weight": np.einsum("btv,bth->vh", dlogits, y),
                     "bias": dlogits.sum(axis=(0, 1))}
        _, _, d_lstm = self.lstm.backward(tape, dlogits @ W)
        return loss, [d_lstm, d_readout]


def sample(model, vocab, prompt, n_chars, temperature, rng):
    """Generate n_chars after ``prompt``, one character at a time through LSTMCells."""
    cells = [fr.LSTMCell.from_layer(model.lstm, layer=i)
             for i in range(model.lstm.num_layers)]
    states = [None] * len(cells)  # None: zero (h, c)
    index = {ch: i for i, ch in enumerate(vocab)}
    W, b = model.readout["weight"], model.readout["bias"]
    out, ids = [], [index[ch] for ch in prompt if ch in index]
    for step in range(len(ids) + n_chars):
        x = model.one_hot([ids[step]])  # (1, V): a batch of one
        for i, cell in enumerate(cells):
            states[i] = cell(x, states[i])  # (h, c)
            x = states[i][0]
        if step >= len(ids) - 1:
            logits = (x[0] @ W.T + b) / temperature
            p = np.exp(logits - logits.max())
            ids.append(int(rng.choice(len(vocab), p=p / p.sum())))
            out.append(vocab[ids[-1]])
        if len(out) == n_chars:
            break
    return prompt + "".join(out)


def main():
    args = parse_args(__doc__, lambda p: p.add_argument(
        "--temperature", type=float, default=0.7, help="sampling temperature (default 0.7)"))
    quick = args.quick
    hidden, layers, seq_len, batch = (64, 1, 32, 16) if quick else (128, 2, 64, 32)
    steps, lr = (80, 1e-2) if quick else (1200, 3e-3)
    text = load_text()
    vocab = sorted(set(text))
    data = np.array([vocab.index(ch) for ch in text], np.int64)
    split = int(0.9 * len(data))
    train, val = data[:split], data[split:]
    print(f"text: {len(text)} characters, {len(vocab)} distinct; LSTM hidden {hidden}, "
          f"{layers} layer(s); {steps} steps of {batch} windows x {seq_len} characters; "
          f"{fr.get_num_threads()} threads")

    model = CharModel(vocab, hidden, layers, args.seed)
    opt = fr.optim.Adam([model.lstm, model.readout], lr=lr)
    rng = np.random.default_rng(args.seed)

    def val_loss():
        n = min(len(val) - 1, 4096) // seq_len * seq_len  # whole windows of the held-out text
        ids = val[:n].reshape(-1, seq_len)
        targets = val[1:n + 1].reshape(-1, seq_len)
        return model.loss(ids, targets, train=False)[0]

    curve, val_curve, t0 = [], [(0, val_loss())], time.perf_counter()
    best = (0, np.inf, None, None)
    for step in range(1, steps + 1):
        starts = rng.integers(0, len(train) - seq_len - 1, batch)
        windows = np.stack([train[s:s + seq_len + 1] for s in starts])
        loss, grads = model.loss(windows[:, :-1], windows[:, 1:], train=True)
        fr.clip_grad_norm(grads, 1.0)
        opt.step(grads)
        curve.append(loss)
        if step % max(steps // 10, 1) == 0 or step == steps:
            val_curve.append((step, val_loss()))
            print(f"step {step:5d}  train loss {np.mean(curve[-20:]):.3f}  "
                  f"validation loss {val_curve[-1][1]:.3f}")
            if val_curve[-1][1] < best[1]:  # early stopping: keep the best weights seen
                best = (step, val_curve[-1][1], model.lstm.state_dict(),
                        {k: v.copy() for k, v in model.readout.items()})
    seconds = time.perf_counter() - t0
    print(f"training: {seconds:.1f} s ({1000 * seconds / steps:.1f} ms per step, "
          "validation included)")
    model.lstm.load_state_dict(best[2])
    for k, v in best[3].items():
        model.readout[k][...] = v  # in place: the optimizer holds these arrays
    print(f"best validation loss {best[1]:.3f} (step {best[0]}): those weights are kept")

    text_out = sample(model, vocab, "The LSTM", 300 if not quick else 120,
                      args.temperature, np.random.default_rng(args.seed))
    print(f"--- sample (temperature {args.temperature}) ---\n{text_out}\n---")

    plt = pyplot()
    if plt is None:
        plot_skipped("loss curve")
    else:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(np.arange(1, steps + 1), curve, lw=0.6, alpha=0.5, label="train (batch)")
        ax.plot(*zip(*val_curve), "o-", label="validation")
        ax.set(xlabel="step", ylabel="cross-entropy (nats/char)",
               title="Character-level LSTM on the repository's docs")
        ax.legend()
        save(fig, plt, args.out / "text_generation_loss.png")
    report("text_generation", first_loss=float(np.mean(curve[:5])),
           last_loss=float(np.mean(curve[-20:])), val_loss_init=val_curve[0][1],
           val_loss=best[1], best_step=best[0], uniform_loss=float(np.log(len(vocab))),
           seconds=seconds, sample_len=len(text_out))


if __name__ == "__main__":
    main()
