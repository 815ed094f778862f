"""An import killed halfway (SIGKILL, no clean shutdown) and run again ends in the state of one uninterrupted run."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from orchestrator.stores.factory import open_catalog_store
from snapfit.demo_catalog import generate_catalog
from tests.integration.orchestrator_process import ADMIN, running_orchestrator, start_import, store_url, wait_for_import

pytestmark = pytest.mark.integration
ROWS = 400
QUERIES = ("red dress", "black striped jeans", "navy hoodie", "lookbook")


def searches(client: httpx.Client) -> dict[str, list[tuple[str, float]]]:
    results = {}
    for query in QUERIES:
        response = client.get("/v1/search", params={"q": query, "k": 50})
        assert response.status_code == 200, response.text
        results[query] = [(r["product"]["product_id"], r["score"]) for r in response.json()["results"]]
    return results


def stored_products(runs: Path) -> dict[str, dict]:
    async def read() -> dict[str, dict]:
        store = await open_catalog_store(store_url("sqlite", runs))
        try:
            products = {}
            async for batch in store.iter_embeddings():
                for product in batch.products:
                    products[product.product_id] = vars(product) | {"updated_at": None}
            return products
        finally:
            await store.close()
    return asyncio.run(read())


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    return generate_catalog(tmp_path_factory.mktemp("catalog"), count=ROWS, seed=5)


def test_killed_import_rerun_equals_uninterrupted_import(triton_server, catalog, tmp_path):
    small_batches = {"SNAPFIT_CATALOG__IMPORT_BATCH_SIZE": "8"}  # many commits, so the kill lands between some
    interrupted, reference = tmp_path / "interrupted", tmp_path / "reference"
    interrupted.mkdir(), reference.mkdir()

    with running_orchestrator(triton_server.grpc_url, interrupted, catalog.parent, extra_env=small_batches) as first:
        with httpx.Client(headers=ADMIN, base_url=first.base, timeout=60) as client:
            job_id = start_import(client, catalog)
            deadline = time.monotonic() + 300
            while (job := client.get(f"/v1/catalog/imports/{job_id}").json())["processed_rows"] < ROWS // 3:
                assert job["status"] == "running" and time.monotonic() < deadline, job
                time.sleep(0.02)
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
    assert job["processed_rows"] < ROWS, "the import finished before it could be killed"
    stored_before_rerun = len(stored_products(interrupted))
    assert 0 < stored_before_rerun < ROWS

    with running_orchestrator(triton_server.grpc_url, interrupted, catalog.parent, extra_env=small_batches) as again:
        with httpx.Client(headers=ADMIN, base_url=again.base, timeout=60) as client:
            assert len(client.get("/v1/search", params={"q": "dress", "k": 100}).json()["results"]) > 0
            rerun = wait_for_import(client, start_import(client, catalog))
            assert rerun["status"] == "succeeded", rerun
            assert (rerun["inserted"], rerun["unchanged"], rerun["updated"]) == \
                (ROWS - stored_before_rerun, stored_before_rerun, 0)
            interrupted_results = searches(client)

    with running_orchestrator(triton_server.grpc_url, reference, catalog.parent) as whole:
        with httpx.Client(headers=ADMIN, base_url=whole.base, timeout=60) as client:
            assert wait_for_import(client, start_import(client, catalog))["inserted"] == ROWS
            reference_results = searches(client)

    for query in QUERIES:
        got, want = interrupted_results[query], reference_results[query]
        assert [pid for pid, _ in got] == [pid for pid, _ in want], query
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-5)
    got, want = stored_products(interrupted), stored_products(reference)
    assert got.keys() == want.keys() and len(got) == ROWS
    for product_id, product in want.items():
        np.testing.assert_allclose(got[product_id].pop("embedding"), product.pop("embedding"), atol=1e-5)
        assert got[product_id]["tryon_probability"] == pytest.approx(product.pop("tryon_probability"), abs=1e-5)
        got[product_id].pop("tryon_probability")
        assert got[product_id] == product
