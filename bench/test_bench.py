"""pytest-benchmark suite over the benchmark grid (see docs/benchmarks.md and bench/README.md).

One benchmark per (kind, row, mode, peer), grouped by (kind, row, mode) so that the
peers sit side by side; each first checks its peer's result once, as the CLI does: ours
and the reference against the reference, torch, dropin (fusedrnn.torch's drop-in module)
and ONNX Runtime against ours (a wrong weight conversion fails there; torch_pad, torch on
the padded batch of the len row, on y, h_n and the gradients).  Unlike ``python -m fusedrnn bench``, the peers are timed
one after the other, not alternating.
"""

import pytest
from fusedrnn import bench as fb
from shapes import CASES, PEERS, QUICK

if QUICK:  # seconds in all; a benchmark marker overrides --benchmark-max-time/-min-rounds
    pytestmark = pytest.mark.benchmark(max_time=0.1, min_rounds=3)


@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize(
    "kind, shape, mode", CASES, ids=[f"{k.name}-{s.name}-{m}" for k, s, m in CASES]
)
def test_bench(benchmark, cases, kind, shape, mode, peer):
    if not fb.applies(peer, shape, mode):
        pytest.skip(f"{peer}: " + ("inference only" if peer == "ort" else "len row only"))
    case = cases(kind, shape, mode)
    if peer not in case.peers:
        pytest.skip(f"{peer}: not importable here")
    fn = case.peers[peer]
    got = fn()  # also the warm-up: weight packing, allocations, ORT's first run
    if peer in ("ours", "reference"):
        err, against = case.check(got, peer), "the reference"
    else:
        err, against = case.check_vs(peer, got, case.peers["ours"]()), "ours"
    assert err < fb.TOLERANCE, f"{peer} differs from {against}: rel. error {err:.1e}"
    benchmark.group = f"{kind.name} {shape.describe()} {mode}"
    benchmark.extra_info.update(flops=case.flops, rel_error=err, checked_against=against,
                                threads=fb.thread_info()["ours"])
    benchmark(fn)
