"""The house's boundaries, checked on the source: which package may import which, no import cycles, nothing
imports the CLI, and test doubles stay in tests/.

Every import counts, at module level or inside a function (a lazy import is still a dependency), except those
under `if TYPE_CHECKING:`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("snapfit", "export", "orchestrator", "tryon", "benchmarks")
OURS = (*PACKAGES, "tests")

# what each part of the house may import of ours (prefixes; a module may always import its own package)
ALLOWED = {
    "snapfit": (),  # the package's __init__
    "snapfit.contract": (),
    "snapfit.preprocessing": ("snapfit.contract",),
    "snapfit.triton": ("snapfit.contract", "snapfit.repository_layout"),
    "tryon": ("snapfit.contract",),
    # export.int8_gate measures int8 exports on the demo catalog
    "export": ("snapfit.contract", "snapfit.preprocessing", "snapfit.repository_layout", "snapfit.demo_catalog",
               "tryon"),
    "orchestrator": ("snapfit.contract", "snapfit.preprocessing", "tryon.preprocess", "tryon.compose"),
    "snapfit.demo_catalog": (),
    "snapfit.repository_layout": ("snapfit.contract",),
    "benchmarks": ("snapfit.contract", "snapfit.preprocessing", "snapfit.triton", "snapfit.demo_catalog",
                   "snapfit.repository_layout", "export", "orchestrator", "tryon"),
    "snapfit.cli": PACKAGES,
    "model_repository": ("tryon",),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files() -> list[Path]:
    files = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]
    return sorted(files + list((ROOT / "model_repository").rglob("*.py")))


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING" or \
        isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING"


def imports_of(path: Path) -> set[str]:
    """Modules of ours that `path` imports (for `from a.b import c`: a.b.c when that is a module, else a.b)."""
    found: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1 parents
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if _is_module(candidate) else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return {name for name in found if name.split(".")[0] in OURS}


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


GRAPH = {module_name(p): imports_of(p) for p in source_files()}


def _part(module: str) -> str:
    return max((key for key in ALLOWED if module == key or module.startswith(key + ".")), key=len)


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_each_module_imports_only_what_its_part_of_the_house_may(module):
    part = _part(module)
    # a module may import its own part: its package, or for snapfit's separate parts that part alone
    own = part if part.startswith("snapfit") else part.split(".")[0]
    allowed = (*([own] if part != "snapfit" else []), *ALLOWED[part])
    bad = sorted(name for name in GRAPH[module]
                 if not any(name == a or name.startswith(a + ".") for a in allowed))
    assert not bad, f"{module} ({part}) imports {bad}"


def test_nothing_imports_the_command_line():
    importers = sorted(m for m, deps in GRAPH.items() if not m.startswith("snapfit.cli")
                       and any(d == "snapfit.cli" or d.startswith("snapfit.cli.") for d in deps))
    assert not importers


def test_there_is_no_import_cycle():
    index, low, on_stack, stack, cycles = {}, {}, set(), [], []

    def connect(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in GRAPH.get(node, ()):
            if dep not in GRAPH:
                continue
            if dep not in index:
                connect(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            connect(module)
    assert not cycles


@pytest.mark.parametrize("package", ["orchestrator", "export", "tryon", "snapfit"])
def test_no_production_module_mentions_the_test_store(package):
    mentions = sorted(str(p.relative_to(ROOT)) for p in (ROOT / package).rglob("*.py")
                      if "mongomock" in p.read_text().lower())
    assert not mentions


def test_the_allowed_imports_between_parts_have_no_cycle():
    """With every module inside its part's allowance, an acyclic allowance means no cycle between parts either
    (the CLI, which may import everything and is imported by nothing, is left out)."""
    edges = {part: {p for target in ALLOWED[part] for p in ALLOWED if p != part
                    and (p == target or p.startswith(target + ".") or target.startswith(p + "."))}
             for part in ALLOWED if part != "snapfit.cli"}
    visiting, done = set(), set()

    def visit(part: str, path: tuple[str, ...]) -> None:
        assert part not in visiting, f"cycle between parts: {' -> '.join((*path, part))}"
        if part in done:
            return
        visiting.add(part)
        for target in edges.get(part, ()):
            visit(target, (*path, part))
        visiting.discard(part)
        done.add(part)

    for part in edges:
        visit(part, ())
