"""ProductMetadataCache: hits come from memory, misses from the store in one read, the least recently used
product leaves first, and an invalidation wins over a store read that was already under way."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.domain import Product
from orchestrator.services.product_cache import ProductMetadataCache


class CountingStore:
    """The store's metadata read over a dict, recording every read's ids; `gate` (when set) holds reads back."""

    def __init__(self, names: dict[str, str]):
        self.names = dict(names)
        self.reads: list[list[str]] = []
        self.gate: asyncio.Event | None = None

    async def get_many(self, product_ids: list[str]) -> dict[str, Product]:
        self.reads.append(list(product_ids))
        found = {pid: Product(product_id=pid, name=self.names[pid], image=f"{pid}.jpg")
                 for pid in product_ids if pid in self.names}
        if self.gate is not None:
            await self.gate.wait()
        return found


async def test_a_second_lookup_reads_only_what_the_first_did_not_find():
    store = CountingStore({"a": "A", "b": "B", "c": "C"})
    cache = ProductMetadataCache(store.get_many, max_products=10)
    first = await cache.get_many(["a", "b", "gone"])
    second = await cache.get_many(["b", "a", "c", "b"])
    assert sorted(first) == ["a", "b"] and sorted(second) == ["a", "b", "c"]
    assert second["a"].name == "A"
    # unknown ids are asked again (never cached as absent): a product added later is found
    assert store.reads == [["a", "b", "gone"], ["c"]]


async def test_the_least_recently_used_product_leaves_first():
    store = CountingStore({pid: pid.upper() for pid in "abcd"})
    cache = ProductMetadataCache(store.get_many, max_products=3)
    await cache.get_many(["a", "b", "c"])
    await cache.get_many(["a"])  # a is now the most recently used
    await cache.get_many(["d"])  # b leaves
    assert len(cache) == 3
    store.reads.clear()
    await cache.get_many(["a", "b", "c", "d"])
    assert store.reads == [["b"]]


async def test_an_invalidated_product_is_read_again():
    store = CountingStore({"a": "old"})
    cache = ProductMetadataCache(store.get_many, max_products=10)
    assert (await cache.get_many(["a"]))["a"].name == "old"
    store.names["a"] = "new"
    assert (await cache.get_many(["a"]))["a"].name == "old"
    cache.invalidate(["a"])
    assert (await cache.get_many(["a"]))["a"].name == "new"
    store.names["a"] = "newer"
    cache.clear()
    assert (await cache.get_many(["a"]))["a"].name == "newer"


async def test_a_read_that_raced_an_invalidation_is_not_kept():
    """A search reads the old row, the product changes and is invalidated, then the read returns: the old row
    must not stay cached, or searches would show it until it is evicted."""
    store = CountingStore({"a": "old"})
    cache = ProductMetadataCache(store.get_many, max_products=10)
    store.gate = asyncio.Event()
    racing = asyncio.create_task(cache.get_many(["a"]))
    await asyncio.sleep(0)  # the read has taken the old row and waits
    store.names["a"] = "new"
    cache.invalidate(["a"])
    store.gate.set()
    assert (await racing)["a"].name == "old"  # that search saw the product as it was when it asked
    store.gate = None
    assert (await cache.get_many(["a"]))["a"].name == "new"


async def test_size_zero_asks_the_store_every_time():
    store = CountingStore({"a": "A"})
    cache = ProductMetadataCache(store.get_many, max_products=0)
    await cache.get_many(["a"])
    await cache.get_many(["a"])
    assert store.reads == [["a"], ["a"]] and len(cache) == 0


def test_a_negative_size_is_refused():
    with pytest.raises(ValueError):
        ProductMetadataCache(CountingStore({}).get_many, max_products=-1)


async def pages_of(*pages: list[Product]):
    for page in pages:
        await asyncio.sleep(0)
        yield page


def named(pid: str, name: str = "") -> Product:
    return Product(product_id=pid, name=name or pid.upper(), image=f"{pid}.jpg")


async def test_a_preload_fills_the_free_room_behind_what_searches_read():
    store = CountingStore({"s": "from a search", "c": "C"})
    cache = ProductMetadataCache(store.get_many, max_products=3)
    await cache.get_many(["s"])
    kept = await cache.preload(pages_of([named("a"), named("s", "stale scan")], [named("b"), named("c")]))
    assert kept == 2 and len(cache) == 3  # a and b; s keeps the copy a search read; c finds no room
    store.reads.clear()
    assert (await cache.get_many(["s"]))["s"].name == "from a search" and store.reads == []
    await cache.get_many(["c"])  # read now, and the preloaded b (the oldest) leaves for it
    store.reads.clear()
    await cache.get_many(["a", "s", "c"])
    await cache.get_many(["b"])
    assert store.reads == [["b"]]


async def test_a_preloaded_page_that_overlapped_an_invalidation_is_skipped():
    cache = ProductMetadataCache(CountingStore({}).get_many, max_products=10)

    async def pages():
        yield [named("a")]
        cache.invalidate(["x"])  # a change lands while the second page is read
        yield [named("x", "before the change")]
        yield [named("y")]

    assert await cache.preload(pages()) == 2 and len(cache) == 2
    assert "x" not in await cache.get_many(["x"])  # asked of the (empty) store, never the stale scan


async def test_a_preload_into_a_disabled_cache_reads_nothing():
    read = []

    async def pages():
        read.append(1)
        yield [named("a")]

    cache = ProductMetadataCache(CountingStore({}).get_many, max_products=0)
    assert await cache.preload(pages()) == 0 and read == []
