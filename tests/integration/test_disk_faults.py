"""The store's disk full, or its volume read-only, under a real `snapfit serve` on Triton: a real tmpfs of a few MB
holds the SQLite catalog, the vector index and the uploads (tests/support/small_disk.py). What the client sees
(503 `store_unavailable` with Retry-After, never a 500), what is lost (nothing: the database passes SQLite's
integrity check, the saved index loads and holds exactly the stored products), and recovery once space returns.
docs/reliability.md quotes these tests."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from orchestrator.index import FaissIndex
from orchestrator.stores.factory import open_catalog_store
from tests.integration.orchestrator_process import (
    ADMIN,
    assert_unavailable,
    post_import,
    running_orchestrator,
    start_import,
    store_url,
    wait_for_import,
)
from tests.support.catalog_parts import catalog_and_its_start
from tests.support.photos import person_jpeg
from tests.support.small_disk import read_only_view, small_disk

pytestmark = pytest.mark.integration
ROWS = 120
HALF = 30
DISK_MB = 24


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory) -> tuple[Path, Path]:
    """(the first HALF rows of a catalog, the whole catalog)."""
    return catalog_and_its_start(tmp_path_factory.mktemp("catalog"), count=ROWS, first=HALF, seed=13)


def assert_unavailable_store(response: httpx.Response) -> None:
    assert_unavailable(response, "store_unavailable")


def stored_ids(data: Path) -> set[str]:
    async def read() -> set[str]:
        store = await open_catalog_store(store_url("sqlite", data))
        try:
            return {p.product_id async for batch in store.iter_embeddings() for p in batch.products}
        finally:
            await store.close()
    return asyncio.run(read())


def assert_nothing_lost(data: Path, expected: int) -> None:
    """The database is whole, and the index saved at the clean stop holds exactly the stored products."""
    with closing(sqlite3.connect(data / "catalog.db")) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    ids = stored_ids(data)
    index, _ = FaissIndex.load(data / "index")
    assert len(ids) == expected and len(index) == expected and all(pid in index for pid in ids)


def total(client: httpx.Client) -> int:
    return client.get("/v1/products", params={"limit": 1}).json()["total"]


def test_a_full_disk_answers_503_loses_nothing_and_recovers_when_space_returns(triton_server, catalogs, tmp_path):
    half, whole = catalogs
    small_batches = {"SNAPFIT_CATALOG__IMPORT_BATCH_SIZE": "4"}  # many commits, so the disk fills between some
    with small_disk(tmp_path / "disk", DISK_MB) as disk:
        with running_orchestrator(triton_server.grpc_url, tmp_path / "runs", whole.parent, data=disk.path,
                                  extra_env=small_batches) as api:
            with httpx.Client(base_url=api.base, headers=ADMIN, timeout=60) as client:
                assert wait_for_import(client, start_import(client, half))["inserted"] == HALF
                some_product = client.get("/v1/search", params={"q": "dress"}).json()["results"][0]["product"]

                disk.fill()
                assert_unavailable_store(client.post("/v1/images", files={"file": ("me.jpg", person_jpeg())}))
                assert_unavailable_store(post_import(client, whole))
                assert_unavailable_store(client.delete(f"/v1/products/{some_product['product_id']}"))
                # reads go on, and the product a failed delete kept is still found
                assert client.get(f"/v1/products/{some_product['product_id']}").status_code == 200
                found = client.get("/v1/search", params={"q": "dress", "k": 100}).json()["results"]
                assert some_product["product_id"] in {r["product"]["product_id"] for r in found}
                assert client.get("/readyz").status_code == 200
                disk.free()

                job_id = start_import(client, whole)  # the disk fills up in the middle of this one
                while client.get(f"/v1/catalog/imports/{job_id}").json()["processed_rows"] < HALF + 8:
                    time.sleep(0.01)
                disk.fill()
                failed = wait_for_import(client, job_id)
                assert failed["status"] == "failed" and "/resume" in failed["message"], failed
                kept = total(client)
                assert HALF + 8 <= kept < ROWS, "the import finished before the disk filled up"

                disk.free()
                assert client.post("/v1/images", files={"file": ("me.jpg", person_jpeg())}).status_code == 200
                resumed = client.post(f"/v1/catalog/imports/{job_id}/resume")
                assert resumed.status_code == 202, resumed.text
                assert wait_for_import(client, job_id)["status"] == "succeeded"
                assert total(client) == ROWS
                assert client.delete(f"/v1/products/{some_product['product_id']}").status_code == 204

                disk.fill()  # full again when the orchestrator stops: its last index save fails
        disk.free()
        with running_orchestrator(triton_server.grpc_url, tmp_path / "runs-again", whole.parent,
                                  data=disk.path) as api:
            with httpx.Client(base_url=api.base, headers=ADMIN, timeout=60) as client:
                assert total(client) == ROWS - 1  # the older saved index caught up from the change log
                results = client.get("/v1/search", params={"q": "dress", "k": 100}).json()["results"]
                assert some_product["product_id"] not in {r["product"]["product_id"] for r in results}
        assert_nothing_lost(disk.path, ROWS - 1)


def test_a_read_only_volume_serves_reads_and_answers_writes_503(triton_server, catalogs, tmp_path):
    half, whole = catalogs
    with small_disk(tmp_path / "disk", DISK_MB) as disk:
        with running_orchestrator(triton_server.grpc_url, tmp_path / "runs", whole.parent, data=disk.path) as api:
            with httpx.Client(base_url=api.base, headers=ADMIN, timeout=60) as client:
                assert wait_for_import(client, start_import(client, half))["inserted"] == HALF
                before = client.get("/v1/search", params={"q": "dress"}).json()["results"]

        with read_only_view(disk.path, tmp_path / "read-only") as view:
            with running_orchestrator(triton_server.grpc_url, tmp_path / "runs-ro", whole.parent, data=view) as api:
                with httpx.Client(base_url=api.base, headers=ADMIN, timeout=60) as client:
                    assert client.get("/v1/search", params={"q": "dress"}).json()["results"] == before
                    product_id = before[0]["product"]["product_id"]
                    assert client.get(f"/v1/products/{product_id}").status_code == 200
                    assert_unavailable_store(client.post("/v1/images", files={"file": ("me.jpg", person_jpeg())}))
                    assert_unavailable_store(client.patch(f"/v1/products/{product_id}", json={"price": 1}))
                    assert_unavailable_store(client.delete(f"/v1/products/{product_id}"))
                    assert_unavailable_store(post_import(client, whole))
                    assert total(client) == HALF

        with running_orchestrator(triton_server.grpc_url, tmp_path / "runs-rw", whole.parent, data=disk.path) as api:
            with httpx.Client(base_url=api.base, headers=ADMIN, timeout=60) as client:
                assert wait_for_import(client, start_import(client, whole))["status"] == "succeeded"
                assert total(client) == ROWS
        assert_nothing_lost(disk.path, ROWS)
