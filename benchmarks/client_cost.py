"""What an HTTP client itself adds to a call: httpx and aiohttp against a raw kept-alive http.client connection.

    python -m benchmarks.client_cost --url http://127.0.0.1:8080 --path /healthz \
        --path "/v1/search?q=red%20dress&k=20"

The same GET goes through each client in turn on one kept-alive connection, `calls` times each, and a round of all
clients repeats so that drift spreads over them alike. Each row gives the client's p50 and its p50 minus the raw
connection's: what that client spends per call on top of sending the bytes. This is why the timed benchmarks send
with aiohttp (benchmarks/http_client.py). A repeated text search is answered from Triton's response cache, so the
row times the client and the orchestrator's own work, not the model.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

import httpx
import numpy as np

from benchmarks.http_client import BenchClient

CLIENTS = ("raw http.client", "aiohttp (BenchClient)", "httpx")


def run(base_url: str, paths: Sequence[str], calls: int = 200, rounds: int = 2) -> list[dict]:
    """One row per path and client: calls, p50_ms, added_ms (p50 minus the raw connection's p50)."""
    from benchmarks.http_load import require_loopback

    require_loopback(base_url)
    rows = []
    for path in paths:
        seconds: dict[str, list[float]] = {name: [] for name in CLIENTS}
        for _ in range(rounds):
            seconds["raw http.client"] += _raw(base_url, path, calls)
            seconds["aiohttp (BenchClient)"] += asyncio.run(_aiohttp(base_url, path, calls))
            seconds["httpx"] += asyncio.run(_httpx(base_url, path, calls))
        raw_p50 = float(np.percentile(seconds["raw http.client"], 50)) * 1000
        for name in CLIENTS:
            p50 = float(np.percentile(seconds[name], 50)) * 1000
            rows.append({"path": path, "client": name, "calls": len(seconds[name]), "p50_ms": p50,
                         "added_ms": p50 - raw_p50})
    return rows


def _raw(base_url: str, path: str, calls: int) -> list[float]:
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=60)
    try:
        return [_timed_raw(connection, path) for _ in range(calls)]
    finally:
        connection.close()


def _timed_raw(connection: http.client.HTTPConnection, path: str) -> float:
    started = time.perf_counter()
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    _check(response.status, path)
    return time.perf_counter() - started


async def _aiohttp(base_url: str, path: str, calls: int) -> list[float]:
    async with BenchClient(base_url, timeout_s=60, connections=1) as client:
        return await _timed_gets(client, path, calls)


async def _httpx(base_url: str, path: str, calls: int) -> list[float]:
    async with httpx.AsyncClient(base_url=base_url, timeout=60, trust_env=False) as client:
        return await _timed_gets(client, path, calls)


async def _timed_gets(client, path: str, calls: int) -> list[float]:
    """Seconds of each of `calls` GETs of `path` through `client` (any client whose reply has status_code)."""
    out = []
    for _ in range(calls):
        started = time.perf_counter()
        _check((await client.get(path)).status_code, path)
        out.append(time.perf_counter() - started)
    return out


def _check(status: int, path: str) -> None:
    if not 200 <= status < 300:
        raise RuntimeError(f"GET {path} answered {status}")


def main(argv: Sequence[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.client_cost", description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="the orchestrator (loopback only), e.g. http://127.0.0.1:8080")
    parser.add_argument("--path", action="append", help="a GET path to time (repeatable; default /healthz)")
    parser.add_argument("--calls", type=int, default=200, help="calls per client and round (default 200)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds over all clients (default 2)")
    args = parser.parse_args(argv)
    rows = run(args.url, args.path or ["/healthz"], args.calls, args.rounds)
    for row in rows:
        print(f"{row['path']}  {row['client']:<22} {row['calls']} calls  p50 {row['p50_ms']:.3f} ms  "
              f"added {row['added_ms']:+.3f} ms")
    return rows


if __name__ == "__main__":
    main()
