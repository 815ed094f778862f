"""The Grafana dashboard (k8s/base/dashboards/snapfit-grafana.json) is well formed and asks only for metrics that exist.

Metric names come from two sources: the orchestrator's own registry (`orchestrator.metrics`) for `snapfit_*`, and
the metric tables of Triton's documentation for `nv_*` (server/docs/user_guide/metrics.md, the 2.51-era page with
pending request count, failure reasons and pinned memory), listed below because Triton is not importable here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

import orchestrator.metrics  # noqa: F401  (registers every snapfit_* metric in REGISTRY)

DASHBOARD = Path(__file__).resolve().parents[2] / "k8s" / "base" / "dashboards" / "snapfit-grafana.json"
DATASOURCE_UID = "${datasource}"
GRID_COLUMNS = 24

# Triton's documented metric families, by Prometheus type (server/docs/user_guide/metrics.md).
TRITON_COUNTERS = {
    "nv_inference_request_success", "nv_inference_request_failure", "nv_inference_count", "nv_inference_exec_count",
    "nv_inference_request_duration_us", "nv_inference_queue_duration_us", "nv_inference_compute_input_duration_us",
    "nv_inference_compute_infer_duration_us", "nv_inference_compute_output_duration_us",
    "nv_cache_num_hits_per_model", "nv_cache_num_misses_per_model", "nv_cache_hit_duration_per_model",
    "nv_cache_miss_duration_per_model", "nv_energy_consumption",
}
TRITON_GAUGES = {
    "nv_inference_pending_request_count",
    "nv_gpu_power_usage", "nv_gpu_power_limit", "nv_gpu_utilization", "nv_gpu_memory_total_bytes",
    "nv_gpu_memory_used_bytes", "nv_cpu_utilization", "nv_cpu_memory_total_bytes", "nv_cpu_memory_used_bytes",
    "nv_pinned_memory_pool_total_bytes", "nv_pinned_memory_pool_used_bytes",
}
TRITON_SUMMARIES = {  # opt-in: --metrics-config summary_latencies=true
    "nv_inference_request_summary_us", "nv_inference_queue_summary_us", "nv_inference_compute_input_summary_us",
    "nv_inference_compute_infer_summary_us", "nv_inference_compute_output_summary_us",
}
TRITON_HISTOGRAMS = {"nv_inference_first_response_histogram_ms"}  # opt-in, decoupled models only
# Per-GPU and per-process series carry no `model` label; everything else of Triton's is per model.
TRITON_PER_MODEL_PREFIXES = ("nv_inference_", "nv_cache_")

METRIC_NAME = re.compile(r"(?<![A-Za-z0-9_:$])(?:nv|snapfit)_[a-z0-9_]+")
SELECTOR = re.compile(r"(?<![A-Za-z0-9_:$])((?:nv|snapfit)_[a-z0-9_]+)\s*(\{[^}]*\})?")
MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
CLOSING = {")": "(", "]": "[", "}": "{"}


def _series_names(name: str, kind: str) -> set[str]:
    """The sample names a metric family of `kind` exposes to Prometheus."""
    if kind == "counter" and not name.startswith("nv_"):
        return {f"{name}_total", f"{name}_created"}  # prometheus_client drops _total from the family name
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    if kind == "summary":
        return {name, f"{name}_count", f"{name}_sum"}
    return {name}


def _orchestrator_series() -> set[str]:
    return {series for family in REGISTRY.collect() if family.name.startswith("snapfit_")
            for series in _series_names(family.name, family.type)}


def _triton_series() -> set[str]:
    kinds = {"counter": TRITON_COUNTERS, "gauge": TRITON_GAUGES, "summary": TRITON_SUMMARIES,
             "histogram": TRITON_HISTOGRAMS}
    return {series for kind, names in kinds.items() for name in names for series in _series_names(name, kind)}


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def _panels(dashboard: dict) -> Iterator[dict]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row keeps its panels inside


def _query_panels(dashboard: dict) -> list[dict]:
    return [panel for panel in _panels(dashboard) if panel["type"] != "row"]


def _exprs(dashboard: dict) -> list[str]:
    return [target["expr"] for panel in _query_panels(dashboard) for target in panel["targets"]]


def _variable_queries(dashboard: dict) -> list[str]:
    return [variable["query"] for variable in dashboard["templating"]["list"] if variable["type"] == "query"]


def _unbalanced(expr: str) -> str | None:
    """Why `expr`'s brackets do not pair up (quoted strings skipped), or None when they do."""
    stack: list[str] = []
    in_string = escaped = False
    for char in expr:
        if in_string:
            in_string = escaped or char != '"'
            escaped = not escaped and char == "\\"
        elif char == '"':
            in_string = True
        elif char in "([{":
            stack.append(char)
        elif char in CLOSING and (not stack or stack.pop() != CLOSING[char]):
            return f"unexpected {char!r}"
    if in_string:
        return "unterminated string"
    return f"unclosed {stack[-1]!r}" if stack else None


