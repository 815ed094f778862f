"""ProductService over a real SQLite store and FAISS index: store and index stay in step, the index is loaded
when current and rebuilt when not, and a catalog embedded with another model is refused with a clear message."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.domain import Product, ProductFilter
from orchestrator.errors import SnapfitError, StoreUnavailable
from orchestrator.index import IndexFileError
from orchestrator.services.products import ProductService
from orchestrator.settings import CatalogSettings, Settings
from orchestrator.stores.factory import open_catalog_store
from tests.support.fakes import DIM, unit_vector


def product(product_id: str, category: str = "top", dim: int = DIM) -> Product:
    return Product(product_id=product_id, name=product_id, image=f"{product_id}.jpg", category=category,
                   embedding=unit_vector(product_id, dim), source_hash=product_id)


@pytest.fixture
def settings(tmp_path):
    return Settings(catalog=CatalogSettings(url=f"sqlite:///{tmp_path / 'catalog.db'}",
                                            index_path=tmp_path / "index"))


async def open_service(settings, dim: int = DIM) -> ProductService:
    return await ProductService.open(await open_catalog_store(settings.catalog.url), settings, embedding_dim=dim)


async def two_replicas(settings, tmp_path) -> tuple[ProductService, ProductService]:
    """Two services on one store, each with its own index folder (two replicas)."""
    other = settings.model_copy(deep=True)
    other.catalog.index_path = tmp_path / "other-index"
    return await open_service(settings), await open_service(other)


async def close_all(*services: ProductService) -> None:
    for service in services:
        await service.close()
        await service.store.close()


async def test_added_products_are_stored_and_searchable(settings):
    service = await open_service(settings)
    result = await service.add([product("a"), product("b", "dress")])
    assert result.inserted == 2 and await service.store.count() == 2 == len(service.index)
    assert service.index.search(unit_vector("b")[None], 1)[0][0][0] == "b"
    await service.close()
    await service.store.close()


async def test_an_update_moves_the_product_between_filters_at_once(settings):
    service = await open_service(settings)
    await service.add([product("a")])
    await service.update("a", {"category": "dress"})
    hits = service.index.search(unit_vector("a")[None], 5, ProductFilter(categories=frozenset({"dress"})))
    assert [h[0] for h in hits[0]] == ["a"]
    await service.store.close()


async def test_a_deleted_product_leaves_store_and_index(settings):
    service = await open_service(settings)
    await service.add([product("a"), product("b")])
    assert await service.delete("a") is True and await service.delete("a") is False
    assert await service.store.get("a") is None and "a" not in service.index
    await service.store.close()


async def test_a_delete_the_store_refuses_keeps_the_product_in_the_index(settings, monkeypatch):
    """A full disk or read-only volume refuses the store's delete after the vector left the index: it goes back."""
    service = await open_service(settings)
    await service.add([product("a"), product("b")])

    async def refuse(product_id):
        raise StoreUnavailable("the SQLite catalog failed: database or disk is full")

    monkeypatch.setattr(service.store, "delete", refuse)
    with pytest.raises(StoreUnavailable):
        await service.delete("a")
    assert "a" in service.index and len(service.index) == 2
    assert service.index.search(unit_vector("a")[None], 1)[0][0][0] == "a"
    await service.store.close()


async def test_an_index_save_the_disk_refuses_is_a_503_and_close_still_finishes(settings, monkeypatch):
    service = await open_service(settings)
    await service.add([product("a")])

    def disk_full(*_):
        raise IndexFileError("could not save the index: [Errno 28] No space left on device")

    monkeypatch.setattr(service.index, "save", disk_full)
    with pytest.raises(StoreUnavailable, match="No space left"):
        await service.save()
    await service.close()  # logs the failed save and lets the shutdown go on
    await service.store.close()


async def test_a_restart_loads_the_saved_index_and_a_stale_one_is_rebuilt(settings):
    service = await open_service(settings)
    await service.add([product("a"), product("b")])
    await service.close()
    await service.store.close()

    reopened = await open_service(settings)
    assert reopened.index_loaded and len(reopened.index) == 2
    await reopened.store.upsert_many([product("c")])  # behind the service's back: the saved index is now stale
    await reopened.store.close()

    rebuilt = await open_service(settings)
    assert len(rebuilt.index) == 3
    await rebuilt.store.close()


