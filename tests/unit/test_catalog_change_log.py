"""The store's change log (how replicas follow each other's writes) and its import records (how any replica
answers for, and resumes, any import), on every store: SQLite, MongoDB over mongomock, a real MongoDB when
MONGODB_URI is set. Two store objects over the same data play two replicas."""

from __future__ import annotations

import asyncio
import time

import pytest

from orchestrator.stores import mongo_store
from orchestrator.stores.catalog_store import ImportRecord
from orchestrator.stores.mongo_store import MongoCatalogStore
from orchestrator.stores.sqlite_store import SQLiteCatalogStore
from tests.unit.test_catalog_stores import make_product, reopen  # noqa: F401 - reopen is a fixture


async def test_the_log_lists_what_another_replica_wrote_updated_and_deleted(reopen):  # noqa: F811
    writer, follower = await reopen(), await reopen()
    try:
        start = await follower.changes_since(0)
        assert start.complete and start.product_ids == () and start.generation == await writer.generation()

        await writer.upsert_many([make_product(i) for i in range(3)])
        first = await follower.changes_since(start.generation)
        assert first.complete and sorted(first.product_ids) == ["p00000", "p00001", "p00002"]
        assert first.generation == await writer.generation() > start.generation

        await writer.update("p00001", {"price": 1.0})
        await writer.delete("p00002")
        await writer.upsert_many([make_product(0)])  # identical: not a change
        second = await follower.changes_since(first.generation)
        assert sorted(second.product_ids) == ["p00001", "p00002"]
        current = await follower.get_many(list(second.product_ids), include_embeddings=True)
        assert set(current) == {"p00001"} and current["p00001"].price == 1.0

        nothing = await follower.changes_since(second.generation)
        assert nothing.complete and nothing.product_ids == () and nothing.generation == second.generation
    finally:
        await writer.close()
        await follower.close()


async def test_a_generation_ahead_of_the_store_asks_for_a_rebuild(reopen):  # noqa: F811
    store = await reopen()
    try:
        await store.upsert_many([make_product(1)])
        ahead = await store.changes_since(await store.generation() + 5)
        assert not ahead.complete and ahead.generation == await store.generation()
    finally:
        await store.close()


async def test_a_catalog_older_than_the_log_answers_only_from_its_generation_on(reopen, tmp_path):  # noqa: F811
    store = await reopen()
    await store.upsert_many([make_product(i) for i in range(2)])
    await _forget_the_log(store)
    await store.close()
    store = await reopen()
    try:
        now = await store.generation()
        assert not (await store.changes_since(0)).complete
        assert (await store.changes_since(now)).complete
        await store.delete("p00000")
        assert (await store.changes_since(now)).product_ids == ("p00000",)
    finally:
        await store.close()


async def _forget_the_log(store) -> None:
    """Turns the store's data into what a version without the change log left behind."""
    if isinstance(store, SQLiteCatalogStore):
        def drop():
            store._connection.execute("DELETE FROM meta WHERE key = 'changes_from'")
            store._connection.execute("DROP TABLE changes")
        await store._run(drop)
    else:
        await store._meta.update_one({"_id": "generation"}, {"$unset": {"changes_from": "", "writing": ""}})
        await store._changes.delete_many({})


async def test_mongo_holds_its_generation_back_while_a_write_is_in_flight(reopen):  # noqa: F811
    store = await reopen()
    if not isinstance(store, MongoCatalogStore):
        await store.close()
        pytest.skip("SQLite writes are single transactions: nothing is ever half-written")
    try:
        await store.upsert_many([make_product(1)])
        before = await store.changes_since(0)
        # a second process took generation g+1 and logged p00002 but has not written the product yet
        await store._meta.update_one({"_id": "generation"}, {"$inc": {"value": 1},
                                                             "$push": {"writing": {"token": 1, "since": time.time()}}})
        await store._changes.update_one({"_id": "p00002"}, {"$max": {"generation": before.generation + 1}},
                                        upsert=True)
        held = await store.changes_since(before.generation)
        assert held.generation == before.generation and held.product_ids == ("p00002",)
        # that process died: after STALE_WRITE_S its listing no longer holds the log back
        await store._meta.update_one({"_id": "generation"}, {"$set": {
            "writing": [{"token": 1, "since": time.time() - mongo_store.STALE_WRITE_S - 1}]}})
        released = await store.changes_since(before.generation)
        assert released.generation == await store.generation() > before.generation
        await store.upsert_many([make_product(3)])  # the next write also drops the stale listing
        meta = await store._meta.find_one({"_id": "generation"})
        assert meta["writing"] == []
    finally:
        await store.close()


