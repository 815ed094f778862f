"""MongoCatalogStore over mongomock, for tests without a MongoDB server (production code knows nothing of it).

mongomock is synchronous; `_ThreadedDatabase` / `_ThreadedCollection` run a sync database and its collections on
one worker thread (mongomock is not thread-safe, and one thread keeps the interleaving at awaits the same as with
a real server) and expose the awaitable calls MongoCatalogStore makes of pymongo's AsyncDatabase.

    store = mongomock_catalog_store()                      # its own in-process server, closed with the store
    store = mongomock_catalog_store(client, database="x")  # share one client between stores
    store = await open_test_store("mongomock://localhost/x")   # URLs: mongomock:// here, the rest as in production
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from pymongo import UpdateOne
from pymongo.results import BulkWriteResult

from orchestrator.stores.catalog_store import DEFAULT_MONGO_DATABASE, CatalogStore
from orchestrator.stores.factory import open_catalog_store
from orchestrator.stores.mongo_store import MongoCatalogStore

SCHEME = "mongomock://"


def mongomock_catalog_store(client: Any = None, *, database: str = DEFAULT_MONGO_DATABASE) -> MongoCatalogStore:
    """A store over mongomock. Pass `client` to share one in-process server between stores; the store then
    leaves it open on close()."""
    import mongomock

    owned = client is None
    client = mongomock.MongoClient() if owned else client
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mongomock")

    async def close() -> None:
        executor.shutdown(wait=True)
        if owned:
            client.close()

    return MongoCatalogStore(_ThreadedDatabase(client[database], executor), where=f"mongomock/{database}",
                             close=close)


async def open_test_store(url: str) -> CatalogStore:
    """`mongomock://[host]/DBNAME` is a mongomock store of its own; any other URL opens as in production."""
    if url.lower().startswith(SCHEME):
        database = url[len(SCHEME):].partition("/")[2].partition("?")[0]
        return mongomock_catalog_store(database=database or DEFAULT_MONGO_DATABASE)
    return await open_catalog_store(url)


class _ThreadedDatabase:
    def __init__(self, database: Any, executor: ThreadPoolExecutor):
        self._database = database
        self._executor = executor
        self.name = database.name

    def __getitem__(self, name: str) -> _ThreadedCollection:
        return _ThreadedCollection(self._database[name], self._executor)

    async def command(self, name: str) -> dict:
        return await _on(self._executor, self._database.command, name)


class _ThreadedCollection:
    """The awaitable subset of AsyncCollection that MongoCatalogStore uses."""

    def __init__(self, collection: Any, executor: ThreadPoolExecutor):
        self._collection = collection
        self._executor = executor

    def find(self, *args: Any, **kwargs: Any) -> _ListCursor:
        return _ListCursor(lambda: list(self._collection.find(*args, **kwargs)), self._executor)

    async def find_one(self, *args: Any, **kwargs: Any) -> dict | None:
        return await _on(self._executor, self._collection.find_one, *args, **kwargs)

    async def update_one(self, *args: Any, **kwargs: Any) -> Any:
        return await _on(self._executor, self._collection.update_one, *args, **kwargs)

    async def delete_one(self, *args: Any, **kwargs: Any) -> Any:
        return await _on(self._executor, self._collection.delete_one, *args, **kwargs)

    async def delete_many(self, *args: Any, **kwargs: Any) -> Any:
        return await _on(self._executor, self._collection.delete_many, *args, **kwargs)

    async def count_documents(self, *args: Any, **kwargs: Any) -> int:
        return await _on(self._executor, self._collection.count_documents, *args, **kwargs)

    async def create_index(self, *args: Any, **kwargs: Any) -> str:
        return await _on(self._executor, self._collection.create_index, *args, **kwargs)

    async def find_one_and_update(self, *args: Any, **kwargs: Any) -> dict | None:
        return await _on(self._executor, self._collection.find_one_and_update, *args, **kwargs)

    async def bulk_write(self, requests: list[UpdateOne], ordered: bool = True) -> BulkWriteResult:
        """UpdateOne requests only, each applied with update_one. mongomock 4.3's own bulk_write rejects pymongo
        >= 4.10's UpdateOne (it passes a `sort` option); pymongo has no public accessor for a request's filter
        and update, so its `_add_to_bulk` hook hands them over (test code only)."""
        recorded: list[tuple[dict, dict, bool]] = []
        for request in requests:
            request._add_to_bulk(_UpdateRecorder(recorded))
        return await _on(self._executor, self._apply, recorded)

    def _apply(self, recorded: list[tuple[dict, dict, bool]]) -> BulkWriteResult:
        upserted, matched, modified = [], 0, 0
        for index, (selector, update, upsert) in enumerate(recorded):
            result = self._collection.update_one(selector, update, upsert=upsert)
            matched += result.matched_count
            modified += result.modified_count
            if result.upserted_id is not None:
                upserted.append({"index": index, "_id": result.upserted_id})
        return BulkWriteResult({"nMatched": matched, "nModified": modified, "nUpserted": len(upserted),
                                "upserted": upserted, "nInserted": 0, "nRemoved": 0}, acknowledged=True)


class _UpdateRecorder:
    def __init__(self, recorded: list[tuple[dict, dict, bool]]):
        self._recorded = recorded

    def add_update(self, selector: dict, update: dict, multi: bool, upsert: bool, **_options: Any) -> None:
        if multi:
            raise NotImplementedError("the mongomock adapter applies UpdateOne only")
        self._recorded.append((selector, update, upsert))


class _ListCursor:
    """What the store needs of AsyncCursor: `await cursor.to_list()`."""

    def __init__(self, fetch: Callable[[], list[dict]], executor: ThreadPoolExecutor):
        self._fetch = fetch
        self._executor = executor

    async def to_list(self, length: int | None = None) -> list[dict]:
        docs = await _on(self._executor, self._fetch)
        return docs if length is None else docs[:length]


async def _on(executor: ThreadPoolExecutor, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(executor, partial(fn, *args, **kwargs))
