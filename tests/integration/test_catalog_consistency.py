"""Catalog import at scale on both stores, search equal to brute force over the stored embeddings, and restarts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np
import pytest

from orchestrator.app import create_app
from orchestrator.settings import CatalogSettings, Settings, TritonSettings
from snapfit.demo_catalog import generate_catalog
from tests.integration.orchestrator_process import ADMIN, ADMIN_TOKEN
from tests.support.mongomock_store import open_test_store

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def catalog_1000(tmp_path_factory) -> Path:
    return generate_catalog(tmp_path_factory.mktemp("catalog1000"), count=1000, seed=11)


def settings_for(triton_server, store_url: str, runs: Path, image_root: Path) -> Settings:
    return Settings(triton=TritonSettings(grpc_url=triton_server.grpc_url), admin_token=ADMIN_TOKEN,
                    catalog=CatalogSettings(url=store_url, index_path=runs / "index", image_root=image_root,
                                            import_batch_size=64))


def admin_client(app, **options) -> httpx.AsyncClient:
    return httpx.AsyncClient(headers=ADMIN, transport=httpx.ASGITransport(app=app), **options)


async def import_csv(client: httpx.AsyncClient, csv_path: Path, rows: int | None = None) -> dict:
    data = csv_path.read_bytes()
    if rows is not None:
        data = b"\n".join(data.splitlines()[: rows + 1]) + b"\n"
    started = await client.post("/v1/catalog/imports", files={"file": ("catalog.csv", data)},
                                data={"base_dir": str(csv_path.parent)})
    assert started.status_code == 202, started.text
    for _ in range(1200):
        job = (await client.get(f"/v1/catalog/imports/{started.json()['job_id']}")).json()
        if job["status"] in ("succeeded", "failed"):
            return job
        await asyncio.sleep(0.25)
    raise AssertionError("import did not finish")


async def brute_force(app, query: np.ndarray, k: int, category: str | None = None) -> list[str]:
    store = app.state.services.store
    ids, vectors = [], []
    async for batch in store.iter_embeddings():
        for product in batch.products:
            if category is None or product.category == category:
                ids.append(product.product_id)
                vectors.append(product.embedding)
    scores = np.stack(vectors) @ query
    return [ids[i] for i in np.argsort(-scores, kind="stable")[:k]]


@pytest.mark.parametrize("store_url, rows", [("sqlite", 1000), ("mongomock://", 300)])
async def test_import_reimport_and_search_equal_brute_force(triton_server, catalog_1000, tmp_path, store_url, rows):
    url = f"sqlite:///{tmp_path / 'catalog.db'}" if store_url == "sqlite" else store_url
    app = create_app(settings_for(triton_server, url, tmp_path, catalog_1000.parent), open_store=open_test_store)
    async with app.router.lifespan_context(app):
        async with admin_client(app, base_url="http://t", timeout=120) as c:
            first = await import_csv(c, catalog_1000, rows)
            assert (first["status"], first["inserted"], first["failed"]) == ("succeeded", rows, 0)
            second = await import_csv(c, catalog_1000, rows)
            assert (second["inserted"], second["updated"], second["unchanged"]) == (0, 0, rows)
            assert await app.state.services.store.count() == rows == len(app.state.services.index)

            query = (await app.state.services.models.clip_text(["blue striped shirt"]))[0]
            for category in (None, "dress"):
                params = {"q": "blue striped shirt", "k": 10, **({"category": category} if category else {})}
                served = [r["product"]["product_id"] for r in (await c.get("/v1/search", params=params)).json()["results"]]
                assert served == await brute_force(app, query, 10, category)


async def test_restart_loads_the_saved_index_and_rebuilds_a_missing_one(triton_server, catalog_1000, tmp_path):
    settings = settings_for(triton_server, f"sqlite:///{tmp_path / 'catalog.db'}", tmp_path, catalog_1000.parent)

    async def search_once() -> list[str]:
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            async with admin_client(app, base_url="http://t") as c:
                if len(app.state.services.index) == 0:
                    await import_csv(c, catalog_1000, 200)
                response = await c.get("/v1/search", params={"q": "red dress", "k": 20})
                return [r["product"]["product_id"] for r in response.json()["results"]]

    before = await search_once()
    assert len(before) == 20
    assert await search_once() == before  # loaded from runs/index
    for path in (tmp_path / "index").iterdir():
        path.unlink()
    assert await search_once() == before  # rebuilt from the store
