"""The SAM embedding cache: bounded by bytes, least recently used out first, one computation per key."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from orchestrator.services.embedding_cache import EmbeddingCache


def embedding(value: float) -> np.ndarray:
    return np.full((1, 256, 64, 64), value, dtype=np.float32)  # 4 MiB, as SAM's


async def test_a_second_request_for_the_same_image_is_served_from_the_cache():
    cache, calls = EmbeddingCache(max_bytes=16 * 2**20), []

    async def compute():
        calls.append(1)
        return embedding(1.0)

    await cache.get_or_compute("a", compute)
    await cache.get_or_compute("a", compute)
    assert len(calls) == 1


async def test_the_least_recently_used_entry_is_evicted_past_the_byte_budget():
    cache = EmbeddingCache(max_bytes=2 * embedding(0).nbytes)
    for key in ("a", "b"):
        await cache.get_or_compute(key, lambda k=key: asyncio.sleep(0, embedding(1.0)))
    await cache.get_or_compute("a", lambda: asyncio.sleep(0, embedding(1.0)))  # touch a
    await cache.get_or_compute("c", lambda: asyncio.sleep(0, embedding(1.0)))
    assert len(cache) == 2 and cache.bytes <= 2 * embedding(0).nbytes
    recomputed = []
    await cache.get_or_compute("b", lambda: asyncio.sleep(0, recomputed.append(1) or embedding(2.0)))
    assert recomputed == [1]


async def test_concurrent_requests_share_one_computation():
    cache, calls = EmbeddingCache(max_bytes=16 * 2**20), []

    async def slow():
        calls.append(1)
        await asyncio.sleep(0.05)
        return embedding(3.0)

    results = await asyncio.gather(*(cache.get_or_compute("x", slow) for _ in range(5)))
    assert len(calls) == 1 and all(r is results[0] for r in results)


async def test_a_failed_computation_is_not_cached_and_reaches_every_waiter():
    cache = EmbeddingCache(max_bytes=16 * 2**20)

    async def failing():
        await asyncio.sleep(0.01)
        raise RuntimeError("triton down")

    outcomes = await asyncio.gather(*(cache.get_or_compute("y", failing) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    assert len(cache) == 0
    assert (await cache.get_or_compute("y", lambda: asyncio.sleep(0, embedding(4.0))))[0, 0, 0, 0] == 4.0
