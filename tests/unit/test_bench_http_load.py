"""benchmarks.http_load against a tiny stand-in of the orchestrator API on a free loopback port (no timing
assertions), plus the catalog seeding through the real stores and index."""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pytest
import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from benchmarks.http_client import BenchClient, Reply
from benchmarks.http_load import (
    SCENARIOS,
    LevelResult,
    garment_mask,
    garment_photo,
    main,
    require_loopback,
    run,
    run_level,
    seed_catalog,
    seed_store,
)
from benchmarks.report import profile_sections, save_section
from tests.conftest import free_port

ROW_FIELDS = {"scenario", "concurrency", "requests", "ok", "errors", "error_kinds", "duration_s", "throughput_rps",
              "mean_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms", "stopped_by", "http_calls", "cache", "notes",
              "photo"}


@dataclass
class FakeApi:
    """Records what the load generator sent; `search_statuses` cycles the status of GET /v1/search."""

    uploads: list[str] = field(default_factory=list)
    upload_sizes: list[tuple[int, int]] = field(default_factory=list)  # (width, height) of each uploaded photo
    clicks: list[tuple[float, float]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    searches: list[dict] = field(default_factory=list)
    search_statuses: Iterator[int] = field(default_factory=lambda: itertools.repeat(200))
    delay_s: float = 0.0

    async def upload(self, request: Request) -> JSONResponse:
        data = await (await request.form())["file"].read()
        self.uploads.append(hashlib.sha256(data).hexdigest())
        self.upload_sizes.append(Image.open(io.BytesIO(data)).size)
        return JSONResponse({"image_id": self.uploads[-1], "width": 768, "height": 1024})

    async def masks(self, request: Request) -> JSONResponse:
        point = (await request.json())["points"][0]
        self.clicks.append((point["x"], point["y"]))
        empty = {"size": [1024, 768], "counts": [1024 * 768]}
        some = {"size": [1024, 768], "counts": [1000, 50, 1024 * 768 - 1050]}
        return JSONResponse({"image_id": request.path_params["image_id"], "width": 768, "height": 1024,
                             "masks": [{"score": 0.9, "rle": empty}, {"score": 0.8, "rle": some}]})

    async def search_get(self, request: Request) -> JSONResponse:
        await asyncio.sleep(self.delay_s)
        self.texts.append(request.query_params["q"])
        return JSONResponse({"results": []}, status_code=next(self.search_statuses))

    async def search_post(self, request: Request) -> JSONResponse:
        self.searches.append(await request.json())
        return JSONResponse({"results": []})

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v1/images", self.upload, methods=["POST"]),
            Route("/v1/images/{image_id}/masks", self.masks, methods=["POST"]),
            Route("/v1/search", self.search_get, methods=["GET"]),
            Route("/v1/search", self.search_post, methods=["POST"]),
        ])


