"""Overload, held: a closed-loop load far past what the stack serves, on the click and search paths, from a client
that honours Retry-After. Every answer is 2xx, 429 or 503 (each refusal with Retry-After), admitted requests keep
a bounded p99, and after a second run at the same load the API process's memory and open file descriptors are
within 10 % of what the first run left (no leak).

Bounded for `make test`: SNAPFIT_OVERLOAD_SECONDS per path (default 20; the issue's full run is 120).
"""

from __future__ import annotations

import asyncio
import io
import os
import time
from collections import Counter

import httpx
import numpy as np
import pytest
from PIL import Image

from snapfit.demo_catalog import generate_catalog
from tests.integration.orchestrator_process import ADMIN, running_orchestrator, wait_for_import
from tests.support.process_stats import open_fds, rss_kib

pytestmark = pytest.mark.integration
SECONDS = float(os.environ.get("SNAPFIT_OVERLOAD_SECONDS", "20"))
CLIENTS = 48  # concurrent closed-loop clients: several times what two cores serve at once
ADMITTED_P99_S = 10.0


async def closed_loop(base: str, send, seconds: float) -> tuple[Counter, list[float], list[str]]:
    """CLIENTS clients, each sending its next request when the previous one answered (or after Retry-After)."""
    statuses: Counter = Counter()
    admitted: list[float] = []
    problems: list[str] = []
    stop_at = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits, trust_env=False) as client:
        async def one_client(number: int) -> None:
            while time.monotonic() < stop_at:
                started = time.monotonic()
                response = await send(client, number)
                statuses[response.status_code] += 1
                if response.is_success:
                    admitted.append(time.monotonic() - started)
                elif response.status_code in (429, 503):
                    retry_after = response.headers.get("Retry-After")
                    if retry_after is None:
                        problems.append(f"{response.status_code} without Retry-After")
                        continue
                    await asyncio.sleep(min(float(retry_after), 2.0))
                else:
                    problems.append(f"{response.status_code}: {response.text[:200]}")
        await asyncio.gather(*(one_client(n) for n in range(CLIENTS)))
    return statuses, admitted, problems


def png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (96, 72, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def api(triton_server, tmp_path_factory):
    runs = tmp_path_factory.mktemp("overload")
    catalog = generate_catalog(runs / "catalog", count=40, seed=4)
    # the API's own per-client rate limit would answer every extra request of this one-address load
    with running_orchestrator(triton_server.grpc_url, runs / "runs", catalog.parent) as orchestrator:
        with httpx.Client(base_url=orchestrator.base, headers=ADMIN, timeout=120) as client:
            started = client.post("/v1/catalog/imports", files={"file": ("c.csv", catalog.read_bytes())},
                                  data={"base_dir": str(catalog.parent)})
            assert wait_for_import(client, started.json()["job_id"])["status"] == "succeeded"
            image_id = client.post("/v1/images", files={"file": ("p.png", png(0), "image/png")}).json()["image_id"]
        yield orchestrator, image_id


async def search(client: httpx.AsyncClient, number: int) -> httpx.Response:
    return await client.get("/v1/search", params={"q": f"red dress {number} {time.monotonic_ns()}"})


def clicker(image_id: str):
    async def click(client: httpx.AsyncClient, number: int) -> httpx.Response:
        x, y = 10 + number % 50, 10 + (time.monotonic_ns() // 1000) % 70
        return await client.post(f"/v1/images/{image_id}/masks", json={"points": [{"x": x, "y": y, "label": 1}]})
    return click


@pytest.mark.parametrize("path", ["search", "click"])
def test_overload_answers_only_2xx_429_503_and_leaks_nothing(api, path):
    orchestrator, image_id = api
    pid = orchestrator.process.pid
    send = search if path == "search" else clicker(image_id)
    # a first run at the same load and length fills what a process keeps at its high-water mark (connections,
    # caches, shared-memory regions, the allocator's arenas); a leak grows again in the second, measured one
    asyncio.run(closed_loop(orchestrator.base, send, SECONDS))
    time.sleep(2.0)
    rss_before, fds_before = rss_kib(pid), open_fds(pid)

    statuses, admitted, problems = asyncio.run(closed_loop(orchestrator.base, send, SECONDS))

    time.sleep(2.0)  # closed connections and finished tasks are released
    rss_after, fds_after = rss_kib(pid), open_fds(pid)
    p99 = float(np.percentile(admitted, 99)) if admitted else float("nan")
    print(f"\n{path}: {dict(statuses)} in {SECONDS:.0f} s, {CLIENTS} clients; admitted p50 "
          f"{np.percentile(admitted, 50):.3f} s p99 {p99:.3f} s; RSS {rss_before} -> {rss_after} KiB, "
          f"fds {fds_before} -> {fds_after}")
    assert not problems, problems[:5]
    assert set(statuses) <= {200, 429, 503} and statuses[200] > 0, statuses
    assert p99 <= ADMITTED_P99_S
    if rss_after > rss_before * 1.10:
        # the allocator's arenas can reach their high-water mark only in the second run (the click path grew
        # 536 -> 702 MB once on a clean clone, and not on others); a leak grows again in a third run at the same load
        asyncio.run(closed_loop(orchestrator.base, send, SECONDS))
        time.sleep(2.0)
        rss_before, rss_after = rss_after, rss_kib(pid)
        print(f"a third run: RSS {rss_before} -> {rss_after} KiB")
    assert rss_after <= rss_before * 1.10, (rss_before, rss_after)
    assert fds_after <= fds_before * 1.10 + 2, (fds_before, fds_after)