async def test_a_catalog_embedded_by_a_model_of_another_width_is_refused_clearly(settings):
    service = await open_service(settings, dim=DIM)
    await service.add([product("a")])
    await service.store.close()
    for path in settings.catalog.index_path.iterdir():
        path.unlink()
    with pytest.raises(SnapfitError, match="do not fit the served CLIP model.*re-import the catalog"):
        await open_service(settings, dim=2 * DIM)


async def test_an_unknown_product_is_not_found(settings):
    from orchestrator.errors import NotFound

    service = await open_service(settings)
    await service.add([product("a")])
    assert (await service.get("a")).product_id == "a"
    with pytest.raises(NotFound, match="no product 'b'"):
        await service.get("b")
    await service.store.close()


async def test_without_the_served_width_the_index_takes_the_catalogs_own(settings):
    service = await open_service(settings, dim=2 * DIM)
    await service.add([product("a", dim=2 * DIM)])
    await service.close()
    for source in ("the saved index", "the stored vectors"):
        reopened = await open_service(settings, dim=None)
        assert reopened.index.dim == 2 * DIM, source
        await reopened.store.close()
        for path in settings.catalog.index_path.iterdir():
            path.unlink()


async def test_an_empty_catalog_without_the_served_width_takes_the_contracts(settings):
    from snapfit import contract

    service = await open_service(settings, dim=None)
    assert service.index.dim == contract.CLIP_EMBEDDING_DIM
    await service.store.close()


async def test_a_second_service_on_the_same_store_follows_its_writes(settings, tmp_path):
    writer, follower = await two_replicas(settings, tmp_path)
    await writer.add([product("a"), product("b", "dress")])
    assert len(follower.index) == 0
    assert await follower.sync() == 2 and len(follower.index) == 2
    await writer.update("b", {"category": "top"})
    await writer.delete("a")
    assert await follower.sync() == 2
    assert "a" not in follower.index
    hits = follower.index.search(unit_vector("b")[None], 5, ProductFilter(categories=frozenset({"top"})))
    assert [h[0] for h in hits[0]] == ["b"]
    assert await follower.sync() == 0 and follower.synced_generation == await writer.store.generation()
    await close_all(writer, follower)


async def test_search_metadata_shows_this_replicas_changes_at_once(settings):
    service = await open_service(settings)
    await service.add([product("a"), product("b")])
    assert (await service.metadata.get_many(["a", "b"]))["a"].name == "a"  # now cached
    await service.update("a", {"name": "Renamed"})
    await service.add([Product(product_id="b", name="Re-imported", image="b2.jpg", embedding=unit_vector("b2"),
                               source_hash="b2")])
    now = await service.metadata.get_many(["a", "b"])
    assert now["a"].name == "Renamed" and now["b"].name == "Re-imported"
    await service.delete("a")
    assert "a" not in await service.metadata.get_many(["a"])
    await service.store.close()


async def test_search_metadata_shows_another_replicas_changes_after_the_next_sync(settings, tmp_path):
    writer, follower = await two_replicas(settings, tmp_path)
    await writer.add([product("a"), product("b")])
    await follower.sync()
    assert sorted(await follower.metadata.get_many(["a", "b"])) == ["a", "b"]  # now cached
    await writer.update("b", {"name": "Renamed"})
    await writer.delete("a")
    await follower.sync()
    assert {pid: p.name for pid, p in (await follower.metadata.get_many(["a", "b"])).items()} == {"b": "Renamed"}
    await close_all(writer, follower)


async def test_a_started_replica_preloads_the_search_metadata_in_pages(settings):
    service = await open_service(settings)
    await service.add([product(f"p{i:02d}") for i in range(25)])
    await service.close()
    await service.store.close()
    reopened = await open_service(settings)
    reads = []
    list_page = reopened.store.list_page

    async def counted(after, limit, query=None):
        reads.append(after)
        return await list_page(after, limit, query)
    reopened.store.list_page = counted
    reopened.preload_metadata(page_size=10)
    await reopened._preloader
    assert len(reopened.metadata) == 25 and reads == ["", "p09", "p19"]
    get_many = reopened.store.get_many
    reopened.store.get_many = None  # a search now needs no store read at all
    assert len(await reopened.metadata.get_many([f"p{i:02d}" for i in range(25)])) == 25
    reopened.store.get_many = get_many
    await reopened.close()
    await reopened.store.close()


