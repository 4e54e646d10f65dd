"""Type stub of the private compiled module fusedrnn._core (use the fusedrnn package)."""

from typing import Any, List, Optional, Sequence, Tuple

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

def forward_pair(
    weights: Sequence[Weights],
    x: Sequence[npt.NDArray[np.floating]],
    h0: Sequence[npt.NDArray[np.floating]],
    c0: Optional[Sequence[Optional[npt.NDArray[np.floating]]]] = None,
    train: bool = False,
    batch_sizes: Optional[npt.NDArray[np.int64]] = None,
) -> Tuple[tuple, tuple]:
    """forward for both directions of a bidirectional layer, side by side: each of
    weights, x, h0, c0 a pair; a pair of forward's results."""

def backward_pair(
    weights: Sequence[Weights],
    x: Sequence[npt.NDArray[np.floating]],
    workspace: Sequence[npt.NDArray[np.floating]],
    dy: Sequence[npt.NDArray[np.floating]],
    dh_n: Optional[Sequence[Optional[npt.NDArray[np.floating]]]] = None,
    dc_n: Optional[Sequence[Optional[npt.NDArray[np.floating]]]] = None,
    batch_sizes: Optional[npt.NDArray[np.int64]] = None,
    need_dx: bool = True,
) -> Tuple[tuple, tuple]:
    """backward for both directions, side by side; a pair of backward's results."""

def step(
    weights: Weights,
    x: npt.NDArray[np.floating],
    h0: npt.NDArray[np.floating],
    c0: Optional[npt.NDArray[np.floating]] = None,
) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """One inference step of a cell (weights packed with one_step=True): (h1, c1 or None)."""

def cell_call(weights: Weights, x: object, hx: object) -> object:
    """A cell's inference step when x and hx need no conversion, else None."""

def tensor_cell(module: object, x: object, hx: object) -> object:
    """A drop-in cell's inference step on torch tensors when the call matches its plan (the
    new state as tensors); False when it matches but needs autograd; else None."""

def tensor_call(module: object, x: object, hx: object) -> object:
    """tensor_cell when torch.nn.Module.__call__ would only call the cell's forward (no
    hooks, not compiled or traced); else None."""

def tensor_setup(tensor_type: type, strided: object, from_numpy: object,
                 is_grad_enabled: object) -> None: ...
def tensor_call_setup(global_hooks: tuple, tracing_state: object, forward: object) -> None: ...

def workspace_size(cell: str, T: int, B: int, H: int, proj_size: int = 0, N: int = -1) -> int: ...
def cpu_info() -> dict: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def _last_region_threads() -> int:
    """Tests only: threads that ran the last parallel region this thread started."""
def _pair_probe(n: int, fail: int = -1) -> List[Tuple[int, int, int, bool]]:
    """Tests only: what parallel_pair(n) gives each of its two jobs."""
def _largest_region_under_flips(n: int, regions: int) -> int:
    """Tests only: the largest region asked for n threads while the count keeps changing."""
def _matmul(a: npt.NDArray[np.floating], w: npt.NDArray[np.floating],
            reps: int = 1) -> tuple[np.ndarray, float]:
    """Tests and benchmarks: (a @ w.T, seconds per product) with the large-product kernel."""
def fma_peak(seconds: float = 0.2) -> float:
    """float32 FMA GFLOP/s of one thread with the selected ISA (a register-only loop)."""

def _adaptive_threads() -> dict[str, Any]:
    """The contention policy's state (adaptive, cap, probe_interval_ms, stalls, ...)."""
def _profile(on: Optional[bool] = None) -> Optional[list[dict[str, float]]]:
    """Diagnostics: per-part timers on/off (zeroed), or seconds per part per thread rank."""
def _reset_adaptive(probe_ms: float = 10.0, probe_max_ms: float = 2000.0,
                    threads: int = 0, stall_min_ms: float = 1.0) -> None:
    """Tests only: the default (adaptive) thread count again, the policy reset."""
def _slow_worker(rank: int, step: int, ms: float) -> None:
    """Tests only: rank sleeps ms before its step-th step barrier of the next region."""
def _use_isa(isa: str) -> None: ...
def _activation(which: str, x: npt.NDArray[np.floating]) -> np.ndarray: ...

class QuantWeights:
    """One layer-direction's int8 or 16-bit weights, packed once for quant_forward by the
    selected ISA's quantized kernels (weights int8 with per-row float32 scales, float16,
    or uint16 bfloat16 bits; biases float32)."""

    def __init__(
        self,
        cell: str,
        mode: str,
        weight_ih: np.ndarray,
        weight_hh: np.ndarray,
        bias_ih: Optional[npt.NDArray[np.float32]] = None,
        bias_hh: Optional[npt.NDArray[np.float32]] = None,
        scale_ih: Optional[npt.NDArray[np.float32]] = None,
        scale_hh: Optional[npt.NDArray[np.float32]] = None,
        weight_hr: Optional[np.ndarray] = None,
        scale_hr: Optional[npt.NDArray[np.float32]] = None,
    ) -> None: ...
    @property
    def cell(self) -> str: ...
    @property
    def mode(self) -> str: ...
    @property
    def input_size(self) -> int: ...
    @property
    def hidden_size(self) -> int: ...
    @property
    def proj_size(self) -> int: ...
    @property
    def isa(self) -> str: ...
    @property
    def has_bias(self) -> bool: ...

def quant_forward(
    weights: QuantWeights,
    x: npt.NDArray[np.float32],
    h0: npt.NDArray[np.float32],
    c0: Optional[npt.NDArray[np.float32]] = None,
    batch_sizes: Optional[npt.NDArray[np.int64]] = None,
) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """Inference of one layer-direction with quantized weights: (y, h_n, c_n or None), as
    forward(..., train=False)."""

def _quantize_rows(a: npt.NDArray[np.float32]) -> Tuple[np.ndarray, np.ndarray]:
    """Tests only: the selected ISA's per-row int8 quantizer, (q int8, scale float32)."""

def _quant_matmul(a_q: npt.NDArray[np.int8], w_q: npt.NDArray[np.int8]) -> np.ndarray:
    """Tests only: a_q (M, K) @ w_q (N, K).T as int32, through the selected ISA's tiles."""

def _quant_use_vnni(mode: int = -1) -> bool:
    """Tests only: -1 asks, 0 turns off, 1 turns on the AVX-512 VNNI int8 tiles."""
