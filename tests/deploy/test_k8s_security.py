"""What checkov does not say about the rendered overlays: secrets never in plain sight, every container hardened and
sized, images pinned, GPUs only where a GPU is used."""

from __future__ import annotations

import re
import tomllib

import pytest

from tests.deploy.tools import (
    KUSTOMIZATIONS,
    OVERLAYS,
    REPO_ROOT,
    by_kind,
    containers,
    named,
    pod_spec,
)

OUR_IMAGES = ("snapfit-triton", "snapfit-orchestrator", "snapfit-export")
# environment variables whose values are credentials
SECRET_ENV = re.compile(r"TOKEN|PASSWORD|SECRET|CATALOG__URL|_URI$")
CREDENTIALS_IN_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.IGNORECASE)
GPU = "nvidia.com/gpu"


def workloads(objects):
    return [o for o in objects if pod_spec(o) is not None]


@pytest.mark.parametrize("overlay", KUSTOMIZATIONS)
def test_no_secret_is_rendered_so_no_placeholder_credential_can_be_deployed(overlay, manifests):
    assert by_kind(manifests[overlay], "Secret") == []


@pytest.mark.parametrize("overlay", KUSTOMIZATIONS)
def test_credentials_come_only_from_secret_refs(overlay, manifests):
    for obj in workloads(manifests[overlay]):
        for _, container in containers(obj):
            for env in container.get("env", []):
                where = f"{obj['metadata']['name']}/{container['name']} {env['name']}"
                assert not CREDENTIALS_IN_URL.search(env.get("value", "")), f"{where}: credentials in a literal"
                if SECRET_ENV.search(env["name"]):
                    assert "secretKeyRef" in env.get("valueFrom", {}), f"{where} must come from a Secret"
    for config_map in by_kind(manifests[overlay], "ConfigMap"):
        for key, value in config_map.get("data", {}).items():
            where = f"ConfigMap {config_map['metadata']['name']} {key}"
            assert not SECRET_ENV.search(key), f"{where}: a secret's name in a ConfigMap"
            assert not CREDENTIALS_IN_URL.search(value), f"{where}: a URL with credentials"
            assert not re.search(r"mongodb(\+srv)?://", value), f"{where}: a MongoDB connection string"


def shell_commands(markdown: str) -> list[str]:
    """Lines of `markdown` with backslash continuations joined."""
    commands, current = [], ""
    for line in markdown.splitlines():
        current += line.rstrip("\\") + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            commands.append(current)
            current = ""
    return commands


def test_every_referenced_secret_is_created_by_a_command_in_the_docs(manifests):
    commands = shell_commands((REPO_ROOT / "docs" / "deploy.md").read_text())
    for overlay in KUSTOMIZATIONS:
        for obj in workloads(manifests[overlay]):
            for _, container in containers(obj):
                for env in container.get("env", []):
                    ref = env.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        creating = [c for c in commands
                                    if re.search(rf"kubectl -n snapfit create secret generic {ref['name']}\b", c)]
                        assert any(f"--from-literal={ref['key']}=" in c for c in creating), \
                            f"docs/deploy.md: no `kubectl -n snapfit create secret generic {ref['name']}` " \
                            f"with --from-literal={ref['key']}=..."


@pytest.mark.parametrize("overlay", KUSTOMIZATIONS)
def test_every_container_has_cpu_and_memory_requests_and_limits(overlay, manifests):
    for obj in workloads(manifests[overlay]):
        for kind, container in containers(obj):
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(bound, {})), \
                    f"{overlay} {obj['metadata']['name']} {kind} {container['name']}: {bound} {resources}"


@pytest.mark.parametrize("overlay", KUSTOMIZATIONS)
def test_every_pod_and_container_is_locked_down(overlay, manifests):
    service_accounts = {sa["metadata"]["name"]: sa for sa in by_kind(manifests[overlay], "ServiceAccount")}
    for obj in workloads(manifests[overlay]):
        name, spec = obj["metadata"]["name"], pod_spec(obj)
        pod = spec["securityContext"]
        lowest_id = 999 if name == "snapfit-mongodb" else 10000  # the mongo image's own user (test below)
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] >= lowest_id and pod["runAsGroup"] >= lowest_id, name
        assert pod["fsGroup"] >= lowest_id and pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, f"{name}: no pod here talks to the Kubernetes API"
        account = service_accounts[spec["serviceAccountName"]]
        assert account["automountServiceAccountToken"] is False, name
        for _, container in containers(obj):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True, name
            assert context["privileged"] is False and context["capabilities"] == {"drop": ["ALL"]}, name


