"""benchmarks.http_load end to end: a seeded catalog, a real orchestrator and tritonserver (tiny models), every
scenario at concurrency 1 and 2, and the report files (no timing assertions)."""

from __future__ import annotations

import json

import httpx
import pytest

from benchmarks.http_load import SCENARIOS, run, seed_catalog
from benchmarks.report import profile_sections, save_section
from tests.integration.orchestrator_process import running_orchestrator, store_url

pytestmark = pytest.mark.integration


def test_every_scenario_runs_without_errors_against_the_real_stack(triton_server, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    assert seed_catalog(store_url("sqlite", runs), count=200, seed=0) == 200  # before the orchestrator starts
    with running_orchestrator(triton_server.grpc_url, runs, tmp_path) as orchestrator:
        hits = httpx.get(f"{orchestrator.base}/v1/search", params={"q": "red dress", "k": 5}, timeout=60).json()
        rows = run(orchestrator.base, concurrencies=(1, 2), max_requests=3, max_seconds=20, warmup=1,
                   show_progress=False, timeout_s=60)
    assert [h["product"]["product_id"][:4] for h in hits["results"]] == ["SYN-"] * 5  # the seeded catalog
    assert [(r["scenario"], r["concurrency"]) for r in rows] == [(s, c) for s in SCENARIOS for c in (1, 2)]
    for row in rows:
        assert row["ok"] > 0 and row["errors"] == 0, row
        assert row["p50_ms"] <= row["p95_ms"] <= row["max_ms"]

    out = tmp_path / "report"
    report = save_section("http_load", rows, out)
    assert "## Orchestrator HTTP load" in report.read_text()
    assert profile_sections(json.loads((out / "results.json").read_text()))["http_load"] == rows
    assert (out / "http_load_throughput.png").stat().st_size > 0 and (out / "http_load_p95.png").stat().st_size > 0
