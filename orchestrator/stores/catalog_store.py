"""The catalog store contract (`CatalogStore`) and the validation and record codec both stores share.

Two implementations: `SQLiteCatalogStore` (sqlite_store.py, embedded default, one file) and `MongoCatalogStore`
(mongo_store.py, production); `stores.factory.open_catalog_store(url)` picks one.
Every product is stored with its embedding, so the vector index can always be rebuilt from the store alone.

Staleness marker: `generation()` is a counter kept in the store itself. It never decreases and strictly increases
with every write that changes the catalog (insert, update, delete), so "same generation" means "no change since".
A persisted vector index records the generation it was built from; on start, a different value means rebuild.
Build order for a rebuild: read `generation()` first, then `iter_embeddings()`; a write that lands during the
iteration bumps the counter past the recorded value, so that index reads as stale on the next start.

Change log: every write also records, per product, the generation of its latest change (deletions too), so a
replica whose index is at generation g asks `changes_since(g)` for the products to re-read, applies their current
state (present: upsert; gone: remove) and moves to the returned generation. Applying a product's current state
is idempotent, so re-applying a change never hurts; a generation is returned only once every change up to it is
readable. The log keeps one entry per product id ever written (deleted ones included).

Import jobs: their state lives in the store too (`ImportRecord`), so any replica answers for any job, and an
import whose replica stopped renewing its lease is claimed and resumed by another.

Thumbnails: one per product id (`Thumbnail`: JPEG bytes + ETag), kept beside the products so every replica
serves the same ones. They are not catalog changes: writing one moves neither the generation nor the log.
Deleting a product deletes its thumbnail; changing its `image` with `update()` does too (it showed the old photo).

Browsing: `list_page` pages through the products by id; its optional query is a case-insensitive substring of
product_id, name or brand (SQLite folds ASCII letters only, MongoDB Unicode ones; Hangul has no case).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from orchestrator.domain import Product, Thumbnail
from orchestrator.errors import InvalidInput, SnapfitError

DEFAULT_MONGO_DATABASE = "snapfit"

# fields a caller may change with `update()`; product_id, source_hash and updated_at belong to the store/import
EDITABLE_FIELDS = frozenset({"name", "image", "link", "brand", "price", "tags", "category", "tryon_ready",
                             "tryon_probability", "embedding"})
# every stored column/key except the embedding, in a fixed order
METADATA_FIELDS = ("product_id", "name", "image", "link", "brand", "price", "tags", "category", "tryon_ready",
                   "tryon_probability", "source_hash", "updated_at")


@dataclass(frozen=True)
class UpsertResult:
    """Which products one `upsert_many` call inserted, updated, or left alone (identical content)."""

    inserted_ids: tuple[str, ...] = ()
    updated_ids: tuple[str, ...] = ()
    unchanged_ids: tuple[str, ...] = ()

    @property
    def inserted(self) -> int:
        return len(self.inserted_ids)

    @property
    def updated(self) -> int:
        return len(self.updated_ids)

    @property
    def unchanged(self) -> int:
        return len(self.unchanged_ids)

    @property
    def changed_ids(self) -> tuple[str, ...]:
        """Inserted + updated: the products whose vectors the index must (re)add."""
        return self.inserted_ids + self.updated_ids


@dataclass(frozen=True)
class EmbeddingBatch:
    """One batch of `iter_embeddings`.

    ids: N product ids, ascending.
    embeddings: NxD float32, row i belongs to ids[i].
    products: N products (metadata for the index's filters: category, brand, price, tryon_ready);
        products[i].embedding is a view of embeddings[i].
    """

    ids: list[str]
    embeddings: np.ndarray
    products: list[Product]


@dataclass(frozen=True)
class ChangeSet:
    """What changed after a generation.

    generation: apply `product_ids` (re-read each product's current state) and the index is at this generation.
    product_ids: products inserted, updated or deleted after the asked generation (each once, any order).
    complete: False when the log cannot answer (the asked generation predates the log, or is ahead of the
        store: another store, or one that was reset); then rebuild from `iter_embeddings`.
    """

    generation: int
    product_ids: tuple[str, ...] = ()
    complete: bool = True


@dataclass(frozen=True)
class ProductPage:
    """One page of `list_page`.

    products: at most `limit` products (metadata, no embeddings), ascending by product_id, each > the cursor.
    next_after: the cursor of the next page (the last product_id here); None when no product follows.
    total: how many products match the query (every product without one), whatever the cursor.
    """

    products: list[Product]
    next_after: str | None
    total: int


IMPORT_ACTIVE = ("queued", "running")  # statuses of an import some replica must (still) work on
IMPORT_KEEPS_CSV = (*IMPORT_ACTIVE, "failed")  # a failed import can be resumed from its CSV (until pruned)


class UnresumableImport(SnapfitError):
    """A claimed import cannot be resumed (part of its stored CSV is missing); the claimer marks it failed. Asked
    for over the API, a 409: the job exists but cannot be taken up again."""

    status = 409
    code = "unresumable_import"

    def __init__(self, job_id: str, message: str):
        super().__init__(message)
        self.job_id = job_id


@dataclass
class ImportRecord:
    """One import job as the store keeps it.

    state: the job's progress as JSON-able values (services/imports.py owns its meaning; the store only keeps it).
    csv: the uploaded CSV, kept while the job is active so another replica can resume it (None when not read).
    options: how to read the CSV (column mapping, base folder), JSON-able.
    owner / heartbeat_at: the replica working on it and when it last renewed its lease (wall-clock seconds).
    """

    job_id: str
    status: str
    state: dict[str, Any]
    options: dict[str, Any]
    owner: str
    heartbeat_at: float
    created_at: float
    csv: bytes | None = None


class CatalogStore(Protocol):
    """Products with their metadata and embeddings. All methods are coroutines; none blocks the event loop.

    Errors: StoreUnavailable when the backend cannot be reached (or the store is closed), InvalidInput for
    bad field names or values, NotFound from `update()` for an unknown id. Driver exceptions never escape.
    """

    async def upsert_many(self, products: list[Product]) -> UpsertResult:
        """Inserts new products, rewrites changed ones, skips identical ones (same fields, source_hash, embedding).

        One bulk write per call; idempotent. A repeated product_id within the call: the last one wins.
        The store sets `updated_at` of written products (the given objects are not modified).
        """
        ...

    async def get(self, product_id: str) -> Product | None: ...

    async def get_many(self, product_ids: list[str], *, include_embeddings: bool = False) -> dict[str, Product]:
        """Products by id in one round-trip; unknown ids are absent. Metadata only unless include_embeddings
        (decorating search hits does not need the vectors)."""
        ...

    async def update(self, product_id: str, changes: dict[str, Any]) -> Product:
        """Changes EDITABLE_FIELDS of one product and returns it; `updated_at` moves only if something changed."""
        ...

    async def delete(self, product_id: str) -> bool:
        """True when the product existed. Its thumbnail goes with it."""
        ...

    async def count(self) -> int: ...

    async def list_page(self, after: str, limit: int, query: str | None = None) -> ProductPage:
        """Products with product_id > `after` (ascending; "" from the start), at most `limit` (>= 1), matching
        `query` when given (see the module docstring; a blank query matches everything). `total` is a count over
        the whole catalog (with a query, a scan of every product's id, name and brand): for an admin page, not a
        hot path."""
        ...

    async def put_thumbnails(self, thumbnails: dict[str, Thumbnail]) -> int:
        """Stores (or replaces) thumbnails by product id in one write and returns how many. Those of unknown
        products are skipped (SQLite: in the same transaction; MongoDB: checked just before the write, so a
        product deleted meanwhile may leave one behind, which no read serves: the route reads the product first)."""
        ...

    async def get_thumbnail(self, product_id: str) -> Thumbnail | None: ...

    async def thumbnail_ids(self, product_ids: list[str]) -> set[str]:
        """Which of `product_ids` have a stored thumbnail (one round-trip)."""
        ...

    async def ping(self) -> None:
        """Returns when the backend answers; raises StoreUnavailable otherwise."""
        ...

    async def generation(self) -> int:
        """The change counter (see the module docstring)."""
        ...

    async def settled_generation(self) -> int:
        """A generation G whose changes are all readable (no write at or below G is still in flight): the label
        for an index rebuilt from `iter_embeddings` read after this call."""
        ...

    def iter_embeddings(self, batch_size: int = 1024) -> AsyncIterator[EmbeddingBatch]:
        """Every product that has an embedding, in ascending product_id order, each exactly once, in batches
        of at most batch_size. Not a snapshot: read `generation()` before iterating."""
        ...

    async def changes_since(self, generation: int) -> ChangeSet:
        """The products changed after `generation` (see the module docstring)."""
        ...

    async def create_import(self, record: ImportRecord) -> None:
        """Stores a new job with its CSV (job_id must be new)."""
        ...

    async def update_import(self, job_id: str, owner: str, status: str, state: dict[str, Any]) -> bool:
        """Saves progress and renews the lease (heartbeat now), only while `owner` holds the job; False when
        another replica has claimed it (the caller must stop working on it). A finished status drops the CSV."""
        ...

    async def get_import(self, job_id: str) -> ImportRecord | None:
        """The job without its CSV; None for an unknown id."""
        ...

    async def claim_stale_import(self, owner: str, lease_s: float) -> ImportRecord | None:
        """Atomically takes over one active job whose lease is older than `lease_s` (owner := `owner`, heartbeat
        now) and returns it with its CSV; None when there is none."""
        ...

    async def reopen_import(self, job_id: str, owner: str) -> ImportRecord | None:
        """Atomically takes a failed job back up (status running, owner := `owner`, heartbeat now) and returns it
        with its CSV, which a failed job keeps until it is pruned; None when no failed job has this id.
        UnresumableImport when its stored CSV is incomplete."""
        ...

    async def prune_imports(self, finished_before: float) -> int:
        """Deletes finished jobs last saved before `finished_before` (wall-clock seconds); how many."""
        ...

    async def close(self) -> None: ...


# ---- validation -------------------------------------------------------------------------------------------


def _text(name: str, *, required: bool = False):
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise InvalidInput(f"{name} must be a string, got {type(value).__name__}")
        if required and not value.strip():
            raise InvalidInput(f"{name} must not be empty")
        return value
    return check


def _optional_number(name: str, low: float, high: float):
    def check(value: Any) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise InvalidInput(f"{name} must be a number, got {type(value).__name__}")
        number = float(value)
        if not (math.isfinite(number) and low <= number <= high):
            raise InvalidInput(f"{name} must be between {low:g} and {high:g}, got {number:g}")
        return number
    return check


def _flag(value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidInput(f"tryon_ready must be true or false, got {type(value).__name__}")
    return bool(value)


def _tags(value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise InvalidInput("tags must be a list of strings")
    if not all(isinstance(tag, str) for tag in value):
        raise InvalidInput("every tag must be a string")
    return list(value)


def _embedding(value: Any) -> np.ndarray | None:
    """None, or a D float32 contiguous copy of a 1-D finite vector."""
    if value is None:
        return None
    try:
        vector = np.array(value, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise InvalidInput(f"embedding must be a 1-D array of numbers: {e}") from None
    if vector.ndim != 1 or vector.size == 0:
        raise InvalidInput(f"embedding must be a non-empty 1-D array, got shape {vector.shape}")
    if not np.isfinite(vector).all():
        raise InvalidInput("embedding must be finite (no NaN or inf)")
    return vector


_VALIDATORS = {
    "product_id": _text("product_id", required=True),
    "name": _text("name"),
    "image": _text("image"),
    "link": _text("link"),
    "brand": _text("brand"),
    "price": _optional_number("price", 0.0, math.inf),
    "tags": _tags,
    "category": _text("category"),
    "tryon_ready": _flag,
    "tryon_probability": _optional_number("tryon_probability", 0.0, 1.0),
    "embedding": _embedding,
    "source_hash": _text("source_hash"),
}


def validate_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """`changes` with names checked against EDITABLE_FIELDS and values normalised; InvalidInput otherwise."""
    if not isinstance(changes, dict) or not changes:
        raise InvalidInput("give at least one field to change")
    unknown = sorted(set(changes) - EDITABLE_FIELDS)
    if unknown:
        raise InvalidInput(f"cannot change {', '.join(map(repr, unknown))}; editable fields: "
                           f"{', '.join(sorted(EDITABLE_FIELDS))}")
    return {name: _VALIDATORS[name](value) for name, value in changes.items()}


def validated_page(after: str, limit: int, query: str | None) -> tuple[str, int, str | None]:
    """`list_page`'s arguments checked: (after, limit, query stripped, None when blank); InvalidInput otherwise."""
    if not isinstance(after, str):
        raise InvalidInput(f"after must be a product id (a string), got {type(after).__name__}")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInput(f"limit must be a positive integer, got {limit!r}")
    if query is not None and not isinstance(query, str):
        raise InvalidInput(f"the query must be a string, got {type(query).__name__}")
    return after, limit, (query.strip() or None) if query else None


def validated_thumbnails(thumbnails: dict[str, Thumbnail]) -> dict[str, Thumbnail]:
    """`put_thumbnails`' argument checked: non-empty string ids, Thumbnail values with bytes; InvalidInput otherwise."""
    for product_id, thumbnail in thumbnails.items():
        if not isinstance(product_id, str) or not product_id.strip():
            raise InvalidInput(f"a thumbnail needs a product id, got {product_id!r}")
        if not isinstance(thumbnail, Thumbnail) or not isinstance(thumbnail.data, bytes) or not thumbnail.data:
            raise InvalidInput(f"the thumbnail of {product_id!r} must be a Thumbnail with its JPEG bytes")
    return thumbnails


def validated_products(products: Iterable[Product]) -> list[Product]:
    """Normalised copies (embedding D float32), one per product_id (the last occurrence wins), input order."""
    latest: dict[str, Product] = {}
    for product in products:
        if not isinstance(product, Product):
            raise InvalidInput(f"expected Product, got {type(product).__name__}")
        values = {name: check(getattr(product, name)) for name, check in _VALIDATORS.items()}
        latest.pop(values["product_id"], None)  # re-insert so the order follows the last occurrence
        latest[values["product_id"]] = replace(product, **values)
    return list(latest.values())


# ---- codec shared by both stores ----------------------------------------------------------------------------


def content_digest(product: Product) -> str:
    """Hash of everything a product stores except updated_at: equal digests mean an upsert would change nothing."""
    metadata = {name: getattr(product, name) for name in METADATA_FIELDS if name != "updated_at"}
    hasher = hashlib.blake2b(digest_size=16)
    hasher.update(json.dumps(metadata, ensure_ascii=False, sort_keys=True).encode())
    hasher.update(b"\0" + embedding_to_bytes(product.embedding) if product.embedding is not None else b"\1")
    return hasher.hexdigest()


def embedding_to_bytes(embedding: np.ndarray) -> bytes:
    """D float32 -> 4*D bytes, little-endian (the stored form in both stores)."""
    return np.ascontiguousarray(embedding, dtype="<f4").tobytes()


def embedding_from_bytes(data: bytes) -> np.ndarray:
    """4*D little-endian bytes -> D float32 (a writable copy, native byte order)."""
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


class PageReader(Protocol):
    async def __call__(self, after_id: str, limit: int) -> list[Product]:
        """At most `limit` products with an embedding and product_id > after_id, ascending by product_id."""
        ...


async def paged_embeddings(read_page: PageReader, batch_size: int) -> AsyncIterator[EmbeddingBatch]:
    """`iter_embeddings` for both stores: keyset pagination on the unique product_id, so each product present
    throughout the iteration comes exactly once and no server cursor has to stay open while the consumer works."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInput(f"batch_size must be a positive integer, got {batch_size!r}")
    after_id, dim = "", None
    while page := await read_page(after_id, batch_size):
        dims = {product.embedding.shape[0] for product in page} | ({dim} if dim else set())
        if len(dims) > 1:
            raise SnapfitError(f"the catalog holds embeddings of different dimensions {sorted(dims)}; re-import "
                               "it with one model before building the index")
        dim = dims.pop()
        matrix = np.stack([product.embedding for product in page])
        for row, product in zip(matrix, page):
            product.embedding = row
        yield EmbeddingBatch(ids=[p.product_id for p in page], embeddings=matrix, products=page)
        if len(page) < batch_size:
            return
        after_id = page[-1].product_id