def test_our_pods_run_as_the_user_of_our_images(stacks):
    for obj in workloads(stacks["gpu"]):
        if any(c["image"].rsplit("/", 1)[-1].split(":")[0] in OUR_IMAGES for _, c in containers(obj)):
            assert pod_spec(obj)["securityContext"]["runAsUser"] == 10001  # docker/*.Dockerfile: USER 10001:10001


def test_mongodb_runs_as_the_images_own_mongodb_user(manifests):
    """mongosh (the readiness probe, the init script) reads its user's passwd entry (Node's os.userInfo()) and fails
    on a UID the image's /etc/passwd lacks; the official image's mongodb user is 999:999."""
    statefulset = named(manifests["gpu"], "StatefulSet", "snapfit-mongodb")
    [container] = pod_spec(statefulset)["containers"]
    assert container["image"].startswith("mongo:")
    context = pod_spec(statefulset)["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"], context["fsGroup"]) == (999, 999, 999)
    skips = {k: v for k, v in statefulset["metadata"].get("annotations", {}).items() if k.startswith("checkov.io/skip")}
    assert [v.split("=")[0] for v in skips.values()] == ["CKV_K8S_40"], "skip checkov's high-UID check here only"
    assert all(len(v.split("=", 1)[1]) > 40 for v in skips.values()), "say why, after the check's id"


@pytest.mark.parametrize("overlay", KUSTOMIZATIONS)
def test_read_only_containers_write_only_to_their_volumes(overlay, manifests):
    for obj in workloads(manifests[overlay]):
        for kind, container in containers(obj):
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            home = next((e["value"] for e in container.get("env", []) if e["name"] == "HOME"), None)
            if kind == "containers":
                assert "/tmp" in mounts, f"{obj['metadata']['name']}/{container['name']}: no writable /tmp"
            if home:
                assert home in mounts, f"{obj['metadata']['name']}/{container['name']}: HOME={home} is read-only"


@pytest.mark.parametrize("overlay", KUSTOMIZATIONS)
def test_images_are_pinned_and_ours_carry_the_project_version(overlay, manifests):
    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    for obj in workloads(manifests[overlay]):
        for _, container in containers(obj):
            image = container["image"]
            name, _, tag = image.rpartition("/")[2].partition(":")
            assert tag and tag != "latest" and re.match(r"\d+\.\d+\.\d+", tag), f"{image}: pin a version tag"
            if name in OUR_IMAGES:
                assert "/" in image, f"{image}: kustomize's images: should give it a registry"
                assert tag == version, f"{image}: tag it {version} (pyproject's version) or bump both"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gpus_are_asked_for_only_by_triton_and_the_export_in_the_gpu_overlay(overlay, stacks):
    asking = set()
    for obj in workloads(stacks[overlay]):
        for _, container in containers(obj):
            resources = container.get("resources", {})
            if GPU in resources.get("limits", {}) or GPU in resources.get("requests", {}):
                assert resources["limits"][GPU] == 1 and GPU not in resources.get("requests", {}), \
                    "GPUs go in limits only, one per pod"
                asking.add((obj["kind"], obj["metadata"]["name"], container["name"]))
    expected = {("Deployment", "snapfit-triton", "triton"), ("Job", "snapfit-export", "export")}
    assert asking == (expected if overlay == "gpu" else set())


def test_gpu_pods_are_scheduled_on_gpu_nodes_and_tolerate_their_taint(stacks):
    for kind, name in (("Deployment", "snapfit-triton"), ("Job", "snapfit-export")):
        spec = pod_spec(named(stacks["gpu"], kind, name))
        assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert {"key": GPU, "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    for obj in workloads(stacks["cpu"]):
        assert GPU not in str(pod_spec(obj).get("nodeSelector", {})) + str(pod_spec(obj).get("tolerations", []))
