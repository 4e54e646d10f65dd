"""Type stub of the private compiled module fusedrnn._core (use the fusedrnn package)."""

from typing import Any, Optional, Tuple

import numpy as np
import numpy.typing as npt

class Weights:
    """One layer-direction's weights, packed once for the selected kernels."""

    def __init__(
        self,
        cell: str,
        weight_ih: npt.NDArray[np.floating],
        weight_hh: npt.NDArray[np.floating],
        bias_ih: Optional[npt.NDArray[np.floating]] = None,
        bias_hh: Optional[npt.NDArray[np.floating]] = None,
        one_step: bool = False,
        weight_hr: Optional[npt.NDArray[np.floating]] = None,
    ) -> None: ...
    @property
    def one_step(self) -> bool: ...
    @property
    def cell(self) -> str: ...
    @property
    def input_size(self) -> int: ...
    @property
    def hidden_size(self) -> int: ...
    @property
    def proj_size(self) -> int: ...
    @property
    def dtype(self) -> np.dtype: ...
    @property
    def isa(self) -> str: ...
    @property
    def has_bias(self) -> bool: ...

def forward(
    weights: Weights,
    x: npt.NDArray[np.floating],
    h0: npt.NDArray[np.floating],
    c0: Optional[npt.NDArray[np.floating]] = None,
    train: bool = False,
    batch_sizes: Optional[npt.NDArray[np.int64]] = None,
) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]:
    """(y, h_n, c_n or None, workspace or None) for x (T, B, I) -- or (N, I) packed rows
    with batch_sizes -- and states h (B, P or H), c (B, H)."""

def backward(
    weights: Weights,
    x: npt.NDArray[np.floating],
    workspace: npt.NDArray[np.floating],
    dy: npt.NDArray[np.floating],
    dh_n: Optional[npt.NDArray[np.floating]] = None,
    dc_n: Optional[npt.NDArray[np.floating]] = None,
    batch_sizes: Optional[npt.NDArray[np.int64]] = None,
    need_dx: bool = True,
) -> Tuple[
    Optional[np.ndarray], np.ndarray, Optional[np.ndarray], np.ndarray, np.ndarray,
    Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray],
]:
    """(dx or None (need_dx=False), dh0, dc0 or None, dw_ih, dw_hh, db_ih or None,
    db_hh or None, dw_hr or None)."""

def step(
    weights: Weights,
    x: npt.NDArray[np.floating],
    h0: npt.NDArray[np.floating],
    c0: Optional[npt.NDArray[np.floating]] = None,
) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """One inference step of a cell (weights packed with one_step=True): (h1, c1 or None)."""

def cell_call(weights: Weights, x: object, hx: object) -> object:
    """A cell's inference step when x and hx need no conversion, else None."""

def workspace_size(cell: str, T: int, B: int, H: int, proj_size: int = 0, N: int = -1) -> int: ...
def cpu_info() -> dict: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def _last_region_threads() -> int:
    """Tests only: threads that ran the last parallel region this thread started."""
def fma_peak(seconds: float = 0.2) -> float:
    """float32 FMA GFLOP/s of one thread with the selected ISA (a register-only loop)."""

def _adaptive_threads() -> dict[str, Any]:
    """The contention policy's state (adaptive, cap, probe_interval_ms, stalls, ...)."""
def _reset_adaptive(probe_ms: float = 10.0, probe_max_ms: float = 2000.0,
                    threads: int = 0, stall_min_ms: float = 1.0) -> None:
    """Tests only: the default (adaptive) thread count again, the policy reset."""
def _slow_worker(rank: int, step: int, ms: float) -> None:
    """Tests only: rank sleeps ms before its step-th step barrier of the next region."""
def _use_isa(isa: str) -> None: ...
def _activation(which: str, x: npt.NDArray[np.floating]) -> np.ndarray: ...
