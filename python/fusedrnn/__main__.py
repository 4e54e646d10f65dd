"""Command line: ``python -m fusedrnn {bench,info,demo}``.

bench  time LSTM/GRU/RNN against the NumPy reference, PyTorch, fusedrnn.torch's drop-in
       torch.nn modules and ONNX Runtime (those three when installed); how to read the
       table: docs/benchmarks.md
info   the kernels' instruction set, versions and thread counts
demo   train a small LSTM on the echo task (repeat the input one step later) with the
       NumPy API

`python -m fusedrnn COMMAND --help` lists a command's options.
"""

from __future__ import annotations

import argparse
import inspect
import sys

import numpy as np

import fusedrnn as fr
from fusedrnn.bench import cli as bench_cli
from fusedrnn.bench.machine import machine_info, thread_line

ECHO_TASK = """\
The echo task: the input x is a sequence of random numbers in [-1, 1] (T=12 steps, a
batch of 64); the target at step t is the input of step t-1 (zero at t=0).  To get it
right the LSTM must carry one step of memory in its state; predicting zeros scores the
mean square of the target, about 0.3.  An LSTM(1, 16) and a linear read-out are trained
by plain gradient descent: forward with train=True, backward from dL/dy, an SGD step
written back with load_state_dict."""


def info(args) -> int:
    i = machine_info()
    print(f"fusedrnn {fr.__version__}")
    print(f"cpu_info: {i['fusedrnn_cpu_info']}")
    print(f"cpu: {i['cpu']} ({i['machine']}), {i['cpu_count']} CPUs"
          + (f", {i['affinity']} usable" if i["affinity"] is not None else ""))
    print(f"system: {i['system']}")
    print("versions: " + ", ".join(f"{k} {v if v else 'not importable'}"
                                   for k, v in i["versions"].items()))
    print(thread_line(i["threads"]))
    return 0


def demo_source() -> str:
    """Where demo's code is: file and line."""
    return f"{inspect.getsourcefile(demo)}, line {demo.__code__.co_firstlineno}"


def demo(args) -> int:
    """Teach an LSTM to echo its input one step later, with plain gradient descent.

    Forward with train=True, backward from dL/dy, and an SGD step written back with
    load_state_dict; the linear read-out on top is plain NumPy.
    """
    rng = np.random.default_rng(0)
    T, batch, H = 12, 64, 16
    x = rng.uniform(-1, 1, (T, batch, 1)).astype(np.float32)
    target = np.zeros_like(x)
    target[1:] = x[:-1]  # y_t = x_{t-1}: the LSTM must remember one step
    lstm = fr.LSTM(1, H, seed=0)
    w_out = (rng.standard_normal((H, 1)) / np.sqrt(H)).astype(np.float32)
    b_out = np.zeros(1, np.float32)
    print("echo task: output at step t = input at step t-1, so the LSTM must remember one step")
    print(f"{lstm} + linear read-out (T={T}, batch {batch}), SGD lr {args.lr}; "
          f"predicting zeros scores {np.mean(target ** 2):.4f}")
    print(f"code: {demo_source()}")
    for step in range(args.steps + 1):
        y, _, tape = lstm.forward(x, train=True)
        err = y @ w_out + b_out - target
        loss = float(np.mean(err ** 2))
        if step % args.every == 0:
            print(f"step {step:4d}  loss {loss:.4f}")
        if step == args.steps:
            break
        dpred = 2 * err / err.size  # dL/d(prediction)
        _, _, grads = lstm.backward(tape, dpred @ w_out.T)
        params = lstm.state_dict()
        lstm.load_state_dict({k: params[k] - args.lr * grads[k] for k in params})
        w_out -= args.lr * (y.reshape(-1, H).T @ dpred.reshape(-1, 1))
        b_out -= args.lr * dpred.sum((0, 1))
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m fusedrnn", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("bench", help="time the kernels against their peers",
                       description=bench_cli.DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    bench_cli.add_arguments(p)
    p.set_defaults(func=bench_cli.run)

    p = sub.add_parser("info", help="instruction set, versions and threads",
                       description="Print the instruction set the kernels use, the CPU, the "
                       "versions of Python, NumPy and the optional peers, and thread counts.")
    p.set_defaults(func=info)

    p = sub.add_parser("demo", help="train a small LSTM on the echo task (NumPy API)",
                       description=ECHO_TASK + f"\n\nIts code: {demo_source()}.",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=300,
                   help="gradient descent steps (default 300)")
    p.add_argument("--lr", type=float, default=0.3, help="learning rate (default 0.3)")
    p.add_argument("--every", type=bench_cli.positive, default=30,
                   help="print the loss every N steps (default 30)")
    p.set_defaults(func=demo)
    return top


def main(argv=None) -> int:
    top = parser()
    args = top.parse_args(argv)
    if args.command is None:  # no command: the help, and success
        top.print_help()
        return 0
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
