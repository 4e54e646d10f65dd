"""Shared fixtures.

``torch``: PyTorch, imported lazily (only by the tests that ask for it, so the rest of
the suite runs without it).  Missing torch skips those tests, except when the
environment sets ``FUSEDRNN_REQUIRE_TORCH=1`` (CI: .ci/run), where it fails them.

``frt``: ``fusedrnn.torch``, under the same rule (it needs torch).

``isa``: runs a test once per ISA this CPU can run (the kernels of weights packed
inside the test); modules opt in with ``pytestmark = pytest.mark.usefixtures("isa")``.
``restore_threads``: puts fusedrnn's thread count back after the test.

``onnxruntime``: ONNX Runtime (with ``onnx``, which builds the benchmark's models), for
the benchmark's ORT peer; the same rule: skipped when missing, a failure under
``FUSEDRNN_REQUIRE_TORCH=1`` (CI installs both through the ``test`` extra).
"""

from __future__ import annotations

import os

import pytest

import fusedrnn

REQUIRE_TORCH_ENV = "FUSEDRNN_REQUIRE_TORCH"


def _missing(msg, pronoun):
    """Skip the test, or fail it when FUSEDRNN_REQUIRE_TORCH=1 (CI) requires what's missing."""
    if os.environ.get(REQUIRE_TORCH_ENV, "") == "1":
        pytest.fail(f"{msg}, and {REQUIRE_TORCH_ENV}=1 requires {pronoun}", pytrace=False)
    pytest.skip(msg)


def import_torch():
    """Import and return torch, or skip (fail under FUSEDRNN_REQUIRE_TORCH=1)."""
    try:
        import torch  # noqa: PLC0415 - lazy on purpose
    except ImportError as e:
        _missing(f"PyTorch is not importable ({e}); the torch parity tests need torch==2.13.0 "
                 "(CPU)", "it")
    return torch


@pytest.fixture(scope="session")
def torch():
    return import_torch()


@pytest.fixture(scope="session")
def frt(torch):
    """fusedrnn.torch (the drop-in torch.nn modules); needs torch, as the fixture above."""
    import fusedrnn.torch  # noqa: PLC0415 - lazy on purpose: `import fusedrnn` stays torch-free

    return fusedrnn.torch


def import_onnxruntime():
    """Import onnx and return onnxruntime, or skip (fail under FUSEDRNN_REQUIRE_TORCH=1)."""
    try:
        import onnx  # noqa: F401, PLC0415 - lazy on purpose
        import onnxruntime  # noqa: PLC0415
    except ImportError as e:
        _missing(f"ONNX Runtime is not importable ({e}); the benchmark's ORT peer needs onnx "
                 "and onnxruntime (the test extra installs them)", "them")
    return onnxruntime


@pytest.fixture(scope="session")
def onnxruntime():
    return import_onnxruntime()


@pytest.fixture(params=fusedrnn.cpu_info()["available"])
def isa(request):
    before = fusedrnn.cpu_info()["isa"]
    fusedrnn._core._use_isa(request.param)
    yield request.param
    fusedrnn._core._use_isa(before)


@pytest.fixture
def restore_threads():
    before = fusedrnn.get_num_threads()
    yield
    fusedrnn.set_num_threads(before)
