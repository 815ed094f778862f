"""HTTP load against the orchestrator API for the original project's scenarios, one concurrency level at a time.

    python -m benchmarks.http_load --seed-catalog sqlite:///runs/catalog.db --products 10000   # before starting it
    python -m benchmarks.http_load --url http://127.0.0.1:8080 --quick --out /tmp/bench

A closed loop: N workers each send one scenario request, wait for the answer and send the next, until the level
has sent `max_requests` or `max_seconds` have passed (no request starts after that; the ones in flight are
awaited). Only loopback URLs are accepted (127.0.0.0/8, ::1, localhost), proxies from the environment are ignored
and redirects are not followed, so the load never leaves the machine. Requests go through benchmarks.http_client
(aiohttp), whose own cost per call is a tenth of a millisecond.

Scenarios (one "request" is what a shopper's action costs, which may be more than one HTTP call):
    sam_click_new_image     POST /v1/images (a photo with unique pixels) + POST /v1/images/{id}/masks:
                            SAM encoder + decoder on every request
    sam_click_cached_image  POST /v1/images/{id}/masks on an uploaded photo, the click moving each time:
                            the decoder only (the SAM embedding is cached per image id by design)
    search_text             GET /v1/search?q=... , every query text unique to the run
    search_image            POST /v1/search {image_id, mask} (the chosen garment, as the README's tour; the mask
                            is the garment's drawn outline, see `prepare_image`)
    search_text_image       POST /v1/search {image_id, mask, text: "but in <colour>"}

Each row: scenario, concurrency, requests, ok, errors (non-2xx answers + transport errors), error_kinds
({"429": 3, "TimeoutError": 1}), duration_s (first send to last answer), throughput_rps (ok / duration_s),
mean/p50/p95/p99/max_ms of the successful requests, stopped_by, http_calls (per request), cache (which cache could
serve the scenario and why it does not here) and notes.

Search needs a catalog: `seed_catalog` fills a store with synthetic products and random unit vectors (no CLIP, so
10k products take seconds instead of the hour an image import would); the orchestrator rebuilds its FAISS index
from the store when it starts (`SNAPFIT_CATALOG__URL` = the same URL).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import io
import ipaddress
import itertools
import random
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import numpy as np

from benchmarks.http_client import BenchClient, Reply
from benchmarks.report import Column, format_value, line_plot, markdown_table, register_section
from benchmarks.stats import LatencySummary
from snapfit import contract

if TYPE_CHECKING:
    from orchestrator.domain import Product
    from orchestrator.stores.catalog_store import CatalogStore

SECTION = "http_load"
SCENARIOS: tuple[str, ...] = ("sam_click_new_image", "sam_click_cached_image", "search_text", "search_image",
                              "search_text_image")
DEFAULT_CONCURRENCIES = (1, 2, 4, 8)
QUICK_CONCURRENCIES = (1, 2)
QUICK_MAX_REQUESTS = 20
QUICK_MAX_SECONDS = 5.0
SEARCH_K = 20  # the orchestrator's default k, what the original's results page asked for
PHOTO_HEIGHT, PHOTO_WIDTH = 1024, 768  # a portrait phone photo; SAM resizes its longest side to 1024 anyway
EMBEDDING_DIM = contract.CLIP_EMBEDDING_DIM  # the served CLIP's width, which the orchestrator's index takes

# a request to send: returns the last HTTP answer of the scenario's action (raises on transport errors)
Send = Callable[[], Awaitable[Reply]]


# ---------------------------------------------------------------- loopback only


def require_loopback(base_url: str) -> None:
    """Raises ValueError unless `base_url` is http(s) on 127.0.0.0/8, ::1 or localhost."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"load tests need an http(s) URL, got {base_url!r}")
    host = (parts.hostname or "").lower()
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"refusing to send load to {host or base_url!r}: only loopback hosts (127.0.0.0/8, ::1, "
                         "localhost) may be load-tested")


# ---------------------------------------------------------------- the closed loop


