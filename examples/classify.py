"""Many-to-one classification of variable-length sequences with ``lengths``.

    python examples/classify.py            # full run (about a minute on 2 cores)
    python examples/classify.py --quick    # a smoke run (a few seconds)

Each sequence is a string of random tokens from an alphabet of VOCAB symbols, of its
own length between MIN_LEN and MAX_LEN; the label says whether the pattern 1 2 3
occurs in it (half the sequences have it planted).  The sequences are padded to a
common length with MORE random tokens, which may contain the pattern too: only
``lengths`` tells the model where each sequence ends.

``fusedrnn.LSTM(..., batch_first=True)`` is called with ``lengths=``: each sequence's
final state ``h_n`` is taken at its own last step (torch's packed-sequence semantics),
so the padding cannot leak in.  A linear readout of ``h_n`` gives the two logits; the
gradient enters the LSTM through ``dstate`` (its final state), not through the outputs.
The result is the accuracy on held-out sequences (chance: 50%).
"""

from __future__ import annotations

import numpy as np
from _common import parse_args, plot_skipped, pyplot, report, save, softmax_cross_entropy

import fusedrnn as fr

VOCAB, MIN_LEN, MAX_LEN, PATTERN = 6, 8, 40, (1, 2, 3)


def contains(seq, pattern=PATTERN):
    k = len(pattern)
    return any(tuple(seq[i:i + k]) == pattern for i in range(len(seq) - k + 1))


def make_data(n, rng):
    """Tokens (n, MAX_LEN) padded with random tokens, lengths (n,), labels (n,)."""
    tokens = rng.integers(0, VOCAB, (n, MAX_LEN))
    lengths = rng.integers(MIN_LEN, MAX_LEN + 1, n)
    for i in np.flatnonzero(rng.random(n) < 0.5):  # plant the pattern in about half
        at = rng.integers(0, lengths[i] - len(PATTERN) + 1)
        tokens[i, at:at + len(PATTERN)] = PATTERN
    labels = np.array([contains(tokens[i, :lengths[i]]) for i in range(n)], np.int64)
    return tokens, lengths, labels


class Classifier:
    def __init__(self, hidden, seed):
        self.lstm = fr.LSTM(VOCAB, hidden, batch_first=True, seed=seed)
        rng = np.random.default_rng(seed + 1)
        self.readout = {"weight": rng.uniform(-0.1, 0.1, (2, hidden)).astype(np.float32),
                        "bias": np.zeros(2, np.float32)}

    def logits(self, tokens, lengths, train=False):
        x = np.eye(VOCAB, dtype=np.float32)[tokens]  # one-hot (B, T, VOCAB)
        _, (h_n, _), tape = self.lstm.forward(x, lengths=lengths, train=train)
        h = h_n[0]  # (B, hidden): each sequence's state at its own last step
        return h @ self.readout["weight"].T + self.readout["bias"], h, tape

    def train_step(self, tokens, lengths, labels, opt):
        logits, h, tape = self.logits(tokens, lengths, train=True)
        loss, d = softmax_cross_entropy(logits, labels)
        dh_n = (d @ self.readout["weight"])[None]  # (1, B, hidden)
        _, _, g_lstm = self.lstm.backward(tape, dstate=(dh_n, None))
        grads = [g_lstm, {"weight": d.T @ h, "bias": d.sum(axis=0)}]
        fr.clip_grad_norm(grads, 1.0)
        opt.step(grads)
        return loss

    def accuracy(self, tokens, lengths, labels):
        return float(np.mean(self.logits(tokens, lengths)[0].argmax(axis=1) == labels))


def main():
    args = parse_args(__doc__)
    hidden, n_train, epochs, batch = (32, 3000, 3, 32) if args.quick else (64, 8000, 6, 32)
    rng = np.random.default_rng(args.seed)
    train, test = make_data(n_train, rng), make_data(2000, rng)
    print(f"{n_train} training and {len(test[0])} held-out sequences, lengths {MIN_LEN}-"
          f"{MAX_LEN}, {test[2].mean():.0%} positive; LSTM hidden {hidden}; {epochs} epochs")

    model = Classifier(hidden, args.seed)
    opt = fr.optim.Adam([model.lstm, model.readout], lr=1e-2 if args.quick else 5e-3)
    acc_before = model.accuracy(*test)
    history = [(0, acc_before)]
    losses = []
    for epoch in range(1, epochs + 1):
        order = rng.permutation(n_train)
        losses.append(float(np.mean([model.train_step(*(a[b] for a in train), opt)
                                     for b in np.array_split(order, n_train // batch)])))
        history.append((epoch, model.accuracy(*test)))
        print(f"epoch {epoch:3d}  train loss {losses[-1]:.4f}  held-out accuracy "
              f"{history[-1][1]:.1%}")

    # What `lengths` buys: the same trained model, asked to read the padding as well.
    full = np.full(len(test[0]), MAX_LEN)
    acc_ignoring_lengths = float(np.mean(
        model.logits(test[0], full)[0].argmax(axis=1) == test[2]))
    print(f"held-out accuracy {history[-1][1]:.1%} (chance 50%); the same model reading the "
          f"padding too (no lengths): {acc_ignoring_lengths:.1%}")

    plt = pyplot()
    if plt is None:
        plot_skipped("accuracy")
    else:
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot(*zip(*history), "o-")
        ax.axhline(0.5, color="0.6", ls=":", label="chance")
        ax.set(xlabel="epoch", ylabel="held-out accuracy", ylim=(0.4, 1.0),
               title="Does 1 2 3 occur? (variable lengths)")
        ax.legend()
        save(fig, plt, args.out / "classify.png")
    report("classify", first_loss=losses[0], last_loss=losses[-1], accuracy_init=acc_before,
           accuracy=history[-1][1], accuracy_ignoring_lengths=acc_ignoring_lengths)


if __name__ == "__main__":
    main()
