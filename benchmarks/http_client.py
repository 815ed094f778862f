"""The HTTP client the timed benchmarks send their requests with: aiohttp, whose C parser costs little per call.

    async with BenchClient("http://127.0.0.1:8080", timeout_s=120, connections=4) as client:
        reply = await client.post("/v1/search", json={"text": "red dress"})
        reply.is_success, reply.status_code, reply.headers["server-timing"], reply.json()

A timed request should cost the client as little as a browser's or a compiled client's would, or the benchmark
times the client. `python -m benchmarks.client_cost` measures it against http.client on one kept-alive connection:
on a 2-core AMD EPYC (2026-12-07, 400 calls each) httpx's pure-Python HTTP/1.1 stack added 0.8 ms to the
orchestrator's /healthz and 1.2 ms to a 20-product text search (1.5 ms in an earlier ad hoc run), aiohttp -0.1 to
+0.1 ms. The search targets divide an HTTP p50 by the served models' p50 over gRPC, so on the cpu profile's ~20 ms
text search httpx was 0.06-0.07 of the ratio spent in the benchmark's own client.

Each reply is read whole before the call returns, so a latency includes the response body. The client never
reads proxy settings from the environment (load must not leave the loopback host) and never follows redirects.
"""

from __future__ import annotations

import json as jsonlib
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy


@dataclass(frozen=True)
class Reply:
    """A whole HTTP answer: status, headers (case-insensitive) and body bytes."""

    status_code: int
    headers: CIMultiDictProxy[str]
    content: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)


class BenchClient:
    """Kept-alive connections to one base URL (at most `connections` at once); `timeout_s` bounds each call,
    whose expiry raises TimeoutError. Transport failures raise aiohttp's errors (ClientConnectorError, ...)."""

    def __init__(self, base_url: str, timeout_s: float = 120.0, connections: int = 8):
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> BenchClient:
        connector = aiohttp.TCPConnector(limit=self._connections, limit_per_host=self._connections)
        self._session = aiohttp.ClientSession(self.base_url, connector=connector, timeout=self._timeout,
                                              trust_env=False)
        return self

    async def __aexit__(self, *exc_info) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get(self, path: str, params: dict[str, Any] | None = None) -> Reply:
        return await self._send("GET", path, params=params)

    async def post(self, path: str, json: Any = None, files: dict[str, tuple[str, bytes, str]] | None = None) -> Reply:
        """json: a body to send as JSON; files: {field: (file name, bytes, content type)} as multipart form data."""
        if files is not None:
            form = aiohttp.FormData()
            for field, (filename, data, content_type) in files.items():
                form.add_field(field, data, filename=filename, content_type=content_type)
            return await self._send("POST", path, data=form)
        return await self._send("POST", path, json=json)

    async def _send(self, method: str, path: str, **kwargs) -> Reply:
        if self._session is None:
            raise RuntimeError("BenchClient is used outside its `async with` block")
        async with self._session.request(method, path, allow_redirects=False, **kwargs) as response:
            return Reply(response.status, response.headers, await response.read())