async def test_a_preload_the_store_refuses_leaves_searches_reading_the_store(settings, caplog):
    service = await open_service(settings)
    await service.add([product("a")])

    async def down(*args, **kwargs):
        raise StoreUnavailable("the catalog is down")
    service.store.list_page = down
    service.preload_metadata()
    await service._preloader
    assert len(service.metadata) == 0 and "could not preload" in caplog.text
    assert (await service.metadata.get_many(["a"]))["a"].name == "a"
    await service.close()
    await service.store.close()


async def test_a_rebuild_empties_the_search_metadata(settings):
    service = await open_service(settings)
    await service.add([product("a")])
    await service.metadata.get_many(["a"])
    await service.store.update("a", {"name": "Behind its back"})  # a change the index would only see on rebuild
    await service._rebuild()
    assert (await service.metadata.get_many(["a"]))["a"].name == "Behind its back"
    await service.store.close()


async def test_a_restart_catches_up_from_the_change_log_without_a_rebuild(settings, monkeypatch):
    service = await open_service(settings)
    await service.add([product("a"), product("b")])
    await service.close()
    await service.store.upsert_many([product("c")])  # while it was down
    await service.store.delete("a")
    await service.store.close()

    async def no_rebuild(self):
        raise AssertionError("the saved index should have been caught up, not rebuilt")
    monkeypatch.setattr(ProductService, "_rebuild", no_rebuild)
    reopened = await open_service(settings)
    assert reopened.index_loaded and len(reopened.index) == 2 and "b" in reopened.index and "c" in reopened.index
    await reopened.close()
    await reopened.store.close()


async def test_the_follower_applies_changes_in_the_background(settings, tmp_path):
    writer, follower = await two_replicas(settings, tmp_path)
    follower.follow(0.05)
    await writer.add([product("a")])
    for _ in range(100):
        if "a" in follower.index:
            break
        await asyncio.sleep(0.02)
    assert "a" in follower.index
    await close_all(writer, follower)


async def test_a_second_process_with_the_same_settings_keeps_its_index_in_another_folder(settings):
    first, second = await open_service(settings), await open_service(settings)
    assert first.index_path == settings.catalog.index_path
    assert second.index_path.name == f"{settings.catalog.index_path.name}-2"
    await second.close()
    await second.store.close()
    third = await open_service(settings)  # the folder second released is free again
    assert third.index_path == second.index_path
    for service in (first, third):
        await service.close()
        await service.store.close()


async def test_a_sync_never_resurrects_a_product_this_replica_deletes_meanwhile(settings, tmp_path):
    writer, replica = await two_replicas(settings, tmp_path)
    await writer.add([product("x")])
    read_started = asyncio.Event()
    store_get_many = replica.store.get_many

    async def slow_get_many(ids, **options):
        found = await store_get_many(ids, **options)
        read_started.set()
        await asyncio.sleep(0.2)  # the replica's own delete arrives while this read is in hand
        return found
    replica.store.get_many = slow_get_many

    sync = asyncio.create_task(replica.sync())
    await read_started.wait()
    assert await replica.delete("x") is True
    await sync
    assert "x" not in replica.index
    assert await replica.sync() == 1 and "x" not in replica.index
    await close_all(writer, replica)


async def test_the_follower_outlives_a_store_outage_and_catches_up_after_it(settings, tmp_path):
    from orchestrator.errors import StoreUnavailable
    from orchestrator.metrics import INDEX_SYNC_ERRORS

    writer, follower = await two_replicas(settings, tmp_path)
    changes_since = follower.store.changes_since
    outage = {"left": 3}

    async def flaky_changes_since(generation):
        if outage["left"]:
            outage["left"] -= 1
            raise StoreUnavailable("the store is down")
        return await changes_since(generation)
    follower.store.changes_since = flaky_changes_since
    errors_before = INDEX_SYNC_ERRORS._value.get()
    follower.follow(0.02)
    await writer.add([product("a")])
    for _ in range(200):
        if "a" in follower.index:
            break
        await asyncio.sleep(0.02)
    assert "a" in follower.index and outage["left"] == 0
    assert INDEX_SYNC_ERRORS._value.get() == errors_before + 3
    await close_all(writer, follower)