@contextmanager
def serving(api: FakeApi) -> Iterator[str]:
    """uvicorn on a free loopback port in a thread of this process; stopped through its own should_exit."""
    server = uvicorn.Server(uvicorn.Config(api.app(), host="127.0.0.1", port=free_port(), log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the stand-in API did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def api() -> Iterator[tuple[FakeApi, str]]:
    fake = FakeApi()
    with serving(fake) as base:
        yield fake, base


def test_every_scenario_and_level_gives_one_complete_row(api):
    fake, base = api
    rows = run(base, concurrencies=(1, 2), max_requests=4, max_seconds=30, warmup=1, show_progress=False)
    assert [(r["scenario"], r["concurrency"]) for r in rows] == [(s, c) for s in SCENARIOS for c in (1, 2)]
    for row in rows:
        assert set(row) == ROW_FIELDS
        assert (row["requests"], row["ok"], row["errors"], row["error_kinds"]) == (4, 4, 0, {})
        assert row["stopped_by"] == "max_requests" and row["throughput_rps"] > 0
        assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"] <= row["max_ms"]
    json.dumps(rows)


def test_new_image_uploads_are_all_distinct_and_search_uses_the_garment_mask(api):
    fake, base = api
    run(base, scenarios=("sam_click_new_image", "search_image", "search_text", "search_text_image"),
        concurrencies=(1, 3), max_requests=5, max_seconds=30, warmup=2, show_progress=False)
    # 1 setup upload + (2 warm-up + 5 + 5) new photos: no content cache could hit any of them
    assert len(fake.uploads) == 13 and len(set(fake.uploads)) == 13
    assert len(set(fake.texts)) == len(fake.texts) == 12
    image_searches = [s for s in fake.searches if "text" not in s]
    from orchestrator.masks import encode_rle

    garment = encode_rle(garment_mask())
    assert image_searches and all(s["mask"]["rle"] == garment for s in fake.searches)  # not SAM's (noise) answer
    texts = [s["text"] for s in fake.searches if "text" in s]
    assert len(texts) == 12 and len(set(texts)) == 12 and all(t.startswith("but in ") for t in texts)


def test_cached_image_clicks_move_inside_the_photo(api):
    fake, base = api
    run(base, scenarios=("sam_click_cached_image",), concurrencies=(2,), max_requests=20, max_seconds=30, warmup=0,
        show_progress=False)
    assert len(fake.uploads) == 1 and len(fake.clicks) == 22  # setup, priming, 20 timed
    assert len(set(fake.clicks)) > 10
    assert all(0 <= x < 768 and 0 <= y < 1024 for x, y in fake.clicks)


def test_a_level_stops_at_max_requests_with_every_worker_busy(api):
    fake, base = api
    rows = run(base, scenarios=("search_text",), concurrencies=(3,), max_requests=7, max_seconds=60, warmup=0,
               show_progress=False)
    assert rows[0]["requests"] == 7 and len(fake.texts) == 7 and rows[0]["stopped_by"] == "max_requests"


def test_a_level_stops_at_max_seconds_and_awaits_requests_in_flight(api):
    fake, base = api
    fake.delay_s = 0.05
    rows = run(base, scenarios=("search_text",), concurrencies=(2,), max_requests=100_000, max_seconds=0.5,
               warmup=0, show_progress=False)
    row = rows[0]
    assert row["stopped_by"] == "max_seconds" and row["duration_s"] >= 0.5
    assert 0 < row["requests"] < 100_000 and row["requests"] == len(fake.texts) == row["ok"]


def test_error_answers_are_counted_by_status_and_left_out_of_latencies(api):
    fake, base = api
    fake.search_statuses = itertools.cycle([200, 500, 200, 429])
    rows = run(base, scenarios=("search_text",), concurrencies=(1,), max_requests=8, max_seconds=60, warmup=0,
               show_progress=False)
    row = rows[0]
    assert (row["requests"], row["ok"], row["errors"]) == (8, 4, 4)
    assert row["error_kinds"] == {"429": 2, "500": 2}


def test_transport_errors_are_counted_by_exception_name():
    async def closed_port() -> Reply:
        async with BenchClient(f"http://127.0.0.1:{free_port()}") as client:
            return await client.get("/")

    level = asyncio.run(run_level(closed_port, concurrency=2, max_requests=4, max_seconds=30))
    assert level.ok == 0 and level.error_kinds == {"ClientConnectorError": 4}
    row = level.as_row()
    assert row["p50_ms"] is None and row["throughput_rps"] == 0


def test_a_call_past_its_timeout_is_counted_as_a_timeout_and_the_reply_carries_the_whole_answer(api):
    fake, base = api

    async def scenario() -> tuple[LevelResult, Reply]:
        async with BenchClient(base, timeout_s=0.2) as client:
            fake.delay_s = 1.0
            level = await run_level(lambda: client.get("/v1/search", params={"q": "slow"}), concurrency=1,
                                    max_requests=2, max_seconds=30)
            fake.delay_s = 0.0
            return level, await client.get("/v1/search", params={"q": "fast"})

    level, reply = asyncio.run(scenario())
    assert level.ok == 0 and level.error_kinds == {"TimeoutError": 2}
    assert reply.is_success and reply.json() == {"results": []} and reply.headers["Content-Type"] == "application/json"
    assert fake.texts[-1] == "fast"


def test_latency_fields_are_the_documented_percentiles_in_ms():
    row = LevelResult(latencies_s=[i / 1000 for i in range(1, 101)], duration_s=2.0).as_row()
    assert row["p50_ms"] == pytest.approx(50.5)
    assert row["p95_ms"] == pytest.approx(95.05)
    assert row["p99_ms"] == pytest.approx(99.01)
    assert row["mean_ms"] == pytest.approx(50.5) and row["max_ms"] == pytest.approx(100)
    assert row["throughput_rps"] == pytest.approx(50.0)


@pytest.mark.parametrize("url", ["http://example.com", "http://10.0.0.1:8080", "http://192.168.1.2/",
                                 "http://[2001:db8::1]:80", "http://localhost.example.com", "ftp://127.0.0.1",
                                 "http://0.0.0.0:8080", "127.0.0.1:8080"])
def test_non_loopback_targets_are_refused_before_any_request(url):
    with pytest.raises(ValueError):
        require_loopback(url)
    with pytest.raises(ValueError):
        run(url, show_progress=False)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:80",
                                 "https://127.5.5.5", "http://LOCALHOST"])
def test_loopback_targets_are_accepted(url):
    require_loopback(url)


def test_the_searched_garment_mask_is_the_drawn_garment_with_a_shape_like_run_count():
    from orchestrator.masks import rle_counts

    photo, (x0, y0, x1, y1) = garment_photo(seed=3)
    mask = garment_mask(*photo.shape[:2])
    background = np.array([238, 236, 232], dtype=np.uint8)
    assert ((photo != background).any(axis=2) == mask).all()  # exactly the garment's pixels
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    assert (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1) == (y0, y1, x0, x1)
    assert len(rle_counts(mask)) < 5 * photo.shape[1]  # a few runs per column, not SAM-noise's ~10^5


