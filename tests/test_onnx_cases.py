"""ONNX's own LSTM / GRU / RNN operator test cases, run on fusedrnn.

The cases are not copied here: they are harvested from the installed ``onnx`` package's
case modules (``onnx/backend/test/case/node/lstm.py``, ``gru.py``, ``rnn.py``), whose
``export_*`` functions build a node, its inputs and the expected outputs (computed by
ONNX's own NumPy code) and hand them to ``expect``; we call them with ``expect``
replaced by a recorder.  Each case's weights become initializers of a one-node model,
which ``fusedrnn.convert.from_onnx_model`` imports; a case fusedrnn supports must give
the expected outputs, one it does not must be refused with a ValueError naming why
(the reason predicted here from the node itself, not from fusedrnn).
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from fusedrnn import convert

OPS = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}
ROLES = ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P")
WEIGHTS = ("W", "R", "B", "P")
TOL = {np.dtype(np.float32): (1e-5, 1e-6), np.dtype(np.float64): (1e-12, 1e-14)}


def harvest(module_name, monkeypatch):
    """[(name, node, {role: array}, [expected outputs])] of one onnx case module."""
    mod = importlib.import_module(f"onnx.backend.test.case.node.{module_name}")
    cases = []

    def record(node, inputs, outputs, name, **kwargs):
        roles = dict(zip(ROLES, node.input))
        present = [r for r in ROLES if roles.get(r)]
        cases.append((name, node, dict(zip(present, inputs)), list(outputs)))

    monkeypatch.setattr(mod, "expect", record)
    for cls in vars(mod).values():
        if isinstance(cls, type) and issubclass(cls, mod.Base) and cls is not mod.Base:
            for attr in sorted(vars(cls)):
                if attr.startswith("export"):
                    np.random.seed(0)  # as onnx's own collector does before each export
                    getattr(cls, attr)()
    return cases


def expected_refusal(node, feed):
    """What fusedrnn cannot compute in this case (a word the error must contain), or None;
    decided from the node's attributes and inputs only."""
    import onnx  # noqa: PLC0415

    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if "P" in feed and np.any(feed["P"] != 0):
        return "peepholes"
    for name in ("clip", "activation_alpha", "activation_beta"):
        if name in attrs:
            return name
    if attrs.get("input_forget", 0):
        return "input_forget"
    acts = [a.decode().lower() for a in attrs.get("activations", [])]
    defaults = {"LSTM": ["sigmoid", "tanh", "tanh"], "GRU": ["sigmoid", "tanh"],
                "RNN": ["tanh"]}[node.op_type]
    if acts and acts not in (defaults * (len(acts) // len(defaults)), ["relu"] * len(acts)):
        return "activations"
    return None


def model_of(node, feed, name):
    """A one-node model with the case's weights as initializers."""
    from onnx import helper, numpy_helper  # noqa: PLC0415

    roles = dict(zip(ROLES, node.input))
    inits = [numpy_helper.from_array(feed[r], roles[r]) for r in WEIGHTS if r in feed]
    return helper.make_model(helper.make_graph([node], name, [], [], inits))


@pytest.mark.parametrize("module_name", list(OPS))
def test_onnx_operator_cases(onnxruntime, module_name, monkeypatch):
    cases = harvest(module_name, monkeypatch)
    assert len(cases) >= 5, f"only {len(cases)} cases harvested from onnx's {module_name}.py"
    checked = {"matched": [], "refused": []}
    directions = set()
    for name, node, feed, expected in cases:
        assert node.op_type == OPS[module_name], name
        model = model_of(node, feed, name)
        reason = expected_refusal(node, feed)
        if reason is not None:
            with pytest.raises(ValueError, match=reason):
                convert.from_onnx_model(model)
            checked["refused"].append(name)
            continue
        (imported,) = convert.from_onnx_model(model)
        directions.add(imported.direction)
        fed = {r: feed[r] for r in ("sequence_lens", "initial_h", "initial_c") if r in feed}
        assert set(imported.inputs) == {"X", *fed}, name
        got = dict(zip(("Y", "Y_h", "Y_c"), imported.run(feed["X"], **fed)))
        outputs = [role for role, tensor in zip(("Y", "Y_h", "Y_c"), node.output) if tensor]
        assert len(outputs) == len(expected), name
        for role, want in zip(outputs, expected):
            rtol, atol = TOL[np.dtype(want.dtype)]
            assert got[role].dtype == want.dtype, f"{name}: {role} dtype"
            np.testing.assert_allclose(got[role], want, rtol=rtol, atol=atol,
                                       err_msg=f"{name}: {role}")
        checked["matched"].append(name)
    # ONNX ships forward, reverse and bidirectional cases for every operator
    assert directions == {"forward", "reverse", "bidirectional"}, (module_name, directions)
    assert len(checked["matched"]) >= 5, checked


def test_peephole_case_is_refused_and_weights_must_be_initializers(onnxruntime, monkeypatch):
    cases = {c[0]: c for c in harvest("lstm", monkeypatch)}
    name, node, feed, _ = cases["test_lstm_with_peepholes"]
    with pytest.raises(ValueError, match=r"input P \(peepholes\) is not all zero"):
        convert.from_onnx_model(model_of(node, feed, name))
    # ONNX's own test models take the weights as graph inputs: refused, naming W
    from onnx import helper  # noqa: PLC0415

    name, node, feed, _ = cases["test_lstm_defaults"]
    graph = helper.make_graph([node], name, [], [])
    with pytest.raises(ValueError, match=r"input W comes from 'W', which is not an "
                                         r"initializer"):
        convert.from_onnx_model(helper.make_model(graph))
