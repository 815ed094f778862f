"""A least-recently-used cache of SAM image embeddings, bounded by bytes, with one computation per key.

Concurrent requests for an image that is being encoded wait for the same computation instead of
starting another encoder call (an encoder call is seconds on a CPU).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import numpy as np

from orchestrator.metrics import EMBEDDING_CACHE_BYTES, EMBEDDING_CACHE_EVENTS


class EmbeddingCache:
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._pending: dict[str, asyncio.Future] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return self._bytes

    async def get_or_compute(self, key: str, compute: Callable[[], Awaitable[np.ndarray]]) -> np.ndarray:
        if key in self._entries:
            self._entries.move_to_end(key)
            EMBEDDING_CACHE_EVENTS.labels(result="hit").inc()
            return self._entries[key]
        if key in self._pending:
            EMBEDDING_CACHE_EVENTS.labels(result="hit").inc()
            return await asyncio.shield(self._pending[key])
        EMBEDDING_CACHE_EVENTS.labels(result="miss").inc()
        future = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            value = await compute()
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # mark retrieved: waiters re-raise it, nobody else has to
            raise
        finally:
            self._pending.pop(key, None)
        future.set_result(value)
        self._put(key, value)
        return value

    def _put(self, key: str, value: np.ndarray) -> None:
        if value.nbytes > self.max_bytes:
            return
        self._entries[key] = value
        self._bytes += value.nbytes
        while self._bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.nbytes
            EMBEDDING_CACHE_EVENTS.labels(result="eviction").inc()
        EMBEDDING_CACHE_BYTES.set(self._bytes)
