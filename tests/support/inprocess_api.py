"""The orchestrator's app in this process over httpx's ASGI transport, with a real SQLite store and a Triton
address nothing listens on: for tests of HTTP handling that needs no model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from orchestrator.app import create_app
from orchestrator.settings import CatalogSettings, Settings, TritonSettings
from tests.conftest import free_port


@asynccontextmanager
async def inprocess_api(tmp_path: Path, **overrides) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app on Settings(**overrides), its lifespan run (store opened, index loaded)."""
    settings = Settings(triton=TritonSettings(grpc_url=f"127.0.0.1:{free_port()}", timeout_s=1, retries=0),
                        catalog=CatalogSettings(url=f"sqlite:///{tmp_path / 'catalog.db'}",
                                                index_path=tmp_path / "index"), **overrides)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            yield client