def _matchers(braces: str | None) -> dict[str, tuple[str, str]]:
    return {name: (op, value) for name, op, value in MATCHER.findall(braces or "")}


def test_dashboard_has_its_uid_schema_and_template_variables(dashboard):
    assert dashboard["uid"] == "snapfit-overview"
    assert 36 <= dashboard["schemaVersion"] <= 41
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("namespace", "model"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"]["uid"] == DATASOURCE_UID
        assert variables[name]["query"].startswith("label_values(")
        assert variables[name]["query"].endswith(f", {name})")
    assert variables["model"]["includeAll"] and variables["model"]["allValue"] == ".*"


def test_panel_ids_are_unique(dashboard):
    ids = [panel["id"] for panel in _panels(dashboard)]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def test_panels_fit_the_grid_without_overlapping(dashboard):
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["w"] > 0 and pos["h"] > 0 and pos["x"] >= 0 and pos["y"] >= 0, panel["title"]
        assert pos["x"] + pos["w"] <= GRID_COLUMNS, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r} at x={x} y={y}"
                cells[(x, y)] = panel["title"]


def test_every_panel_has_a_title_the_datasource_variable_and_a_query(dashboard):
    for panel in _panels(dashboard):
        assert panel.get("title", "").strip(), f"panel {panel['id']} has no title"
    for panel in _query_panels(dashboard):
        assert panel["datasource"]["uid"] == DATASOURCE_UID, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target.get("expr", "").strip(), f"{panel['title']!r} target {target.get('refId')} has no expr"
            assert target.get("datasource", panel["datasource"])["uid"] == DATASOURCE_UID, panel["title"]


def test_every_expr_balances_its_brackets(dashboard):
    for expr in _exprs(dashboard) + _variable_queries(dashboard):
        assert _unbalanced(expr) is None, f"{_unbalanced(expr)} in {expr!r}"


def test_every_snapfit_metric_is_registered_by_the_orchestrator(dashboard):
    known = _orchestrator_series()
    used = {name for expr in _exprs(dashboard) + _variable_queries(dashboard) for name in METRIC_NAME.findall(expr)}
    missing = sorted(name for name in used if name.startswith("snapfit_") and name not in known)
    assert not missing, f"not in orchestrator.metrics: {missing}"


def test_every_triton_metric_is_documented_by_triton(dashboard):
    known = _triton_series()
    used = {name for expr in _exprs(dashboard) + _variable_queries(dashboard) for name in METRIC_NAME.findall(expr)}
    missing = sorted(name for name in used if name.startswith("nv_") and name not in known)
    assert not missing, f"not documented in Triton's metrics.md: {missing}"


def test_every_selector_is_scoped_to_the_namespace_and_triton_models_to_the_model_variable(dashboard):
    for expr in _exprs(dashboard):
        for name, braces in SELECTOR.findall(expr):
            matchers = _matchers(braces)
            assert matchers.get("namespace") == ("=", "$namespace"), f"{name} unscoped in {expr!r}"
            if name.startswith(TRITON_PER_MODEL_PREFIXES):
                assert matchers.get("model") == ("=~", "$model"), f"{name} not filtered by $model in {expr!r}"


def test_histogram_buckets_are_only_read_through_histogram_quantile_by_le(dashboard):
    for expr in _exprs(dashboard):
        if "_bucket" in expr:
            assert re.search(r"histogram_quantile\(\s*0?\.\d+\s*,\s*sum by \(le\b", expr), expr


def test_every_expr_parses_as_an_instant_vector_query(dashboard):
    promql_parser = pytest.importorskip("promql_parser")
    for expr in _exprs(dashboard):
        try:
            parsed = promql_parser.parse(expr)
        except ValueError as error:
            pytest.fail(f"{error} in {expr!r}")
        assert not isinstance(parsed, (promql_parser.MatrixSelector, promql_parser.StringLiteral)), expr
        assert sorted(_selected_metrics(promql_parser, parsed)) == sorted(METRIC_NAME.findall(expr)), expr


def _selected_metrics(promql_parser, parsed) -> list[str]:
    """The metric name of every vector selector in a parsed expression (those inside range selectors too)."""
    names: list[str] = []

    def visit(node) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            names.append(node.name)

    promql_parser.walk(parsed, visit)
    return names
