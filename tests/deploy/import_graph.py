"""Which third-party distributions a piece of the repository imports, read from its source (no import is run).

Starting from entry files, every `import` of ours is followed to its module (and the packages above it); a third-party
top-level module is mapped to the distribution that installs it. Imports inside functions count (the orchestrator
imports mediapipe lazily), except in snapfit/cli/, where a command's body runs only for that command: there only
the module level and the bodies of the commands an image runs count.
"""

from __future__ import annotations

import ast
import functools
import sys
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name

from tests.deploy.tools import REPO_ROOT

OUR_PACKAGES = frozenset({"snapfit", "orchestrator", "tryon", "export", "benchmarks"})
CLI_PACKAGE = REPO_ROOT / "snapfit" / "cli"


def _module_file(name: str) -> Path | None:
    base = REPO_ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_of(path: Path) -> list[str]:
    """The package a relative import in `path` starts from (for a package's __init__.py, that package)."""
    return list(path.relative_to(REPO_ROOT).parts[:-1])


def _imported_names(node: ast.AST, path: Path) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            package = _package_of(path)
            package = package[:len(package) - node.level + 1]
            module = ".".join(package + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        yield module
        yield from (f"{module}.{alias.name}" for alias in node.names)


def _import_nodes(path: Path, commands: frozenset[str]) -> Iterator[ast.AST]:
    tree = ast.parse(path.read_text(), filename=str(path))
    if path.parent != CLI_PACKAGE:
        yield from ast.walk(tree)
        return
    for statement in tree.body:  # module level, and the bodies of the commands that run
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if statement.name in commands:
                yield from ast.walk(statement)
        elif not isinstance(statement, ast.ClassDef):
            yield from ast.walk(statement)


def third_party_modules(entries: Iterable[Path], commands: Iterable[str] = ()) -> dict[str, set[str]]:
    """{top-level third-party module: the files of ours importing it}, from `entries` and what they import."""
    commands = frozenset(commands)
    found: dict[str, set[str]] = {}
    seen: set[Path] = set()
    todo = [Path(p) for p in entries]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in _import_nodes(path, commands):
            for name in _imported_names(node, path):
                parts = name.split(".")
                if parts[0] in OUR_PACKAGES:
                    todo.extend(f for i in range(1, len(parts) + 1) if (f := _module_file(".".join(parts[:i]))))
                elif parts[0] and parts[0] not in sys.stdlib_module_names:
                    found.setdefault(parts[0], set()).add(str(path.relative_to(REPO_ROOT)))
    return found


@functools.lru_cache(maxsize=1)
def _packages_distributions() -> dict[str, list[str]]:
    return metadata.packages_distributions()  # reads every installed RECORD: once


def distributions_of(module: str) -> set[str]:
    """Canonical names of the installed distributions that provide top-level `module`."""
    return {canonicalize_name(d) for d in _packages_distributions().get(module, [])}
