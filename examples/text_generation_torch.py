"""The character-level LSTM language model in PyTorch, with and without fusedrnn's kernels.

    python examples/text_generation_torch.py            # full run (a few minutes on 2 cores)
    python examples/text_generation_torch.py --quick    # a smoke run (about 10 s)

The model of text_generation.py (one-hot characters -> LSTM -> linear readout) written
as a ``torch.nn.Module`` and trained with ``torch.optim.Adam`` and
``torch.nn.utils.clip_grad_norm_``.  ``fusedrnn.torch.replace_rnns`` swaps the
``nn.LSTM`` inside a copy of the model for fusedrnn's drop-in (same weights, same
autograd); nothing else changes.  Both copies train on the same batches from the same
weights, so their losses agree up to rounding, and the script times them:
- per training step (forward, loss, backward, clipping, Adam), median over the steps;
- per generated character (one step of the model with its (h, c) state), median.
Both libraries get the same number of threads (--threads, default 2).
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
from _common import parse_args, report
from text_generation import load_text
from torch import nn

import fusedrnn as fr
import fusedrnn.torch as frt


class CharLSTM(nn.Module):
    def __init__(self, vocab_size, hidden, layers):
        super().__init__()
        self.vocab_size = vocab_size
        self.lstm = nn.LSTM(vocab_size, hidden, num_layers=layers, batch_first=True)
        self.readout = nn.Linear(hidden, vocab_size)

    def forward(self, ids, state=None):
        x = nn.functional.one_hot(ids, self.vocab_size).float()
        y, state = self.lstm(x, state)
        return self.readout(y), state


def train_step(model, opt, windows):
    logits, _ = model(windows[:, :-1])
    loss = nn.functional.cross_entropy(logits.reshape(-1, model.vocab_size),
                                       windows[:, 1:].reshape(-1))
    opt.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss.item()


@torch.no_grad()
def generate(model, vocab, prompt, n_chars, temperature, seed):
    """Sample one character at a time; returns the text and the seconds per character."""
    gen = torch.Generator().manual_seed(seed)
    index = {ch: i for i, ch in enumerate(vocab)}
    logits, state = model(torch.tensor([[index[ch] for ch in prompt]]))
    out, times = [], []
    for _ in range(n_chars):
        p = torch.softmax(logits[0, -1] / temperature, dim=0)
        nxt = torch.multinomial(p, 1, generator=gen)
        out.append(vocab[nxt.item()])
        t0 = time.perf_counter()
        logits, state = model(nxt[None], state)
        times.append(time.perf_counter() - t0)
    return prompt + "".join(out), float(np.median(times))


@torch.no_grad()
def val_loss(model, val, seq_len):
    n = min(len(val) - 1, 4096) // seq_len * seq_len
    ids, targets = val[:n].reshape(-1, seq_len), val[1:n + 1].reshape(-1, seq_len)
    logits, _ = model(ids)
    return nn.functional.cross_entropy(logits.reshape(-1, model.vocab_size),
                                       targets.reshape(-1)).item()


def main():
    args = parse_args(__doc__, lambda p: p.add_argument(
        "--threads", type=int, default=2, help="threads for torch and fusedrnn (default 2)"))
    torch.set_num_threads(args.threads)
    fr.set_num_threads(args.threads)
    hidden, layers, seq_len, batch = (64, 1, 32, 16) if args.quick else (128, 2, 64, 32)
    steps = 30 if args.quick else 300
    text = load_text()
    vocab = sorted(set(text))
    data = torch.tensor([vocab.index(ch) for ch in text])
    split = int(0.9 * len(data))
    train, val = data[:split], data[split:]
    print(f"text: {len(text)} characters; LSTM hidden {hidden}, {layers} layer(s); {steps} "
          f"steps of {batch} x {seq_len}; {args.threads} threads (torch and fusedrnn)")

    torch.manual_seed(args.seed)
    plain = CharLSTM(len(vocab), hidden, layers)
    fused = frt.replace_rnns(copy.deepcopy(plain))  # the same weights, fusedrnn's LSTM
    print(f"replaced: {type(fused.lstm).__module__}.{type(fused.lstm).__name__}")
    models = {"torch.nn": plain, "fusedrnn.torch": fused}
    opts = {k: torch.optim.Adam(m.parameters(), lr=3e-3) for k, m in models.items()}
    losses = {k: [] for k in models}
    step_times = {k: [] for k in models}
    rng = np.random.default_rng(args.seed)
    for _ in range(steps):
        starts = rng.integers(0, len(train) - seq_len - 1, batch)
        windows = torch.stack([train[s:s + seq_len + 1] for s in starts])
        for name, model in models.items():  # interleaved: both see the same machine load
            t0 = time.perf_counter()
            losses[name].append(train_step(model, opts[name], windows))
            step_times[name].append(time.perf_counter() - t0)
    for name, model in models.items():
        print(f"{name:15s} loss {np.mean(losses[name][:5]):.3f} -> "
              f"{np.mean(losses[name][-10:]):.3f}, validation {val_loss(model, val, seq_len):.3f}"
              f"; {1000 * np.median(step_times[name]):.2f} ms per training step (median)")

    per_char = {}
    for name, model in models.items():
        sample, per_char[name] = generate(model, vocab, "The LSTM", 200, 0.7, args.seed)
        print(f"{name:15s} {1e6 * per_char[name]:.0f} us per generated character (median)")
    print(f"--- sample (fusedrnn.torch, temperature 0.7) ---\n{sample}\n---")
    t_plain, t_fused = (np.median(step_times[k]) for k in models)
    print(f"training step: fusedrnn.torch {t_plain / t_fused:.2f}x the speed of torch.nn; "
          f"generation: {per_char['torch.nn'] / per_char['fusedrnn.torch']:.2f}x")
    report("text_generation_torch", threads=args.threads,
           first_loss=float(np.mean(losses["fusedrnn.torch"][:5])),
           last_loss=float(np.mean(losses["fusedrnn.torch"][-10:])),
           max_loss_diff=float(np.max(np.abs(np.subtract(*losses.values())))),
           step_ms_torch=1000 * t_plain, step_ms_fused=1000 * t_fused,
           char_us_torch=1e6 * per_char["torch.nn"], char_us_fused=1e6 * per_char["fusedrnn.torch"])


if __name__ == "__main__":
    main()
