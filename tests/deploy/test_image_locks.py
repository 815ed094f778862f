"""docker/requirements-*.txt: regenerated from pyproject.toml and .venv, and complete for the code each image runs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.import_graph import distributions_of, third_party_modules
from tests.deploy.tools import REPO_ROOT

PIN_SCRIPT = REPO_ROOT / "docker" / "pin_requirements.py"
# modules the serving process provides, not a distribution
PROVIDED = {"triton_python_backend_utils": "Triton's Python backend stub"}


def _load_pin_module():
    spec = importlib.util.spec_from_file_location("pin_requirements", PIN_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


pin = _load_pin_module()
IMAGES = {image.name: image for image in pin.IMAGES}


def locked(image: str) -> dict[str, str]:
    """{canonical name: version} of docker/requirements-<image>.txt."""
    lines = IMAGES[image].path.read_text().splitlines()
    pairs = [line.split("==") for line in lines if line and not line.startswith("#")]
    return {canonicalize_name(name): version for name, version in pairs}


def test_locks_are_what_pyproject_and_the_environment_give():
    stale = pin.stale_files()
    assert not stale, (f"{', '.join(str(p.relative_to(REPO_ROOT)) for p in stale)} differ from pyproject.toml + "
                       f".venv; refresh with `{pin.REFRESH_COMMAND}` and commit the result")


def test_every_lock_line_is_an_exact_pin():
    for image in IMAGES.values():
        for line in image.path.read_text().splitlines():
            if line and not line.startswith("#"):
                requirement = Requirement(line)
                assert str(requirement.specifier).startswith("==") and len(requirement.specifier) == 1, line


def _entries(*patterns: str) -> list[Path]:
    return sorted(p for pattern in patterns for p in REPO_ROOT.glob(pattern))


# (image, the files it runs, the snapfit commands it runs)
IMAGE_CODE = {
    "triton": (_entries("model_repository/*/1/model.py", "snapfit/triton/backends/*/model.py",
                        "docker/repository_gate.py"), ()),
    "orchestrator": (_entries("orchestrator/**/*.py", "snapfit/cli/*.py"), ("serve",)),
    "export": (_entries("export/**/*.py", "snapfit/cli/*.py", "docker/repository_gate.py"), ("export",)),
}


@pytest.mark.parametrize("image", sorted(IMAGE_CODE))
def test_each_lock_installs_every_distribution_its_image_imports(image):
    files, commands = IMAGE_CODE[image]
    lock = locked(image)
    substitutes = {canonicalize_name(old): canonicalize_name(new) for old, (new, _) in IMAGES[image].substitutes}
    missing = {}
    for module, importers in third_party_modules(files, commands).items():
        if module in PROVIDED:
            continue
        providers = distributions_of(module)
        assert providers, f"{module} (imported by {min(importers)}) is not installed in .venv"
        if not any(substitutes.get(d, d) in lock for d in providers):
            missing[module] = sorted(importers)[:3]
    assert not missing, (f"docker/requirements-{image}.txt lacks what these modules come from: {missing}; add their "
                         f"distributions to the image's roots in docker/pin_requirements.py")


def test_triton_and_export_images_get_cuda_torch_and_the_orchestrator_none():
    for image in ("triton", "export"):
        assert "torch" in locked(image) and any(n.startswith("nvidia-cudnn") for n in locked(image)), image
    assert "torch" not in locked("orchestrator")
    assert "onnxruntime-gpu" in locked("export") and "onnxruntime" not in locked("export")


def test_closure_follows_extras_and_markers_as_pip_does():
    with_extra = pin.closure([Requirement("uvicorn[standard]")])
    without = pin.closure([Requirement("uvicorn")])
    assert {"uvloop", "httptools", "watchfiles"} <= set(with_extra)
    assert not {"uvloop", "httptools", "watchfiles"} & set(without)


def test_a_root_outside_pyproject_is_refused():
    with pytest.raises(pin.PinError, match="not in pyproject.toml's dependencies"):
        pin.pins(pin.Image("probe", ("scikit-image",)))
