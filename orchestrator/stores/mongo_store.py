"""MongoCatalogStore: the production catalog on MongoDB through pymongo's async API (AsyncMongoClient).

Document per product in `products` (the `_id` is the server's ObjectId; `product_id` carries a unique index
created before the first operation), plus one counter document in `catalog_meta` for `generation()`.

Embedding: BSON Binary subtype 9 (the BSON "vector" type) holding a float32 vector, header b"\\x27\\x00" then
D little-endian float32. Against an array of doubles it is exact, 4 bytes a dimension instead of ~13 (a
512-D CLIP vector is 2 KB, not 6.5 KB), decodes with one np.frombuffer, and Atlas Vector Search can index it.

Without multi-document transactions a bulk write and its counter bump cannot be atomic, so writes bump the
counter before (a crash mid-write still reads as a change) and after (a rebuild that read the counter while
the write was in flight reads as stale). The counter may over-count; it never misses a change.

Change log (`catalog_changes`, one document per product id: the generation of its latest change): a write
takes its generation G with the first bump, which also lists it in the counter document's `writing` array
(the next update adds G to that entry), logs its products at G, writes them, and leaves `writing` with the
second bump. The settled generation is the counter when nothing is listed, else one below the lowest listed
G: every change up to it is readable. `changes_since` returns it (never less than the caller's), so a caller
re-reads what is still in flight on its next call. A write listed longer than STALE_WRITE_S (its process died)
no longer holds the log back.

Import jobs: `catalog_imports` (one document per job), their CSV in `catalog_import_chunks` (documents stay
under MongoDB's 16 MB limit) until the job finishes.
Thumbnails: `thumbnails`, one document per product (`_id` = product_id, `data` the JPEG, `etag`).
`update()` is one atomic $set of the changed fields (concurrent updates of other fields are never lost); the
document's `revision` counter lets it refill `digest` only if nobody wrote in between.

The store talks to AsyncMongoClient's own database and collections. Tests also run it over an in-process
stand-in of their own (tests/support/) that offers the same awaitable calls.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
from bson import ObjectId
from bson.binary import Binary
from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import ConnectionFailure, DuplicateKeyError, PyMongoError

from orchestrator.domain import Product, Thumbnail
from orchestrator.errors import NotFound, SnapfitError, StoreUnavailable
from orchestrator.stores.catalog_store import (
    DEFAULT_MONGO_DATABASE,
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
    paged_embeddings,
    validate_changes,
    validated_page,
    validated_products,
    validated_thumbnails,
)

_VECTOR_SUBTYPE = 9
_FLOAT32_HEADER = b"\x27\x00"  # BSON vector dtype FLOAT32, padding 0
_METADATA_PROJECTION = {"_id": 0, **{name: 1 for name in METADATA_FIELDS}}
STALE_WRITE_S = 300.0  # a write still listed after this long belongs to a process that died mid-write
SETTLE_ATTEMPTS = 100
CSV_CHUNK_BYTES = 8 * 1024 * 1024
_IMPORT_PROJECTION = {"_id": 0, "job_id": 1, "status": 1, "state": 1, "options": 1, "owner": 1,
                      "heartbeat_at": 1, "created_at": 1}


class MongoCatalogStore:
    """The CatalogStore protocol on a MongoDB database. Build with `connect(url)`.

    `database` is an AsyncDatabase (or anything offering the same awaitable calls); `close` releases what the
    store owns.
    """

    def __init__(self, database: Any, *, where: str, close: Callable[[], Awaitable[None]]):
        self._database = database
        self._products = database["products"]
        self._meta = database["catalog_meta"]
        self._changes = database["catalog_changes"]
        self._imports = database["catalog_imports"]
        self._import_chunks = database["catalog_import_chunks"]
        self._thumbnails = database["thumbnails"]
        self._where = where
        self._close = close
        self._closed = False
        self._indexed = False
        self._meta_ready = False
        self._index_lock = asyncio.Lock()

    @classmethod
    def connect(cls, url: str, *, server_selection_timeout_s: float = 5.0) -> MongoCatalogStore:
        """A store on the database the URL's path names (default "snapfit"). No I/O until the first call.

        server_selection_timeout_s bounds how long a call waits for an unreachable server before
        StoreUnavailable; a serverSelectionTimeoutMS in the URL takes precedence.
        """
        from pymongo import AsyncMongoClient

        options = {key.lower() for key in parse_qs(urlsplit(url).query)}
        timeouts = {} if "serverselectiontimeoutms" in options else {
            "serverSelectionTimeoutMS": int(server_selection_timeout_s * 1000)}
        where = f"MongoDB at {_host_part(url)}"
        try:
            client = AsyncMongoClient(url, **timeouts)
            database = client.get_default_database(DEFAULT_MONGO_DATABASE)
        except (PyMongoError, ValueError, TypeError) as e:
            raise StoreUnavailable(f"invalid MongoDB catalog URL for {where}: {e}") from e
        return cls(database, where=f"{where}/{database.name}", close=client.close)

    async def upsert_many(self, products: list[Product]) -> UpsertResult:
        products = validated_products(products)
        if not products:
            return UpsertResult()
        ids = [p.product_id for p in products]
        with self._driver_errors("upsert"):
            await self._ready()
            cursor = self._products.find({"product_id": {"$in": ids}}, {"_id": 0, "product_id": 1, "digest": 1})
            stored = {doc["product_id"]: doc["digest"] for doc in await cursor.to_list()}
            now = time.time()
            digests = {p.product_id: content_digest(p) for p in products}
            changed = [p for p in products if stored.get(p.product_id) != digests[p.product_id]]
            if not changed:
                return UpsertResult(unchanged_ids=tuple(ids))
            writes = [UpdateOne({"product_id": p.product_id},
                                {"$set": _document(replace(p, updated_at=now), digests[p.product_id]),
                                 "$inc": {"revision": 1}}, upsert=True)
                      for p in changed]
            async with self._logged_write([p.product_id for p in changed]):
                result = await self._products.bulk_write(writes, ordered=False)
        # the server says which writes inserted: exact even when another writer raced us to the same ids
        inserted = {changed[i].product_id for i in result.upserted_ids}
        return UpsertResult(
            inserted_ids=tuple(p.product_id for p in changed if p.product_id in inserted),
            updated_ids=tuple(p.product_id for p in changed if p.product_id not in inserted),
            unchanged_ids=tuple(i for i in ids if stored.get(i) == digests[i]))

    async def get(self, product_id: str) -> Product | None:
        return (await self.get_many([product_id], include_embeddings=True)).get(product_id)

    async def get_many(self, product_ids: list[str], *, include_embeddings: bool = False) -> dict[str, Product]:
        ids = list(dict.fromkeys(product_ids))
        if not ids:
            return {}
        projection = {**_METADATA_PROJECTION, "embedding": 1} if include_embeddings else _METADATA_PROJECTION
        with self._driver_errors("get"):
            await self._ready()
            docs = await self._products.find({"product_id": {"$in": ids}}, projection).to_list()
        return {doc["product_id"]: _product(doc) for doc in docs}

    async def update(self, product_id: str, changes: dict[str, Any]) -> Product:
        changes = validate_changes(changes)
        with self._driver_errors("update"):
            await self._ready()
            doc = await self._products.find_one({"product_id": product_id}, {"_id": 0})
            if doc is None:
                raise NotFound(f"no product with id {product_id!r}")
            before_image = doc["image"]
            if content_digest(replace(_product(doc), **changes)) == doc["digest"]:
                return _product(doc)
            # one atomic $set of the changed fields, so concurrent updates of other fields are never lost; the
            # digest is blanked with it and refilled only if nobody wrote since (revision), so a stored digest
            # always describes the stored content (a blank one just makes the next upsert rewrite the product)
            encoded = {k: v for k, v in _document(replace(_product(doc), **changes), "").items() if k in changes}
            async with self._logged_write([product_id]):
                doc = await self._products.find_one_and_update(
                    {"product_id": product_id},
                    {"$set": {**encoded, "updated_at": time.time(), "digest": ""}, "$inc": {"revision": 1}},
                    projection={"_id": 0}, return_document=ReturnDocument.AFTER)
            if doc is None:
                raise NotFound(f"no product with id {product_id!r}")
            product = _product(doc)
            await self._products.update_one({"product_id": product_id, "revision": doc["revision"]},
                                            {"$set": {"digest": content_digest(product)}})
            if "image" in changes and changes["image"] != before_image:  # the thumbnail showed the old photo
                await self._thumbnails.delete_one({"_id": product_id})
        return product

    async def delete(self, product_id: str) -> bool:
        with self._driver_errors("delete"):
            await self._ready()
            async with self._logged_write([product_id]):
                deleted = (await self._products.delete_one({"product_id": product_id})).deleted_count > 0
            await self._thumbnails.delete_one({"_id": product_id})
        return deleted

    async def count(self) -> int:
        with self._driver_errors("count"):
            await self._ready()
            return await self._products.count_documents({})

    async def list_page(self, after: str, limit: int, query: str | None = None) -> ProductPage:
        after, limit, query = validated_page(after, limit, query)
        # re.escape: the query matches literally (PCRE reads a backslash before punctuation as the character)
        matches = {} if query is None else {"$or": [{field: {"$regex": re.escape(query), "$options": "i"}}
                                                    for field in ("product_id", "name", "brand")]}
        with self._driver_errors("list products"):
            await self._ready()
            docs = await self._products.find({**matches, "product_id": {"$gt": after}}, _METADATA_PROJECTION,
                                             sort=[("product_id", 1)], limit=limit + 1).to_list()
            total = await self._products.count_documents(matches)
        products = [_product(doc) for doc in docs[:limit]]
        return ProductPage(products, products[-1].product_id if len(docs) > limit else None, total)

    async def put_thumbnails(self, thumbnails: dict[str, Thumbnail]) -> int:
        thumbnails = validated_thumbnails(thumbnails)
        if not thumbnails:
            return 0
        with self._driver_errors("store thumbnails"):
            await self._ready()
            present = {doc["product_id"] for doc in await self._products.find(
                {"product_id": {"$in": list(thumbnails)}}, {"_id": 0, "product_id": 1}).to_list()}
            writes = [UpdateOne({"_id": product_id}, {"$set": {"data": Binary(thumbnail.data), "etag": thumbnail.etag}},
                                upsert=True)
                      for product_id, thumbnail in thumbnails.items() if product_id in present]
            if writes:
                await self._thumbnails.bulk_write(writes, ordered=False)
        return len(writes)

    async def get_thumbnail(self, product_id: str) -> Thumbnail | None:
        with self._driver_errors("read a thumbnail"):
            await self._ready()
            doc = await self._thumbnails.find_one({"_id": product_id})
        return None if doc is None else Thumbnail(data=bytes(doc["data"]), etag=doc["etag"])

    async def thumbnail_ids(self, product_ids: list[str]) -> set[str]:
        ids = list(dict.fromkeys(product_ids))
        if not ids:
            return set()
        with self._driver_errors("read thumbnail ids"):
            await self._ready()
            docs = await self._thumbnails.find({"_id": {"$in": ids}}, {"_id": 1}).to_list()
        return {doc["_id"] for doc in docs}

    async def ping(self) -> None:
        """Also creates the unique index on first success, so pinging on start prepares the collection."""
        with self._driver_errors("ping"):
            await self._ready()
            await self._database.command("ping")

    async def generation(self) -> int:
        with self._driver_errors("generation"):
            await self._ready()
            doc = await self._meta.find_one({"_id": "generation"})
        return 0 if doc is None else int(doc["value"])

    def iter_embeddings(self, batch_size: int = 1024) -> AsyncIterator[EmbeddingBatch]:
        return paged_embeddings(self._read_page, batch_size)

    async def changes_since(self, generation: int) -> ChangeSet:
        with self._driver_errors("read the change log"):
            await self._ready()
            meta = await self._meta_document()
            current = int(meta.get("value", 0))
            if generation < int(meta["changes_from"]) or generation > current:
                return ChangeSet(current, complete=False)
            docs = await self._changes.find({"generation": {"$gt": generation}}, {"_id": 1}).to_list()
        settled = _settled(meta)
        return ChangeSet(generation if settled is None else max(generation, settled),
                         tuple(doc["_id"] for doc in docs))

    async def settled_generation(self) -> int:
        with self._driver_errors("read the generation"):
            await self._ready()
            for _ in range(SETTLE_ATTEMPTS):
                meta = await self._meta_document()
                settled = _settled(meta)
                if settled is not None:
                    return settled
                await asyncio.sleep(0.01)  # a write between its two first updates: about one round-trip
        # a writer died between them: the oldest generation the log can answer from is always safe
        return int(meta["changes_from"])

    async def create_import(self, record: ImportRecord) -> None:
        csv = record.csv or b""
        document = {"job_id": record.job_id, "status": record.status, "state": record.state,
                    "options": record.options, "owner": record.owner, "heartbeat_at": record.heartbeat_at,
                    "created_at": record.created_at, "csv_chunks": -(-len(csv) // CSV_CHUNK_BYTES)}
        chunks = [UpdateOne({"_id": f"{record.job_id}:{i}"},
                            {"$set": {"job_id": record.job_id, "i": i,
                                      "data": Binary(csv[start:start + CSV_CHUNK_BYTES])}}, upsert=True)
                  for i, start in enumerate(range(0, len(csv), CSV_CHUNK_BYTES))]
        with self._driver_errors("store an import"):
            await self._ready()
            if chunks:  # the CSV first: a job is never visible without it
                await self._import_chunks.bulk_write(chunks, ordered=True)
            await self._imports.update_one({"job_id": record.job_id}, {"$setOnInsert": document}, upsert=True)

    async def update_import(self, job_id: str, owner: str, status: str, state: dict[str, Any]) -> bool:
        with self._driver_errors("save an import's progress"):
            await self._ready()
            result = await self._imports.update_one(
                {"job_id": job_id, "owner": owner},
                {"$set": {"status": status, "state": state, "heartbeat_at": time.time()}})
            if result.matched_count and status not in IMPORT_KEEPS_CSV:
                await self._import_chunks.delete_many({"job_id": job_id})
        return result.matched_count > 0

    async def get_import(self, job_id: str) -> ImportRecord | None:
        with self._driver_errors("read an import"):
            await self._ready()
            doc = await self._imports.find_one({"job_id": job_id}, _IMPORT_PROJECTION)
        return None if doc is None else ImportRecord(**doc)

    async def prune_imports(self, finished_before: float) -> int:
        with self._driver_errors("prune imports"):
            await self._ready()
            finished = {"status": {"$nin": list(IMPORT_ACTIVE)}, "heartbeat_at": {"$lt": finished_before}}
            ids = [doc["job_id"] for doc in await self._imports.find(finished, {"_id": 0, "job_id": 1}).to_list()]
            if not ids:
                return 0
            await self._import_chunks.delete_many({"job_id": {"$in": ids}})
            return (await self._imports.delete_many({"job_id": {"$in": ids}})).deleted_count

    async def claim_stale_import(self, owner: str, lease_s: float) -> ImportRecord | None:
        now = time.time()
        with self._driver_errors("claim an import"):
            await self._ready()
            # the whole document back, fields picked below (the test stand-in mishandles this projection)
            doc = await self._imports.find_one_and_update(
                {"status": {"$in": list(IMPORT_ACTIVE)}, "heartbeat_at": {"$lt": now - lease_s}},
                {"$set": {"owner": owner, "heartbeat_at": now}}, sort=[("created_at", 1)],
                return_document=ReturnDocument.AFTER)
            if doc is None:
                return None
            return await self._with_csv(doc)

    async def reopen_import(self, job_id: str, owner: str) -> ImportRecord | None:
        with self._driver_errors("resume an import"):
            await self._ready()
            doc = await self._imports.find_one_and_update(
                {"job_id": job_id, "status": "failed"},
                {"$set": {"status": "running", "owner": owner, "heartbeat_at": time.time()}},
                return_document=ReturnDocument.AFTER)
            if doc is None:
                return None
            return await self._with_csv(doc)

    async def _with_csv(self, doc: dict) -> ImportRecord:
        """The import document as a record, with its CSV joined from its chunks (UnresumableImport if some are
        missing)."""
        chunks = await self._import_chunks.find({"job_id": doc["job_id"]}, {"_id": 0, "i": 1, "data": 1},
                                                sort=[("i", 1)]).to_list()
        expected = doc["csv_chunks"]
        if [chunk["i"] for chunk in chunks] != list(range(expected)):
            raise UnresumableImport(doc["job_id"], f"part of its stored CSV is missing ({len(chunks)} of "
                                                   f"{expected} chunks)")
        return ImportRecord(**{name: doc[name] for name in _IMPORT_PROJECTION if name != "_id"},
                            csv=b"".join(bytes(chunk["data"]) for chunk in chunks))

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._close()

    # ---- internals ---------------------------------------------------------------------------------------

    async def _ready(self) -> None:
        """The unique index on product_id, created once per store (idempotent on the server)."""
        if self._closed:
            raise StoreUnavailable(f"the catalog store ({self._where}) is closed")
        if self._indexed:
            return
        async with self._index_lock:
            if not self._indexed:
                await self._products.create_index("product_id", unique=True, name="product_id_unique")
                await self._changes.create_index("generation", name="by_generation")
                await self._imports.create_index("job_id", unique=True, name="job_id_unique")
                await self._imports.create_index([("status", 1), ("heartbeat_at", 1)], name="by_lease")
                await self._import_chunks.create_index("job_id", name="by_job")
                self._indexed = True

    async def _meta_document(self) -> dict[str, Any]:
        """The counter document, created if missing; `changes_from` set on first sight (a catalog written before
        the change log existed gets a log that answers from its current generation on)."""
        doc = await self._meta.find_one({"_id": "generation"})
        if doc is None:
            try:
                await self._meta.update_one({"_id": "generation"},
                                            {"$setOnInsert": {"value": 0, "changes_from": 0}}, upsert=True)
            except DuplicateKeyError:  # another process created it at the same moment
                pass
            doc = await self._meta.find_one({"_id": "generation"})
        if "changes_from" not in doc:
            await self._meta.update_one({"_id": "generation", "changes_from": {"$exists": False}},
                                        {"$set": {"changes_from": int(doc["value"])}})
            doc = await self._meta.find_one({"_id": "generation"})
        return doc

    @asynccontextmanager
    async def _logged_write(self, product_ids: list[str]) -> AsyncIterator[None]:
        """Brackets one product write: takes its generation (listed as in flight), logs the products at it,
        and always ends with the second bump that un-lists it."""
        if not self._meta_ready:
            await self._meta_document()
            self._meta_ready = True
        token, now = ObjectId(), time.time()
        meta = await self._meta.find_one_and_update(
            {"_id": "generation"},
            {"$inc": {"value": 1}, "$push": {"writing": {"token": token, "since": now}}},
            upsert=True, return_document=ReturnDocument.AFTER)
        try:
            generation = int(meta["value"])  # this update's own increment: the document as it left it
            await self._meta.update_one({"_id": "generation", "writing.token": token},
                                        {"$set": {"writing.$.generation": generation}})
            if any(w["since"] < now - STALE_WRITE_S for w in meta["writing"]):
                await self._meta.update_one({"_id": "generation"},
                                            {"$pull": {"writing": {"since": {"$lt": now - STALE_WRITE_S}}}})
            await self._changes.bulk_write([UpdateOne({"_id": product_id}, {"$max": {"generation": generation}},
                                                      upsert=True) for product_id in product_ids], ordered=False)
            yield
        finally:
            await self._meta.update_one({"_id": "generation"},
                                        {"$inc": {"value": 1}, "$pull": {"writing": {"token": token}}})

    async def _read_page(self, after_id: str, limit: int) -> list[Product]:
        with self._driver_errors("read embeddings"):
            await self._ready()
            cursor = self._products.find({"product_id": {"$gt": after_id}, "embedding": {"$ne": None}},
                                         {**_METADATA_PROJECTION, "embedding": 1},
                                         sort=[("product_id", 1)], limit=limit)
            return [_product(doc) for doc in await cursor.to_list()]

    @contextmanager
    def _driver_errors(self, action: str) -> Iterator[None]:
        """pymongo's errors (test stand-ins raise pymongo's classes too) -> StoreUnavailable."""
        try:
            yield
        except SnapfitError:
            raise
        except ConnectionFailure as e:
            raise StoreUnavailable(f"cannot reach {self._where} ({action}): {_first_line(e)}") from e
        except PyMongoError as e:
            raise StoreUnavailable(f"{self._where} failed to {action}: {_first_line(e)}") from e


def _settled(meta: dict[str, Any]) -> int | None:
    """The settled generation of a counter document; None while a listed write has not recorded its own yet."""
    live = [w for w in meta.get("writing", []) if w["since"] > time.time() - STALE_WRITE_S]
    if not live:
        return int(meta.get("value", 0))
    if any("generation" not in w for w in live):
        return None
    return min(int(w["generation"]) for w in live) - 1


def _document(product: Product, digest: str) -> dict[str, Any]:
    document = {name: getattr(product, name) for name in METADATA_FIELDS}
    document["embedding"] = None if product.embedding is None else Binary(
        _FLOAT32_HEADER + np.ascontiguousarray(product.embedding, dtype="<f4").tobytes(), _VECTOR_SUBTYPE)
    document["digest"] = digest
    return document


def _product(doc: dict[str, Any]) -> Product:
    values = {name: doc[name] for name in METADATA_FIELDS}
    values["tags"] = list(values["tags"])
    embedding = doc.get("embedding")
    if embedding is not None:
        if embedding.subtype != _VECTOR_SUBTYPE or bytes(embedding[:2]) != _FLOAT32_HEADER:
            raise SnapfitError(f"product {values['product_id']!r} has an embedding in an unknown encoding")
        values["embedding"] = np.frombuffer(embedding, dtype="<f4", offset=2).astype(np.float32)
    return Product(**values)


def _host_part(url: str) -> str:
    """The URL's host list without credentials (messages must not leak passwords)."""
    netloc = url.split("://", 1)[-1].split("/", 1)[0].split("?", 1)[0]
    return netloc.rsplit("@", 1)[-1]


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__