@dataclass
class LevelResult:
    """One concurrency level: latencies_s of the successful requests, error kinds counted, wall duration_s."""

    latencies_s: list[float] = field(default_factory=list)
    error_kinds: Counter = field(default_factory=Counter)
    duration_s: float = 0.0
    stopped_by: str = "max_requests"

    @property
    def ok(self) -> int:
        return len(self.latencies_s)

    @property
    def errors(self) -> int:
        return sum(self.error_kinds.values())

    def as_row(self) -> dict:
        """requests, ok, errors, error_kinds, duration_s, throughput_rps and mean/p50/p95/p99/max_ms (None
        without a successful request)."""
        row = {"requests": self.ok + self.errors, "ok": self.ok, "errors": self.errors,
               "error_kinds": dict(sorted(self.error_kinds.items())), "duration_s": self.duration_s,
               "throughput_rps": self.ok / self.duration_s if self.duration_s > 0 else None}
        summary = LatencySummary.from_seconds(self.latencies_s) if self.latencies_s else None
        for name in ("mean", "p50", "p95", "p99", "max"):
            row[f"{name}_ms"] = getattr(summary, f"{name}_s") * 1000 if summary else None
        row["stopped_by"] = self.stopped_by
        return row


async def attempt(send: Send) -> str | None:
    """Sends once: None on a 2xx answer, else the error kind ("500", "TimeoutError", "ClientConnectorError", ...)."""
    try:
        response = await send()
    except Exception as error:  # noqa: BLE001 - every failure is a counted error, never the end of a run
        return type(error).__name__
    return None if response.is_success else str(response.status_code)


async def run_level(send: Send, concurrency: int, max_requests: int, max_seconds: float,
                    on_done: Callable[[], None] | None = None,
                    clock: Callable[[], float] = time.perf_counter) -> LevelResult:
    """`concurrency` workers call `send` back to back until `max_requests` were started or `max_seconds` passed.

    No request starts after the deadline; requests in flight at the deadline are awaited and counted.
    on_done: called after each request (progress bars).
    """
    if concurrency < 1 or max_requests < 1 or max_seconds <= 0:
        raise ValueError(f"need concurrency >= 1, max_requests >= 1 and max_seconds > 0, got {concurrency}, "
                         f"{max_requests}, {max_seconds}")
    result = LevelResult()
    started = clock()
    deadline = started + max_seconds
    issued = 0

    async def worker() -> None:
        nonlocal issued
        # one event loop: the check and the increment cannot interleave with another worker's
        while issued < max_requests and clock() < deadline:
            issued += 1
            sent = clock()
            kind = await attempt(send)
            if kind is None:
                result.latencies_s.append(clock() - sent)
            else:
                result.error_kinds[kind] += 1
            if on_done:
                on_done()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.duration_s = clock() - started
    result.stopped_by = "max_requests" if issued >= max_requests else "max_seconds"
    return result


# ---------------------------------------------------------------- scenario inputs


@dataclass
class ScenarioContext:
    """What the scenarios share within one run.

    photo: HxWx3 uint8 RGB, a garment on a plain background; garment_box: (x0, y0, x1, y1) pixels of it.
    run_tag: random per run, stamped into new photos and query texts so no earlier run's cache entry matches.
    image_id / mask_rle: the uploaded photo and the chosen garment mask (COCO RLE), set by `prepare_image`.
    """

    photo: np.ndarray
    garment_box: tuple[int, int, int, int]
    run_tag: int
    rng: random.Random
    image_id: str | None = None
    mask_rle: dict | None = None
    mask_source: str = ""
    _numbers: itertools.count = field(default_factory=itertools.count)

    def next_number(self) -> int:
        """0, 1, 2, ... across every scenario and level of the run (uniqueness of photos and texts)."""
        return next(self._numbers)

    def click(self) -> dict:
        """A positive click at a random point inside the garment's central region."""
        x0, y0, x1, y1 = self.garment_box
        dx, dy = (x1 - x0) // 5, (y1 - y0) // 5
        return {"x": self.rng.randint(x0 + dx, x1 - dx), "y": self.rng.randint(y0 + dy, y1 - dy), "label": 1}


