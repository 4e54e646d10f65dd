"""The OpenVINO peer of a Case (``openvino``, column ``x OV``; inference only, optional).

The model is ``openvino.convert_model`` of the case's torch module (the torch peer's,
with the case's weights; so it needs torch too) with the case's inputs as the example,
compiled for the CPU plugin with ``INFERENCE_NUM_THREADS`` = the benchmark's thread
count and ``INFERENCE_PRECISION_HINT`` f32 (no bf16 or f16 arithmetic, even where the
CPU has it).  Sequence rows are called as torch's are, ``module(x)`` from zero states;
the cell rows as ``cell(x, state)``.  The ragged row (len) has no OpenVINO line: a
PackedSequence does not convert.

Timed only when asked for: ``python -m fusedrnn bench --openvino``.  Missing openvino (or
torch) then: no peer, a note in the header, and ``—`` in the table (``pip install
openvino``, or the package's ``bench`` extra).
"""

from __future__ import annotations

import warnings

import numpy as np

from .grid import applies
from .machine import openvino_or_none, openvino_wanted, ort_threads, torch_or_none


def attach(case, threads=None, wanted=None) -> None:
    """Add the ``openvino`` peer to ``case.peers`` when it is wanted (default: asked for
    with ``bench --openvino``, machine.want_openvino), openvino and torch import and the
    line is one of OpenVINO's (see grid.applies).  threads: INFERENCE_NUM_THREADS
    (default: the last set_threads, else OpenVINO's default)."""
    if not (openvino_wanted() if wanted is None else wanted):
        return
    ov, torch = openvino_or_none(), torch_or_none()
    module = getattr(case, "_torch_module", None)
    if ov is None or torch is None or module is None:
        return
    if not applies("openvino", case.shape, case.mode):
        return
    threads = threads if threads is not None else ort_threads()
    case.peers["openvino"] = OpenVinoPeer(case, ov, torch, module, threads)


def compile_config(threads) -> dict:
    """The CPU plugin's properties: float32 arithmetic, and `threads` threads (None:
    OpenVINO's default, every core)."""
    config = {"INFERENCE_PRECISION_HINT": "f32"}
    if threads is not None:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    return config


class OpenVinoPeer:
    """Calling it runs one inference on the case's inputs; results as the other peers'
    (y, h_n (, c_n) for a sequence row; h_n (, c_n) for a cell row)."""

    def __init__(self, case, ov, torch, module, threads):
        self.case = case
        s = case.shape
        x = torch.from_numpy(case.x)
        if s.is_cell:
            states = tuple(torch.from_numpy(a) for a in case.states0)
            example = (x, states if case.kind.has_c else states[0])
            self.inputs = [case.x, *case.states0]
        else:
            example = (x,)
            self.inputs = [case.x]
        with warnings.catch_warnings():  # torch's tracer warns about its own RNN code
            warnings.simplefilter("ignore")
            model = ov.convert_model(module, example_input=example)
        self.compiled = ov.Core().compile_model(model, "CPU", compile_config(threads))
        if len(self.compiled.inputs) != len(self.inputs):
            raise ValueError(f"the OpenVINO model takes {len(self.compiled.inputs)} inputs; "
                             f"{len(self.inputs)} expected")
        self.request = self.compiled.create_infer_request()

    def __call__(self) -> dict:
        case = self.case
        # The inputs never change: shared, not copied; the outputs are new arrays each call.
        result = self.request.infer(self.inputs, share_inputs=True)
        out = [np.asarray(result[o]) for o in self.compiled.outputs]
        if case.shape.is_cell:
            return case.named_state(out)
        s = case.shape
        return {"y": out[0].reshape(s.T, s.B, s.D * s.H), **case.named_state(out[1:])}
