"""SQLiteCatalogStore: the embedded catalog (one file, no server), for `make demo` and single-machine use.

One stdlib sqlite3 connection, used only from one dedicated worker thread: every call is queued on that
thread, so concurrent coroutines never share the connection at the same time and the event loop never blocks.
WAL journal, so another process (e.g. a second reader) can read while we write; busy_timeout for its writes.
Each write is one `BEGIN IMMEDIATE` transaction that also bumps the generation counter, so a change and its
counter bump are atomic.

Stored form: one row per product, tags as a JSON array, embedding as a BLOB of D little-endian float32,
`digest` = content_digest() to tell unchanged re-imports apart without reading the embeddings back.
Thumbnails in their own table (JPEG bytes + ETag by product id), created on open for catalogs older than it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from orchestrator.domain import Product, Thumbnail
from orchestrator.errors import NotFound, StoreUnavailable
from orchestrator.stores.catalog_store import (
    IMPORT_ACTIVE,
    IMPORT_KEEPS_CSV,
    METADATA_FIELDS,
    ChangeSet,
    EmbeddingBatch,
    ImportRecord,
    ProductPage,
    UnresumableImport,
    UpsertResult,
    content_digest,
    embedding_from_bytes,
    embedding_to_bytes,
    paged_embeddings,
    validate_changes,
    validated_page,
    validated_products,
    validated_thumbnails,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    product_id        TEXT PRIMARY KEY NOT NULL,
    name              TEXT NOT NULL,
    image             TEXT NOT NULL,
    link              TEXT NOT NULL,
    brand             TEXT NOT NULL,
    price             REAL,
    tags              TEXT NOT NULL,
    category          TEXT NOT NULL,
    tryon_ready       INTEGER NOT NULL,
    tryon_probability REAL,
    source_hash       TEXT NOT NULL,
    updated_at        REAL NOT NULL,
    embedding         BLOB,
    digest            TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', 1), ('generation', 0);
CREATE TABLE IF NOT EXISTS changes (
    product_id TEXT PRIMARY KEY NOT NULL,
    generation INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_by_generation ON changes (generation);
-- a catalog written before the change log existed: the log answers only from its current generation on
INSERT OR IGNORE INTO meta (key, value) SELECT 'changes_from', value FROM meta WHERE key = 'generation';
CREATE TABLE IF NOT EXISTS imports (
    job_id       TEXT PRIMARY KEY NOT NULL,
    status       TEXT NOT NULL,
    state        TEXT NOT NULL,
    options      TEXT NOT NULL,
    owner        TEXT NOT NULL,
    heartbeat_at REAL NOT NULL,
    created_at   REAL NOT NULL,
    csv          BLOB
);
CREATE TABLE IF NOT EXISTS thumbnails (
    product_id TEXT PRIMARY KEY NOT NULL,
    data       BLOB NOT NULL,
    etag       TEXT NOT NULL
);
"""
_COLUMNS = (*METADATA_FIELDS, "embedding", "digest")
_UPSERT = (f"INSERT INTO products ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
           f"ON CONFLICT(product_id) DO UPDATE SET "
           + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c != "product_id"))
_METADATA_SELECT = ", ".join(METADATA_FIELDS)
# stay well under SQLite's limit on bound parameters per statement
_MAX_PARAMS = 500
# a list_page query: LIKE folds ASCII case; the query's own % and _ are escaped to match literally
_MATCHES_QUERY = ("(product_id LIKE :pattern ESCAPE '\\' OR name LIKE :pattern ESCAPE '\\' "
                  "OR brand LIKE :pattern ESCAPE '\\')")


