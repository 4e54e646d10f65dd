"""An encoder-decoder that adds two numbers written as digit strings: "52+89" -> "141".

    python examples/seq2seq.py            # full run (a few minutes)
    python examples/seq2seq.py --quick    # a smoke run (about 10 s)

Encoder: ``fusedrnn.LSTM`` reads the question one character at a time (the questions
have different lengths, so it is called with ``lengths=``); its final state (h, c)
is all the decoder gets.  Decoder: a second ``fusedrnn.LSTM`` starts from that state
and writes the sum with one digit more than the numbers (zero-padded: 52+9 -> "061").
Training uses teacher forcing: the decoder reads GO followed by the true answer
shifted by one.  The gradient flows from the decoder's loss into its initial state
(``dstate0`` of its backward) and from there into the encoder's backward as ``dstate``.

Greedy decoding runs the decoder as ``fusedrnn.LSTMCell.from_layer(decoder)``: one
step at a time, each predicted digit fed back as the next input.  The result is the
exact-match accuracy (the whole answer right) on held-out questions.
"""

from __future__ import annotations

import numpy as np
from _common import parse_args, plot_skipped, pyplot, report, save, softmax_cross_entropy

import fusedrnn as fr

PLUS, GO = 10, 10  # encoder alphabet: digits and "+"; decoder inputs: digits and GO


def one_hot(ids, n):
    return np.eye(n, dtype=np.float32)[ids]


def make_batch(rng, n, digits, exclude=None):
    """Questions (n, 2 * digits + 1) left-aligned and padded, lengths, answers (n, digits + 1)."""
    a, b = rng.integers(0, 10 ** digits, (2, n))
    if exclude is not None:  # keep the held-out pairs out of training
        keep = ~np.isin(a * 10 ** digits + b, exclude)
        a, b = a[keep], b[keep]
    T = 2 * digits + 1
    questions = np.zeros((len(a), T), np.int64)
    lengths = np.zeros(len(a), np.int64)
    for i, text in enumerate(f"{x}+{y}" for x, y in zip(a, b)):
        questions[i, :len(text)] = [PLUS if ch == "+" else int(ch) for ch in text]
        lengths[i] = len(text)
    answers = np.array([[int(ch) for ch in f"{s:0{digits + 1}d}"] for s in a + b], np.int64)
    return questions, lengths, answers, a * 10 ** digits + b


class Adder:
    def __init__(self, hidden, seed):
        self.encoder = fr.LSTM(11, hidden, batch_first=True, seed=seed)
        self.decoder = fr.LSTM(11, hidden, batch_first=True, seed=seed + 1)
        rng = np.random.default_rng(seed + 2)
        bound = 1 / np.sqrt(hidden)
        self.readout = {"weight": rng.uniform(-bound, bound, (10, hidden)).astype(np.float32),
                        "bias": np.zeros(10, np.float32)}

    def params(self):
        return [self.encoder, self.decoder, self.readout]

    def train_step(self, questions, lengths, answers, opt):
        _, state, enc_tape = self.encoder.forward(one_hot(questions, 11), lengths=lengths)
        go = np.full((len(answers), 1), GO)
        dec_in = one_hot(np.concatenate([go, answers[:, :-1]], axis=1), 11)  # teacher forcing
        y, _, dec_tape = self.decoder.forward(dec_in, state)
        W, b = self.readout["weight"], self.readout["bias"]
        loss, d = softmax_cross_entropy(y @ W.T + b, answers)
        g_readout = {"weight": np.einsum("btv,bth->vh", d, y), "bias": d.sum(axis=(0, 1))}
        _, d_state, g_dec = self.decoder.backward(dec_tape, d @ W)
        _, _, g_enc = self.encoder.backward(enc_tape, dstate=d_state)
        grads = [g_enc, g_dec, g_readout]
        fr.clip_grad_norm(grads, 1.0)
        opt.step(grads)
        return loss

    def answer(self, questions, lengths, n_digits):
        """Greedy decoding, one digit at a time, with the decoder's weights in a cell."""
        _, (h, c) = self.encoder(one_hot(questions, 11), lengths=lengths)
        cell = fr.LSTMCell.from_layer(self.decoder, layer=0, direction=0)
        state = (h[0], c[0])  # LSTMCell state: (h, c), each (B, hidden)
        token = np.full(len(questions), GO)
        out = []
        for _ in range(n_digits):
            state = cell(one_hot(token, 11), state)
            token = (state[0] @ self.readout["weight"].T + self.readout["bias"]).argmax(axis=1)
            out.append(token)
        return np.stack(out, axis=1)


def main():
    args = parse_args(__doc__, lambda p: p.add_argument(
        "--digits", type=int, default=2, help="digits per number (default 2; 3 needs far "
        "more steps)"))
    digits = args.digits
    hidden, steps, batch = (64, 600, 64) if args.quick else (128, 6000, 64)
    rng = np.random.default_rng(args.seed)
    test_q, test_len, test_ans, test_keys = make_batch(rng, 1000, digits)
    print(f"adding two numbers of up to {digits} digits; encoder and decoder LSTM hidden "
          f"{hidden}; {steps} steps of {batch} questions; 1000 held-out questions")

    model = Adder(hidden, args.seed)
    lr = 1e-2 if args.quick else 5e-3
    opt = fr.optim.Adam(model.params(), lr=lr)
    losses, curve = [], []
    for step in range(1, steps + 1):
        if step in (steps // 2, 3 * steps // 4):  # step decay: halve the learning rate
            for group in opt.param_groups:
                group["lr"] /= 2
        q, lengths, ans, _ = make_batch(rng, batch, digits, exclude=test_keys)
        losses.append(model.train_step(q, lengths, ans, opt))
        if step % (steps // 10) == 0:
            pred = model.answer(test_q, test_len, digits + 1)
            curve.append((step, float(np.mean((pred == test_ans).all(axis=1))),
                          float(np.mean(pred == test_ans))))
            print(f"step {step:5d}  loss {np.mean(losses[-50:]):.4f}  held-out exact match "
                  f"{curve[-1][1]:.1%}  digits right {curve[-1][2]:.1%}")

    pred = model.answer(test_q, test_len, digits + 1)
    for q, n, p in list(zip(test_q, test_len, pred))[:5]:
        text = "".join("+" if t == PLUS else str(t) for t in q[:n])
        print(f"  {text:>{2 * digits + 1}} = {''.join(map(str, p))}   (true {eval(text)})")

    plt = pyplot()
    if plt is None:
        plot_skipped("accuracy")
    else:
        fig, ax = plt.subplots(figsize=(5, 3))
        steps_, exact, per_digit = zip(*curve)
        ax.plot(steps_, exact, "o-", label="exact match")
        ax.plot(steps_, per_digit, "s--", label="digits right")
        ax.set(xlabel="step", ylabel="held-out accuracy", ylim=(0, 1),
               title=f"Encoder-decoder: adding {digits}-digit numbers")
        ax.legend()
        save(fig, plt, args.out / "seq2seq.png")
    report("seq2seq", first_loss=float(np.mean(losses[:20])),
           last_loss=float(np.mean(losses[-50:])), exact_match=curve[-1][1],
           digit_accuracy=curve[-1][2], digits=digits)


if __name__ == "__main__":
    main()
