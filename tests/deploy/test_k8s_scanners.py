"""Each overlay and export Job, rendered by kustomize, passes Kubernetes' own schemas (kubernetes-validate --strict) and checkov.

Kubernetes versions: 1.33 is the oldest we support (the managed offerings' oldest in standard support when this was
written), 1.37 the newest whose schemas kubernetes-validate 1.37.0 bundles. Custom resources have no bundled
schema: kubernetes-validate only warns about them and passes them, so they are listed here and checked field by
field in test_k8s_wiring.py (ServiceMonitor); any other unvalidated kind fails.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml

from tests.deploy.tools import K8S_DIR, KUSTOMIZATIONS, OVERLAYS, REPO_ROOT, run, tool

KUBERNETES_VERSIONS = ("1.33.0", "1.37.0")
CUSTOM_RESOURCES = {("monitoring.coreos.com/v1", "ServiceMonitor")}
CHECKOV_CONFIG = K8S_DIR / ".checkov.yaml"


@pytest.fixture(scope="module")
def rendered_files(rendered, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("rendered")
    files = {}
    for overlay, text in rendered.items():
        files[overlay] = folder / f"{overlay}.yaml"
        files[overlay].write_text(text)
    return files


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", KUSTOMIZATIONS)
def test_rendered_overlay_passes_the_kubernetes_schemas_strictly(overlay, version, rendered_files):
    result = run([tool("kubernetes-validate"), "--strict", "-k", version, rendered_files[overlay]])
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{overlay} against Kubernetes {version}:\n{output}"
    unvalidated = set(re.findall(r"Couldn't find schema for kind (\S+) with api version (\S+)", output))
    unexpected = {(api, kind) for kind, api in unvalidated} - CUSTOM_RESOURCES
    assert not unexpected, f"{overlay}: no schema for {unexpected} in Kubernetes {version} (typo or removed API?)"


def test_checkov_skips_are_listed_once_each_with_a_reason():
    text = CHECKOV_CONFIG.read_text()
    config = yaml.safe_load(text)
    skipped = config["skip-check"]
    assert len(skipped) == len(set(skipped))
    lines = text.splitlines()
    for check in skipped:
        index = next(i for i, line in enumerate(lines) if line.strip() == f"- {check}")
        assert lines[index - 1].strip().startswith("#") and len(lines[index - 1]) > 40, \
            f"{check}: say why it is skipped in the comment above it in {CHECKOV_CONFIG.relative_to(REPO_ROOT)}"


@pytest.mark.parametrize("overlay", KUSTOMIZATIONS)
def test_checkov_finds_no_failure_in_the_rendered_overlay(overlay, rendered_files):
    result = run([tool("checkov"), "--config-file", CHECKOV_CONFIG, "-f", rendered_files[overlay], "-o", "json"])
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    kubernetes = [r for r in reports if r.get("check_type") == "kubernetes"]
    assert kubernetes, f"checkov scanned nothing:\n{result.stdout[:2000]}\n{result.stderr[-2000:]}"
    summary = kubernetes[0]["summary"]
    failures = [f"{f['check_id']} {f['resource']}: {f['check_name']}" for f in kubernetes[0]["results"]["failed_checks"]]
    assert not failures and summary["parsing_errors"] == 0, "\n".join(failures)
    # the overlays hold some 20 objects, an export Job's kustomization 3 (the Job, its account, the models claim)
    least_passed, least_resources = (100, 20) if overlay in OVERLAYS else (40, 2)
    assert summary["passed"] > least_passed and summary["resource_count"] >= least_resources, summary
