"""Data-parallel training of a fusedrnn.torch.LSTM model with DistributedDataParallel.

    python examples/ddp_train.py --world-size 2 --steps 40

starts ``--world-size`` processes on this machine (torch.multiprocessing.spawn, the gloo
backend over 127.0.0.1).  Every process builds the same model, ``fusedrnn.torch.LSTM``
(batch_first) -> last time step -> ``nn.Linear``, computes the loss and gradients on its
own shard of the global batch, and DDP averages the gradients across the processes, so
the replicas take the same SGD steps and stay identical.  Rank 0 prints the loss of the
whole batch at every step.  At the end the script trains the same model in this one
process on the whole batch (``single_process``) and prints how far apart the results
are: the loss is a mean and the shards are equal, so DDP's average of the shards'
gradients is the whole batch's gradient, and the two agree up to rounding.

``fusedrnn.torch.LSTM`` is a ``torch.nn.LSTM`` whose forward runs fusedrnn's fused
kernels; DDP needs nothing special for it, it sees ordinary parameters and gradients.

``train`` (one process) and ``single_process`` are what tests/test_torch_ddp.py runs.
"""

from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import socket
import tempfile

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

import fusedrnn
import fusedrnn.torch as frt

INPUT, HIDDEN, LAYERS, OUTPUT = 8, 32, 2, 4
SEQ_LEN, GLOBAL_BATCH = 12, 16  # GLOBAL_BATCH: split evenly among the processes
LR, MOMENTUM = 0.5, 0.9  # SGD


class Regressor(nn.Module):
    """A two-layer LSTM over the sequence, then a linear map of its last step."""

    def __init__(self):
        super().__init__()
        self.lstm = frt.LSTM(INPUT, HIDDEN, num_layers=LAYERS, batch_first=True)
        self.head = nn.Linear(HIDDEN, OUTPUT)

    def forward(self, x):  # x: (batch, SEQ_LEN, INPUT)
        y, _ = self.lstm(x)
        return self.head(y[:, -1])


def make_model(seed: int, dtype: torch.dtype) -> nn.Module:
    """The model with the initial weights that ``seed`` determines."""
    with torch.random.fork_rng(devices=[]):  # leaves the caller's global RNG alone
        torch.manual_seed(seed)
        return Regressor().to(dtype)


def make_data(seed: int, dtype: torch.dtype):
    """The global batch: x (GLOBAL_BATCH, SEQ_LEN, INPUT) and a target that x determines."""
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(GLOBAL_BATCH, SEQ_LEN, INPUT, generator=g, dtype=dtype)
    w = torch.randn(INPUT, OUTPUT, generator=g, dtype=dtype)
    return x, torch.tanh(x.mean(1) @ w)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (the OS picks one for port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dtype(dtype) -> torch.dtype:
    return getattr(torch, dtype) if isinstance(dtype, str) else dtype


def train(rank, world_size, port, steps, seed=0, dtype="float64", out_dir=None,
          verbose=False, skew_init=False):
    """One DDP process; torch.multiprocessing.spawn passes ``rank``.

    Takes ``steps`` SGD steps on this rank's shard of the global batch; rank 0 prints
    each step's loss when ``verbose``.  With ``out_dir``, writes ``rank{rank}.pt``:
    {"losses": [the whole batch's loss at step s], "params": [the parameters before
    step 0 (after DDP's broadcast), then after each step]}.

    ``skew_init`` (for the test): ranks > 0 first build other weights and run a forward
    with them, so that only DDP's initial broadcast of rank 0's weights can make the
    replicas equal (and fusedrnn must notice the new values: the broadcast advances the
    parameters' version counters, which key fusedrnn's packed-weight cache).
    """
    dtype = _dtype(dtype)
    # One thread per process, for fusedrnn's kernels and for torch's own ops.  Each
    # defaults to every CPU this process may use, so 2 processes on a 2-core machine
    # would run 2 x 2 threads on 2 cores, and threads that meet at every time step
    # (fusedrnn's) or spin waiting for work (torch's) are slowed down badly when they
    # have to take turns on a core.  On a bigger machine, give each process
    # cores // world_size threads.
    fusedrnn.set_num_threads(1)
    torch.set_num_threads(1)

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world_size,
                            timeout=datetime.timedelta(seconds=60))
    try:
        x, target = make_data(seed, dtype)  # the global batch; this rank takes its shard
        if GLOBAL_BATCH % world_size:
            raise ValueError(f"GLOBAL_BATCH {GLOBAL_BATCH} does not split into "
                             f"{world_size} equal shards")
        shard = GLOBAL_BATCH // world_size
        x, target = x[rank * shard:(rank + 1) * shard], target[rank * shard:(rank + 1) * shard]

        if skew_init and rank > 0:
            model = make_model(seed + 1000 * rank, dtype)
            model(x)  # fusedrnn packs these weights now
        else:
            model = make_model(seed, dtype)
        model = DDP(model)  # broadcasts rank 0's parameters to the other ranks
        opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)

        losses, params = [], [[p.detach().clone() for p in model.module.parameters()]]
        for step in range(steps):
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(x), target)  # the mean over this shard
            loss.backward()  # DDP averages the gradients across the ranks here
            opt.step()
            # The whole batch's loss: the mean of the shards' means (equal shards).
            total = loss.detach().clone()
            dist.all_reduce(total)
            losses.append(total.item() / world_size)
            params.append([p.detach().clone() for p in model.module.parameters()])
            if verbose and rank == 0:
                print(f"step {step:3d}  loss {losses[-1]:.6f}", flush=True)
        if out_dir is not None:
            torch.save({"losses": losses, "params": params},
                       pathlib.Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def single_process(steps, seed=0, dtype="float64"):
    """What ``train`` does, in this process, on the whole batch at once.

    Returns {"losses", "params"} as ``train`` writes them.
    """
    dtype = _dtype(dtype)
    x, target = make_data(seed, dtype)
    model = make_model(seed, dtype)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    losses, params = [], [[p.detach().clone() for p in model.parameters()]]
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        params.append([p.detach().clone() for p in model.parameters()])
    return {"losses": losses, "params": params}


def max_rel_diff(a, b) -> float:
    """The largest norm-wise relative difference between two lists of tensors."""
    return max(((p - q).norm() / q.norm()).item() for p, q in zip(a, b))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--world-size", type=int, default=2, help="processes (default 2)")
    ap.add_argument("--steps", type=int, default=40, help="SGD steps (default 40)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as out:
        torch.multiprocessing.spawn(train, nprocs=args.world_size, args=(
            args.world_size, free_port(), args.steps, args.seed, args.dtype, out, True))
        ddp = torch.load(pathlib.Path(out) / "rank0.pt")

    one = single_process(args.steps, args.seed, args.dtype)
    print(f"one process, whole batch: final loss {one['losses'][-1]:.6f}; parameters "
          f"within {max_rel_diff(ddp['params'][-1], one['params'][-1]):.1e} (relative) "
          "of DDP's")


if __name__ == "__main__":
    main()