async def test_an_index_rebuilt_while_a_write_is_in_flight_still_gets_that_write(reopen):  # noqa: F811
    """The interleaving: a write takes generation G; a rebuild reads the settled generation and iterates the
    products before the write lands; the write lands. Labelled with the settled generation, the rebuilt index
    finds the product in the change log."""
    store, writer = await reopen(), await reopen()
    try:
        await store.upsert_many([make_product(1)])
        if isinstance(store, MongoCatalogStore):
            landed = asyncio.Event()
            may_land = asyncio.Event()
            original = writer._products.bulk_write

            async def held_bulk_write(*args, **kwargs):
                await may_land.wait()
                result = await original(*args, **kwargs)
                landed.set()
                return result
            writer._products.bulk_write = held_bulk_write
            write = asyncio.create_task(writer.upsert_many([make_product(2)]))
            while len((await store._meta.find_one({"_id": "generation"}))["writing"]) == 0 or any(
                    "generation" not in w for w in (await store._meta.find_one({"_id": "generation"}))["writing"]):
                await asyncio.sleep(0.005)
            label = await store.settled_generation()
            rebuilt = [p.product_id async for batch in store.iter_embeddings() for p in batch.products]
            may_land.set()
            await write
            assert landed.is_set() and label < await store.generation()
        else:  # SQLite: a write is one transaction, so the counter read before the iteration is settled
            label = await store.settled_generation()
            rebuilt = [p.product_id async for batch in store.iter_embeddings() for p in batch.products]
            await writer.upsert_many([make_product(2)])
        assert rebuilt == ["p00001"]
        caught_up = await store.changes_since(label)
        assert caught_up.complete and "p00002" in caught_up.product_ids
        after = await store.changes_since(caught_up.generation)
        assert after.product_ids == () and after.generation == await store.generation()
    finally:
        await store.close()
        await writer.close()


def _record(job_id: str, owner: str, csv: bytes) -> ImportRecord:
    now = time.time()
    return ImportRecord(job_id=job_id, status="running", state={"processed_rows": 0, "errors": []},
                        options={"mapping": None, "base_dir": "/data"}, owner=owner, heartbeat_at=now,
                        created_at=now, csv=csv)


async def test_any_replica_reads_an_import_and_a_stale_one_is_taken_over_with_its_csv(reopen, monkeypatch):  # noqa: F811
    monkeypatch.setattr(mongo_store, "CSV_CHUNK_BYTES", 1000)  # several chunks
    first, second = await reopen(), await reopen()
    csv = "product_id,name,image\n".encode() + b"".join(f"p{i},이름 {i},img{i}.jpg\n".encode() for i in range(300))
    try:
        await first.create_import(_record("job1", "replica-a", csv))
        seen = await second.get_import("job1")
        assert seen.owner == "replica-a" and seen.csv is None and seen.options["base_dir"] == "/data"
        assert await second.get_import("nope") is None

        assert await first.update_import("job1", "replica-a", "running", {"processed_rows": 10, "errors": []})
        assert (await second.get_import("job1")).state["processed_rows"] == 10
        assert not await second.update_import("job1", "replica-b", "running", {"processed_rows": 99})

        assert await second.claim_stale_import("replica-b", lease_s=60) is None  # the lease is fresh
        await asyncio.sleep(0.05)
        claimed = await second.claim_stale_import("replica-b", lease_s=0.01)
        assert claimed.job_id == "job1" and claimed.owner == "replica-b" and claimed.csv == csv
        assert claimed.state["processed_rows"] == 10
        assert await first.claim_stale_import("replica-a", lease_s=60) is None  # just renewed by the claim
        assert not await first.update_import("job1", "replica-a", "running", {"processed_rows": 11})

        assert await second.update_import("job1", "replica-b", "succeeded", {"processed_rows": 300})
        await asyncio.sleep(0.05)
        assert await first.claim_stale_import("replica-a", lease_s=0.01) is None  # finished jobs stay finished
        done = await first.get_import("job1")
        assert done.status == "succeeded" and done.owner == "replica-b"
    finally:
        await first.close()
        await second.close()


async def test_a_failed_import_keeps_its_csv_and_is_reopened_once_a_succeeded_one_never(reopen, monkeypatch):  # noqa: F811
    monkeypatch.setattr(mongo_store, "CSV_CHUNK_BYTES", 1000)  # several chunks
    first, second = await reopen(), await reopen()
    csv = "product_id,name,image\n".encode() + b"".join(f"p{i},이름 {i},img{i}.jpg\n".encode() for i in range(300))
    try:
        await first.create_import(_record("job1", "replica-a", csv))
        assert await second.reopen_import("job1", "replica-b") is None  # running: not failed
        assert await first.update_import("job1", "replica-a", "failed", {"processed_rows": 40, "errors": []})
        reopened = await second.reopen_import("job1", "replica-b")
        assert (reopened.status, reopened.owner, reopened.csv) == ("running", "replica-b", csv)
        assert reopened.state["processed_rows"] == 40 and reopened.options["base_dir"] == "/data"
        assert await first.reopen_import("job1", "replica-a") is None  # taken up once, by one replica
        assert not await first.update_import("job1", "replica-a", "running", {"processed_rows": 41})
        assert await second.update_import("job1", "replica-b", "succeeded", {"processed_rows": 300})
        assert await first.reopen_import("job1", "replica-a") is None
        assert await first.reopen_import("nope", "replica-a") is None
    finally:
        await first.close()
        await second.close()


async def test_finished_imports_past_their_retention_are_forgotten_active_ones_never(reopen):  # noqa: F811
    store = await reopen()
    try:
        for job_id in ("old-done", "new-done", "old-running"):
            await store.create_import(_record(job_id, "replica-a", b"id,image\n1,a.png\n"))
        await store.update_import("old-done", "replica-a", "succeeded", {"processed_rows": 1})
        await asyncio.sleep(0.05)
        cutoff = time.time()
        await store.update_import("new-done", "replica-a", "failed", {"processed_rows": 1})
        assert await store.prune_imports(cutoff) == 1
        assert await store.get_import("old-done") is None
        assert await store.get_import("new-done") is not None and await store.get_import("old-running") is not None
        assert await store.prune_imports(time.time() + 1) == 1  # "old-running" stays: it is still active
        assert await store.get_import("old-running") is not None
    finally:
        await store.close()
