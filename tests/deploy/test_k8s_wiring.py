"""The rendered overlays fit together and fit the code: ports and model names from snapfit/contract.py, Triton's
arguments from the launcher, SNAPFIT_* variables from orchestrator.settings, selectors that select, probes, the
autoscalers' metrics, the ServiceMonitors (a custom resource no schema validator checks), the model volume."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from orchestrator.settings import Settings
from snapfit import contract
from snapfit.triton.launcher import TritonLaunch, command
from tests.deploy.tools import (
    EXPORT_JOBS,
    K8S_DIR,
    KUSTOMIZATIONS,
    OVERLAYS,
    REPO_ROOT,
    by_kind,
    containers,
    documents,
    named,
    pod_spec,
    render,
)

TRITON_PORTS = {"http": contract.TRITON_HTTP_PORT, "grpc": contract.TRITON_GRPC_PORT,
                "metrics": contract.TRITON_METRICS_PORT}
# what the manifests add to the launcher's arguments: the repository never changes under a running server
TRITON_EXTRA_ARGS = ("--model-control-mode=none",)


def container(objects, kind, name, container_name):
    return next(c for _, c in containers(named(objects, kind, name)) if c["name"] == container_name)


def pod_labels(objects) -> list[dict]:
    return [o["spec"]["template"]["metadata"]["labels"] for o in objects if pod_spec(o) is not None]


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def orchestrator_environment(objects) -> dict[str, dict]:
    """{name: env entry} of the orchestrator, ConfigMap entries (envFrom) as {"value": ...}."""
    main = container(objects, "Deployment", "snapfit-orchestrator", "orchestrator")
    variables = {}
    for source in main.get("envFrom", []):
        config_map = named(objects, "ConfigMap", source["configMapRef"]["name"])
        variables.update({k: {"name": k, "value": v} for k, v in config_map["data"].items()})
    variables.update({e["name"]: e for e in main.get("env", [])})
    return variables


def setting_field(variable: str):
    """The field of orchestrator.settings.Settings that SNAPFIT_<A>__<B> sets, or None."""
    model, field = Settings, None
    for part in variable.removeprefix("SNAPFIT_").lower().split("__"):
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        field = model.model_fields[part]
        model = field.annotation
    return field


# ---------------------------------------------------------------- ports, arguments, settings


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_triton_ports_are_the_contracts(overlay, manifests):
    triton = container(manifests[overlay], "Deployment", "snapfit-triton", "triton")
    assert {p["name"]: p["containerPort"] for p in triton["ports"]} == TRITON_PORTS
    service = named(manifests[overlay], "Service", "snapfit-triton")
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == TRITON_PORTS
    headless = named(manifests[overlay], "Service", "snapfit-triton-headless")
    assert {p["name"]: p["port"] for p in headless["spec"]["ports"]} == {"grpc": contract.TRITON_GRPC_PORT}
    orchestrator = container(manifests[overlay], "Deployment", "snapfit-orchestrator", "orchestrator")
    assert [p["containerPort"] for p in orchestrator["ports"]] == [contract.API_PORT]
    assert [p["port"] for p in named(manifests[overlay], "Service", "snapfit-orchestrator")["spec"]["ports"]] == \
        [contract.API_PORT]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_triton_runs_with_the_launchers_arguments(overlay, manifests):
    """The flags `snapfit triton` uses here, with NGC's paths, and the CPU configs only in the cpu overlay."""
    triton = container(manifests[overlay], "Deployment", "snapfit-triton", "triton")
    launch = TritonLaunch(repository=Path("/models"), server_root=Path("/opt/tritonserver"),
                          backend_dir=Path("/opt/tritonserver/backends"),
                          config_name="cpu" if overlay == "cpu" else None)
    expected = command(launch)
    assert triton["command"] == ["tritonserver"] and expected[0] == "/opt/tritonserver/bin/tritonserver"
    assert [a for a in triton["args"] if a not in TRITON_EXTRA_ARGS] == expected[1:]
    assert set(TRITON_EXTRA_ARGS) <= set(triton["args"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_snapfit_variable_is_a_setting_and_parses(overlay, manifests, monkeypatch):
    variables = orchestrator_environment(manifests[overlay])
    ours = {k: v for k, v in variables.items() if k.startswith("SNAPFIT_")}
    unknown = sorted(k for k in ours if setting_field(k) is None)
    assert not unknown, f"not fields of orchestrator.settings.Settings: {unknown}"
    for name, entry in ours.items():
        monkeypatch.setenv(name, entry.get("value", "secret-from-the-cluster"))
    settings = Settings(_env_file=None)  # the ConfigMap's values validate as the settings
    assert settings.triton.grpc_url == f"dns:///snapfit-triton-headless:{contract.TRITON_GRPC_PORT}"
    assert settings.triton.channel_refresh_s == 60
    assert str(settings.catalog.index_path) == "/var/lib/snapfit/index"
    # everything the orchestrator writes lies on a writable volume (its root filesystem is read-only)
    orchestrator = next(d for d in manifests[overlay] if d["kind"] == "Deployment"
                        and d["metadata"]["name"] == "snapfit-orchestrator")
    mounts = [m["mountPath"] for m in orchestrator["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
              if not m.get("readOnly")]
    for written in (settings.catalog.index_path, settings.upload_folder(), Path("/tmp")):
        assert any(written == Path(m) or Path(m) in written.parents for m in mounts), (written, mounts)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_orchestrator_gets_its_secrets_replica_id_and_an_index_folder(overlay, manifests):
    variables = orchestrator_environment(manifests[overlay])
    assert variables["SNAPFIT_CATALOG__URL"]["valueFrom"]["secretKeyRef"] == {"name": "snapfit-catalog", "key": "url"}
    assert variables["SNAPFIT_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "snapfit-admin", "key": "token"}
    assert variables["SNAPFIT_REPLICA_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    for name in ("SNAPFIT_CATALOG__SYNC_INTERVAL_S", "SNAPFIT_CATALOG__IMPORT_LEASE_S", "SNAPFIT_WORKERS",
                 "SNAPFIT_RATE_LIMIT__PER_CLIENT_PER_MINUTE"):
        assert name in variables
    # without a proxy that sets X-Forwarded-For, trusting any of its entries lets clients choose their own key
    assert variables["SNAPFIT_RATE_LIMIT__FORWARDED_FOR_HOPS"]["value"] == "0"
    mounts = {Path(m["mountPath"]) for m in container(manifests[overlay], "Deployment", "snapfit-orchestrator",
                                                      "orchestrator")["volumeMounts"]}
    index = Path(variables["SNAPFIT_CATALOG__INDEX_PATH"]["value"])
    assert mounts & {index, *index.parents}


# ---------------------------------------------------------------- probes, selectors, policies


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_long_running_workload_has_startup_readiness_and_liveness_probes(overlay, manifests):
    for obj in manifests[overlay]:
        if obj["kind"] in ("Deployment", "StatefulSet"):
            for c in obj["spec"]["template"]["spec"]["containers"]:
                missing = {"startupProbe", "readinessProbe", "livenessProbe"} - set(c)
                assert not missing, f"{obj['metadata']['name']}/{c['name']} lacks {missing}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_ask_the_health_routes(overlay, manifests):
    triton = container(manifests[overlay], "Deployment", "snapfit-triton", "triton")
    assert triton["readinessProbe"]["httpGet"]["path"] == triton["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert triton["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    startup = triton["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600, "model loading takes minutes"
    orchestrator = container(manifests[overlay], "Deployment", "snapfit-orchestrator", "orchestrator")
    assert orchestrator["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert orchestrator["livenessProbe"]["httpGet"]["path"] == orchestrator["startupProbe"]["httpGet"]["path"] == "/healthz"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_select_pods_and_target_their_named_ports(overlay, manifests):
    objects = manifests[overlay]
    for service in by_kind(objects, "Service"):
        selector = service["spec"]["selector"]
        pods = [o for o in objects if pod_spec(o) is not None and selects(selector, o["spec"]["template"]["metadata"]["labels"])]
        assert len(pods) == 1, f"Service {service['metadata']['name']} selects {len(pods)} workloads"
        port_names = {p["name"] for _, c in containers(pods[0]) for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, f"{service['metadata']['name']}: {port}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_select_pods_that_exist(overlay, manifests):
    labels = pod_labels(manifests[overlay])
    policies = by_kind(manifests[overlay], "NetworkPolicy")
    assert any(p["spec"]["podSelector"] == {} and p["spec"]["policyTypes"] == ["Ingress"] and "ingress" not in p["spec"]
               for p in policies), "a default-deny ingress policy"
    for policy in policies:
        selector = policy["spec"]["podSelector"].get("matchLabels", {})
        assert any(selects(selector, l) for l in labels), policy["metadata"]["name"]
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                if "podSelector" in peer:
                    assert any(selects(peer["podSelector"]["matchLabels"], l) for l in labels), policy["metadata"]["name"]


def _allowed(policies, target: str, port: int) -> list[dict]:
    """The `from` peers allowed to reach pods named `target` on `port` (an empty peer list: anyone)."""
    peers = []
    for policy in policies:
        if selects(policy["spec"]["podSelector"].get("matchLabels", {}), {"app.kubernetes.io/name": target}):
            for rule in policy["spec"].get("ingress", []):
                if any(p["port"] == port for p in rule.get("ports", [])):
                    peers.extend(rule.get("from", [{"anyone": True}]))
    return peers


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_orchestrator_reaches_triton_and_mongodb(overlay, manifests):
    policies = by_kind(manifests[overlay], "NetworkPolicy")
    orchestrator = {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "snapfit-orchestrator"}}}
    for port in (contract.TRITON_HTTP_PORT, contract.TRITON_GRPC_PORT):
        assert _allowed(policies, "snapfit-triton", port) == [orchestrator]
    assert _allowed(policies, "snapfit-triton", contract.TRITON_METRICS_PORT) == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert _allowed(policies, "snapfit-mongodb", 27017) == [orchestrator]
    assert _allowed(policies, "snapfit-orchestrator", contract.API_PORT) == [{"anyone": True}]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budgets_keep_an_api_and_never_block_a_drain(overlay, manifests):
    objects = manifests[overlay]
    assert named(objects, "PodDisruptionBudget", "snapfit-orchestrator")["spec"]["minAvailable"] == 1
    assert named(objects, "PodDisruptionBudget", "snapfit-triton")["spec"]["maxUnavailable"] == 1
    for budget in by_kind(objects, "PodDisruptionBudget"):
        assert any(selects(budget["spec"]["selector"]["matchLabels"], l) for l in pod_labels(objects))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_orchestrator_resolves_every_triton_pod_for_round_robin(overlay, manifests):
    """Through a cluster IP each orchestrator replica's one gRPC connection reaches one Triton pod; a headless
    Service's DNS name resolves to every ready pod, which the client's round_robin policy spreads calls over."""
    objects = manifests[overlay]
    url = orchestrator_environment(objects)["SNAPFIT_TRITON__GRPC_URL"]["value"]
    match = re.fullmatch(r"dns:///([a-z0-9-]+):(\d+)", url)
    assert match, f"{url}: the dns:/// scheme makes gRPC resolve (and re-resolve) every address"
    service = named(objects, "Service", match[1])
    assert service["spec"]["clusterIP"] == "None"
    assert not service["spec"].get("publishNotReadyAddresses"), "a loading Triton pod must get no calls"
    assert service["spec"]["selector"] == named(objects, "Service", "snapfit-triton")["spec"]["selector"]
    [port] = service["spec"]["ports"]
    assert port["port"] == int(match[2]) == contract.TRITON_GRPC_PORT and port["targetPort"] == "grpc"
    refresh_s = float(orchestrator_environment(objects)["SNAPFIT_TRITON__CHANNEL_REFRESH_S"]["value"])
    assert 0 < refresh_s <= 300, "new Triton pods get calls only once the channel is reopened"


def test_try_on_clients_stick_to_the_replica_that_runs_their_job(manifests):
    service = named(manifests["gpu"], "Service", "snapfit-orchestrator")
    assert service["spec"]["sessionAffinity"] == "ClientIP"


# ---------------------------------------------------------------- autoscaling


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_autoscalers_own_the_replica_count_of_existing_deployments(overlay, manifests):
    objects = manifests[overlay]
    scaled = set()
    for hpa in by_kind(objects, "HorizontalPodAutoscaler"):
        target = named(objects, hpa["spec"]["scaleTargetRef"]["kind"], hpa["spec"]["scaleTargetRef"]["name"])
        assert "replicas" not in target["spec"], f"{target['metadata']['name']}: `kubectl apply` would reset the HPA"
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        scaled.add(target["metadata"]["name"])
    assert named(objects, "HorizontalPodAutoscaler", "snapfit-orchestrator")["spec"]["minReplicas"] == 2
    assert scaled == ({"snapfit-orchestrator", "snapfit-triton"} if overlay == "gpu" else {"snapfit-orchestrator"})


def _max_queue_delay_us() -> int:
    delays = [int(d) for path in (REPO_ROOT / "model_repository").glob("*/config.pbtxt")
              for d in re.findall(r"max_queue_delay_microseconds:\s*(\d+)", path.read_text())]
    assert delays
    return max(delays)


def test_triton_scales_on_queue_time_above_the_batchers_deliberate_wait(manifests):
    objects = manifests["gpu"]
    hpa = named(objects, "HorizontalPodAutoscaler", "snapfit-triton")
    [metric] = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    target_us = int(metric["pods"]["target"]["averageValue"])
    assert target_us >= 2 * _max_queue_delay_us(), "a healthy pod waits up to the batchers' delay on purpose"
    rules = yaml.safe_load(named(objects, "ConfigMap", "snapfit-prometheus-adapter-rules")["data"]["config.yaml"])
    [rule] = rules["rules"]
    assert rule["name"]["as"] == metric["pods"]["metric"]["name"]
    assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}
    query = rule["metricsQuery"]
    for series in ("nv_inference_queue_duration_us", "nv_inference_request_success"):  # Triton's counters
        assert f"increase({series}{{<<.LabelMatchers>>,model!=\"{contract.CLIP_TEXT_EMBED}\"}}[1m])" in query
    assert query.count("sum by (<<.GroupBy>>)") == 2


# ---------------------------------------------------------------- ServiceMonitor (no schema validator knows it)

SERVICE_MONITOR_SPEC_FIELDS = {"selector", "endpoints", "namespaceSelector", "jobLabel", "targetLabels",
                               "podTargetLabels", "sampleLimit"}
ENDPOINT_FIELDS = {"port", "path", "interval", "scrapeTimeout", "scheme", "honorLabels", "relabelings",
                   "metricRelabelings"}


def test_service_monitors_scrape_named_metrics_ports_of_real_services(manifests):
    objects = manifests["gpu"]
    monitors = by_kind(objects, "ServiceMonitor")
    assert {m["metadata"]["name"] for m in monitors} == {"snapfit-triton", "snapfit-orchestrator"}
    expected_port = {"snapfit-triton": "metrics", "snapfit-orchestrator": "http"}
    for monitor in monitors:
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor["metadata"]["namespace"] == "snapfit"
        assert set(monitor["spec"]) <= SERVICE_MONITOR_SPEC_FIELDS
        services = [s for s in by_kind(objects, "Service")
                    if selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"].get("labels", {}))]
        assert [s["metadata"]["name"] for s in services] == [monitor["metadata"]["name"]]
        port_names = {p["name"] for p in services[0]["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            assert set(endpoint) <= ENDPOINT_FIELDS
            assert endpoint["port"] in port_names and endpoint["port"] == expected_port[monitor["metadata"]["name"]]
            assert endpoint["path"] == "/metrics" and re.fullmatch(r"\d+[smh]", endpoint["interval"])
    assert by_kind(manifests["cpu"], "ServiceMonitor") == []


# ---------------------------------------------------------------- the model volume and the export Job


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_triton_reads_the_models_volume_the_export_job_writes(overlay, stacks):
    objects = stacks[overlay]
    triton = named(objects, "Deployment", "snapfit-triton")
    export = named(objects, "Job", "snapfit-export")
    for obj, read_only in ((triton, True), (export, False)):
        volume = next(v for v in pod_spec(obj)["volumes"] if v["name"] == "models")
        assert volume["persistentVolumeClaim"]["claimName"] == "snapfit-models"
        assert volume["persistentVolumeClaim"].get("readOnly", False) is read_only
        for _, c in containers(obj):
            mount = next(m for m in c["volumeMounts"] if m["name"] == "models")
            assert mount["mountPath"] == "/models" and mount.get("readOnly", False) is read_only
    init = pod_spec(triton)["initContainers"][0]
    assert init["command"] == ["python", "/opt/snapfit/docker/repository_gate.py", "wait", "/models"]
    assert "--timeout-s" in init["args"], "a Job that never comes must show, not leave Triton in Init:0/1 for ever"
    modes = named(objects, "PersistentVolumeClaim", "snapfit-models")["spec"]["accessModes"]
    assert modes == (["ReadWriteMany"] if overlay == "gpu" else ["ReadWriteOnce"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_triton_rolls_out_without_two_pods_needing_a_read_write_once_volume(overlay, manifests):
    """A surge pod on another node cannot attach a ReadWriteOnce volume the old pod holds (Multi-Attach)."""
    objects = manifests[overlay]
    modes = named(objects, "PersistentVolumeClaim", "snapfit-models")["spec"]["accessModes"]
    strategy = named(objects, "Deployment", "snapfit-triton")["spec"]["strategy"]
    if modes == ["ReadWriteMany"]:
        assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    else:
        assert strategy == {"type": "Recreate"}  # no rollingUpdate: the API refuses it beside Recreate


@pytest.mark.parametrize(("overlay", "precision"), [("gpu", "fp16"), ("cpu", "fp32")])
def test_the_export_job_runs_snapfit_export_for_its_overlay(overlay, precision, manifests):
    job = container(manifests[EXPORT_JOBS[overlay]], "Job", "snapfit-export", "export")
    assert job["command"] == ["python", "/opt/snapfit/docker/repository_gate.py", "export", "/models", "--"]
    assert job["args"] == ["--profile", "base", "--precision", precision]
    assert job["image"].rsplit("/", 1)[-1].startswith("snapfit-export:")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_applying_an_overlay_never_touches_a_job(overlay, manifests):
    """A Job's pod template is immutable: a finished Job among the overlay's objects made `kubectl apply -k` fail
    after every image bump."""
    assert by_kind(manifests[overlay], "Job") == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_export_job_applies_nothing_but_itself_and_the_overlays_own_models_claim(overlay, manifests):
    job = manifests[EXPORT_JOBS[overlay]]
    assert sorted((o["kind"], o["metadata"]["name"]) for o in job) == [
        ("Job", "snapfit-export"), ("NetworkPolicy", "snapfit-export"), ("PersistentVolumeClaim", "snapfit-models"),
        ("ServiceAccount", "snapfit-export")]
    # applied in either order, neither changes the other's claim (its access mode cannot change once bound)
    claim = named(job, "PersistentVolumeClaim", "snapfit-models")
    assert claim == named(manifests[overlay], "PersistentVolumeClaim", "snapfit-models")
    assert named(job, "Job", "snapfit-export")["spec"].get("ttlSecondsAfterFinished") is None, \
        "the finished Job keeps its logs (what fell back to fp32, what failed)"


# ---------------------------------------------------------------- names, labels, generated ConfigMaps, components


@pytest.mark.parametrize("overlay", KUSTOMIZATIONS)
def test_everything_is_named_snapfit_and_lives_in_its_namespace(overlay, manifests):
    for obj in manifests[overlay]:
        meta = obj["metadata"]
        assert meta["name"].startswith("snapfit-") or (obj["kind"], meta["name"]) == ("Namespace", "snapfit")
        if obj["kind"] != "Namespace":
            assert meta["namespace"] == "snapfit", f"{obj['kind']} {meta['name']}"
        assert meta["labels"]["app.kubernetes.io/part-of"] == "snapfit", f"{obj['kind']} {meta['name']}"
        if pod_spec(obj) is not None or obj["kind"] == "Service":
            assert meta["labels"]["app.kubernetes.io/name"] == meta["name"]


def test_grafana_finds_the_dashboard_configmap(manifests):
    config_map = named(manifests["gpu"], "ConfigMap", "snapfit-grafana-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["snapfit-grafana.json"])
    assert dashboard["panels"]


def test_an_external_mongodb_drops_the_bundled_one(tmp_path):
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(K8S_DIR / "overlays" / "gpu", tmp_path)],  # kustomize wants relative paths
        "components": [os.path.relpath(K8S_DIR / "components" / "external-mongodb", tmp_path)]}))
    objects = documents(render(tmp_path))
    assert not [o for o in objects if "mongodb" in o["metadata"]["name"]]
    variables = orchestrator_environment(objects)
    assert variables["SNAPFIT_CATALOG__URL"]["valueFrom"]["secretKeyRef"]["name"] == "snapfit-catalog"
