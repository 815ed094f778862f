"""Writes docker/requirements-{triton,orchestrator,export}.txt: what each image installs, at .venv's versions.

Each file is a lock: the transitive requirements of the image's root distributions, resolved as .venv resolved
them (markers evaluated for this interpreter: Linux, CPython 3.11, as in the images), one `name==version` a line.
The Dockerfiles install it with `pip install --no-deps`, so pip resolves nothing at build time and an image holds
exactly the versions `make test` ran with. Roots must be dependencies in pyproject.toml, and .venv's versions must
satisfy pyproject's specifiers, so pyproject, .venv and the images cannot drift apart: tests/deploy regenerates
the files and fails when they differ.

    .venv/bin/python docker/pin_requirements.py           # rewrite the files
    .venv/bin/python docker/pin_requirements.py --check   # exit 1, naming the stale files
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCKER_DIR = REPO_ROOT / "docker"
REFRESH_COMMAND = ".venv/bin/python docker/pin_requirements.py"

# What the Python-backend models import (model_repository/*/1/model.py: ladi_vton -> tryon -> torch, diffusers,
# transformers; clip_tokenizer -> open_clip) and the onnxruntime_cpu runner of the CPU configs (onnxruntime; onnx
# to prune a graph to the outputs of its output_sets).
# mediapipe is not here: only the orchestrator detects poses (tryon.preprocess), the backend never imports it.
TRITON_ROOTS = ("torch", "diffusers", "transformers", "safetensors", "open_clip_torch", "numpy", "pillow",
                "onnxruntime", "onnx")
# What `snapfit serve` imports: orchestrator/ (FastAPI, FAISS, stores, Triton client, mediapipe poses via
# tryon.preprocess) and snapfit.cli's module level (typer, rich). No torch: nothing on that path imports it.
ORCHESTRATOR_ROOTS = ("fastapi", "uvicorn", "python-multipart", "httpx", "sse-starlette", "pydantic",
                      "pydantic-settings", "faiss-cpu", "pymongo", "prometheus-client", "orjson", "tritonclient",
                      "protobuf", "numpy", "pillow", "mediapipe", "typer", "rich")
# `snapfit export` runs the whole CLI and every exporter: all of pyproject's dependencies.
ALL = None
# Every image installs the repository itself with `pip install --no-deps --no-build-isolation -e .`, so the build
# backend is pinned too. ("wheel", also in [build-system], is not needed: setuptools >= 70.1 builds wheels itself.)
BUILD_ROOTS = ("setuptools",)
# PyPI's onnxruntime-gpu lags onnxruntime: 1.31.1 is its newest release, while .venv runs onnxruntime 1.32.0.
# The export image needs the GPU build to check fp16 parity on CUDA (export/publish.py); same Python API.
ONNXRUNTIME_GPU = ("onnxruntime-gpu", "1.31.1")


@dataclass(frozen=True)
class Image:
    name: str
    roots: tuple[str, ...] | None  # None: every dependency in pyproject.toml
    substitutes: tuple[tuple[str, tuple[str, str]], ...] = ()  # (replaced distribution, (name, version))

    @property
    def path(self) -> Path:
        return DOCKER_DIR / f"requirements-{self.name}.txt"


IMAGES = (
    Image("triton", TRITON_ROOTS),
    Image("orchestrator", ORCHESTRATOR_ROOTS),
    Image("export", ALL, substitutes=(("onnxruntime", ONNXRUNTIME_GPU),)),
)


class PinError(RuntimeError):
    """pyproject.toml and the installed environment disagree; the message says how."""


def project_requirements(pyproject: Path = REPO_ROOT / "pyproject.toml") -> dict[str, Requirement]:
    """pyproject's [project] dependencies by canonical name."""
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = [Requirement(text) for text in project["dependencies"]]
    return {canonicalize_name(r.name): r for r in requirements}


def build_requirements(pyproject: Path = REPO_ROOT / "pyproject.toml") -> dict[str, Requirement]:
    """pyproject's [build-system] requires by canonical name."""
    requirements = [Requirement(text) for text in tomllib.loads(pyproject.read_text())["build-system"]["requires"]]
    return {canonicalize_name(r.name): r for r in requirements}


def _installed_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        raise PinError(f"{name} is required but not installed in {sys.prefix}; run `make env`") from None


def closure(roots: list[Requirement]) -> dict[str, str]:
    """{canonical name: installed version} of `roots` and everything they require, extras followed."""
    pinned: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = list(roots)
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        key = (name, frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        pinned[name] = _installed_version(name)
        for text in metadata.requires(name) or ():
            child = Requirement(text)
            if child.marker is None or any(child.marker.evaluate({"extra": extra})
                                           for extra in ("", *sorted(requirement.extras))):
                todo.append(child)
    return pinned


def _checked_roots(names: list[str], declared: dict[str, Requirement], where: str) -> list[Requirement]:
    unknown = [n for n in names if n not in declared]
    if unknown:
        raise PinError(f"{', '.join(unknown)} not in pyproject.toml's {where}")
    for name in names:
        version = _installed_version(name)
        if not declared[name].specifier.contains(version, prereleases=True):
            raise PinError(f"{name} {version} in {sys.prefix} does not satisfy pyproject's {declared[name]}; "
                           "run `make env`")
    return [declared[n] for n in names]


def pins(image: Image) -> dict[str, str]:
    """The image's {name: version}; raises PinError when a root is not a project dependency or .venv misses it."""
    declared = project_requirements()
    names = list(declared) if image.roots is None else [canonicalize_name(n) for n in image.roots]
    try:
        roots = _checked_roots(names, declared, "dependencies")
        roots += _checked_roots(list(BUILD_ROOTS), build_requirements(), "[build-system] requires")
    except PinError as error:
        raise PinError(f"{image.name} image: {error}") from None
    pinned = closure(roots)
    for replaced, (name, version) in image.substitutes:
        if not declared[replaced].specifier.contains(version):
            raise PinError(f"{image.name}: {name} {version} does not satisfy pyproject's {declared[replaced]}")
        del pinned[replaced]
        pinned[canonicalize_name(name)] = version
    return pinned


def render(image: Image, pinned: dict[str, str]) -> str:
    header = (f"# Generated by docker/pin_requirements.py from pyproject.toml and .venv: do not edit.\n"
              f"# Refresh: {REFRESH_COMMAND}\n"
              f"# Installed with `pip install --no-deps` into the {image.name} image (a complete lock).\n")
    return header + "".join(f"{name}=={pinned[name]}\n" for name in sorted(pinned))


def stale_files() -> list[Path]:
    return [image.path for image in IMAGES
            if not image.path.exists() or image.path.read_text() != render(image, pins(image))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale files (exit 1 if any)")
    args = parser.parse_args(argv)
    try:
        if args.check:
            stale = stale_files()
            for path in stale:
                print(f"{path.relative_to(REPO_ROOT)} is stale; refresh with `{REFRESH_COMMAND}`", file=sys.stderr)
            return 1 if stale else 0
        for image in IMAGES:
            image.path.write_text(render(image, pins(image)))
            print(f"wrote {image.path.relative_to(REPO_ROOT)}")
    except PinError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
