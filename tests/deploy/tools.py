"""The deployment linters of .tools/deploy-venv (`make env` installs them) and the rendered Kubernetes manifests.

`make test` sets DEPLOY_TOOLS_REQUIRED=1 (CI runs `make test`), so a missing linter fails there; a plain `pytest`
without `make env` skips the tests that need one, saying so.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS_BIN = REPO_ROOT / ".tools" / "deploy-venv" / "bin"
K8S_DIR = REPO_ROOT / "k8s"
OVERLAYS = ("gpu", "cpu")
# each overlay's export Job, a kustomization of its own (k8s/jobs/): the overlays hold no Job
EXPORT_JOBS = {"gpu": "export-gpu", "cpu": "export-cpu"}
# every kustomization docs/deploy.md applies: {name: folder}
KUSTOMIZATIONS = {**{overlay: K8S_DIR / "overlays" / overlay for overlay in OVERLAYS},
                  **{job: K8S_DIR / "jobs" / job for job in EXPORT_JOBS.values()}}
DOCKERFILES = tuple(sorted((REPO_ROOT / "docker").glob("*.Dockerfile")))


def tool(name: str) -> Path:
    """Path of a linter; fails (under `make test` or CI) or skips when it is not installed."""
    path = TOOLS_BIN / name
    if not path.exists():
        message = f"{name} is not installed in {TOOLS_BIN}: run `make env` (or `make deploy-tools`)"
        if os.environ.get("DEPLOY_TOOLS_REQUIRED") == "1" or os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def run(args: list[str | Path], cwd: Path = REPO_ROOT, timeout_s: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], check=False, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout_s)


def render(kustomization: Path) -> str:
    """`kubectl kustomize` of a kustomization folder, as YAML text."""
    result = run([tool("kubectl"), "kustomize", kustomization])
    assert result.returncode == 0, f"kubectl kustomize {kustomization} failed:\n{result.stderr}"
    return result.stdout


def documents(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def pod_spec(obj: dict) -> dict | None:
    """The pod template's spec of a workload (Deployment, StatefulSet, Job), else None."""
    if obj["kind"] in ("Deployment", "StatefulSet", "Job", "DaemonSet"):
        return obj["spec"]["template"]["spec"]
    return None


def containers(obj: dict) -> Iterator[tuple[str, dict]]:
    """(kind, container) for every init and regular container of a workload."""
    spec = pod_spec(obj) or {}
    for kind in ("initContainers", "containers"):
        for container in spec.get(kind, []):
            yield kind, container


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: list[dict], kind: str, name: str) -> dict:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]
