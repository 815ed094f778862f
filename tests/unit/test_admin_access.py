"""The admin token on the catalog-changing endpoints and the per-client rate limit on the shopper endpoints,
over real HTTP handling (FastAPI in process, a real SQLite store, Triton unreachable: none of it needs models)."""

from __future__ import annotations

import pytest

from orchestrator.metrics import RATE_LIMITED
from orchestrator.rate_limit import ClientRateLimiter
from orchestrator.settings import RateLimitSettings, Settings
from tests.support.inprocess_api import inprocess_api

TOKEN = "s3cret-token-für-admins"  # non-ASCII on purpose: compared as the UTF-8 bytes sent
CSV = b"id,name,image\nA,Shirt,a.png\n"


ADMIN_CALLS = [
    ("PATCH", "/v1/products/P1", {"json": {"price": 1}}),
    ("DELETE", "/v1/products/P1", {}),
    ("POST", "/v1/catalog/imports", {"files": {"file": ("c.csv", CSV)}}),
]


async def test_catalog_changes_need_the_admin_token(tmp_path):
    async with inprocess_api(tmp_path, admin_token=TOKEN) as client:
        for method, path, body in ADMIN_CALLS:
            for header in (None, "Basic " + TOKEN, "Bearer "):  # no bearer credentials at all
                missing = await client.request(method, path,
                                               headers={"Authorization": header.encode()} if header else {}, **body)
                assert missing.status_code == 401, (method, path, header, missing.text)
                assert missing.headers["www-authenticate"] == "Bearer"
                assert missing.json()["error"]["code"] == "unauthorized"
                assert "Authorization: Bearer" in missing.json()["error"]["message"]

            for wrong in ("Bearer nope", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}"):
                refused = await client.request(method, path, headers={"Authorization": wrong.encode()}, **body)
                assert refused.status_code == 403, (method, path, wrong)
                assert refused.json()["error"]["code"] == "forbidden"

            allowed = await client.request(method, path, headers={"Authorization": f"Bearer {TOKEN}".encode()},
                                           **body)
            # past the check: the product is unknown (404) or the import starts (202)
            assert allowed.status_code == (202 if method == "POST" else 404), (method, path, allowed.text)

        # shopper reads stay open
        assert (await client.get("/v1/products/P1")).status_code == 404
        assert (await client.get("/healthz")).status_code == 200
        # refusals are labelled with their route in the request metrics
        assert 'route="/v1/catalog/imports",status="401"' in (await client.get("/metrics")).text


async def test_an_unauthenticated_upload_is_refused_before_its_body_is_read(tmp_path):
    read = []

    async def body():
        for _ in range(1000):  # 1 GB if anyone read it all
            read.append(1)
            yield b"x" * (1024 * 1024)
    async with inprocess_api(tmp_path, admin_token=TOKEN) as client:
        refused = await client.post("/v1/catalog/imports", content=body(),
                                    headers={"content-type": "multipart/form-data; boundary=b"})
        assert refused.status_code == 401
        assert len(read) <= 2  # at most what the transport buffered before the answer


async def test_a_body_over_the_upload_limit_is_refused_declared_or_chunked(tmp_path):
    limits = {"max_upload_bytes": 1024}
    from orchestrator.settings import ImageSettings
    async with inprocess_api(tmp_path, images=ImageSettings(**limits)) as client:
        declared = await client.post("/v1/images", content=b"x" * (2 * 1024 * 1024 + 10),
                                     headers={"content-type": "application/octet-stream"})
        assert declared.status_code == 413 and declared.json()["error"]["code"] == "payload_too_large"

        async def chunks():  # a well-formed multipart upload that just keeps going
            yield (b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.jpg"\r\n'
                   b"Content-Type: image/jpeg\r\n\r\n")
            for _ in range(3):
                yield b"x" * (1024 * 1024)
        chunked = await client.post("/v1/images", content=chunks(),
                                    headers={"content-type": "multipart/form-data; boundary=b"})
        assert chunked.status_code == 413 and chunked.json()["error"]["code"] == "payload_too_large"


def test_a_token_read_from_a_file_loses_its_newline_and_a_short_one_is_refused():
    assert Settings(admin_token=TOKEN + "\n").admin_token.get_secret_value() == TOKEN
    with pytest.raises(ValueError):
        Settings(admin_token="short")


async def test_without_a_configured_token_every_catalog_change_is_refused(tmp_path):
    async with inprocess_api(tmp_path) as client:
        for method, path, body in ADMIN_CALLS:
            response = await client.request(method, path, headers={"Authorization": "Bearer anything"}, **body)
            assert response.status_code == 403
            assert "SNAPFIT_ADMIN_TOKEN" in response.json()["error"]["message"]
        metrics = (await client.get("/metrics")).text
        assert 'snapfit_admin_auth_failures_total{reason="disabled"}' in metrics


async def test_openapi_shows_the_bearer_scheme_on_the_admin_operations_only(tmp_path):
    async with inprocess_api(tmp_path, admin_token=TOKEN) as client:
        spec = (await client.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["adminToken"] == {
        "type": "http", "scheme": "bearer", "description": spec["components"]["securitySchemes"]["adminToken"][
            "description"]}
    secured = sorted((path, method.upper()) for path, operations in spec["paths"].items()
                     for method, operation in operations.items() if operation.get("security"))
    assert secured == [("/v1/catalog/imports", "POST"), ("/v1/catalog/imports/{job_id}/resume", "POST"),
                       ("/v1/products/{product_id}", "DELETE"), ("/v1/products/{product_id}", "PATCH")]


async def test_shopper_requests_are_limited_per_client(tmp_path):
    limits = RateLimitSettings(per_client_per_minute=60, burst=3, forwarded_for_hops=1)
    async with inprocess_api(tmp_path, rate_limit=limits) as client:
        refused_before = RATE_LIMITED._value.get()  # a process-wide counter: other tests may have counted too
        statuses = [(await client.get("/v1/products/P1")).status_code for _ in range(4)]
        assert statuses == [404, 404, 404, 429]
        limited = await client.get("/v1/products/P1")
        assert limited.json()["error"]["code"] == "rate_limited" and int(limited.headers["retry-after"]) >= 1
        # behind one trusted proxy the client is the last X-Forwarded-For entry: what it wrote itself (left)
        # cannot buy it a fresh bucket, another address can
        spoofed = await client.get("/v1/products/P1", headers={"X-Forwarded-For": "198.51.100.7, 127.0.0.1"})
        assert spoofed.status_code == 429
        other = await client.get("/v1/products/P1", headers={"X-Forwarded-For": "127.0.0.1, 203.0.113.9"})
        assert other.status_code == 404
        assert (await client.get("/healthz")).status_code == 200
        assert f"snapfit_rate_limited_total {refused_before + 3}" in (await client.get("/metrics")).text


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
