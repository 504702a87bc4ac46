"""Every guide's ```python blocks must run.

For each ``docs/*.md`` file, the ```python fenced blocks are concatenated in
order and executed in a fresh Python process (one process per file, one shared
namespace, so later blocks may use names defined by earlier ones). The working
directory is a temporary folder, so figures or files a snippet writes do not land
in the repository. A traceback points at the line of the Markdown file.

Conventions for guide authors:

* Only blocks opened with ```python are run; ```bash, ```text, ``` and others are not.
* To keep a block out of the test, put ``<!-- skip-test -->`` on its own line just
  before the opening fence (blank lines in between are allowed). Use it for
  snippets that need a GPU, the network, or minutes of compute, and say so in the prose.
* Keep each guide's blocks fast (a few seconds in all): the whole doc test should
  stay well under 30 s on a shared 2-core machine.
* A guide whose blocks cannot run yet goes into ``SLOW_OR_PENDING`` with the reason;
  the test then skips it with that reason instead of failing.

The backend is whatever the process default is (``$ANYXP_BACKEND``, else numpy), so
``ANYXP_BACKEND=torch pytest tests/test_docs.py`` runs the guides on torch.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
SKIP_MARK = "<!-- skip-test -->"
TIMEOUT_S = 120

# guide file name -> why its blocks are not run (keep this empty when possible)
SLOW_OR_PENDING: dict[str, str] = {}

_OPEN = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")

_DRIVER = """
import json, sys
blocks = json.load(open(sys.argv[1], encoding="utf-8"))
namespace = {"__name__": "__main__"}
for path, first_line, source in blocks:
    # pad with blank lines so tracebacks show the Markdown file's own line numbers
    exec(compile("\\n" * (first_line - 1) + source, path, "exec"), namespace)
"""


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(line number of the block's first code line, source)`` for each ```python block
    not preceded by ``<!-- skip-test -->``."""
    lines = text.splitlines()
    blocks: list[tuple[int, str]] = []
    i, last_nonblank = 0, ""
    while i < len(lines):
        m = _OPEN.match(lines[i])
        if not m:
            if lines[i].strip():
                last_nonblank = lines[i].strip()
            i += 1
            continue
        indent, fence, lang = m.groups()
        start = i + 1
        j = start
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        if lang == "python" and last_nonblank != SKIP_MARK:
            body = [ln[len(indent):] if ln.startswith(indent) else ln for ln in lines[start:j]]
            blocks.append((start + 1, "\n".join(body) + "\n"))
        last_nonblank = ""
        i = j + 1
    return blocks


def _guides() -> list[Path]:
    return sorted(DOCS.glob("*.md")) if DOCS.is_dir() else []


def test_python_blocks_parser():
    text = "\n".join([
        "# t", "```python", "a = 1", "```", "", "<!-- skip-test -->", "", "```python", "raise SystemExit", "```",
        "```bash", "exit 1", "```", "```text", "x", "```", "- item", "  ```python", "  b = a + 1", "  ```",
    ])
    assert python_blocks(text) == [(3, "a = 1\n"), (19, "b = a + 1\n")]


@pytest.mark.parametrize("guide", _guides(), ids=lambda p: p.name)
def test_guide_snippets_run(guide: Path, tmp_path: Path):
    if guide.name in SLOW_OR_PENDING:
        pytest.skip(f"{guide.name}: {SLOW_OR_PENDING[guide.name]}")
    blocks = python_blocks(guide.read_text(encoding="utf-8"))
    if not blocks:
        pytest.skip(f"{guide.name} has no ```python blocks")
    if any(re.search(r"^\s*(import|from)\s+torch\b", src, re.M) for _, src in blocks):
        pytest.importorskip("torch", reason=f"{guide.name} has snippets that use PyTorch")
    for extra in ("onnx", "onnxruntime", "safetensors"):  # anyxp_nn[export]: .ci/run installs it, sets CI=true
        if any(extra in src for _, src in blocks) and os.environ.get("CI", "").lower() != "true":
            pytest.importorskip(extra, reason=f"{guide.name} has snippets that need {extra} (anyxp_nn[export])")
    spec = tmp_path / "blocks.json"
    spec.write_text(json.dumps([[str(guide), line, src] for line, src in blocks]), encoding="utf-8")
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1")
    # this checkout's anyxp_nn, not whichever one is installed
    env["PYTHONPATH"] = str(DOCS.parent) + os.pathsep + env.get("PYTHONPATH", "")
    # one BLAS thread: spinning BLAS threads on a shared 2-core machine make small GEMMs ~50x slower
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("OPENBLAS_NUM_THREADS", env["OMP_NUM_THREADS"])
    try:
        proc = subprocess.run([sys.executable, "-c", _DRIVER, str(spec)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{guide.name}: its {len(blocks)} python blocks ran longer than {TIMEOUT_S} s")
    if proc.returncode != 0:
        tail = (proc.stdout[-2000:] + "\n" + proc.stderr[-6000:]).strip()
        pytest.fail(f"{guide.name}: a python block failed (exit {proc.returncode}):\n{tail}", pytrace=False)
