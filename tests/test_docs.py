"""Every code block in README.md, CONTRIBUTING.md and docs/*.md runs as written, and CI
runs the README's test command.

- ```python blocks may import only numpy, fusedrnn (not fusedrnn.torch) and the standard
  library; they run without torch.
- ```py blocks are the PyTorch ones: they run under the ``torch`` fixture (skipped
  without torch, failed under FUSEDRNN_REQUIRE_TORCH=1).
- Per file and per kind, the blocks run in order in one fresh namespace, so a later
  block may use what an earlier one of the same kind defined; a failure names the
  block's file:line.
- Other fences are shown, never run, and must say what they are: bash, text, console,
  ini, toml, cpp, diff, or none (a bare fence). Any other language fails the file.
- Blocks must be quick (seconds): the whole file of examples runs on every test run.
- Every relative link resolves (file and #heading), and README.md and docs/index.md
  link every page under docs/.
"""

from __future__ import annotations

import ast
import pathlib
import re
import sys
import traceback

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SHOWN = {"bash", "text", "console", "ini", "toml", "cpp", "diff", "none", ""}
RUN = {"python", "py"}
DOC_FILES = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md")])
DOC_FILES = [p for p in DOC_FILES if p.exists()]
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>```+|~~~+)[ \t]*(?P<info>[^\s`]*)")


def fenced_blocks(text):
    """(language, first line number of the code, code) for every fenced block in text.

    Fences may be indented (inside list items); the code is dedented by the fence's
    indentation.  An unterminated fence is an error.
    """
    blocks = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m["indent"], m["fence"], m["info"].lower()
        start = i + 1
        j = start
        while j < len(lines) and not (lines[j].strip().startswith(fence[0] * len(fence))
                                      and lines[j].strip().strip(fence[0]) == ""):
            j += 1
        if j == len(lines):
            raise ValueError(f"line {i + 1}: fence {fence}{lang} is never closed")
        body = [ln[len(indent):] if ln.startswith(indent) else ln.lstrip()
                for ln in lines[start:j]]
        blocks.append((lang, start + 1, "\n".join(body) + "\n"))
        i = j + 1
    return blocks


def code_blocks(lang, text=README):
    return [code for block_lang, _, code in fenced_blocks(text) if block_lang == lang]


def _rel(path):
    """The path as the failure messages name it: relative to the repository root."""
    try:
        return path.relative_to(ROOT).as_posix()
    except ValueError:
        return path.as_posix()


def run_blocks(path, lang):
    """Run the file's ```lang blocks in order in one namespace; fail naming file:line."""
    blocks = [(line, code) for block_lang, line, code in fenced_blocks(path.read_text())
              if block_lang == lang]
    namespace = {"__name__": f"docs_{path.stem}"}
    for line, code in blocks:
        where = f"{_rel(path)}:{line}"
        try:
            tree = ast.parse(code, filename=str(path))
        except SyntaxError as e:
            pytest.fail(f"{where}: ```{lang} block does not parse: {e}", pytrace=False)
        ast.increment_lineno(tree, line - 1)
        if lang == "python":
            bad = sorted(foreign_imports(tree))
            assert not bad, (f"{where}: a ```python block may import only numpy, fusedrnn and "
                             f"the standard library (use ```py for torch), imports {bad}")
        try:
            exec(compile(tree, str(path), "exec"), namespace)
        except Exception as e:
            tb = "".join(traceback.format_exception(type(e), e, e.__traceback__)[-6:])
            pytest.fail(f"{where}: ```{lang} block raised {type(e).__name__}: {e}\n{tb}",
                        pytrace=False)
    return len(blocks)


def foreign_imports(tree):
    """Modules imported by tree that a torch-free ```python block may not use."""
    stdlib = set(sys.stdlib_module_names)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module)
            if node.module == "fusedrnn":
                names.update(f"fusedrnn.{a.name}" for a in node.names if a.name == "torch")
    return {n for n in names
            if n.startswith("fusedrnn.torch")
            or n.split(".")[0] not in stdlib | {"numpy", "fusedrnn"}}


def _ids(paths):
    return [_rel(p) for p in paths]


def _with(lang):
    return [p for p in DOC_FILES if code_blocks(lang, p.read_text())]


def test_doc_files_found():
    names = set(_ids(DOC_FILES))
    assert {"README.md", "CONTRIBUTING.md", "docs/index.md"} <= names, names


@pytest.mark.parametrize("path", DOC_FILES, ids=_ids(DOC_FILES))
def test_fence_languages_known(path):
    unknown = [f"{_rel(path)}:{line - 1}: ```{lang}"
               for lang, line, _ in fenced_blocks(path.read_text())
               if lang not in RUN | SHOWN]
    assert not unknown, ("unknown fence language (run: python, py; shown: "
                         f"{', '.join(sorted(SHOWN - {''}))}): {unknown}")


