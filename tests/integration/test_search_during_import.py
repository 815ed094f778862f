"""Searches and deletes while an import runs, over real HTTP: every answer is consistent, deletes stick."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from snapfit.demo_catalog import generate_catalog
from tests.integration.orchestrator_process import ADMIN, running_orchestrator, wait_for_import

pytestmark = pytest.mark.integration
ROWS, FIRST = 400, 100


def upload(client: httpx.Client, csv_path: Path, rows: int) -> str:
    data = b"\n".join(csv_path.read_bytes().splitlines()[: rows + 1]) + b"\n"
    started = client.post("/v1/catalog/imports", files={"file": ("catalog.csv", data)},
                          data={"base_dir": str(csv_path.parent)})
    assert started.status_code == 202, started.text
    return started.json()["job_id"]


def check_consistent(response: httpx.Response, deleted: set[str], category: str | None) -> list[str]:
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    ids = [r["product"]["product_id"] for r in results]
    scores = [r["score"] for r in results]
    assert len(ids) == len(set(ids)), "a product came back twice"
    assert scores == sorted(scores, reverse=True)
    assert not deleted & set(ids), "a deleted product came back"
    if category:
        assert {r["product"]["category"] for r in results} <= {category}
    return ids


def test_searches_and_deletes_during_an_import_stay_consistent(triton_server, tmp_path):
    catalog = generate_catalog(tmp_path / "catalog", count=ROWS, seed=8)
    env = {"SNAPFIT_CATALOG__IMPORT_BATCH_SIZE": "8", "SNAPFIT_SEARCH__MAX_K": "1000"}
    with running_orchestrator(triton_server.grpc_url, tmp_path / "runs", catalog.parent, extra_env=env) as running:
        with httpx.Client(headers=ADMIN, base_url=running.base, timeout=60) as client:
            assert wait_for_import(client, upload(client, catalog, FIRST))["inserted"] == FIRST
            job_id = upload(client, catalog, ROWS)
            deleted: set[str] = set()
            searches, seen_counts = 0, []
            while (job := client.get(f"/v1/catalog/imports/{job_id}").json())["status"] == "running":
                everything = check_consistent(client.get("/v1/search", params={"q": "shirt", "k": 1000}), deleted, None)
                seen_counts.append(len(everything))
                check_consistent(client.get("/v1/search", params={"q": "jeans", "k": 50, "category": "bottom"}),
                                 deleted, "bottom")
                searches += 2
                if len(deleted) < 10 and job["processed_rows"] > FIRST:  # the import is past the first rows
                    victim = next(pid for pid in everything if pid <= f"SF-{FIRST:06d}" and pid not in deleted)
                    assert client.delete(f"/v1/products/{victim}").status_code == 204
                    deleted.add(victim)
            job = wait_for_import(client, job_id)
            assert job["status"] == "succeeded", job
            final = check_consistent(client.get("/v1/search", params={"q": "shirt", "k": 1000}), deleted, None)
    assert searches >= 10, "the import ended before the searches could overlap it"
    assert len(set(seen_counts)) > 1, "no search saw the index grow"
    assert len(deleted) == 10
    assert len(final) == ROWS - len(deleted) and job["inserted"] == ROWS - FIRST