class SQLiteCatalogStore:
    """The CatalogStore protocol on one SQLite file. Build with `await SQLiteCatalogStore.open(path)`."""

    def __init__(self, connection: sqlite3.Connection, executor: ThreadPoolExecutor, path: str):
        self._connection = connection
        self._executor = executor
        self._path = path
        self._closed = False

    @classmethod
    async def open(cls, path: str | Path, *, busy_timeout_s: float = 5.0) -> SQLiteCatalogStore:
        """Opens (creating the file, its folder and the schema if needed) the catalog at `path` (":memory:" too)."""
        path = str(path)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-catalog")
        try:
            connection = await asyncio.get_running_loop().run_in_executor(
                executor, partial(_connect, path, busy_timeout_s))
        except sqlite3.Error as e:
            executor.shutdown(wait=False)
            raise StoreUnavailable(f"cannot open the SQLite catalog at {path}: {e}") from e
        except OSError as e:
            executor.shutdown(wait=False)
            raise StoreUnavailable(f"cannot create the folder of the SQLite catalog at {path}: {e}") from e
        return cls(connection, executor, path)

    async def upsert_many(self, products: list[Product]) -> UpsertResult:
        products = validated_products(products)
        if not products:
            return UpsertResult()
        return await self._run(self._upsert_sync, products)

    async def get(self, product_id: str) -> Product | None:
        return (await self.get_many([product_id], include_embeddings=True)).get(product_id)

    async def get_many(self, product_ids: list[str], *, include_embeddings: bool = False) -> dict[str, Product]:
        ids = list(dict.fromkeys(product_ids))
        if not ids:
            return {}
        return await self._run(self._get_many_sync, ids, include_embeddings)

    async def update(self, product_id: str, changes: dict[str, Any]) -> Product:
        changes = validate_changes(changes)
        return await self._run(self._update_sync, product_id, changes)

    async def delete(self, product_id: str) -> bool:
        return await self._run(self._delete_sync, product_id)

    async def count(self) -> int:
        return await self._run(lambda: self._connection.execute("SELECT COUNT(*) FROM products").fetchone()[0])

    async def list_page(self, after: str, limit: int, query: str | None = None) -> ProductPage:
        return await self._run(self._list_page_sync, *validated_page(after, limit, query))

    async def put_thumbnails(self, thumbnails: dict[str, Thumbnail]) -> int:
        thumbnails = validated_thumbnails(thumbnails)
        if not thumbnails:
            return 0
        return await self._run(self._put_thumbnails_sync, thumbnails)

    async def get_thumbnail(self, product_id: str) -> Thumbnail | None:
        row = await self._run(lambda: self._connection.execute(
            "SELECT data, etag FROM thumbnails WHERE product_id = ?", (product_id,)).fetchone())
        return None if row is None else Thumbnail(data=bytes(row[0]), etag=row[1])

    async def thumbnail_ids(self, product_ids: list[str]) -> set[str]:
        ids = list(dict.fromkeys(product_ids))
        if not ids:
            return set()
        return await self._run(self._thumbnail_ids_sync, ids)

    async def ping(self) -> None:
        await self._run(lambda: self._connection.execute("SELECT 1").fetchone())

    async def generation(self) -> int:
        return await self._run(self._generation_sync)

    async def settled_generation(self) -> int:
        return await self.generation()  # a write and its counter bump commit together

    def iter_embeddings(self, batch_size: int = 1024) -> AsyncIterator[EmbeddingBatch]:
        return paged_embeddings(self._read_page, batch_size)

    async def changes_since(self, generation: int) -> ChangeSet:
        return await self._run(self._changes_since_sync, generation)

    async def create_import(self, record: ImportRecord) -> None:
        await self._run(self._create_import_sync, record)

    async def update_import(self, job_id: str, owner: str, status: str, state: dict[str, Any]) -> bool:
        return await self._run(self._update_import_sync, job_id, owner, status, json.dumps(state))

    async def get_import(self, job_id: str) -> ImportRecord | None:
        return await self._run(self._get_import_sync, job_id)

    async def claim_stale_import(self, owner: str, lease_s: float) -> ImportRecord | None:
        return await self._run(self._claim_stale_import_sync, owner, lease_s)

    async def reopen_import(self, job_id: str, owner: str) -> ImportRecord | None:
        return await self._run(self._reopen_import_sync, job_id, owner)

    async def prune_imports(self, finished_before: float) -> int:
        return await self._run(self._prune_imports_sync, finished_before)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._connection.close)
        finally:
            self._executor.shutdown(wait=False)

    # ---- everything below runs on the store's thread ------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise StoreUnavailable("the SQLite catalog is closed")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, partial(fn, *args))
        except sqlite3.Error as e:
            raise StoreUnavailable(f"the SQLite catalog at {self._path} failed: {e}") from e

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; IMMEDIATE takes the write lock up front, so the read-compare-write inside is
        atomic even against another process."""
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def _bump_generation(self, connection: sqlite3.Connection, product_ids: list[str]) -> None:
        """The next generation, with every changed product logged at it (same transaction as the change)."""
        generation = connection.execute(
            "UPDATE meta SET value = value + 1 WHERE key = 'generation' RETURNING value").fetchone()[0]
        connection.executemany("INSERT INTO changes (product_id, generation) VALUES (?, ?) "
                               "ON CONFLICT(product_id) DO UPDATE SET generation = excluded.generation",
                               [(product_id, generation) for product_id in product_ids])

    def _changes_since_sync(self, generation: int) -> ChangeSet:
        # one read transaction: the counter and the log come from the same snapshot
        connection = self._connection
        connection.execute("BEGIN")
        try:
            meta = dict(connection.execute("SELECT key, value FROM meta WHERE key IN ('generation', 'changes_from')"))
            current = meta["generation"]
            if generation < meta["changes_from"] or generation > current:
                return ChangeSet(current, complete=False)
            ids = [row[0] for row in connection.execute(
                "SELECT product_id FROM changes WHERE generation > ?", (generation,))]
        finally:
            connection.execute("COMMIT")
        return ChangeSet(current, tuple(ids))

    def _create_import_sync(self, record: ImportRecord) -> None:
        with self._write() as connection:
            connection.execute(
                "INSERT INTO imports (job_id, status, state, options, owner, heartbeat_at, created_at, csv) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (record.job_id, record.status, json.dumps(record.state), json.dumps(record.options), record.owner,
                 record.heartbeat_at, record.created_at, record.csv))

    def _update_import_sync(self, job_id: str, owner: str, status: str, state: str) -> bool:
        drop_csv = status not in IMPORT_KEEPS_CSV
        with self._write() as connection:
            return connection.execute(
                "UPDATE imports SET status = ?, state = ?, heartbeat_at = ?"
                + (", csv = NULL" if drop_csv else "") + " WHERE job_id = ? AND owner = ?",
                (status, state, time.time(), job_id, owner)).rowcount > 0

    def _get_import_sync(self, job_id: str) -> ImportRecord | None:
        row = self._connection.execute(f"SELECT {_IMPORT_COLUMNS} FROM imports WHERE job_id = ?",
                                       (job_id,)).fetchone()
        return None if row is None else _import_record(row)

    def _prune_imports_sync(self, finished_before: float) -> int:
        with self._write() as connection:
            return connection.execute(
                f"DELETE FROM imports WHERE status NOT IN ({', '.join('?' * len(IMPORT_ACTIVE))}) "
                "AND heartbeat_at < ?", (*IMPORT_ACTIVE, finished_before)).rowcount

    def _claim_stale_import_sync(self, owner: str, lease_s: float) -> ImportRecord | None:
        now = time.time()
        with self._write() as connection:
            row = connection.execute(
                f"SELECT {_IMPORT_COLUMNS}, csv FROM imports WHERE status IN ({', '.join('?' * len(IMPORT_ACTIVE))}) "
                "AND heartbeat_at < ? ORDER BY created_at LIMIT 1", (*IMPORT_ACTIVE, now - lease_s)).fetchone()
            if row is None:
                return None
            connection.execute("UPDATE imports SET owner = ?, heartbeat_at = ? WHERE job_id = ?",
                               (owner, now, row[0]))
        record = _import_record(row[:-1], csv=row[-1])
        record.owner, record.heartbeat_at = owner, now
        return record

    def _reopen_import_sync(self, job_id: str, owner: str) -> ImportRecord | None:
        now = time.time()
        with self._write() as connection:
            row = connection.execute(f"SELECT {_IMPORT_COLUMNS}, csv FROM imports WHERE job_id = ? AND status = ?",
                                     (job_id, "failed")).fetchone()
            if row is None:
                return None
            if row[-1] is None:
                raise UnresumableImport(job_id, "its stored CSV is gone")
            connection.execute("UPDATE imports SET status = ?, owner = ?, heartbeat_at = ? WHERE job_id = ?",
                               ("running", owner, now, job_id))
        record = _import_record(row[:-1], csv=row[-1])
        record.status, record.owner, record.heartbeat_at = "running", owner, now
        return record

    def _generation_sync(self) -> int:
        return self._connection.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0]

    def _upsert_sync(self, products: list[Product]) -> UpsertResult:
        now = time.time()
        inserted, updated, unchanged, rows = [], [], [], []
        with self._write() as connection:
            stored = self._digests(connection, [p.product_id for p in products])
            for product in products:
                digest = content_digest(product)
                if stored.get(product.product_id) == digest:
                    unchanged.append(product.product_id)
                    continue
                (updated if product.product_id in stored else inserted).append(product.product_id)
                rows.append(_row(replace(product, updated_at=now), digest))
            if rows:
                connection.executemany(_UPSERT, rows)
                self._bump_generation(connection, inserted + updated)
        return UpsertResult(tuple(inserted), tuple(updated), tuple(unchanged))

    def _digests(self, connection: sqlite3.Connection, ids: list[str]) -> dict[str, str]:
        found = {}
        for start in range(0, len(ids), _MAX_PARAMS):
            chunk = ids[start:start + _MAX_PARAMS]
            found.update(connection.execute(
                f"SELECT product_id, digest FROM products WHERE product_id IN ({', '.join('?' * len(chunk))})",
                chunk))
        return found

    def _get_many_sync(self, ids: list[str], include_embeddings: bool) -> dict[str, Product]:
        columns = _METADATA_SELECT + (", embedding" if include_embeddings else "")
        found = {}
        for start in range(0, len(ids), _MAX_PARAMS):
            chunk = ids[start:start + _MAX_PARAMS]
            cursor = self._connection.execute(
                f"SELECT {columns} FROM products WHERE product_id IN ({', '.join('?' * len(chunk))})", chunk)
            for row in cursor:
                product = _product(row)
                found[product.product_id] = product
        return found

    def _update_sync(self, product_id: str, changes: dict[str, Any]) -> Product:
        with self._write() as connection:
            row = connection.execute(f"SELECT {_METADATA_SELECT}, embedding, digest FROM products "
                                     "WHERE product_id = ?", (product_id,)).fetchone()
            if row is None:
                raise NotFound(f"no product with id {product_id!r}")
            current = _product(row[:-1])
            changed = replace(current, **changes)
            digest = content_digest(changed)
            if digest == row[-1]:
                return current
            changed.updated_at = time.time()
            connection.execute(_UPSERT, _row(changed, digest))
            if changed.image != current.image:  # the thumbnail showed the old photo
                connection.execute("DELETE FROM thumbnails WHERE product_id = ?", (product_id,))
            self._bump_generation(connection, [product_id])
        return changed

    def _delete_sync(self, product_id: str) -> bool:
        with self._write() as connection:
            deleted = connection.execute("DELETE FROM products WHERE product_id = ?", (product_id,)).rowcount > 0
            connection.execute("DELETE FROM thumbnails WHERE product_id = ?", (product_id,))
            if deleted:
                self._bump_generation(connection, [product_id])
        return deleted

    def _list_page_sync(self, after: str, limit: int, query: str | None) -> ProductPage:
        params = {"after": after, "limit": limit + 1}
        matches = ""
        if query is not None:
            escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params["pattern"] = f"%{escaped}%"
            matches = _MATCHES_QUERY
        # one read transaction: the page and the total come from the same snapshot
        connection = self._connection
        connection.execute("BEGIN")
        try:
            rows = connection.execute(
                f"SELECT {_METADATA_SELECT} FROM products WHERE product_id > :after "
                f"{'AND ' + matches if matches else ''} ORDER BY product_id LIMIT :limit", params).fetchall()
            total = connection.execute(
                f"SELECT COUNT(*) FROM products {'WHERE ' + matches if matches else ''}", params).fetchone()[0]
        finally:
            connection.execute("COMMIT")
        products = [_product(row) for row in rows[:limit]]
        return ProductPage(products, products[-1].product_id if len(rows) > limit else None, total)

    def _put_thumbnails_sync(self, thumbnails: dict[str, Thumbnail]) -> int:
        with self._write() as connection:
            present = self._digests(connection, list(thumbnails))
            rows = [(product_id, thumbnail.data, thumbnail.etag) for product_id, thumbnail in thumbnails.items()
                    if product_id in present]
            connection.executemany("INSERT INTO thumbnails (product_id, data, etag) VALUES (?, ?, ?) "
                                   "ON CONFLICT(product_id) DO UPDATE SET data = excluded.data, etag = excluded.etag",
                                   rows)
        return len(rows)

    def _thumbnail_ids_sync(self, ids: list[str]) -> set[str]:
        found = set()
        for start in range(0, len(ids), _MAX_PARAMS):
            chunk = ids[start:start + _MAX_PARAMS]
            found.update(row[0] for row in self._connection.execute(
                f"SELECT product_id FROM thumbnails WHERE product_id IN ({', '.join('?' * len(chunk))})", chunk))
        return found

    async def _read_page(self, after_id: str, limit: int) -> list[Product]:
        return await self._run(self._read_page_sync, after_id, limit)

    def _read_page_sync(self, after_id: str, limit: int) -> list[Product]:
        cursor = self._connection.execute(
            f"SELECT {_METADATA_SELECT}, embedding FROM products WHERE product_id > ? AND embedding IS NOT NULL "
            "ORDER BY product_id LIMIT ?", (after_id, limit))
        return [_product(row) for row in cursor]


def _connect(path: str, busy_timeout_s: float) -> sqlite3.Connection:
    if path != ":memory:" and _on_read_only_volume(Path(path)):
        # served as it is: reads and searches go on, every write fails (503 store_unavailable). immutable=1,
        # because a WAL database whose -shm file is gone cannot be opened read-only otherwise; nothing can
        # change the file while its volume is read-only.
        log.warning("the SQLite catalog at %s is on a read-only volume: serving it read-only, writes answer 503",
                    path)
        return sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro&immutable=1", uri=True,
                               isolation_level=None, check_same_thread=False, timeout=busy_timeout_s)
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: we issue BEGIN/COMMIT ourselves; check_same_thread=False: the connection is created
    # here but only ever used on the store's single worker thread (this one)
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; WAL keeps the file consistent
        connection.executescript(_SCHEMA)
    except sqlite3.Error:
        connection.close()
        raise
    return connection


def _on_read_only_volume(path: Path) -> bool:
    """Whether the nearest existing folder of `path` is on a filesystem mounted read-only."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)


