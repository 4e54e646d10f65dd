"""Shared parts of the quantized-kernel tests (test_quant_kernels.py, test_quant_errors.py):
the `kernel` fixture (every ISA this CPU runs, and AVX-512 with and without its VNNI
tiles) and random weights quantized by the reference."""

import numpy as np
import pytest

import fusedrnn
from fusedrnn import _core
from fusedrnn.quantized import reference as Q

CELLS = ["lstm", "gru", "gru_reset_before", "rnn_tanh", "rnn_relu"]
MODES = ["int8", "float16", "bfloat16"]
GATES = {"lstm": 4, "gru": 3, "gru_reset_before": 3, "rnn_tanh": 1, "rnn_relu": 1}


def _kernels():
    out = []
    for isa in fusedrnn.cpu_info()["available"]:
        out.append(isa)
        if isa == "avx512":
            out.append("avx512-novnni")  # the vpmaddwd tiles, as on a CPU without VNNI
    return out


@pytest.fixture(params=_kernels())
def kernel(request):
    before = fusedrnn.cpu_info()["isa"]
    vnni_before = None
    name = request.param
    _core._use_isa(name.split("-")[0])
    if name.startswith("avx512"):
        vnni_before = _core._quant_use_vnni()
        _core._quant_use_vnni(0 if name.endswith("novnni") else 1)
    yield name
    if vnni_before is not None:
        _core._quant_use_vnni(1 if vnni_before else 0)
    _core._use_isa(before)


F32, F64 = np.float32, np.float64


def make_weights(cell, mode, I, H, P=0, bias=True, seed=0):
    """(kwargs of _core.QuantWeights, spec for ref_step) from random float32 weights."""
    rng = np.random.default_rng(seed)
    G, Hr = GATES[cell], (P or H)
    k = 1.0 / np.sqrt(H)
    raw = {"ih": rng.uniform(-k, k, (G * H, I)).astype(F32),
           "hh": rng.uniform(-k, k, (G * H, Hr)).astype(F32)}
    if P:
        raw["hr"] = rng.uniform(-k, k, (P, H)).astype(F32)
    kw, spec = {}, {"mode": mode, "cell": cell, "H": H, "P": P}
    for name, w in raw.items():
        if mode == "int8":
            q, s = Q.quantize_weight(w)
            kw["weight_" + name], kw["scale_" + name] = q, s
            spec[name] = (q, s)
            spec[name + "_deq"] = q.astype(F64) * s.astype(F64)[:, None]
        elif mode == "float16":
            kw["weight_" + name] = w.astype(np.float16)
            spec[name + "_deq"] = w.astype(np.float16).astype(F64)
        else:
            kw["weight_" + name] = Q.to_bfloat16_bits(w)
            spec[name + "_deq"] = Q.from_bfloat16_bits(Q.to_bfloat16_bits(w)).astype(F64)
    if bias:
        kw["bias_ih"] = rng.uniform(-k, k, G * H).astype(F32)
        kw["bias_hh"] = rng.uniform(-k, k, G * H).astype(F32)
    spec["b_ih"] = kw.get("bias_ih", np.zeros(G * H, F32)).astype(F64)
    spec["b_hh"] = kw.get("bias_hh", np.zeros(G * H, F32)).astype(F64)
    return kw, spec
