"""The LRU holding per-garment text conditioning."""

from __future__ import annotations

from tryon.conditioning_cache import LruCache


def test_least_recently_used_entry_is_evicted_and_lookups_are_counted():
    cache: LruCache[int] = LruCache(capacity=2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "b" is now the least recently used
    cache.put("c", 3)
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c")) == (1, 3)
    assert (cache.hits, cache.misses, len(cache)) == (3, 1, 2)


def test_zero_capacity_caches_nothing():
    cache: LruCache[int] = LruCache(capacity=0)
    cache.put("a", 1)
    assert cache.get("a") is None and len(cache) == 0
