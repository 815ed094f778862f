"""The orchestrator's share of a search, measured in pairs: one HTTP search, then the same Triton calls alone.

    python -m benchmarks.search_overhead --base-url http://127.0.0.1:8080 --grpc-url 127.0.0.1:8001 --pairs 60

For each search query (text, image, text & image) the loop alternates the whole HTTP request
(benchmarks.http_load's scenario: decode, Triton, FAISS, store, JSON) with the Triton calls that request makes
sent straight over gRPC (benchmarks.search_models.query_call), one after the other at concurrency 1, swapping
which goes first every pair. Both halves of the ratio are then timed under the same machine load: on a shared
2-core VM whose speed drifts by tens of percent within minutes, p50s taken in separate steps minutes apart
compare the drift, not the orchestrator. The targets (benchmarks.targets) divide the HTTP p50 by the models' p50
of these rows when the run has them.

Each HTTP answer's Server-Timing header (orchestrator/timing.py) splits its time further: the Triton calls as the
orchestrator saw them, preprocessing, FAISS, the catalog lookup, the rest of the orchestrator (routing, validation,
JSON) and what lies outside it (this client, the HTTP connection, uvicorn's parsing), each a p50 over the pairs.
After the pairs, a bare `GET /healthz` is timed right after each of up to FLOOR_CALLS more models-only calls, and
a second one right after it: what any HTTP round trip costs on this machine in the state a search finds it (its
caches just emptied by a model run), a floor under the search's own overhead, next to what it costs back to back.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import time
from collections.abc import Sequence

import numpy as np

from benchmarks.http_client import BenchClient
from benchmarks.report import Column, format_value, markdown_table, register_section
from snapfit import contract

SECTION = "search_overhead"
FLOOR_CALLS = 20
SCENARIOS = ("search_text", "search_image", "search_text_image")


def run(base_url: str, grpc_url: str, pairs: int = 60, max_seconds: float = 30.0, warmup: int = 2,
        scenarios: Sequence[str] = SCENARIOS, seed: int = 0, timeout_s: float = 120.0) -> list[dict]:
    """One row per scenario: pairs timed, http_p50_ms / models_p50_ms (and p95s), ratio (HTTP p50 / models p50)
    and error. `max_seconds` bounds each scenario's timed pairs; at least 3 pairs are always timed."""
    from benchmarks.http_load import require_loopback

    require_loopback(base_url)
    unknown = sorted(set(scenarios) - set(SCENARIOS))
    if unknown:
        raise ValueError(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    return asyncio.run(_run(base_url, grpc_url, pairs, max_seconds, warmup, list(scenarios), seed, timeout_s))


async def _run(base_url: str, grpc_url: str, pairs: int, max_seconds: float, warmup: int, scenarios: list[str],
               seed: int, timeout_s: float) -> list[dict]:
    from benchmarks import http_load, search_models

    photo, box = http_load.garment_photo(seed)
    ctx = http_load.ScenarioContext(photo, box, run_tag=secrets.randbits(64), rng=random.Random(seed))
    crop = search_models.garment_crop(seed=seed)
    rows = []
    async with BenchClient(base_url, timeout_s=timeout_s, connections=1) as client:
        await http_load.prepare_image(client, ctx)
        for scenario in scenarios:
            row = {"scenario": scenario, "models": " + ".join(search_models.QUERIES[scenario]), "concurrency": 1}
            try:
                models_call = search_models.query_call(grpc_url, search_models.QUERIES[scenario], crop)
                *times, server_ms = await _pairs(http_load.SCENARIO_SPECS[scenario].send, client, ctx,
                                                 models_call, pairs, max_seconds, warmup)
                floor_ms, warm_ms = await _bare_http_after_models(client, models_call,
                                                                  min(FLOOR_CALLS, len(times[0])))
            except Exception as error:  # noqa: BLE001 - one failing query leaves the others' rows
                rows.append({**row, "pairs": None, "ratio": None, "error": f"{type(error).__name__}: {error}"})
                continue
            http_ms, models_ms = (np.asarray(t) * 1000.0 for t in times)
            rows.append({**row, "pairs": len(http_ms),
                         "http_p50_ms": float(np.percentile(http_ms, 50)),
                         "http_p95_ms": float(np.percentile(http_ms, 95)),
                         "models_p50_ms": float(np.percentile(models_ms, 50)),
                         "models_p95_ms": float(np.percentile(models_ms, 95)),
                         "ratio": float(np.percentile(http_ms, 50) / np.percentile(models_ms, 50)),
                         "bare_http_p50_ms": float(np.percentile(floor_ms, 50)),
                         "bare_http_warm_p50_ms": float(np.percentile(warm_ms, 50)),
                         "server_timing_p50_ms": split_p50s(http_ms, server_ms), "error": None})
    return rows


async def _pairs(send, client: BenchClient, ctx, models_call, pairs: int, max_seconds: float,
                 warmup: int) -> tuple[list[float], list[float], list[dict[str, float]]]:
    """Seconds of each timed HTTP request and each timed models-only call, `pairs` of each at most, and each timed
    HTTP answer's Server-Timing milliseconds ({} when it sent none)."""
    from benchmarks.http_load import sam_click_cached_image
    from orchestrator.timing import parse_header

    server_ms: list[dict[str, float]] = []

    async def http_once() -> float:
        started = time.perf_counter()
        response = await send(client, ctx)
        elapsed = time.perf_counter() - started
        if not response.is_success:
            raise RuntimeError(f"the HTTP search answered {response.status_code}: {response.text[:300]}")
        server_ms.append(parse_header(response.headers.get("server-timing", "")))
        return elapsed

    def models_once() -> float:
        started = time.perf_counter()
        models_call()  # blocking gRPC: nothing else runs on this loop at concurrency 1
        return time.perf_counter() - started

    # a shopper clicks before searching: the photo's embedding and pixels are in the orchestrator's caches again
    await sam_click_cached_image(client, ctx)
    for _ in range(warmup):
        await http_once()
        models_once()
    server_ms.clear()
    http_s, models_s = [], []
    spent = 0.0
    while len(http_s) < pairs and (spent < max_seconds or len(http_s) < 3):
        if len(http_s) % 2 == 0:
            http_s.append(await http_once())
            models_s.append(models_once())
        else:
            models_s.append(models_once())
            http_s.append(await http_once())
        spent += http_s[-1] + models_s[-1]
    return http_s, models_s, server_ms


async def _bare_http_after_models(client: BenchClient, models_call, calls: int) -> tuple[list[float], list[float]]:
    """Milliseconds of a bare GET /healthz sent right after each of `calls` models-only calls, and of a second one
    sent right after that one (back to back)."""
    after_models, back_to_back = [], []
    for _ in range(calls):
        models_call()
        for elapsed in (after_models, back_to_back):
            started = time.perf_counter()
            response = await client.get("/healthz")
            elapsed.append((time.perf_counter() - started) * 1000.0)
            if not response.is_success:
                raise RuntimeError(f"/healthz answered {response.status_code}")
    return after_models, back_to_back


STAGES = ("preprocess", "index", "store")  # the orchestrator's own timed stages (orchestrator/timing.py)
# timed beside a Triton call the request waits for anyway (a text & image search cuts its garment out while the text
# tower runs): shown, but not taken from the app's time, which the Triton call already counts
OVERLAPPED_STAGES = ("preprocess.overlapped",)


def split_p50s(http_ms: Sequence[float], server_ms: Sequence[dict[str, float]]) -> dict[str, float] | None:
    """p50 milliseconds of where the HTTP requests' time went, from their Server-Timing values (None when an answer
    lacks one): `outside` (HTTP - app: the client, the connection, uvicorn), `app` (inside the orchestrator),
    `triton` (its Triton calls, summed per request), each of STAGES, and `rest` (app minus all of those); each of
    OVERLAPPED_STAGES too, which `rest` keeps (their time is inside a Triton call's)."""
    if not server_ms or any("app" not in timings for timings in server_ms):
        return None
    parts: dict[str, list[float]] = {name: [] for name in ("outside", "app", "triton", *STAGES, "rest",
                                                           *OVERLAPPED_STAGES)}
    for total, timings in zip(http_ms, server_ms):
        triton = sum(ms for name, ms in timings.items() if name.startswith("triton."))
        own = {name: timings.get(name, 0.0) for name in STAGES}
        parts["outside"].append(total - timings["app"])
        parts["app"].append(timings["app"])
        parts["triton"].append(triton)
        for name, ms in own.items():
            parts[name].append(ms)
        parts["rest"].append(timings["app"] - triton - sum(own.values()))
        for name in OVERLAPPED_STAGES:
            parts[name].append(timings.get(name, 0.0))
    return {name: float(np.percentile(values, 50)) for name, values in parts.items()}


COLUMNS: list[Column] = [
    ("query", "scenario", format_value), ("Triton calls", "models", format_value), ("pairs", "pairs", format_value),
    ("HTTP p50 ms", "http_p50_ms", format_value), ("models p50 ms", "models_p50_ms", format_value),
    ("HTTP / models", "ratio", lambda v: "—" if v is None else f"{v:.2f}×"),
    ("HTTP p95 ms", "http_p95_ms", format_value), ("models p95 ms", "models_p95_ms", format_value),
    ("error", "error", format_value)]


SPLIT_COLUMNS: list[Column] = [
    ("query", "scenario", format_value), ("HTTP p50 ms", "http_p50_ms", format_value),
    ("outside the app", "outside", format_value), ("in the app", "app", format_value),
    ("its Triton calls", "triton", format_value), ("preprocess", "preprocess", format_value),
    ("preprocess beside the text call", "preprocess.overlapped", format_value),
    ("FAISS", "index", format_value), ("catalog lookup", "store", format_value),
    ("rest of the app", "rest", format_value), ("bare HTTP after the models", "bare_http_p50_ms", format_value),
    ("bare HTTP back to back", "bare_http_warm_p50_ms", format_value)]


@register_section(SECTION, "Search overhead: HTTP search and its Triton calls alone, in pairs")
def render_search_overhead(rows: list[dict], out_dir) -> str:
    if not rows:
        return "_no rows_"
    text = ("Each pair is one HTTP search through the orchestrator and the same Triton calls sent straight over gRPC "
            "(the inputs the orchestrator sends: the garment crop, a unique text), back to back at concurrency 1, "
            "the order swapped every pair, so both p50s come from the same minutes of this machine. The search "
            "targets divide these p50s.\n\n" + markdown_table(rows, COLUMNS))
    split = [{"scenario": row["scenario"], "http_p50_ms": row.get("http_p50_ms"), **row["server_timing_p50_ms"],
              **{key: row.get(key) for key in ("bare_http_p50_ms", "bare_http_warm_p50_ms")}}
             for row in rows if row.get("server_timing_p50_ms")]
    if split:
        text += ("\n\nWhere the HTTP searches' time went, from each answer's Server-Timing header (p50 ms of each part "
                 "over the same requests, so the parts need not add up to the HTTP p50): outside the app = the "
                 "client, the connection and uvicorn; its Triton calls as the orchestrator waited for them; preprocess "
                 "beside the text call = the garment's cut-out and resize while the text tower ran (inside that "
                 "call's time, so not a part of its own); rest = "
                 "routing, validation, thread hand-offs and JSON; bare HTTP after the models = a GET /healthz sent "
                 "right after the same Triton calls alone (p50 of up to "
                 f"{FLOOR_CALLS}), what any HTTP round trip costs here in the state the search finds the machine "
                 "in; back to back = a second one sent right after it.\n\n" + markdown_table(split, SPLIT_COLUMNS))
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.search_overhead", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", required=True,
                        help="a loopback orchestrator with a catalog, e.g. http://127.0.0.1:8080")
    parser.add_argument("--grpc-url", default=f"127.0.0.1:{contract.TRITON_GRPC_PORT}",
                        help="the loopback Triton it uses")
    parser.add_argument("--pairs", type=int, default=60, help="timed pairs per query (default %(default)s)")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="time budget per query (default %(default)s)")
    args = parser.parse_args(argv)
    print(markdown_table(run(args.base_url, args.grpc_url, args.pairs, args.max_seconds), COLUMNS))


if __name__ == "__main__":
    main()
