"""The admin token on the catalog-changing endpoints and the per-client rate limit on the shopper endpoints,
over real HTTP handling (FastAPI in process, a real SQLite store, Triton unreachable: none of it needs models)."""

from __future__ import annotations

from contextlib import asynccontextmanager

import httpx
import pytest

from orchestrator.app import create_app
from orchestrator.rate_limit import ClientRateLimiter
from orchestrator.settings import CatalogSettings, RateLimitSettings, Settings, TritonSettings
from tests.conftest import free_port

TOKEN = "s3cret-token-für-admins"  # non-ASCII on purpose: compared as the UTF-8 bytes sent
CSV = b"id,name,image\nA,Shirt,a.png\n"


@asynccontextmanager
async def api(tmp_path, **overrides):
    settings = Settings(triton=TritonSettings(grpc_url=f"127.0.0.1:{free_port()}", timeout_s=1, retries=0),
                        catalog=CatalogSettings(url=f"sqlite:///{tmp_path / 'catalog.db'}",
                                                index_path=tmp_path / "index"), **overrides)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            yield client


ADMIN_CALLS = [
    ("PATCH", "/v1/products/P1", {"json": {"price": 1}}),
    ("DELETE", "/v1/products/P1", {}),
    ("POST", "/v1/catalog/imports", {"files": {"file": ("c.csv", CSV)}}),
]


async def test_catalog_changes_need_the_admin_token(tmp_path):
    async with api(tmp_path, admin_token=TOKEN) as client:
        for method, path, body in ADMIN_CALLS:
            missing = await client.request(method, path, **body)
            assert missing.status_code == 401, (method, path, missing.text)
            assert missing.headers["www-authenticate"] == "Bearer"
            assert missing.json()["error"]["code"] == "unauthorized"
            assert "Authorization: Bearer" in missing.json()["error"]["message"]

            for wrong in ("Bearer nope", f"Bearer {TOKEN}x", "Basic " + TOKEN):
                refused = await client.request(method, path, headers={"Authorization": wrong.encode()}, **body)
                assert refused.status_code in (401, 403), (method, path, wrong)
                assert refused.json()["error"]["code"] in ("unauthorized", "forbidden")

            allowed = await client.request(method, path, headers={"Authorization": f"Bearer {TOKEN}".encode()},
                                           **body)
            # past the check: the product is unknown (404) or the import starts (202)
            assert allowed.status_code == (202 if method == "POST" else 404), (method, path, allowed.text)

        # shopper reads stay open
        assert (await client.get("/v1/products/P1")).status_code == 404
        assert (await client.get("/healthz")).status_code == 200


async def test_without_a_configured_token_every_catalog_change_is_refused(tmp_path):
    async with api(tmp_path) as client:
        for method, path, body in ADMIN_CALLS:
            response = await client.request(method, path, headers={"Authorization": "Bearer anything"}, **body)
            assert response.status_code == 403
            assert "SNAPFIT_ADMIN_TOKEN" in response.json()["error"]["message"]
        metrics = (await client.get("/metrics")).text
        assert 'snapfit_admin_auth_failures_total{reason="disabled"}' in metrics


async def test_openapi_shows_the_bearer_scheme_on_the_admin_operations_only(tmp_path):
    async with api(tmp_path, admin_token=TOKEN) as client:
        spec = (await client.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["adminToken"] == {
        "type": "http", "scheme": "bearer", "description": spec["components"]["securitySchemes"]["adminToken"][
            "description"]}
    secured = sorted((path, method.upper()) for path, operations in spec["paths"].items()
                     for method, operation in operations.items() if operation.get("security"))
    assert secured == [("/v1/catalog/imports", "POST"), ("/v1/products/{product_id}", "DELETE"),
                       ("/v1/products/{product_id}", "PATCH")]


async def test_shopper_requests_are_limited_per_client(tmp_path):
    limits = RateLimitSettings(per_client_per_minute=60, burst=3, trust_forwarded_for=True)
    async with api(tmp_path, rate_limit=limits) as client:
        statuses = [(await client.get("/v1/products/P1")).status_code for _ in range(4)]
        assert statuses == [404, 404, 404, 429]
        limited = await client.get("/v1/products/P1")
        assert limited.json()["error"]["code"] == "rate_limited" and int(limited.headers["retry-after"]) >= 1
        # another client (behind the trusted proxy) has its own bucket; health and metrics are never limited
        other = await client.get("/v1/products/P1", headers={"X-Forwarded-For": "203.0.113.9, 10.0.0.1"})
        assert other.status_code == 404
        assert (await client.get("/healthz")).status_code == 200
        assert "snapfit_rate_limited_total 2.0" in (await client.get("/metrics")).text


def test_a_bucket_refills_at_the_configured_rate_and_forgets_the_oldest_clients():
    now = [0.0]
    limiter = ClientRateLimiter(per_minute=120, burst=2, max_clients=2, clock=lambda: now[0])
    assert [limiter.acquire("a") for _ in range(2)] == [None, None]
    assert limiter.acquire("a") == pytest.approx(0.5)  # 2 tokens a second: the next in half a second
    now[0] = 0.5
    assert limiter.acquire("a") is None and limiter.acquire("a") is not None
    limiter.acquire("b"), limiter.acquire("c")  # "a" is the least recently seen: dropped
    assert limiter.acquire("a") is None
    assert ClientRateLimiter(per_minute=0, burst=1, max_clients=1).acquire("x") is None  # 0 = off
