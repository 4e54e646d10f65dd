"""The speed targets of the float32 grid, read from benchmark JSON files: for every line,
our time and the fastest peer's, each as a share of the FMA peak, the ratio against the
target, and the share of the peak we would need to meet it.

    PYTHONPATH=python taskset -c 0 python -m fusedrnn bench --kinds lstm \\
        --rows S1,S2,S3,S4,L2bi,len --threads 1 --openvino --json lstm1.json
    python tools/targets.py lstm1.json gru1.json rnn1.json

The targets (docs/benchmarks.md, "The targets and their floors"): inference at least
1.10x the fastest of torch.nn, ONNX Runtime and OpenVINO; training at least 1.2x
torch.nn for LSTM, 1.5x for GRU and RNN.  "% peak" is the line's FLOPs (the benchmark's
count) over the time, over the one-core FMA peak the run measured times the thread
count; "needs" is the share of that peak our call would have to reach for the target
(ours' share x target / ratio), next to which the fastest peer's share shows how close
to the peak that peer already runs.  Not a test: figures for people to read.
"""

from __future__ import annotations

import argparse
import json

PEERS = ("torch", "ort", "openvino")
NAMES = {"torch": "torch", "ort": "ORT", "openvino": "OV"}


def target(kind: str, mode: str) -> float:
    if mode == "inference":
        return 1.10
    return 1.2 if kind == "lstm" else 1.5


def lines(doc: dict):
    """(kind, row, mode, threads, ours_s, peer, peer_s, flops, peak) for each result."""
    peak = doc["fma_peak_gflops"] * 1e9
    for r in doc["results"]:
        if r["mode"] not in ("inference", "training"):
            continue
        threads = r["threads"]["ours"]
        peers = {k: v["median_s"] for k, v in r["peers"].items() if k in PEERS and v}
        if r["mode"] == "training":
            peers = {k: v for k, v in peers.items() if k == "torch"}
        if not peers:
            continue
        best = min(peers, key=peers.get)
        yield (r["kind"], r["row"], r["mode"], threads, r["peers"]["ours"]["median_s"], best,
               peers[best], r["flops"], peak * threads)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("json", nargs="+", help="files written by `python -m fusedrnn bench --json`")
    args = ap.parse_args(argv)
    print(f"{'kind':5} {'row':5} {'mode':9} {'thr':>3} {'ours ms':>9} {'% peak':>6}  "
          f"{'fastest':7} {'ms':>9} {'% peak':>6}  {'ratio':>5} {'target':>6} {'needs':>6}  met")
    for path in args.json:
        with open(path) as f:
            doc = json.load(f)
        for kind, row, mode, thr, ours, best, peer, flops, peak in lines(doc):
            ratio, goal = peer / ours, target(kind, mode)
            ours_pct, peer_pct = 100 * flops / ours / peak, 100 * flops / peer / peak
            print(f"{kind:5} {row:5} {mode:9} {thr:3d} {1e3 * ours:9.2f} {ours_pct:6.1f}  "
                  f"{NAMES[best]:7} {1e3 * peer:9.2f} {peer_pct:6.1f}  {ratio:5.2f} "
                  f"{goal:6.2f} {ours_pct * goal / ratio:6.1f}  {'yes' if ratio >= goal else 'no'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