_IMPORT_COLUMNS = "job_id, status, state, options, owner, heartbeat_at, created_at"


def _import_record(row: tuple, csv: bytes | None = None) -> ImportRecord:
    job_id, status, state, options, owner, heartbeat_at, created_at = row
    return ImportRecord(job_id=job_id, status=status, state=json.loads(state), options=json.loads(options),
                        owner=owner, heartbeat_at=heartbeat_at, created_at=created_at, csv=csv)


def _row(product: Product, digest: str) -> tuple:
    """Product -> values in _COLUMNS order."""
    values = {name: getattr(product, name) for name in METADATA_FIELDS}
    values["tags"] = json.dumps(product.tags, ensure_ascii=False)
    values["tryon_ready"] = int(product.tryon_ready)
    embedding = None if product.embedding is None else embedding_to_bytes(product.embedding)
    return (*values.values(), embedding, digest)


def _product(row: tuple) -> Product:
    """A row of METADATA_FIELDS (+ embedding) -> Product."""
    values = dict(zip(METADATA_FIELDS, row))
    values["tags"] = json.loads(values["tags"])
    values["tryon_ready"] = bool(values["tryon_ready"])
    if len(row) > len(METADATA_FIELDS) and row[len(METADATA_FIELDS)] is not None:
        values["embedding"] = embedding_from_bytes(row[len(METADATA_FIELDS)])
    return Product(**values)