@pytest.mark.parametrize("path", _with("python"), ids=_ids(_with("python")))
def test_python_blocks_run(path):
    assert run_blocks(path, "python") > 0


@pytest.mark.parametrize("path", _with("py"), ids=_ids(_with("py")))
def test_py_blocks_run(path, torch):
    assert run_blocks(path, "py") > 0


def test_usage_example_runs():
    blocks = code_blocks("python")
    assert blocks, "README.md has no python example"
    assert run_blocks(ROOT / "README.md", "python") == len(blocks)


def test_torch_example_runs(torch):
    blocks = code_blocks("py")
    assert blocks, "README.md has no PyTorch drop-in example"
    assert run_blocks(ROOT / "README.md", "py") == len(blocks)


def test_ci_runs_the_readme_test_command():
    test_line = [b for b in code_blocks("bash") if "pytest" in b]
    assert len(test_line) == 1, "README.md should state one test command"
    assert "python -m pytest" in test_line[0]
    assert "The test command itself is `python -m pytest`" in README
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert "python -m pytest" in [line.strip() for line in ci]
    assert any("torch==2.13.0" in line for line in ci)
    assert any("FUSEDRNN_REQUIRE_TORCH=1" in line for line in ci)


# The checker itself: what it must catch.

def test_fenced_blocks_reads_lines_languages_and_indented_fences():
    text = "intro\n```python\nx = 1\n```\n- item\n\n  ```py\n  y = 2\n  ```\n```\nplain\n```\n"
    assert fenced_blocks(text) == [("python", 3, "x = 1\n"), ("py", 8, "y = 2\n"),
                                   ("", 11, "plain\n")]
    with pytest.raises(ValueError, match="never closed"):
        fenced_blocks("```python\nx = 1\n")


def test_foreign_imports_flags_torch_and_third_party():
    tree = ast.parse("import numpy as np, os\nimport fusedrnn as fr\nfrom fusedrnn import torch\n"
                     "import fusedrnn.torch\nimport scipy.linalg\nfrom collections import deque\n")
    assert foreign_imports(tree) == {"fusedrnn.torch", "scipy.linalg"}


def test_failure_names_file_and_line(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# t\n\n```python\na = 1\n```\n\ntext\n\n```python\nassert a == 2, 'a'\n```\n")
    with pytest.raises(pytest.fail.Exception, match=r"page\.md:10: ```python block raised "
                                                      r"AssertionError"):
        run_blocks(page, "python")
    page.write_text("```python\nimport fusedrnn.torch\n```\n")
    with pytest.raises(AssertionError, match=r"page\.md:2: .*imports \['fusedrnn.torch'\]"):
        run_blocks(page, "python")


# Links: every page is reachable, and no relative link points nowhere.

LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")
#: Pages other branches write; links to them are allowed before they land.
PENDING = {"docs/benchmarks.md", "docs/onnx.md", "docs/training.md", "docs/examples.md",
           "docs/platforms.md"}


def slug(heading):
    """The anchor a heading gets on GitHub: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(text):
    return {slug(m[1]) for m in re.finditer(r"^#+ (.*)$", text, flags=re.M)}


def relative_links(path):
    """(line, target file relative to ROOT, anchor or None) of each relative link in path."""
    out = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        for m in LINK.finditer(line):
            target = m["target"]
            if re.match(r"^[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            out.append((lineno, _rel(dest), anchor or None))
    return out


@pytest.mark.parametrize("path", DOC_FILES, ids=_ids(DOC_FILES))
def test_relative_links_resolve(path):
    broken = []
    for line, dest, anchor in relative_links(path):
        target = ROOT / dest
        if not target.exists():
            if dest not in PENDING:
                broken.append(f"{_rel(path)}:{line}: {dest} does not exist")
        elif anchor is not None and anchor not in anchors(target.read_text()):
            broken.append(f"{_rel(path)}:{line}: {dest} has no heading #{anchor}")
    assert not broken, broken


@pytest.mark.parametrize("hub", ["README.md", "docs/index.md"])
def test_every_docs_page_is_linked(hub):
    pages = {_rel(p) for p in (ROOT / "docs").glob("*.md")} | PENDING
    linked = {dest for _, dest, _ in relative_links(ROOT / hub)}
    assert pages - {hub} <= linked, f"{hub} does not link {sorted(pages - {hub} - linked)}"


def test_slug_matches_github():
    assert slug("Weight packing") == "weight-packing"
    assert slug("Distributed training (DDP)") == "distributed-training-ddp"
    assert slug("The PyTorch drop-in: `fusedrnn.torch`") == "the-pytorch-drop-in-fusedrnntorch"
