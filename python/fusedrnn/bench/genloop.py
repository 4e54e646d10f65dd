"""The generation-loop benchmark: per-step cost of an autoregressive loop.

``python -m fusedrnn.bench.genloop`` times one greedy loop, embedding -> LSTMCell ->
linear -> argmax -> next token, B = 1, written three ways with the same weights:
``torch.nn`` modules, the same model after ``fusedrnn.torch.replace_rnns``, and the
NumPy recipe of docs/pytorch.md ("Generation loops": ``fusedrnn.LSTMCell`` and NumPy
products).  It checks that the three give the same tokens, then times them in
alternating rounds and prints µs per step (best round; CPU time of this thread with
``--cpu-time``, for a machine shared with other work).  Needs torch.
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np

import fusedrnn as fr


def loops(torch, vocab, embed, hidden, seed=0):
    """{name: generate(token, steps) -> list of tokens} for the three ways."""
    import fusedrnn.torch as frt  # noqa: PLC0415 -- needs torch

    nn = torch.nn
    torch.manual_seed(seed)
    emb, cell, out = nn.Embedding(vocab, embed), nn.LSTMCell(embed, hidden), nn.Linear(hidden,
                                                                                     vocab)
    model = nn.ModuleDict({"emb": emb, "cell": cell, "out": out})
    ours = frt.replace_rnns(copy.deepcopy(model))

    def torch_loop(m):
        @torch.no_grad()
        def generate(token, steps):
            x, state, tokens = torch.tensor([token]), None, []
            for _ in range(steps):
                state = m["cell"](m["emb"](x), state)
                x = m["out"](state[0]).argmax(-1)
                tokens.append(int(x))
            return tokens
        return generate

    np_cell = fr.LSTMCell(embed, hidden)
    np_cell.load_state_dict(cell.state_dict())
    w_emb = emb.weight.detach().numpy()
    w_out, b_out = out.weight.detach().numpy().T.copy(), out.bias.detach().numpy()

    def numpy_loop(token, steps):
        h = c = np.zeros((1, hidden), np.float32)
        tokens = []
        for _ in range(steps):
            h, c = np_cell(w_emb[[token]], (h, c))
            token = int((h[0] @ w_out + b_out).argmax())
            tokens.append(token)
        return tokens

    return {"torch.nn": torch_loop(model), "replace_rnns": torch_loop(ours),
            "numpy": numpy_loop}


def measure(steps=200, vocab=256, embed=64, hidden=256, rounds=7, cpu_time=False):
    """µs per step of each way (best of `rounds` alternating rounds), after checking that
    they give the same tokens.  Raises AssertionError if they do not."""
    import torch  # noqa: PLC0415

    clock = time.thread_time if cpu_time else time.perf_counter
    ways = loops(torch, vocab, embed, hidden)
    want = ways["torch.nn"](3, steps)
    for name, f in ways.items():
        got = f(3, steps)
        assert got == want, f"{name}: tokens differ from torch.nn's"
    best = dict.fromkeys(ways, float("inf"))
    for _ in range(rounds):
        for name, f in ways.items():
            t = clock()
            f(3, steps)
            best[name] = min(best[name], (clock() - t) / steps * 1e6)
    return best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m fusedrnn.bench.genloop", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--cpu-time", action="store_true",
                   help="time.thread_time instead of wall time (a loaded machine)")
    p.add_argument("--threads", type=int, default=1,
                   help="fusedrnn.set_num_threads and torch.set_num_threads (default 1)")
    args = p.parse_args(argv)
    import torch  # noqa: PLC0415

    torch.set_num_threads(args.threads)
    fr.set_num_threads(args.threads)
    best = measure(args.steps, hidden=args.hidden, rounds=args.rounds, cpu_time=args.cpu_time)
    print(f"generation loop: embedding -> LSTMCell -> linear -> argmax, B=1, E=64, "
          f"H={args.hidden}, V=256, {args.steps} steps, {args.threads} thread(s); "
          f"{'CPU' if args.cpu_time else 'wall'} µs per step, best of {args.rounds} "
          "alternating rounds; the same tokens checked")
    base = best["torch.nn"]
    for name, us in best.items():
        print(f"  {name:<13} {us:8.1f}   x torch.nn {base / us:5.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
