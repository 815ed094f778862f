"""docker/*.Dockerfile: hadolint finds nothing, and the images agree with the code they package.

No image can be built here (no container engine), so what a build would prove is checked from the files: the
Python they run, the Triton release and its stub, the locks they install, the build context they copy from.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

from snapfit import contract
from snapfit.triton import launcher
from tests.deploy.tools import DOCKERFILES, REPO_ROOT, run, tool

DOCKERFILE_IDS = [p.name for p in DOCKERFILES]
IMAGES = {p.name.removesuffix(".Dockerfile"): p for p in DOCKERFILES}
# NGC's Triton image tag for tritonserver 2.51, the release snapfit's configs and tests target
# (nvidia-pytriton 0.7.0 bundles 2.51; docs.nvidia.com Triton release notes: 24.10 = 2.51.0).
TRITON_IMAGE = "nvcr.io/nvidia/tritonserver:24.10-py3"


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined, current = [], ""
    for line in dockerfile.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            joined.append(current.strip())
            current = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1] if " " in text else "") for text in joined]


def project_python() -> str:
    """'3.11' from pyproject's requires-python (one minor version is allowed)."""
    spec = SpecifierSet(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["requires-python"])
    minors = [f"3.{m}" for m in range(8, 20) if f"3.{m}.0" in spec or f"3.{m}.99" in spec]
    assert len(minors) == 1, f"requires-python {spec} allows {minors}; the images pin one Python"
    return minors[0]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=DOCKERFILE_IDS)
def test_hadolint_finds_nothing(dockerfile):
    result = run([tool("hadolint"), "--format", "tty", "--no-color", dockerfile])
    assert result.returncode == 0 and not result.stdout.strip(), f"hadolint {dockerfile.name}:\n{result.stdout}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=DOCKERFILE_IDS)
def test_every_hadolint_ignore_says_why_on_the_lines_above(dockerfile):
    lines = dockerfile.read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore=" in line:
            reason = lines[number - 1].strip() if number else ""
            assert reason.startswith("#") and "hadolint" not in reason and len(reason) > 20, \
                f"{dockerfile.name}:{number + 1}: explain `{line.strip()}` in a comment right above it"


def test_there_is_an_image_for_triton_the_orchestrator_and_the_export():
    assert set(IMAGES) == {"triton", "orchestrator", "export"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=DOCKERFILE_IDS)
def test_base_images_are_pinned_to_a_release(dockerfile):
    for name, args in instructions(dockerfile):
        if name == "FROM":
            image = args.split()[0]
            assert re.search(r":\d+\.\d+([.-]|$)", image) and "latest" not in image, \
                f"{dockerfile.name}: pin `{image}` to a version tag"


def test_python_images_run_the_python_pyproject_requires():
    python = project_python()
    for name in ("orchestrator", "export"):
        bases = [args.split()[0] for kind, args in instructions(IMAGES[name]) if kind == "FROM"]
        assert bases and all(re.fullmatch(rf"python:{re.escape(python)}\.\d+-slim-bookworm", b) for b in bases), \
            f"{name}: {bases}; expected python:{python}.N-slim-bookworm"


def test_triton_image_serves_with_the_server_release_and_python_the_tests_run():
    """NGC 24.10 (tritonserver 2.51) with Ubuntu's python3.11 and the 2.51 stub built for 3.11 (see the
    Dockerfile's header: the image's own Python 3.10 cannot install the project's pins)."""
    text = IMAGES["triton"].read_text()
    python = project_python()
    assert [args for kind, args in instructions(IMAGES["triton"]) if kind == "FROM"] == [TRITON_IMAGE]
    assert f"ARG PYTRITON_VERSION={launcher.PYTRITON_VERSION}" in text
    assert f"python_backend_stubs/{python}/triton_python_backend_stub" in text
    assert f"python{python} python{python}-venv libpython{python}" in text
    assert f"python{python} -m venv /opt/venv" in text
    # the CPU overlay's configs name this Python-based backend; launcher.prepare_backends lays it out the same way
    runner = launcher.RUNNER_SOURCE.relative_to(REPO_ROOT)
    runs = " ".join(" ".join(args.split()) for kind, args in instructions(IMAGES["triton"]) if kind == "RUN")
    assert f"ln -s /opt/snapfit/{runner} /opt/tritonserver/backends/onnxruntime_cpu/model.py" in runs
    # and the in-process library Triton prefers to it, embedding the venv's interpreter
    assert "python -m snapfit.triton.inprocess_build /opt/tritonserver/backends/onnxruntime_cpu" in runs
    assert ("ENV", "SNAPFIT_PYTHON=/opt/venv/bin/python") in instructions(IMAGES["triton"])