def test_the_report_section_has_a_table_and_both_plots(tmp_path):
    rows = [{"scenario": s, "concurrency": c, "requests": 3, "ok": 3 - (c == 2), "errors": int(c == 2),
             "error_kinds": {"429": 1} if c == 2 else {}, "duration_s": 1.0, "throughput_rps": 3.0 / c,
             "mean_ms": 10.0 * c, "p50_ms": 9.0 * c, "p95_ms": 12.0 * c, "p99_ms": 13.0 * c, "max_ms": 14.0 * c,
             "stopped_by": "max_requests", "http_calls": 1, "cache": "none", "notes": ""}
            for s in SCENARIOS for c in (1, 2)]
    report = save_section("http_load", rows, tmp_path).read_text()
    assert "## Orchestrator HTTP load" in report and "429×1" in report
    assert (tmp_path / "http_load_throughput.png").stat().st_size > 0
    assert (tmp_path / "http_load_p95.png").stat().st_size > 0
    assert profile_sections(json.loads((tmp_path / "results.json").read_text()))["http_load"] == rows


def test_the_command_line_writes_the_section_for_a_quick_run(api, tmp_path, capsys):
    fake, base = api
    main(["--url", base, "--quick", "--scenarios", "search_text", "search_image", "--max-requests", "3",
          "--warmup", "0", "--out", str(tmp_path)])
    rows = profile_sections(json.loads((tmp_path / "results.json").read_text()))["http_load"]
    assert [(r["scenario"], r["concurrency"], r["requests"]) for r in rows] == [
        ("search_text", 1, 3), ("search_text", 2, 3), ("search_image", 1, 3), ("search_image", 2, 3)]
    assert "Orchestrator HTTP load" in capsys.readouterr().out


def test_the_command_line_uploads_a_photo_of_the_size_asked_for(api, tmp_path):
    fake, base = api
    main(["--url", base, "--scenarios", "sam_click_new_image", "search_text", "--concurrency", "1", "--max-requests",
          "2", "--warmup", "0", "--photo-size", "3024x4032", "--out", str(tmp_path)])
    assert fake.upload_sizes == [(3024, 4032)] * 2  # the 2 timed clicks on new photos
    rows = profile_sections(json.loads((tmp_path / "results.json").read_text()))["http_load"]
    assert [r["photo"] for r in rows] == ["3024x4032", None]  # the text search uploads nothing
    assert "photo 3024x4032 px (PNG)" in (tmp_path / "report.md").read_text()
    for wrong in ("3024", "ax4", "32x32"):
        with pytest.raises(SystemExit):
            main(["--url", base, "--photo-size", wrong])


def test_the_command_line_refuses_a_remote_url_and_needs_one():
    with pytest.raises(SystemExit):
        main(["--url", "http://198.51.100.7:8080"])
    with pytest.raises(SystemExit):
        main(["--quick"])


def test_the_command_line_seeds_a_catalog(tmp_path, capsys):
    main(["--seed-catalog", f"sqlite:///{tmp_path / 'catalog.db'}", "--products", "20"])
    assert "20 products written" in capsys.readouterr().out


# ---------------------------------------------------------------- seeding a catalog


async def _index_of(store, tmp_path):
    from orchestrator.services.products import ProductService
    from orchestrator.settings import CatalogSettings, Settings

    settings = Settings(catalog=CatalogSettings(url="sqlite:///unused.db", index_path=tmp_path / "index"))
    return await ProductService.open(store, settings, embedding_dim=512)


def test_seeded_sqlite_catalog_is_what_the_orchestrator_indexes_on_start(tmp_path):
    from orchestrator.stores.factory import open_catalog_store

    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    assert seed_catalog(url, count=300, seed=3, batch_size=128) == 300
    assert seed_catalog(url, count=300, seed=3) == 0  # the same catalog again: nothing changes

    async def check():
        store = await open_catalog_store(url)
        try:
            product = await store.get("SYN-000123")
            assert product.embedding.shape == (512,)
            assert np.linalg.norm(product.embedding) == pytest.approx(1.0, rel=1e-5)
            catalog = await _index_of(store, tmp_path)
            assert len(catalog.index) == 300
            assert catalog.index.search(product.embedding[None], 1)[0][0][0] == "SYN-000123"
        finally:
            await store.close()

    asyncio.run(check())


def test_seeding_an_open_mongomock_store_fills_the_index_too(tmp_path):
    import mongomock

    from tests.support.mongomock_store import mongomock_catalog_store

    async def check():
        client = mongomock.MongoClient()
        writer = mongomock_catalog_store(client, database="seeded")
        assert await seed_store(writer, count=50, dim=512, seed=1) == 50
        await writer.close()
        reader = mongomock_catalog_store(client, database="seeded")
        try:
            assert await reader.count() == 50
            assert len((await _index_of(reader, tmp_path)).index) == 50
        finally:
            await reader.close()

    asyncio.run(check())


def test_a_url_no_production_store_serves_is_refused():
    from orchestrator.errors import InvalidInput

    with pytest.raises(InvalidInput, match="unsupported catalog URL"):
        seed_catalog("mongomock://localhost/x", count=1)
