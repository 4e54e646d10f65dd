"""The README's usage examples run as written, and CI runs the README's test command.

```python blocks need only fusedrnn; ```py blocks are the PyTorch drop-in's and need
torch (the ``torch`` fixture: skipped without it, failed under FUSEDRNN_REQUIRE_TORCH=1).
"""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def code_blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_usage_example_runs():
    blocks = code_blocks("python")
    assert blocks, "README.md has no python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_torch_example_runs(torch):
    blocks = code_blocks("py")
    assert blocks, "README.md has no PyTorch drop-in example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_ci_runs_the_readme_test_command():
    test_line = [b for b in code_blocks("bash") if "pytest" in b]
    assert len(test_line) == 1, "README.md should state one test command"
    assert "python -m pytest" in test_line[0]
    assert "The test command itself is `python -m pytest`" in README
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert "python -m pytest" in [line.strip() for line in ci]
    assert any("torch==2.13.0" in line for line in ci)
    assert any("FUSEDRNN_REQUIRE_TORCH=1" in line for line in ci)