@pytest.mark.parametrize("image", ["triton", "orchestrator", "export"])
def test_images_install_their_lock_without_resolving_anything(image):
    commands = " ".join(args for kind, args in instructions(IMAGES[image]) if kind in ("COPY", "RUN"))
    lock = f"requirements-{image}.txt"
    assert f"COPY docker/{lock} /tmp/{lock}".removeprefix("COPY ") in commands
    assert f"pip install --no-cache-dir --no-deps -r /tmp/{lock}" in commands
    assert "pip install --no-cache-dir --no-deps --no-build-isolation -e /opt/snapfit" in commands


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=DOCKERFILE_IDS)
def test_images_run_as_the_numeric_non_root_user_of_the_manifests(dockerfile):
    users = [args for kind, args in instructions(dockerfile) if kind == "USER"]
    assert users == ["10001:10001"], f"{dockerfile.name}: USER {users}"
    assert "useradd -l --uid 10001" in dockerfile.read_text()


def test_images_expose_the_contract_ports():
    exposed = {name: [args for kind, args in instructions(path) if kind == "EXPOSE"] for name, path in IMAGES.items()}
    assert exposed["orchestrator"] == [str(contract.API_PORT)]
    assert exposed["triton"] == [f"{contract.TRITON_HTTP_PORT} {contract.TRITON_GRPC_PORT} {contract.TRITON_METRICS_PORT}"]


def test_healthchecks_ask_the_liveness_and_readiness_routes():
    orchestrator = " ".join(a for k, a in instructions(IMAGES["orchestrator"]) if k == "HEALTHCHECK")
    assert "/healthz" in orchestrator and f"'SNAPFIT_PORT', '{contract.API_PORT}'" in orchestrator
    triton = " ".join(a for k, a in instructions(IMAGES["triton"]) if k == "HEALTHCHECK")
    assert f"127.0.0.1:{contract.TRITON_HTTP_PORT}/v2/health/ready" in triton


# ---------------------------------------------------------------- the build context (.dockerignore)


def _pattern(text: str) -> re.Pattern:
    regex = re.escape(text.strip("/"))
    regex = regex.replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
    return re.compile(regex)


def in_build_context(path: str, dockerignore: Path = REPO_ROOT / ".dockerignore") -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides; `!` re-includes."""
    rules = [(line.startswith("!"), _pattern(line.lstrip("!"))) for line in
             (raw.strip() for raw in dockerignore.read_text().splitlines()) if line and not line.startswith("#")]
    parents = ["/".join(path.split("/")[:i]) for i in range(1, path.count("/") + 2)]
    included = True
    for negated, pattern in rules:
        if any(pattern.fullmatch(p) for p in parents):
            included = negated
    return included


@pytest.mark.parametrize("path", [
    ".venv/bin/python", ".tools/deploy-venv/bin/checkov", ".git/HEAD", "runs/catalog.db", "tests/conftest.py",
    "model_repository/clip_image/1/model.onnx", "model_repository/sam_encoder/1/model.onnx.data",
    "model_repository/clip_image/1/parity.json", "model_repository/clip_tokenizer/1/tokenizer.json",
    "model_repository/ladi_vton/1/weights/ladi-vton/unet_dresscode.pth", "snapfit/__pycache__/contract.cpython-311.pyc",
    "benchmarks/results/tryon/h200_full_fp16.json",
])
def test_build_context_leaves_out_local_state_and_exports(path):
    assert not in_build_context(path)


def test_every_file_the_images_copy_is_in_the_build_context():
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    for name, dockerfile in IMAGES.items():
        for kind, args in instructions(dockerfile):
            if kind != "COPY":
                continue
            for source in [a for a in args.split() if not a.startswith("--")][:-1]:
                files = [f for f in tracked if f == source or f.startswith(source.rstrip("/") + "/")]
                if source.startswith("docker/") and not files:  # a file of this change, maybe not committed yet
                    files = [source] if (REPO_ROOT / source).exists() else []
                assert files, f"{name}: COPY {source}: no such file in the repository"
                left_out = [f for f in files if not in_build_context(f)]
                assert not left_out, f"{name}: COPY {source}, but .dockerignore leaves out {left_out[:5]}"
