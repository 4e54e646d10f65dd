"""Every example in examples/ runs in its --quick mode and its result is sane.

Each script runs in a subprocess (this interpreter, a temporary working folder, --out
that folder) and ends with a line ``RESULT {json}``; the tests read it and check what
the example claims: the loss fell, accuracy is well above chance, the forecast beats
the naive baselines, LSTM/GRU gradients survive longer than a tanh RNN's, clipping
keeps an exploding RNN finite.  The PNGs land in the temporary folder, never in the
repository.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

import fusedrnn

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def _env():
    """This process's environment, with a PYTHONPATH that works from any folder and finds
    the same fusedrnn this process imported."""
    env = dict(os.environ)
    paths = [str(pathlib.Path(fusedrnn.__file__).resolve().parents[1])]
    paths += [str(pathlib.Path(p).resolve()) for p in env.get("PYTHONPATH", "").split(os.pathsep)
              if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    # The examples' NumPy matmuls are small: OpenBLAS's spinning threads only compete
    # with fusedrnn's on a busy machine.
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    return env


def run_example(name, tmp_path, *extra, prelude=None):
    """Run examples/<name>.py --quick --out tmp_path; return (its RESULT dict, its stdout)."""
    script = EXAMPLES / f"{name}.py"
    args = ["--quick", "--seed", "0", "--out", str(tmp_path), *extra]
    if prelude is None:
        cmd = [sys.executable, str(script), *args]
    else:  # run the script after `prelude` (e.g. hiding a module) in the same interpreter
        code = (f"import runpy, sys; {prelude}; sys.path.insert(0, {str(EXAMPLES)!r}); "
                f"sys.argv = {[str(script), *args]!r}; "
                f"runpy.run_path({str(script)!r}, run_name='__main__')")
        cmd = [sys.executable, "-c", code]
    proc = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("RESULT "), f"{name}: the last line is not RESULT: {last!r}"
    result = json.loads(last[len("RESULT "):])
    assert result["example"] == name
    return result, proc.stdout


def check_pngs(tmp_path, stdout, names):
    if HAVE_MATPLOTLIB:
        for n in names:
            png = tmp_path / n
            assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", n
    else:
        assert "plot skipped" in stdout


def test_text_generation(tmp_path):
    r, out = run_example("text_generation", tmp_path)
    assert r["val_loss_init"] > 0.95 * r["uniform_loss"]  # untrained: about log(vocabulary)
    assert r["last_loss"] < r["first_loss"] - 0.5
    assert r["val_loss"] < r["val_loss_init"] - 0.5
    assert r["sample_len"] > len("The LSTM") + 100  # the prompt and the sampled characters
    check_pngs(tmp_path, out, ["text_generation_loss.png"])


def test_forecast(tmp_path):
    r, out = run_example("forecast", tmp_path)
    assert r["last_loss"] < r["first_loss"]
    assert r["one_step_gru"] < 0.7 * r["one_step_naive"]
    assert r["one_step_gru"] < 0.7 * r["one_step_seasonal_naive"]
    assert r["multi_gru"] < r["multi_naive"]
    check_pngs(tmp_path, out, ["forecast.png"])


def test_classify(tmp_path):
    r, out = run_example("classify", tmp_path)
    assert r["last_loss"] < 0.5 * r["first_loss"]
    assert r["accuracy"] > 0.85  # chance: about 0.5
    check_pngs(tmp_path, out, ["classify.png"])


def test_seq2seq(tmp_path):
    r, out = run_example("seq2seq", tmp_path)
    assert r["digits"] == 2
    assert r["last_loss"] < 0.6 * r["first_loss"]
    assert r["digit_accuracy"] > 0.5
    # A whole 3-digit answer right by chance: about 1 in 200 (the sums are 0-198).
    assert r["exact_match"] > 0.05
    check_pngs(tmp_path, out, ["seq2seq.png"])


def test_gradients(tmp_path):
    r, out = run_example("gradients", tmp_path)
    # ||dL/dx_0|| / ||dL/dx_lag||: the gradient that survives `lag` steps, at initialisation.
    for gated in ("LSTM", "GRU"):
        assert r[f"survive_init_{gated}"] > 10 * r["survive_init_RNN_tanh"], gated
    assert r["survive_init_RNN_tanh"] < 1e-3  # vanishing
    # Forget gates that start open (bias 1) keep far more of it than torch's initialisation.
    assert r["survive_init_LSTM_forget_bias_1"] > 100 * r["survive_init_LSTM"]
    assert not r["explode_noclip_finite"]  # exploding relu RNN, plain SGD: inf/NaN
    assert r["explode_clip_finite"]  # the same RNN with clip_grad_norm: finite, and it recovers
    assert r["explode_clip_last_loss"] < 0.1 * r["explode_clip_first_loss"]
    check_pngs(tmp_path, out, ["gradients_vanishing.png", "gradients_exploding.png"])


def test_text_generation_torch(tmp_path, torch):
    r, out = run_example("text_generation_torch", tmp_path, "--threads", "1")
    assert r["threads"] == 1
    assert r["max_loss_diff"] < 1e-3  # the drop-in trains like torch.nn from the same weights
    assert r["last_loss"] < r["first_loss"] - 0.5
    for key in ("step_ms_torch", "step_ms_fused", "char_us_torch", "char_us_fused"):
        assert r[key] > 0  # timings are printed, not judged: the machine may be busy
    assert "fusedrnn.torch" in out


def test_examples_run_without_matplotlib(tmp_path):
    r, out = run_example("classify", tmp_path, prelude="sys.modules['matplotlib'] = None")
    assert "plot skipped" in out
    assert not list(tmp_path.glob("*.png"))
    assert r["accuracy"] > 0.85
