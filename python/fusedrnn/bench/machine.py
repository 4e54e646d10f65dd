"""The machine and the optional peers: what is importable, the thread counts every peer
is given, versions, the FMA peak and the load average."""

from __future__ import annotations

import functools
import importlib
import os
import platform

import numpy as np

import fusedrnn as fr
from fusedrnn import _core


@functools.cache
def torch_or_none():
    """The torch module if ``import torch`` works here, else None (never installed)."""
    try:
        return importlib.import_module("torch")
    except Exception:  # ImportError, or a broken install failing on its shared libraries
        return None


@functools.cache
def dropin_or_none():
    """``fusedrnn.torch`` (the drop-in torch.nn modules) if it imports here, else None
    (it needs torch)."""
    if torch_or_none() is None:
        return None
    try:
        return importlib.import_module("fusedrnn.torch")
    except Exception:
        return None


@functools.cache
def ort_or_none():
    """(onnx, onnxruntime) if both import here, else None: the models are built in memory
    with ``onnx.helper`` and run by ``onnxruntime``."""
    try:
        return importlib.import_module("onnx"), importlib.import_module("onnxruntime")
    except Exception:
        return None


def openvino_or_none():
    """The openvino module if it imports here, else None (never installed)."""
    try:
        return importlib.import_module("openvino")
    except Exception:
        return None


def matplotlib_or_none():
    """matplotlib.pyplot on the non-interactive Agg backend, or None if not importable."""
    try:
        matplotlib = importlib.import_module("matplotlib")
        matplotlib.use("Agg")
        return importlib.import_module("matplotlib.pyplot")
    except Exception:
        return None


def missing_peers() -> list:
    """Lines naming the optional peers that are not importable here, and how to get them."""
    out = []
    if torch_or_none() is None:
        out.append("torch (pip install torch==2.13.0, the CPU build)")
        out.append("drop (fusedrnn.torch, the drop-in modules: needs torch)")
    elif dropin_or_none() is None:
        out.append("drop (fusedrnn.torch does not import here although torch does: "
                   "run `python -c 'import fusedrnn.torch'` to see why)")
    if ort_or_none() is None:
        out.append("ort (pip install onnx onnxruntime)")
    if _openvino_wanted and openvino_or_none() is None:
        out.append("OV (pip install openvino)")
    elif _openvino_wanted and torch_or_none() is None:
        out.append("OV (its model is converted from the torch module: needs torch)")
    return out


#: Whether OpenVINO was asked for (bench --openvino; see want_openvino).
_openvino_wanted = False


def want_openvino(wanted: bool = True) -> None:
    """Time the optional OpenVINO peer in the Cases made from now on (bench --openvino)."""
    global _openvino_wanted
    _openvino_wanted = bool(wanted)


def openvino_wanted() -> bool:
    return _openvino_wanted


def _threadpoolctl_info():
    try:
        import threadpoolctl
    except ImportError:
        return None
    return [
        {k: d.get(k) for k in ("internal_api", "version", "num_threads", "filepath")}
        for d in threadpoolctl.threadpool_info()
    ]


def _numpy_blas() -> str:
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas['name']} {blas.get('version', '')}".strip()
    except Exception:  # older NumPy: no mode="dicts"
        return "unknown"


#: The thread count last given to set_threads (ORT's sessions are built with it).
_threads = None


def ort_threads():
    """The thread count last given to set_threads, or None (ORT's default: all cores)."""
    return _threads


def set_threads(n: int) -> None:
    """Use n threads in every peer that can be told: ours (fusedrnn.set_num_threads),
    torch (torch.set_num_threads) and ORT (the sessions that a Case builds from now on get
    intra_op_num_threads = n, inter_op_num_threads = 1).  NumPy's BLAS keeps its own."""
    global _threads
    _threads = n
    fr.set_num_threads(n)
    torch = torch_or_none()
    if torch is not None:
        torch.set_num_threads(n)


def thread_info() -> dict:
    pools = _threadpoolctl_info()
    torch = torch_or_none()
    return {
        # The count set; a step too short to share runs on fewer (see set_num_threads).
        "ours": fr.get_num_threads(),
        "torch": torch.get_num_threads() if torch is not None else None,
        # None: ORT's default (all cores); only the intra-op pool runs these graphs.
        "ort": _threads if ort_or_none() is not None else None,
        "ort_inter_op": 1 if ort_or_none() is not None else None,
        "numpy_blas": _numpy_blas(),
        "numpy_blas_threadpools": pools,  # None: threadpoolctl is not installed
    }


def thread_line(threads: dict, label: str = "threads: ") -> str:
    """The threads used, on one line."""
    parts = [f"ours {threads['ours']}"]
    if threads["torch"] is not None:
        parts.append(f"torch {threads['torch']}")
    if threads["ort"] is not None or ort_or_none() is not None:
        ort = threads["ort"] if threads["ort"] is not None else "default"
        parts.append(f"ort {ort} intra-op, {threads['ort_inter_op']} inter-op")
    blas = f"NumPy BLAS {threads['numpy_blas']}"
    pools = threads["numpy_blas_threadpools"]
    if pools:
        blas += ": " + ", ".join(f"{p['internal_api']} {p['num_threads']}" for p in pools)
    parts.append(blas)
    return label + " | ".join(parts)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module_name):
    try:
        return importlib.import_module(module_name).__version__
    except Exception:
        return None


def machine_info() -> dict:
    """CPU, versions and threads: the header of the table and of the JSON file."""
    torch, ort = torch_or_none(), ort_or_none()
    versions = {"python": platform.python_version(), "numpy": np.__version__,
                "fusedrnn": fr.__version__, "torch": torch.__version__ if torch else None,
                "onnx": ort[0].__version__ if ort else None,
                "onnxruntime": ort[1].__version__ if ort else None,
                "matplotlib": _version("matplotlib")}
    if _openvino_wanted:
        versions["openvino"] = _version("openvino")
    return {
        "cpu": _cpu_model(),
        "machine": platform.machine(),
        "system": platform.platform(),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "fusedrnn_cpu_info": fr.cpu_info(),
        "versions": versions,
        "threads": thread_info(),
    }


def fma_peak(seconds: float = 0.2) -> float:
    """This machine's float32 FMA GFLOP/s on one thread, with the ISA ours runs
    (``fusedrnn._core.fma_peak``: independent FMAs on registers only)."""
    return float(_core.fma_peak(seconds=seconds))


def system_cores() -> int:
    """Every CPU of the machine: what the (system-wide) load average is measured against,
    also when this process is pinned to fewer (taskset -c 0 for one-thread figures)."""
    return os.cpu_count() or 1


def load_average():
    """The 1-minute load average (runnable processes, on average), or None where the OS
    has none (Windows)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
