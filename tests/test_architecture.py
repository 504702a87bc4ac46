"""The package's imports point one way: down.

Every module of ``anyxp_nn`` is parsed with :mod:`ast` (imports inside functions
included, since a lazy import hides a circle rather than removing it) and each import
is checked against the layer ranks below: a module may import its own rank or a lower
one, never a higher one, and no group of modules may import each other in a circle.
"""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "anyxp_nn"

# rank -> the top-level modules/packages of anyxp_nn on it.  Lower ranks know nothing of
# higher ones.  The top-level package (``anyxp_nn/__init__.py``, rank 9) is the facade over
# the library; only the programs written against it (demos, the command line) sit above.
RANKS: dict[int, tuple[str, ...]] = {
    0: ("_checks", "_atomic", "_table", "_version", "keymap", "datasets"),  # plain helpers, no anyxp_nn imports
    1: ("backend",),
    2: ("random", "init", "parameter", "sync"),
    3: ("ops",),
    4: ("layers",),
    5: ("losses", "optim", "models"),
    # distributed sits below training: fit asks it for its hooks (DataParallel is a Layer;
    # the package needs only layers and the backend)
    6: ("data", "checkpoint", "checkpoint_format", "augment", "distributed"),
    7: ("training",),
    8: ("monitor", "summary", "interpret", "vision", "export", "testing"),
    # 9: the top-level package, the facade users import (`import anyxp_nn as nn`)
    10: ("demos", "cli", "__main__"),  # programs written against that facade, as a user's are
}
TOP = 9
GROUP_RANK = {group: rank for rank, groups in RANKS.items() for group in groups}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(module: str) -> list[tuple[str, int]]:
    """(imported anyxp_nn module, line) for every import in ``module``, at any depth."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from pkg import submodule` imports the submodule; `from mod import name` the module
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in MODULES else source for a in node.names]
        else:
            continue
        found += [(t, node.lineno) for t in targets if t == "anyxp_nn" or t.startswith("anyxp_nn.")]
    return found


def _group(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def _rank(module: str) -> int:
    return TOP if module == "anyxp_nn" else GROUP_RANK[_group(module)]


def test_every_module_has_a_rank():
    unranked = sorted({_group(m) for m in MODULES if m != "anyxp_nn" and _group(m) not in GROUP_RANK})
    assert not unranked, f"add these to RANKS in {__file__}: {unranked}"


def test_no_module_imports_one_above_it():
    upward = {(m, t, line) for m in MODULES for t, line in _imports(m) if _rank(t) > _rank(m)}
    report = [f"{m} (rank {_rank(m)}) line {line} imports {t} (rank {_rank(t)})" for m, t, line in sorted(upward)]
    assert not report, "upward imports:\n" + "\n".join(report)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_circular_imports_between_modules():
    edges = {m: {t for t, _ in _imports(m) if t != m} for m in MODULES}
    assert not _cycles(edges)


def test_no_circular_imports_between_groups():
    # modules on one rank may import each other's groups, but never in a circle
    edges: dict[str, set[str]] = {}
    for m in MODULES:
        for t, _ in _imports(m):
            if _group(m) != _group(t):
                edges.setdefault(_group(m) or "anyxp_nn", set()).add(_group(t) or "anyxp_nn")
    assert not _cycles(edges)


def test_the_checker_sees_lazy_and_relative_imports():
    # a test that cannot fail is a defect: the walker must find the imports it checks
    found = {t for m in MODULES for t, _ in _imports(m)}
    assert "anyxp_nn.backend" in found and "anyxp_nn.layers.base" in found
    assert ("anyxp_nn.layers", 4) == ("anyxp_nn.layers", _rank("anyxp_nn.layers.linear"))
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


def test_import_anyxp_nn_does_not_load_testing():
    code = ("import sys, anyxp_nn; "
            "print(sorted(m for m in sys.modules if m.startswith('anyxp_nn.testing')))")
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=PACKAGE.parent, check=True).stdout.strip()
    assert out == "[]", f"`import anyxp_nn` loaded {out}"


@pytest.mark.parametrize("package", sorted(m for m, p in MODULES.items() if p.name == "__init__.py"))
def test_each_package_has_one_sorted_export_list(package):
    source = MODULES[package].read_text(encoding="utf-8")
    assert "__all__ +=" not in source and "E402" not in source, "one import block and one __all__ per package"
    tree = ast.parse(source)
    lists = [n.value for n in tree.body if isinstance(n, ast.Assign)
             and any(getattr(t, "id", None) == "__all__" for t in n.targets)]
    if package == "anyxp_nn.demos":  # the course's sections, no exports
        assert not lists
        return
    assert len(lists) == 1, f"{package}: expected one `__all__ = [...]`"
    names = [n.value for n in ast.walk(lists[0]) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    assert len(set(names)) == len(names), f"{package}: names listed twice"
    assert names == sorted(names), f"{package}: sort __all__"


SCAFFOLDING = ("does not exist yet", "not written yet", "this version of anyxp_nn has no", "this version lacks")


def test_no_scaffolding_language_left():
    root = PACKAGE.parent
    files = [*MODULES.values(), *sorted((root / "examples").glob("*.py")), *sorted((root / "docs").glob("*.md"))]
    found = {str(p.relative_to(root)) for p in files
             if any(s in p.read_text(encoding="utf-8").lower() for s in SCAFFOLDING)}
    assert not found, f"the thing exists now; say what the code does: {sorted(found)}"


def test_no_module_touches_matplotlib_global_state():
    """Figures are made with matplotlib's Figure API: no pyplot (a global figure registry) and
    no matplotlib.use (the user's backend choice), in the library and in the demos alike."""
    found = sorted(m for m, p in MODULES.items()
                   if re.search(r"matplotlib\.use\(|import matplotlib\.pyplot|from matplotlib import pyplot",
                                p.read_text(encoding="utf-8")))
    assert not found, f"use matplotlib.figure.Figure instead of pyplot / matplotlib.use in {found}"


# The numerics reach arrays through the array namespace (xp) only.  NumPy itself is allowed in
# these groups only for work that is host-side by design, each named with why.
NUMERIC_GROUPS = ("init", "parameter", "random", "ops", "layers", "losses", "optim", "augment", "interpret", "vision")
HOST_SIDE_NUMPY = {
    "anyxp_nn.random": "the generator draws on the host (bitwise equal on every backend), then one transfer",
    "anyxp_nn.vision.canvases": "generated data sets, built on the host like any loaded data",
    "anyxp_nn.interpret._common": "checks of targets the user passes as host ints, lists or NumPy arrays",
}


def _imports_numpy(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "numpy" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == "numpy":
            return True
    return False


def test_numerical_modules_reach_arrays_only_through_xp():
    found = {m for m, p in MODULES.items() if _group(m) in NUMERIC_GROUPS and _imports_numpy(p)}
    assert found == set(HOST_SIDE_NUMPY), (
        f"modules importing numpy that are not declared host-side: {sorted(found - set(HOST_SIDE_NUMPY))}; "
        f"declared but no longer importing it: {sorted(set(HOST_SIDE_NUMPY) - found)}")