def garment_photo(seed: int, height: int = PHOTO_HEIGHT,
                  width: int = PHOTO_WIDTH) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """HxWx3 uint8: a dress-like garment in a random colour on a light background, and its bounding box."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    colour = tuple(rng.randint(20, 220) for _ in range(3))
    image = Image.new("RGB", (width, height), BACKGROUND_RGB)
    box = _draw_garment(ImageDraw.Draw(image), width, height, colour, BACKGROUND_RGB)
    return np.asarray(image), box


def garment_mask(height: int = PHOTO_HEIGHT, width: int = PHOTO_WIDTH) -> np.ndarray:
    """HxW bool: exactly the garment of `garment_photo` (any seed), the mask a trained SAM returns for a click on it."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (width, height), 0)
    _draw_garment(ImageDraw.Draw(image), width, height, 255, 0)
    return np.asarray(image) > 127


BACKGROUND_RGB = (238, 236, 232)


def _draw_garment(draw, width: int, height: int, fill, background) -> tuple[int, int, int, int]:
    """Draws the dress (a trapezoid with a neckline cut out) and returns its box (x0, y0, x1, y1), ends exclusive
    (PIL fills a polygon's last row and column)."""
    cx, top, bottom = width // 2, height // 6, height * 5 // 6
    shoulder, hem = width // 6, width // 3
    draw.polygon([(cx - shoulder, top), (cx + shoulder, top), (cx + hem, bottom), (cx - hem, bottom)], fill=fill)
    draw.ellipse((cx - width // 16, top - height // 40, cx + width // 16, top + height // 40), fill=background)
    return cx - hem, top, cx + hem + 1, bottom + 1


def unique_photo_png(ctx: ScenarioContext) -> bytes:
    """The context's photo as PNG with the run tag and a fresh number written into six corner pixels.

    PNG is lossless, so distinct pixels give distinct bytes and a distinct image id: no content cache can hit.
    """
    from PIL import Image

    stamp = np.frombuffer(ctx.run_tag.to_bytes(8, "big") + ctx.next_number().to_bytes(8, "big") + b"\0\0",
                          dtype=np.uint8).reshape(6, 3)
    pixels = ctx.photo.copy()
    pixels[0, :6] = stamp
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)  # level 1: cheap for the client
    return buffer.getvalue()


COLOURS = ("black", "white", "red", "navy", "beige", "green", "grey", "pink", "brown", "yellow", "blue", "purple")
GARMENTS = ("summer dress", "denim jacket", "striped shirt", "pleated skirt", "hoodie", "wide jeans", "t-shirt",
            "trench coat", "linen shorts", "knit cardigan")


def query_text(ctx: ScenarioContext) -> str:
    """A shopper-like query ("red summer dress") plus a run-unique reference, so no response cache answers it."""
    number = ctx.next_number()
    colour, garment = COLOURS[number % len(COLOURS)], GARMENTS[(number // len(COLOURS)) % len(GARMENTS)]
    return f"{colour} {garment} #{ctx.run_tag:x}-{number}"


def garment_rle(ctx: ScenarioContext) -> dict:
    """The photo's garment as COCO RLE (its outline as drawn: ~2 runs per column, like a trained SAM's mask)."""
    from orchestrator.masks import encode_rle

    return encode_rle(garment_mask(*ctx.photo.shape[:2]))


async def upload(client: BenchClient, data: bytes) -> Reply:
    return await client.post("/v1/images", files={"file": ("photo.png", data, "image/png")})


async def prepare_image(client: BenchClient, ctx: ScenarioContext) -> None:
    """Uploads the run's photo, clicks the garment as a shopper would and chooses the garment's mask.
    RuntimeError when the API refuses (nothing to benchmark then).

    The mask searched with is the garment's drawn outline, what a trained SAM returns for this click, not SAM's
    answer here: with random weights SAM's masks are noise of ~10^5 runs (a ~0.5 MB RLE and a crop of nearly the
    whole photo), which would time parsing noise instead of the search a shopper makes."""
    uploaded = await upload(client, unique_photo_png(ctx))
    if not uploaded.is_success:
        raise RuntimeError(f"uploading the benchmark photo failed: {uploaded.status_code} {uploaded.text[:300]}")
    ctx.image_id = uploaded.json()["image_id"]
    masks = await client.post(f"/v1/images/{ctx.image_id}/masks", json={"points": [ctx.click()]})
    if not masks.is_success:
        raise RuntimeError(f"segmenting the benchmark photo failed: {masks.status_code} {masks.text[:300]}")
    ctx.mask_rle, ctx.mask_source = garment_rle(ctx), "the garment's outline (a trained SAM's answer to the click)"


# ---------------------------------------------------------------- scenarios


async def sam_click_new_image(client: BenchClient, ctx: ScenarioContext) -> Reply:
    uploaded = await upload(client, unique_photo_png(ctx))
    if not uploaded.is_success:
        return uploaded
    return await client.post(f"/v1/images/{uploaded.json()['image_id']}/masks", json={"points": [ctx.click()]})


async def sam_click_cached_image(client: BenchClient, ctx: ScenarioContext) -> Reply:
    return await client.post(f"/v1/images/{ctx.image_id}/masks", json={"points": [ctx.click()]})


async def search_text(client: BenchClient, ctx: ScenarioContext) -> Reply:
    return await client.get("/v1/search", params={"q": query_text(ctx), "k": SEARCH_K})


async def search_image(client: BenchClient, ctx: ScenarioContext) -> Reply:
    return await client.post("/v1/search", json={"image_id": ctx.image_id, "mask": {"rle": ctx.mask_rle},
                                                 "k": SEARCH_K})


async def search_text_image(client: BenchClient, ctx: ScenarioContext) -> Reply:
    number = ctx.next_number()
    text = f"but in {COLOURS[number % len(COLOURS)]} #{ctx.run_tag:x}-{number}"
    return await client.post("/v1/search", json={"image_id": ctx.image_id, "mask": {"rle": ctx.mask_rle},
                                                 "text": text, "k": SEARCH_K})


@dataclass(frozen=True)
class Scenario:
    """send: one request of the scenario; needs_image: uses the uploaded photo and its mask; http_calls per
    request; cache: which cache could serve it and why it does not here (or does, by design)."""

    send: Callable[[BenchClient, ScenarioContext], Awaitable[Reply]]
    needs_image: bool
    http_calls: int
    cache: str


SCENARIO_SPECS: dict[str, Scenario] = {
    "sam_click_new_image": Scenario(
        sam_click_new_image, False, 2,
        "none can apply: every photo has unique pixels (new image id), so SAM encodes each one"),
    "sam_click_cached_image": Scenario(
        sam_click_cached_image, True, 1,
        "the SAM embedding cache serves the image by design (decoder only); the click moves, and there is "
        "no mask cache"),
    "search_text": Scenario(
        search_text, False, 1,
        "Triton's response cache on clip_text_embed would serve a repeated text; every query is unique to the run, "
        "so none is; the orchestrator caches no text embeddings"),
    "search_image": Scenario(
        search_image, True, 1,
        "none: the garment cut-out goes through clip_image on every request (no image-embedding cache)"),
    "search_text_image": Scenario(
        search_text_image, True, 1,
        "none: clip_image on every request; the text is unique to the run, so Triton's clip_text_embed "
        "response cache never hits"),
}


# ---------------------------------------------------------------- the run


def run(base_url: str, scenarios: Sequence[str] = SCENARIOS, concurrencies: Sequence[int] = DEFAULT_CONCURRENCIES,
        max_requests: int = 200, max_seconds: float = 20.0, warmup: int = 2, show_progress: bool = True,
        timeout_s: float = 120.0, seed: int = 0, photo_size: tuple[int, int] = (PHOTO_WIDTH, PHOTO_HEIGHT)
        ) -> list[dict]:
    """One row per scenario x concurrency, in the order given (see the module docstring for the fields).

    warmup: untimed requests per scenario before its first level (first calls, connections, model warm-up);
        scenarios on the uploaded photo also get one untimed click first, as a shopper clicks before searching.
    timeout_s: per HTTP call; a call that exceeds it counts as a "TimeoutError" error.
    photo_size: (width, height) of the uploaded photo in pixels (default a 768x1024 portrait; a 12 MP phone photo
        is 3024x4032): what the clicks upload and decode, and what their masks are upsampled to.
    Raises ValueError for a non-loopback base_url, an unknown scenario or a photo under 64 pixels a side, before
    any request.
    """
    require_loopback(base_url)
    unknown = sorted(set(scenarios) - set(SCENARIO_SPECS))
    if unknown:
        raise ValueError(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    if not concurrencies or min(concurrencies) < 1:
        raise ValueError(f"concurrency levels must be >= 1, got {list(concurrencies)}")
    if min(photo_size) < 64:
        raise ValueError(f"the photo must be at least 64x64 pixels, got {photo_size[0]}x{photo_size[1]}")
    return asyncio.run(_run(base_url, list(scenarios), list(concurrencies), max_requests, max_seconds, warmup,
                            show_progress, timeout_s, seed, photo_size))


async def _run(base_url: str, scenarios: list[str], concurrencies: list[int], max_requests: int,
               max_seconds: float, warmup: int, show_progress: bool, timeout_s: float, seed: int,
               photo_size: tuple[int, int]) -> list[dict]:
    from rich.progress import Progress

    width, height = photo_size
    photo, box = garment_photo(seed, height=height, width=width)
    ctx = ScenarioContext(photo, box, run_tag=secrets.randbits(64), rng=random.Random(seed))
    rows: list[dict] = []
    async with BenchClient(base_url, timeout_s=timeout_s, connections=max(concurrencies)) as client:
        if any(SCENARIO_SPECS[name].needs_image for name in scenarios):
            await prepare_image(client, ctx)
        with Progress(disable=not show_progress, transient=True) as progress:
            for name in scenarios:
                spec = SCENARIO_SPECS[name]
                send = functools.partial(spec.send, client, ctx)
                if spec.needs_image:
                    # earlier scenarios' uploads may have evicted the photo from the orchestrator's SAM-embedding
                    # and decoded-image caches; a shopper clicks before searching, so one untimed click restores both
                    await attempt(functools.partial(sam_click_cached_image, client, ctx))
                for _ in range(warmup):
                    await attempt(send)
                for concurrency in concurrencies:
                    task = progress.add_task(f"{name} ×{concurrency}", total=max_requests)
                    level = await run_level(send, concurrency, max_requests, max_seconds,
                                            on_done=functools.partial(progress.advance, task))
                    progress.remove_task(task)
                    rows.append(_row(name, concurrency, level, ctx))
    return rows


def _row(name: str, concurrency: int, level: LevelResult, ctx: ScenarioContext) -> dict:
    spec = SCENARIO_SPECS[name]
    notes = f"mask: {ctx.mask_source}" if spec.needs_image and name != "sam_click_cached_image" else ""
    return {"scenario": name, "concurrency": concurrency, **level.as_row(), "http_calls": spec.http_calls,
            "cache": spec.cache, "notes": notes,
            # every scenario but the text search uploads the photo or searches with its garment
            "photo": f"{ctx.photo.shape[1]}x{ctx.photo.shape[0]}" if name != "search_text" else None}


# ---------------------------------------------------------------- a catalog to search


async def seed_store(store: CatalogStore, count: int, dim: int = EMBEDDING_DIM, seed: int = 0,
                     batch_size: int = 1000) -> int:
    """Upserts `count` synthetic products (ids SYN-000000...) with random unit-norm float32 embeddings of `dim`
    into an open CatalogStore, through its own `upsert_many`, `batch_size` at a time. Returns how many were
    inserted or updated.

    Metadata is plausible for filters (category, brand, price, tryon_ready); `image` names no real file, so these
    products cannot be dressed by try-on. Product i depends only on (seed, i): same seed, same catalog.
    """
    if count < 1 or dim < 1 or batch_size < 1:
        raise ValueError(f"need count, dim and batch_size >= 1, got {count}, {dim}, {batch_size}")
    written = 0
    for start in range(0, count, batch_size):
        products = [synthetic_product(number, dim, seed) for number in range(start, min(start + batch_size, count))]
        result = await store.upsert_many(products)
        written += result.inserted + result.updated
    return written


CATEGORY_OF = {"summer dress": "dress", "denim jacket": "outer", "striped shirt": "top", "pleated skirt": "bottom",
               "hoodie": "top", "wide jeans": "bottom", "t-shirt": "top", "trench coat": "outer",
               "linen shorts": "bottom", "knit cardigan": "outer"}
BRANDS = ("Northwind", "Maple & Co", "Seoul Atelier", "Linea", "Kite")


def synthetic_product(number: int, dim: int = EMBEDDING_DIM, seed: int = 0) -> Product:
    """Product SYN-<number>: a `dim` float32 unit vector and metadata, drawn from a generator seeded by
    (seed, number)."""
    from orchestrator.domain import Product  # the orchestrator is imported only by the functions that need it

    rng = np.random.default_rng((seed, number))
    vector = rng.standard_normal(dim, dtype=np.float32)
    probability = float(rng.random())
    colour, garment = COLOURS[number % len(COLOURS)], GARMENTS[(number // len(COLOURS)) % len(GARMENTS)]
    product_id = f"SYN-{number:06d}"
    return Product(product_id=product_id, name=f"{colour.title()} {garment.title()}",
                   image=f"synthetic/{product_id}.jpg", link=f"https://example.invalid/p/{product_id}",
                   brand=BRANDS[number % len(BRANDS)], price=float(rng.integers(99, 2000) * 100),
                   tags=[colour, garment], category=CATEGORY_OF[garment], tryon_probability=probability,
                   tryon_ready=probability >= 0.5, embedding=vector / np.linalg.norm(vector),
                   source_hash=f"http_load-seed-{seed}-{number}")


def seed_catalog(store_url: str, count: int = 1000, dim: int = EMBEDDING_DIM, seed: int = 0,
                 batch_size: int = 1000) -> int:
    """Fills the catalog at `store_url` (sqlite:///PATH or mongodb://...) with `count` synthetic products; run it
    BEFORE the orchestrator starts on that URL, which then rebuilds its FAISS index from the store (the store's
    generation changed). Returns how many products were inserted or updated (0 when already seeded alike).
    To seed a store that is already open (an in-process one in tests), await `seed_store(store, ...)`.
    """
    return asyncio.run(_seed_url(store_url, count, dim, seed, batch_size))


async def _seed_url(store_url: str, count: int, dim: int, seed: int, batch_size: int) -> int:
    from orchestrator.stores.factory import open_catalog_store

    store = await open_catalog_store(store_url)
    try:
        return await seed_store(store, count, dim, seed, batch_size)
    finally:
        await store.close()


# ---------------------------------------------------------------- report


def error_kinds_text(value: object) -> str:
    """{"429": 3, "TimeoutError": 1} -> "429×3, TimeoutError×1"; none -> a dash."""
    return ", ".join(f"{kind}×{n}" for kind, n in value.items()) if value else "—"


COLUMNS: list[Column] = [
    ("scenario", "scenario", format_value), ("concurrency", "concurrency", format_value),
    ("requests", "requests", format_value), ("ok", "ok", format_value), ("errors", "errors", format_value),
    ("error kinds", "error_kinds", error_kinds_text), ("req/s", "throughput_rps", format_value),
    ("mean ms", "mean_ms", format_value), ("p50 ms", "p50_ms", format_value), ("p95 ms", "p95_ms", format_value),
    ("p99 ms", "p99_ms", format_value), ("max ms", "max_ms", format_value), ("s", "duration_s", format_value),
    ("stopped by", "stopped_by", format_value)]

def _series(rows: list[dict], key: str) -> dict[str, tuple[list, list]]:
    series: dict[str, tuple[list, list]] = {}
    for row in sorted(rows, key=lambda r: r["concurrency"]):
        if row.get(key) is not None:
            xs, ys = series.setdefault(row["scenario"], ([], []))
            xs.append(row["concurrency"])
            ys.append(row[key])
    return series


@register_section(SECTION, "Orchestrator HTTP load")
def render_http_load(rows: list[dict], out_dir: Path) -> str:
    """Table of every row, what each request is and which cache could serve it, and two plots: throughput vs
    concurrency and p95 vs concurrency, one line per scenario. (The comparison with the original project's
    figures is benchmarks.original's section.)"""
    if not rows:
        return "_no rows_"
    throughput = line_plot(_series(rows, "throughput_rps"), Path(out_dir) / "http_load_throughput.png",
                           "Orchestrator throughput (closed loop)", "concurrent clients", "successful requests/s")
    p95 = line_plot(_series(rows, "p95_ms"), Path(out_dir) / "http_load_p95.png",
                    "Orchestrator p95 latency", "concurrent clients", "p95 latency (ms)", log_y=True)
    notes = {r["scenario"]: r for r in rows}
    bullets = [f"- `{name}` ({row['http_calls']} HTTP call{'s' * (row['http_calls'] > 1)} per request): cache: "
               f"{row['cache']}{'; ' + row['notes'] if row.get('notes') else ''}"
               f"{'; photo ' + row['photo'] + ' px (PNG)' if row.get('photo') else ''}" for name, row in notes.items()]
    intro = ("Closed loop over loopback HTTP: each client sends its next request when the previous one answers. "
             "Latency percentiles are over successful requests; errors count non-2xx answers and transport errors; "
             "req/s is successful requests over the level's wall time.")
    return "\n".join([intro, "", markdown_table(rows, COLUMNS), "", *bullets, "",
                      f"![throughput]({throughput.name})", "", f"![p95 latency]({p95.name})"])


# ---------------------------------------------------------------- command line


def _photo_size(text: str) -> tuple[int, int]:
    """"3024x4032" -> (3024, 4032)."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT in pixels, e.g. 3024x4032, got {text!r}") from None
    return width, height


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.http_load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="the orchestrator, a loopback address only, e.g. http://127.0.0.1:8080")
    parser.add_argument("--quick", action="store_true",
                        help=f"concurrency {' and '.join(map(str, QUICK_CONCURRENCIES))}, at most "
                             f"{QUICK_MAX_REQUESTS} requests or {QUICK_MAX_SECONDS:g} s per level")
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS), metavar="SCENARIO",
                        help=f"which scenarios, in this order: {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--concurrency", type=int, nargs="+",
                        help=f"concurrent clients per level (default {' '.join(map(str, DEFAULT_CONCURRENCIES))})")
    parser.add_argument("--max-requests", type=int, help="requests per level at most (default 200; "
                                                         f"{QUICK_MAX_REQUESTS} with --quick)")
    parser.add_argument("--max-seconds", type=float, help="seconds per level at most; requests in flight then are "
                                                          f"awaited (default 20; {QUICK_MAX_SECONDS:g} with --quick)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed requests per scenario (default %(default)s)")
    parser.add_argument("--timeout-s", type=float, default=120.0,
                        help="seconds per HTTP call before it counts as an error (default %(default)s)")
    parser.add_argument("--photo-size", type=_photo_size, default=(PHOTO_WIDTH, PHOTO_HEIGHT), metavar="WxH",
                        help=f"the uploaded photo's width x height in pixels (default {PHOTO_WIDTH}x{PHOTO_HEIGHT}; a "
                             "12 MP phone photo: 3024x4032)")
    parser.add_argument("--out", type=Path, help="results folder (default benchmarks/results/<machine-id>)")
    parser.add_argument("--seed-catalog", metavar="STORE_URL",
                        help="instead of a load run: fill this catalog store (sqlite:///PATH or mongodb://...) with "
                             "synthetic products; start the orchestrator on it afterwards")
    parser.add_argument("--products", type=int, default=1000,
                        help="products for --seed-catalog (default %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> None:
    from benchmarks.report import save_section

    parser = _parser()
    args = parser.parse_args(argv)
    if args.seed_catalog:
        written = seed_catalog(args.seed_catalog, count=args.products)
        print(f"seeded {args.seed_catalog}: {written} products written ({args.products} requested)")
        return
    if not args.url:
        parser.error("--url is required (or --seed-catalog STORE_URL)")
    concurrencies = args.concurrency or (QUICK_CONCURRENCIES if args.quick else DEFAULT_CONCURRENCIES)
    max_requests = args.max_requests or (QUICK_MAX_REQUESTS if args.quick else 200)
    max_seconds = args.max_seconds or (QUICK_MAX_SECONDS if args.quick else 20.0)
    try:
        rows = run(args.url, args.scenarios, concurrencies, max_requests, max_seconds, args.warmup,
                   timeout_s=args.timeout_s, photo_size=args.photo_size)
    except ValueError as error:
        parser.error(str(error))
    print(save_section(SECTION, rows, args.out).read_text())


if __name__ == "__main__":
    main()
