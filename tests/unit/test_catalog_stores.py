"""One contract suite for every CatalogStore: SQLite on a temp file, MongoDB over mongomock, and a real MongoDB
when MONGODB_URI is set (each test then gets its own database, dropped afterwards)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
import uuid
from dataclasses import replace
from urllib.parse import urlsplit, urlunsplit

import mongomock
import numpy as np
import pytest

from orchestrator.domain import Product, Thumbnail
from orchestrator.errors import InvalidInput, NotFound, SnapfitError, StoreUnavailable
from orchestrator.stores.catalog_store import EDITABLE_FIELDS, METADATA_FIELDS
from orchestrator.stores.factory import open_catalog_store
from orchestrator.stores.mongo_store import MongoCatalogStore
from orchestrator.stores.sqlite_store import SQLiteCatalogStore
from orchestrator.thumbnails import thumbnail_etag
from tests.support.mongomock_store import mongomock_catalog_store, open_test_store

DIM = 16


def make_product(index: int, *, seed: int = 0, **overrides) -> Product:
    rng = np.random.default_rng(index * 1000 + seed)
    embedding = rng.standard_normal(DIM).astype(np.float32)
    values = dict(
        product_id=f"p{index:05d}", name=f"플리츠 스커트 {index} ({seed})", image=f"images/{index}.jpg",
        link=f"https://shop.example/{index}", brand=["무신사", "Acme"][index % 2], price=10_000.0 + index,
        tags=["여름", "cotton"], category=["top", "bottom"][index % 2], tryon_ready=index % 3 == 0,
        tryon_probability=(index % 10) / 10, embedding=embedding / np.linalg.norm(embedding),
        source_hash=f"hash-{index}-{seed}")
    values.update(overrides)
    return Product(**values)


def assert_same_product(stored: Product, expected: Product) -> None:
    for name in METADATA_FIELDS:
        if name != "updated_at":
            assert getattr(stored, name) == getattr(expected, name), name
    if expected.embedding is None:
        assert stored.embedding is None
    else:
        assert stored.embedding.dtype == np.float32
        assert stored.embedding.tobytes() == expected.embedding.astype(np.float32).tobytes()


def _mongodb_url(database: str) -> str:
    parts = urlsplit(os.environ["MONGODB_URI"])
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture(params=["sqlite", "mongomock", "mongodb"])
def reopen(request, tmp_path):
    """An async callable opening a fresh store object over the same data each time it is called."""
    if request.param == "sqlite":
        path = tmp_path / "catalog.db"
        yield lambda: SQLiteCatalogStore.open(path)
    elif request.param == "mongomock":
        client = mongomock.MongoClient()

        async def open_mongomock():
            return mongomock_catalog_store(client)
        yield open_mongomock
    else:
        if not os.environ.get("MONGODB_URI"):
            pytest.skip("set MONGODB_URI to run the contract against a real MongoDB")
        database = f"snapfit_test_{uuid.uuid4().hex[:12]}"

        async def open_mongodb():
            return MongoCatalogStore.connect(_mongodb_url(database), server_selection_timeout_s=5)
        yield open_mongodb
        import pymongo
        with pymongo.MongoClient(os.environ["MONGODB_URI"], serverSelectionTimeoutMS=5000) as client:
            client.drop_database(database)


@pytest.fixture
async def store(reopen):
    store = await reopen()
    yield store
    await store.close()


# ---- contract -----------------------------------------------------------------------------------------------


async def test_upsert_then_get_round_trips_every_field_including_korean_text_and_exact_embedding_bytes(store):
    products = [make_product(i) for i in range(3)] + [make_product(3, embedding=None, price=None,
                                                                   tryon_probability=None, tags=[])]
    before = time.time()

    result = await store.upsert_many(products)

    assert (result.inserted, result.updated, result.unchanged) == (4, 0, 0)
    assert set(result.inserted_ids) == {p.product_id for p in products}
    for product in products:
        stored = await store.get(product.product_id)
        assert_same_product(stored, product)
        assert stored.updated_at >= before
    assert (await store.get("p00000")).name == "플리츠 스커트 0 (0)"
    assert await store.get("missing") is None
    assert await store.count() == 4


async def test_reupserting_unchanged_products_counts_them_unchanged_and_rewrites_nothing(store):
    products = [make_product(i) for i in range(5)]
    await store.upsert_many(products)
    first = await store.get_many([p.product_id for p in products])
    generation = await store.generation()

    result = await store.upsert_many([replace(p, tags=list(p.tags)) for p in products])

    assert (result.inserted, result.updated, result.unchanged) == (0, 0, 5)
    assert await store.count() == 5
    assert await store.generation() == generation
    again = await store.get_many([p.product_id for p in products])
    assert {i: p.updated_at for i, p in again.items()} == {i: p.updated_at for i, p in first.items()}


async def test_a_changed_row_is_updated_with_its_new_embedding_and_the_rest_stay_unchanged(store):
    await store.upsert_many([make_product(i) for i in range(3)])
    changed = make_product(1, seed=7)

    result = await store.upsert_many([make_product(0), changed, make_product(2), make_product(3)])

    assert result.inserted_ids == ("p00003",)
    assert result.updated_ids == ("p00001",)
    assert set(result.unchanged_ids) == {"p00000", "p00002"}
    assert set(result.changed_ids) == {"p00001", "p00003"}
    assert_same_product(await store.get("p00001"), changed)
    assert await store.count() == 4


async def test_a_repeated_product_id_in_one_call_is_stored_once_with_the_last_version(store):
    result = await store.upsert_many([make_product(1), make_product(1, seed=2)])

    assert result.inserted_ids == ("p00001",)
    assert_same_product(await store.get("p00001"), make_product(1, seed=2))
    assert await store.count() == 1


@pytest.mark.parametrize("bad", [dict(product_id=""), dict(price=-1.0), dict(tags="a,b"),
                                 dict(tryon_probability=1.5), dict(embedding=np.zeros((2, 2))),
                                 dict(embedding=np.array([np.nan, 1.0]))])
async def test_upsert_rejects_an_invalid_product_and_writes_nothing(store, bad):
    with pytest.raises(InvalidInput):
        await store.upsert_many([make_product(0), make_product(1, **bad)])
    assert await store.count() == 0


async def test_update_changes_fields_bumps_updated_at_and_keeps_the_rest(store):
    await store.upsert_many([make_product(0)])
    before = await store.get("p00000")
    new_embedding = np.ones(DIM, dtype=np.float32) / 4

    updated = await store.update("p00000", {"price": 25_000, "tags": ["겨울"], "embedding": new_embedding})

    assert updated.price == 25_000.0 and updated.tags == ["겨울"]
    assert updated.updated_at > before.updated_at
    stored = await store.get("p00000")
    assert_same_product(stored, replace(before, price=25_000.0, tags=["겨울"], embedding=new_embedding))
    assert stored.updated_at == updated.updated_at


async def test_update_with_identical_values_changes_nothing(store):
    await store.upsert_many([make_product(0)])
    before = await store.get("p00000")
    generation = await store.generation()

    same = await store.update("p00000", {"name": before.name, "price": before.price})

    assert same.updated_at == before.updated_at
    assert await store.generation() == generation


async def test_update_of_an_unknown_product_raises_not_found(store):
    with pytest.raises(NotFound, match="nope"):
        await store.update("nope", {"price": 1.0})


@pytest.mark.parametrize("changes", [{"colour": "red"}, {"price": -5}, {"price": "cheap"}, {"price": float("inf")},
                                     {"product_id": "other"}, {"source_hash": "x"}, {"updated_at": 0.0},
                                     {"tags": [1, 2]}, {"tryon_ready": "yes"}, {}])
async def test_update_rejects_unknown_fields_and_bad_values_without_writing(store, changes):
    await store.upsert_many([make_product(0)])
    before = await store.get("p00000")

    with pytest.raises(InvalidInput):
        await store.update("p00000", changes)

    assert_same_product(await store.get("p00000"), before)


def test_every_product_field_is_either_stored_metadata_or_the_embedding():
    assert set(METADATA_FIELDS) | {"embedding"} == {f for f in Product.__dataclass_fields__}
    assert EDITABLE_FIELDS < set(Product.__dataclass_fields__)


async def test_delete_removes_the_product_and_count_drops(store):
    await store.upsert_many([make_product(i) for i in range(3)])

    assert await store.delete("p00001") is True

    assert await store.get("p00001") is None
    assert await store.count() == 2
    assert await store.delete("p00001") is False
    assert [b.ids for b in [batch async for batch in store.iter_embeddings()]] == [["p00000", "p00002"]]


async def test_get_many_returns_known_products_in_one_call_without_embeddings_by_default(store):
    await store.upsert_many([make_product(i) for i in range(4)])

    found = await store.get_many(["p00003", "missing", "p00001", "p00003"])
    with_vectors = await store.get_many(["p00002"], include_embeddings=True)

    assert set(found) == {"p00001", "p00003"}
    assert found["p00003"].name == "플리츠 스커트 3 (0)" and found["p00003"].embedding is None
    assert_same_product(with_vectors["p00002"], make_product(2))
    assert await store.get_many([]) == {}


async def test_iter_embeddings_yields_every_embedded_product_exactly_once_in_batches(store):
    products = [make_product(i) for i in range(23)] + [make_product(i, embedding=None) for i in range(23, 26)]
    await store.upsert_many(products[::-1])

    batches = [batch async for batch in store.iter_embeddings(batch_size=5)]

    ids = [i for batch in batches for i in batch.ids]
    assert ids == sorted(p.product_id for p in products[:23])
    assert [len(batch.ids) for batch in batches] == [5, 5, 5, 5, 3]
    by_id = {p.product_id: p for p in products}
    for batch in batches:
        assert batch.embeddings.dtype == np.float32 and batch.embeddings.shape == (len(batch.ids), DIM)
        for row, product_id, product in zip(batch.embeddings, batch.ids, batch.products):
            assert product.product_id == product_id
            assert row.tobytes() == by_id[product_id].embedding.tobytes()
            assert (product.category, product.brand, product.price, product.tryon_ready) == (
                by_id[product_id].category, by_id[product_id].brand, by_id[product_id].price,
                by_id[product_id].tryon_ready)


async def test_iter_embeddings_of_an_empty_store_yields_nothing(store):
    assert [batch async for batch in store.iter_embeddings()] == []


async def test_iter_embeddings_refuses_a_catalog_mixing_embedding_dimensions(store):
    await store.upsert_many([make_product(0), make_product(1), make_product(2, embedding=np.ones(DIM * 2))])

    with pytest.raises(SnapfitError, match="different dimensions"):
        [batch async for batch in store.iter_embeddings(batch_size=2)]


async def test_generation_increases_on_every_write_and_not_on_reads_or_no_ops(store):
    seen = [await store.generation()]

    async def changed() -> bool:
        seen.append(await store.generation())
        return seen[-1] > seen[-2]

    await store.upsert_many([make_product(0), make_product(1)])
    assert await changed()
    await store.upsert_many([make_product(0)])
    await store.get("p00000")
    await store.count()
    assert not await changed()
    await store.upsert_many([make_product(0, seed=1)])
    assert await changed()
    await store.update("p00000", {"brand": "새 브랜드"})
    assert await changed()
    await store.delete("p00001")
    assert await changed()


def thumbnail(seed: int) -> Thumbnail:
    data = b"\xff\xd8\xff" + bytes([seed]) * (100 + seed)  # the store keeps the bytes as they are
    return Thumbnail(data=data, etag=thumbnail_etag(data))


async def test_thumbnails_round_trip_by_product_id_and_unknown_products_get_none(store):
    await store.upsert_many([make_product(i) for i in range(3)])
    generation = await store.generation()

    stored = await store.put_thumbnails({"p00000": thumbnail(0), "p00001": thumbnail(1), "missing": thumbnail(9)})

    assert stored == 2
    assert await store.get_thumbnail("p00000") == thumbnail(0)
    assert await store.get_thumbnail("p00001") == thumbnail(1)
    assert await store.get_thumbnail("p00002") is None
    assert await store.get_thumbnail("missing") is None
    assert await store.thumbnail_ids(["p00000", "p00001", "p00002", "missing", "p00000"]) == {"p00000", "p00001"}
    assert await store.thumbnail_ids([]) == set()
    assert await store.put_thumbnails({}) == 0
    assert await store.generation() == generation  # a thumbnail is not a catalog change: no index rebuild

    assert await store.put_thumbnails({"p00000": thumbnail(5)}) == 1
    assert await store.get_thumbnail("p00000") == thumbnail(5)


async def test_deleting_a_product_deletes_its_thumbnail(store):
    await store.upsert_many([make_product(i) for i in range(2)])
    await store.put_thumbnails({"p00000": thumbnail(0), "p00001": thumbnail(1)})

    assert await store.delete("p00000") is True

    assert await store.get_thumbnail("p00000") is None
    assert await store.thumbnail_ids(["p00000", "p00001"]) == {"p00001"}
    await store.upsert_many([make_product(0)])  # back again: its old thumbnail stays gone
    assert await store.get_thumbnail("p00000") is None


async def test_changing_a_products_image_drops_its_thumbnail_and_other_edits_keep_it(store):
    await store.upsert_many([make_product(i) for i in range(2)])
    await store.put_thumbnails({"p00000": thumbnail(0), "p00001": thumbnail(1)})

    await store.update("p00000", {"image": "images/other.jpg"})
    await store.update("p00001", {"price": 1.0, "image": make_product(1).image})

    assert await store.get_thumbnail("p00000") is None
    assert await store.get_thumbnail("p00001") == thumbnail(1)


@pytest.mark.parametrize("bad", [{"": thumbnail(1)}, {"p00001": b"\xff\xd8\xff"}, {"p00001": Thumbnail(b"", "x")}])
async def test_put_thumbnails_rejects_malformed_ones_and_writes_nothing(store, bad):
    await store.upsert_many([make_product(0), make_product(1)])

    with pytest.raises(InvalidInput):
        await store.put_thumbnails({"p00000": thumbnail(0), **bad})

    assert await store.thumbnail_ids(["p00000", "p00001"]) == set()


async def test_thumbnails_survive_close_and_reopen(reopen):
    store = await reopen()
    await store.upsert_many([make_product(0)])
    await store.put_thumbnails({"p00000": thumbnail(3)})
    await store.close()

    reopened = await reopen()
    try:
        assert await reopened.get_thumbnail("p00000") == thumbnail(3)
    finally:
        await reopened.close()


async def test_list_page_walks_every_product_once_in_id_order_with_its_cursor(store):
    await store.upsert_many([make_product(i) for i in range(7)][::-1])

    pages, after = [], ""
    while True:
        page = await store.list_page(after, 3)
        assert page.total == 7
        pages.append([p.product_id for p in page.products])
        if page.next_after is None:
            break
        after = page.next_after

    assert pages == [["p00000", "p00001", "p00002"], ["p00003", "p00004", "p00005"], ["p00006"]]
    whole = await store.list_page("", 7)
    assert whole.next_after is None and len(whole.products) == 7  # exactly full: no empty page to follow
    assert_same_product(replace(whole.products[2], embedding=None), replace(make_product(2), embedding=None))
    assert all(p.embedding is None for p in whole.products)  # metadata only
    assert (await store.list_page("p00006", 5)).products == []
    assert (await store.list_page("p00002x", 1)).products[0].product_id == "p00003"  # any string is a cursor


async def test_list_page_query_is_a_case_insensitive_literal_substring_of_id_name_or_brand(store):
    await store.upsert_many([
        make_product(0, product_id="SKU-blue-1", name="Oxford Shirt", brand="Acme"),
        make_product(1, product_id="p2", name="플리츠 스커트", brand="무신사"),
        make_product(2, product_id="p3", name="50% off linen", brand="ACME Outlet"),
        make_product(3, product_id="p4", name="a_b tee", brand="Other"),
        make_product(4, product_id="p5", name="axb tee", brand="Other")])

    async def ids(query: str | None, after: str = "") -> tuple[list[str], int]:
        page = await store.list_page(after, 10, query)
        return [p.product_id for p in page.products], page.total

    assert await ids("acme") == (["SKU-blue-1", "p3"], 2)
    assert await ids("SHIRT") == (["SKU-blue-1"], 1)
    assert await ids("sku-BLUE") == (["SKU-blue-1"], 1)
    assert await ids("스커트") == (["p2"], 1)
    assert await ids("50%") == (["p3"], 1)  # % and _ match themselves, not as wildcards
    assert await ids("a_b") == (["p4"], 1)
    assert await ids("nothing like it") == ([], 0)
    assert await ids("  ") == (["SKU-blue-1", "p2", "p3", "p4", "p5"], 5)  # blank: every product
    assert await ids(None) == (["SKU-blue-1", "p2", "p3", "p4", "p5"], 5)
    assert await ids("acme", after="SKU-blue-1") == (["p3"], 2)  # the total ignores the cursor


@pytest.mark.parametrize("limit", [0, -1, 1.5, True])
async def test_list_page_rejects_a_limit_that_is_not_a_positive_integer(store, limit):
    with pytest.raises(InvalidInput):
        await store.list_page("", limit)


async def test_data_and_generation_survive_close_and_reopen(reopen):
    store = await reopen()
    await store.upsert_many([make_product(i) for i in range(3)])
    await store.delete("p00002")
    generation = await store.generation()
    await store.close()

    reopened = await reopen()
    try:
        assert await reopened.count() == 2
        assert_same_product(await reopened.get("p00001"), make_product(1))
        assert await reopened.generation() == generation
        result = await reopened.upsert_many([make_product(0), make_product(1)])
        assert result.unchanged == 2
    finally:
        await reopened.close()


async def test_calls_after_close_raise_store_unavailable(reopen):
    store = await reopen()
    await store.close()
    await store.close()  # idempotent

    with pytest.raises(StoreUnavailable):
        await store.count()
    with pytest.raises(StoreUnavailable):
        await store.ping()


async def test_ping_answers_on_a_reachable_store(store):
    await store.ping()


async def test_concurrent_upserts_from_several_coroutines_stay_consistent(store):
    batches = [[make_product(i) for i in range(start, start + 10)] for start in range(0, 70, 10)]

    async def writer(rotation: int) -> list:
        # writers k and k+3 upsert the same ids at the same moment
        return [await store.upsert_many(batch) for batch in batches[rotation:] + batches[:rotation]]

    results = [r for rs in await asyncio.gather(*(writer(k % 3) for k in range(6))) for r in rs]

    assert await store.count() == 70
    inserted = [i for r in results for i in r.inserted_ids]
    assert sorted(inserted) == [f"p{i:05d}" for i in range(70)]
    stored = await store.get_many([f"p{i:05d}" for i in range(70)], include_embeddings=True)
    for i in range(70):
        assert_same_product(stored[f"p{i:05d}"], make_product(i))


async def test_concurrent_updates_of_different_fields_lose_none(store):
    await store.upsert_many([make_product(0)])

    async def set_prices() -> None:
        for price in range(1, 21):
            await store.update("p00000", {"price": float(price)})

    async def set_names() -> None:
        for n in range(1, 21):
            await store.update("p00000", {"name": f"이름 {n}"})

    await asyncio.gather(set_prices(), set_names())

    stored = await store.get("p00000")
    assert (stored.price, stored.name) == (20.0, "이름 20")
    assert (await store.upsert_many([stored])).unchanged == 1


async def test_concurrent_writers_of_different_versions_leave_one_whole_version(store):
    await store.upsert_many([make_product(i) for i in range(10)])

    async def writer(seed: int) -> None:
        for i in range(10):
            await store.upsert_many([make_product(i, seed=seed)])
            await store.update(f"p{i:05d}", {"price": float(seed)})

    await asyncio.gather(*(writer(seed) for seed in range(1, 5)))

    stored = await store.get_many([f"p{i:05d}" for i in range(10)], include_embeddings=True)
    for i, product in stored.items():
        # whatever interleaving won, re-writing exactly what is stored must be a no-op (the digest is current)
        assert (await store.upsert_many([product])).unchanged == 1
        assert product.embedding.tobytes() in {make_product(int(i[1:]), seed=s).embedding.tobytes()
                                               for s in range(1, 5)}


# ---- backend specifics ----------------------------------------------------------------------------------------


async def test_ping_on_an_unreachable_mongodb_raises_store_unavailable_quickly():
    store = await open_catalog_store("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200")
    started = time.perf_counter()
    try:
        with pytest.raises(StoreUnavailable, match="127.0.0.1:1"):
            await store.ping()
        with pytest.raises(StoreUnavailable):
            await store.upsert_many([make_product(0)])
    finally:
        await store.close()
    assert time.perf_counter() - started < 3


async def test_mongo_credentials_never_appear_in_error_messages():
    store = MongoCatalogStore.connect("mongodb://snap:s3cret@127.0.0.1:1/shop", server_selection_timeout_s=0.2)
    try:
        with pytest.raises(StoreUnavailable) as caught:
            await store.count()
    finally:
        await store.close()
    assert "s3cret" not in str(caught.value) and "127.0.0.1:1/shop" in str(caught.value)


async def test_mongo_store_creates_the_unique_index_and_stores_embeddings_as_float32_vectors():
    client = mongomock.MongoClient()
    store = mongomock_catalog_store(client, database="shop")
    try:
        await store.ping()
        await store.upsert_many([make_product(0)])
    finally:
        await store.close()

    collection = client["shop"]["products"]
    assert collection.index_information()["product_id_unique"]["unique"] is True
    raw = collection.find_one({"product_id": "p00000"})["embedding"]
    assert raw.subtype == 9 and len(raw) == 2 + 4 * DIM


async def test_open_catalog_store_picks_the_backend_from_the_url(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sqlite_store = await open_catalog_store("sqlite:///data/catalog.db")
    mongo_store = await open_catalog_store("mongodb://127.0.0.1:1/shop")  # no I/O until the first call
    try:
        assert isinstance(sqlite_store, SQLiteCatalogStore) and (tmp_path / "data" / "catalog.db").is_file()
        assert isinstance(mongo_store, MongoCatalogStore)
    finally:
        await sqlite_store.close()
        await mongo_store.close()
    for url in ["postgres://db/x", "sqlite://relative.db", "catalog.db", "mongomock:///shop"]:
        with pytest.raises(InvalidInput):
            await open_catalog_store(url)


async def test_the_test_opener_adds_mongomock_urls_and_opens_the_rest_as_production(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sqlite_store = await open_test_store("sqlite:///data/catalog.db")
    mongo_store = await open_test_store("mongomock:///shop")
    try:
        assert isinstance(sqlite_store, SQLiteCatalogStore) and (tmp_path / "data" / "catalog.db").is_file()
        assert isinstance(mongo_store, MongoCatalogStore)
        await mongo_store.upsert_many([make_product(0)])
        assert await mongo_store.count() == 1
    finally:
        await sqlite_store.close()
        await mongo_store.close()


async def test_sqlite_store_uses_the_wal_journal(tmp_path):
    store = await SQLiteCatalogStore.open(tmp_path / "catalog.db")
    await store.close()

    with sqlite3.connect(tmp_path / "catalog.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_opening_a_file_that_is_not_a_sqlite_database_raises_store_unavailable(tmp_path):
    (tmp_path / "catalog.db").write_bytes(b"not a database" * 100)

    with pytest.raises(StoreUnavailable, match="catalog.db"):
        await SQLiteCatalogStore.open(tmp_path / "catalog.db")


async def test_sqlite_store_works_in_memory():
    store = await open_catalog_store("sqlite:///:memory:")
    try:
        await store.upsert_many([make_product(0)])
        assert_same_product(await store.get("p00000"), make_product(0))
    finally:
        await store.close()
