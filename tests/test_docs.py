"""Every guide's ```python blocks must run, print what the page shows, and every figure must exist.

For each ``docs/*.md`` file and each of the backends numpy, array_api_strict and torch
(torch skips when it is not installed), the ```python fenced blocks are executed in
order in a fresh Python process with ``ANYXP_BACKEND`` set to that backend (one
process per file and backend, one shared namespace, so later blocks may use names
defined by earlier ones). The working directory is a temporary folder, so figures or
files a snippet writes do not land in the repository. A traceback points at the line
of the Markdown file.

**Printed output is checked.** When a ```python block is followed (only blank lines or
an ``<!-- output: ... -->`` comment in between) by a ```text block, that text block is
the output the block prints, and the test compares it with what the block really
printed on each backend. Words and punctuation must match exactly (white space is
ignored, so NumPy's column alignment does not matter). Numbers are compared with a
tolerance: a number written with a decimal point or an exponent may differ by up to
3 units in its last written digit, but by no more than 5% of its value unless that is
less than one unit (``0.858`` accepts 0.855 to 0.861, ``0.1`` accepts 0.0 to 0.2); an
integer must match exactly. A stale number therefore fails. A python block with no ```text block
after it is run but its output is not compared.

Conventions for guide authors:

* Only blocks opened with ```python are run; ```bash, ```text, ``` and others are not.
* To keep a block out of the test, put ``<!-- skip-test -->`` on its own line just
  before the opening fence (blank lines in between are allowed). Use it for
  snippets that need a GPU, the network, or minutes of compute, and say so in the prose.
* Options for one output block go in a comment just before its ```text fence,
  e.g. ``<!-- output: rtol=0.05 -->``. Known options: ``rtol=X`` (relative tolerance for
  every number, on top of the last-digit rule), ``atol=X`` (absolute tolerance),
  ``ints-approx`` (integers get the same tolerances as decimals), ``backend-name``
  (the word ``numpy`` in the shown output stands for the backend that runs it) and
  ``not-compared`` (the block is an illustration, not checked).
* Keep each guide's blocks fast (a few seconds in all): the whole doc test should
  stay well under a minute on a shared 2-core machine.
* A guide whose blocks cannot run yet goes into ``SLOW_OR_PENDING`` with the reason;
  the test then skips it with that reason instead of failing. A guide whose snippets
  are written for some backends only goes into ``BACKENDS_FOR`` with the backends it
  supports.

Figures: every Markdown image link ``![...](path)`` in a page must point at a file that
exists, and every ``*.png`` name one of the course pages (``FIGURE_PAGES``) mentions in
its prose (outside code blocks) must be a file in ``docs/figures/``. ``python examples/make_doc_figures.py`` regenerates
them.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
FIGURES = DOCS / "figures"
SKIP_MARK = "<!-- skip-test -->"
TIMEOUT_S = 180
BACKENDS = ("numpy", "array_api_strict", "torch")
FIGURES_MAX_BYTES = 2_000_000

# guide file name -> why its blocks are not run (keep this empty when possible)
SLOW_OR_PENDING: dict[str, str] = {}
# guide file name -> the backends its snippets are written for (default: all of BACKENDS)
BACKENDS_FOR: dict[str, tuple[str, ...]] = {
}
# pages whose prose may name a figure only if it is in docs/figures/ (other pages name files a user writes)
FIGURE_PAGES = ("01-stochastic-gradient-descent.md", "02-mlps-backpropagation.md", "03-cnns-deep-learning-keys.md",
                "04-deep-learning-optimization.md", "how-it-is-fast.md")

_OPEN = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
_OUTPUT_OPTS = re.compile(r"^<!--\s*output:\s*(.*?)\s*-->$")
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w])")


@dataclass
class Block:
    line: int                      # line number of the block's first code line
    source: str
    expected: str | None = None    # the ```text block that follows, if any
    expected_line: int = 0
    options: dict = field(default_factory=dict)


def _parse_options(text: str) -> dict:
    opts: dict = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = part.partition("=")
        opts[key.strip()] = float(value) if value else True
    return opts


def parse_blocks(text: str) -> list[Block]:
    """The runnable ```python blocks of a page, each with the ```text output block after it."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i, last_nonblank, pending_opts = 0, "", {}
    previous_was_python = False            # only blank lines / an output comment since a python block
    while i < len(lines):
        m = _OPEN.match(lines[i])
        if not m:
            stripped = lines[i].strip()
            if stripped:
                om = _OUTPUT_OPTS.match(stripped)
                if om and previous_was_python:
                    pending_opts = _parse_options(om.group(1))
                else:
                    previous_was_python = False
                last_nonblank = stripped
            i += 1
            continue
        indent, fence, lang = m.groups()
        start = i + 1
        j = start
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        body = "\n".join(ln[len(indent):] if ln.startswith(indent) else ln for ln in lines[start:j]) + "\n"
        if lang == "python" and last_nonblank != SKIP_MARK:
            blocks.append(Block(start + 1, body))
            previous_was_python = True
        elif lang == "text" and previous_was_python and blocks[-1].expected is None:
            blocks[-1].expected, blocks[-1].expected_line, blocks[-1].options = body, start + 1, pending_opts
            previous_was_python = False
        else:
            previous_was_python = False
        pending_opts = {}
        last_nonblank = ""
        i = j + 1
    return blocks


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(line number of the block's first code line, source)`` for each runnable ```python block."""
    return [(blk.line, blk.source) for blk in parse_blocks(text)]


def _decimals_unit(token: str) -> float:
    """One unit in the last written digit of a decimal number token (``"0.858"`` -> 0.001)."""
    mantissa, _, exponent = token.lower().partition("e")
    digits = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return 10.0 ** (int(exponent or 0) - digits)


def compare_output(expected: str, actual: str, options: dict | None = None, backend: str = "numpy") -> list[str]:
    """Differences between the output a page shows and the output a block printed (empty: they agree)."""
    options = options or {}
    if "not-compared" in options:
        return []
    if "backend-name" in options:
        expected = re.sub(r"\bnumpy\b", backend, expected)
    rtol, atol = float(options.get("rtol", 0.0)), float(options.get("atol", 0.0))
    exp_lines = [ln.rstrip() for ln in expected.strip("\n").splitlines()]
    act_lines = [ln.rstrip() for ln in actual.strip("\n").splitlines()]
    if len(exp_lines) != len(act_lines):
        return [f"{len(exp_lines)} lines shown, {len(act_lines)} printed"]
    problems = []
    for k, (e, a) in enumerate(zip(exp_lines, act_lines), start=1):
        e_nums, a_nums = _NUMBER.findall(e), _NUMBER.findall(a)
        e_text = "".join(_NUMBER.sub("#", e).split())
        a_text = "".join(_NUMBER.sub("#", a).split())
        if e_text != a_text or len(e_nums) != len(a_nums):
            problems.append(f"line {k}: shown {e!r}, printed {a!r}")
            continue
        for en, an in zip(e_nums, a_nums):
            ev, av = float(en), float(an)
            is_int = re.fullmatch(r"[-+]?\d+", en) is not None
            if is_int and "ints-approx" not in options:
                ok = ev == av
            else:
                unit = _decimals_unit(en)
                ok = abs(ev - av) <= max(1.01 * unit, min(3 * unit, 0.05 * abs(ev)), rtol * abs(ev), atol)
            if not ok:
                problems.append(f"line {k}: shown {en}, printed {an}   ({e.strip()!r} vs {a.strip()!r})")
    return problems


_DRIVER = """
import contextlib, io, json, sys, traceback
blocks = json.load(open(sys.argv[1], encoding="utf-8"))
namespace = {"__name__": "__main__"}
outputs = []
status = 0
for path, first_line, source in blocks:
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            # pad with blank lines so tracebacks show the Markdown file's own line numbers
            exec(compile("\\n" * (first_line - 1) + source, path, "exec"), namespace)
    except BaseException:
        sys.stdout.write(buf.getvalue())
        traceback.print_exc()
        status = 1
        break
    finally:
        outputs.append(buf.getvalue())
json.dump(outputs, open(sys.argv[2], "w", encoding="utf-8"))
sys.exit(status)
"""


def _guides() -> list[Path]:
    return sorted(DOCS.glob("*.md")) if DOCS.is_dir() else []


def _backend_params():
    return [pytest.param(g, be, id=f"{g.name}-{be}") for g in _guides() for be in BACKENDS]


def test_parse_blocks():
    text = "\n".join([
        "# t", "```python", "a = 1", "```", "", "<!-- skip-test -->", "", "```python", "raise SystemExit", "```",
        "```bash", "exit 1", "```", "```text", "x", "```", "- item", "  ```python", "  b = a + 1", "  ```",
        "", "<!-- output: rtol=0.1, backend-name -->", "```text", "2", "```", "prose", "```text", "not output", "```",
    ])
    assert python_blocks(text) == [(3, "a = 1\n"), (19, "b = a + 1\n")]
    blocks = parse_blocks(text)
    assert blocks[0].expected is None                    # a bash block sits between it and the text block
    assert blocks[1].expected == "2\n" and blocks[1].expected_line == 24
    assert blocks[1].options == {"rtol": 0.1, "backend-name": True}


def test_compare_output():
    assert compare_output("acc 0.858\n", "acc 0.86\n") == []          # 2 units of 0.001
    assert compare_output("acc 0.858\n", "acc 0.9\n")                 # stale
    assert compare_output("ratio 32\n", "ratio 3.2\n")
    assert compare_output("n 20\n", "n 21\n")                         # integers exactly
    assert compare_output("n 20\n", "n 21\n", {"ints-approx": True, "rtol": 0.1}) == []
    assert compare_output("[0.1  1. ]\n", "[0.1 1.]\n") == []         # spacing is free
    assert compare_output("f = 7.4e-10\n", "f = 7.6e-10\n") == []
    assert compare_output("f = 7.4e-10\n", "f = 7.4e-09\n")
    assert compare_output("a\nb\n", "a\n")
    assert compare_output("True\n", "False\n")
    assert compare_output("failed on numpy\n", "failed on torch\n", {"backend-name": True}, "torch") == []
    assert compare_output("x\n", "y\n", {"not-compared": True}) == []
    assert compare_output("loss 0.5 -> 0.1\n", "loss 0.5 -> 0.3\n", {"rtol": 0.01})
    assert compare_output("loss 100.0\n", "loss 104.0\n", {"rtol": 0.05}) == []


@pytest.mark.parametrize("guide, backend_name", _backend_params())
def test_guide_snippets_run_and_print_what_the_page_shows(guide: Path, backend_name: str, tmp_path: Path):
    if guide.name in SLOW_OR_PENDING:
        pytest.skip(f"{guide.name}: {SLOW_OR_PENDING[guide.name]}")
    if backend_name not in BACKENDS_FOR.get(guide.name, BACKENDS):
        pytest.skip(f"{guide.name}'s snippets are written for {BACKENDS_FOR[guide.name]} only")
    if importlib.util.find_spec("torch" if backend_name == "torch" else backend_name) is None:
        pytest.skip(f"{backend_name} is not installed")
    blocks = parse_blocks(guide.read_text(encoding="utf-8"))
    if not blocks:
        pytest.skip(f"{guide.name} has no ```python blocks")
    if any(re.search(r"^\s*(import|from)\s+torch\b", blk.source, re.M) for blk in blocks):
        pytest.importorskip("torch", reason=f"{guide.name} has snippets that use PyTorch")
    for extra in ("onnx", "onnxruntime", "safetensors"):  # anyxp_nn[export]: .ci/run installs it, sets CI=true
        if any(extra in blk.source for blk in blocks) and os.environ.get("CI", "").lower() != "true":
            pytest.importorskip(extra, reason=f"{guide.name} has snippets that need {extra} (anyxp_nn[export])")
    spec, result = tmp_path / "blocks.json", tmp_path / "outputs.json"
    spec.write_text(json.dumps([[str(guide), blk.line, blk.source] for blk in blocks]), encoding="utf-8")
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1", ANYXP_BACKEND=backend_name,
               PYTHONPATH=pythonpath)      # this checkout's anyxp_nn, whatever is installed
    # one BLAS thread: spinning BLAS threads on a shared 2-core machine make small GEMMs ~50x slower
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("OPENBLAS_NUM_THREADS", env["OMP_NUM_THREADS"])
    try:
        proc = subprocess.run([sys.executable, "-c", _DRIVER, str(spec), str(result)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{guide.name}: its {len(blocks)} python blocks ran longer than {TIMEOUT_S} s on {backend_name}")
    if proc.returncode != 0:
        tail = (proc.stdout[-2000:] + "\n" + proc.stderr[-6000:]).strip()
        pytest.fail(f"{guide.name}: a python block failed on {backend_name} (exit {proc.returncode}):\n{tail}",
                    pytrace=False)
    outputs = json.loads(result.read_text(encoding="utf-8"))
    report = []
    for blk, printed in zip(blocks, outputs):
        if blk.expected is None:
            continue
        problems = compare_output(blk.expected, printed, blk.options, backend_name)
        if problems:
            report.append(f"{guide.name}:{blk.expected_line} (output of the block at line {blk.line}):\n    "
                          + "\n    ".join(problems))
    if report:
        pytest.fail(f"printed output differs from the page on {backend_name}:\n" + "\n".join(report), pytrace=False)


_IMAGE_LINK = re.compile(r"!\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_PNG_NAME = re.compile(r"(?<![\w/.-])([\w.-]+\.png)\b")


def _prose(text: str) -> str:
    """The page without its fenced code blocks."""
    out, fence = [], None
    for ln in text.splitlines():
        m = _OPEN.match(ln)
        if fence is None and m:
            fence = m.group(2)
            continue
        if fence is not None:
            if ln.strip().startswith(fence):
                fence = None
            continue
        out.append(ln)
    return "\n".join(out)


@pytest.mark.parametrize("guide", _guides(), ids=lambda p: p.name)
def test_every_figure_a_page_references_exists(guide: Path):
    prose = _prose(guide.read_text(encoding="utf-8"))
    missing = []
    for target in _IMAGE_LINK.findall(prose):
        if "://" not in target and not (guide.parent / target).is_file():
            missing.append(f"image link {target}")
    names = set(_PNG_NAME.findall(_IMAGE_LINK.sub("", prose))) if guide.name in FIGURE_PAGES else set()
    for name in names:
        if not (FIGURES / name).is_file():
            missing.append(f"figure name {name} (not in docs/figures/)")
    assert not missing, f"{guide.name} references figures that do not exist: {sorted(missing)}"


def test_figures_are_small():
    if not FIGURES.is_dir():
        pytest.skip("no docs/figures yet")
    total = sum(f.stat().st_size for f in FIGURES.glob("*.png"))
    assert total < FIGURES_MAX_BYTES, f"docs/figures holds {total / 1e6:.2f} MB of PNGs (limit 2 MB)"


def test_every_committed_figure_is_regenerated_by_one_command():
    """Each PNG in docs/figures/ that a course page links is one ``python examples/make_doc_figures.py``
    writes (figures only other pages link are their authors' business)."""
    spec = importlib.util.spec_from_file_location("make_doc_figures", ROOT / "examples" / "make_doc_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    made = {name for names in module.FIGURES.values() for name in names}

    def linked(pages):
        return {Path(t).name for g in pages for t in _IMAGE_LINK.findall(_prose(g.read_text(encoding="utf-8")))
                if t.startswith("figures/")}

    course = linked(g for g in _guides() if g.name in FIGURE_PAGES)
    others = linked(g for g in _guides() if g.name not in FIGURE_PAGES)
    assert course <= made, f"course pages link figures that make_doc_figures.py does not make: {sorted(course - made)}"
    committed = {f.name for f in FIGURES.glob("*.png")} if FIGURES.is_dir() else set()
    orphans = committed - made - others
    assert not orphans, f"figures in docs/figures that no page links and no command regenerates: {sorted(orphans)}"
