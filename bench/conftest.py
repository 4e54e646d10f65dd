"""Settings of the pytest-benchmark suite (not part of the test run: testpaths = tests).

Environment variables:
    FUSEDRNN_BENCH_QUICK=1       the quick subset (see shapes.py)
    FUSEDRNN_BENCH_THREADS=n     threads of every peer (default 1, as the CLI):
                                 fusedrnn.set_num_threads(n), torch.set_num_threads(n),
                                 ORT intra_op_num_threads=n (inter_op 1)
"""

import os

import pytest
from fusedrnn import bench as fb
from shapes import QUICK

THREADS = int(os.environ.get("FUSEDRNN_BENCH_THREADS", "1"))


def pytest_configure(config):
    fb.set_threads(THREADS)


def pytest_report_header(config):
    subset = f"quick subset (T <= {fb.QUICK_T})" if QUICK else "full grid"
    missing = fb.missing_peers()
    missing = "; not installed: " + ", ".join(missing) if missing else ""
    return f"fusedrnn bench: {subset}; {fb.thread_line(fb.thread_info())}{missing}"


def pytest_benchmark_update_machine_info(config, machine_info):
    # CPU, versions, thread counts and the FMA peak go into --benchmark-json / -autosave.
    machine_info["fusedrnn"] = fb.machine_info()
    machine_info["fusedrnn"]["fma_peak_gflops"] = fb.fma_peak(0.2)


@pytest.fixture(scope="session")
def cases():
    """get(kind, shape, mode) -> Case, built once and shared by the peers' benchmarks."""
    built = {}

    def get(kind, shape, mode):
        key = (kind.name, shape.name, mode)
        if key not in built:
            built.clear()  # tests run case by case: keep one alive (S3's are large)
            built[key] = fb.Case(kind, shape, mode, threads=THREADS)
        return built[key]

    return get
