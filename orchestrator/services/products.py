"""ProductService: the products as the API changes them, in the store (source of truth) and the FAISS index
(derived), kept in step. (The store is stores/catalog_store.py; CSV imports are services/imports.py.)

On start the persisted index is loaded and brought up to date from the store's change log (rebuilt from the
store's embeddings when missing, corrupt, or older than the log). Every change made here goes to the store
first and then to this index; deletions leave the index first, so a deleted product can never be returned by
a search here.

Replicas: every process keeps its own index and follows the store (`follow()`): each `sync_interval_s` it
asks the change log what changed since the generation its index has applied, re-reads those products and
applies their current state. So a change made through any replica reaches every replica's search within about
one interval (plus the poll's own time); this replica's own changes are visible at once.
Search hits take their metadata from `metadata` (services/product_cache.py), which every change here and every
change the follower applies invalidates: the same bound holds for what a search shows.
The index's dimension is the served CLIP model's (ModelGateway.embedding_dim), so a model with another width
needs no code change; the store's vectors must match it (a rebuild says which dimension it found).
Thumbnails of the product photos live in the store too (`thumbnails`, services/thumbnails.py): every replica
serves the same ones, and deleting a product deletes its thumbnail with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import time
from pathlib import Path
from typing import IO, Any

import faiss

from orchestrator.domain import Product, Thumbnail
from orchestrator.errors import InvalidInput, NotFound, SnapfitError, StoreUnavailable
from orchestrator.index import FaissIndex, IndexFileError
from orchestrator.metrics import INDEX_GENERATION, INDEX_SYNC_ERRORS, INDEX_VECTORS
from orchestrator.services.product_cache import ProductMetadataCache
from orchestrator.services.thumbnails import ProductThumbnails
from orchestrator.settings import Settings
from orchestrator.stores.catalog_store import CatalogStore, ProductPage, UpsertResult
from snapfit import contract

log = logging.getLogger(__name__)
SAVE_EVERY_S = 60.0  # the follower persists the index at most this often (and on close)
SYNC_CHUNK = 1024  # products re-read from the store per step of a sync (bounds memory after a long outage)
# products per store read while preloading the search metadata: large, because each list_page also counts the
# catalog (MongoDB scans the collection for it), so a full 50,000-product cache costs 10 counts, not 50
PRELOAD_PAGE = 5000


class ProductService:
    def __init__(self, store: CatalogStore, index: FaissIndex, index_path: Path, thumbnails: ProductThumbnails,
                 metadata_cache_products: int = 0):
        self.store = store
        # search hits' metadata; every change below and every change the follower applies invalidates it
        self.metadata = ProductMetadataCache(store.get_many, metadata_cache_products)
        self.index = index
        self.index_path = Path(index_path)
        self.thumbnails = thumbnails
        self.index_loaded = False
        # the store generation whose changes the index holds (it may hold later ones too: its own writes)
        self.synced_generation = 0
        self._follower: asyncio.Task | None = None
        self._preloader: asyncio.Task | None = None
        self._folder_lock: IO | None = None
        self._saved_generation: int | None = None
        # store write + index update happen under one lock, and save() takes it too, so a saved index is
        # never labelled with a generation whose changes it lacks
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, store: CatalogStore, settings: Settings, embedding_dim: int | None) -> "ProductService":
        """Loads or rebuilds the index of `embedding_dim`-dimensional vectors (the served CLIP's output width).

        embedding_dim None (the model could not be asked): the catalog's own width, from the saved index or the
        stored vectors, else the contract's.
        """
        # concurrency comes from the request thread pool; FAISS's own OpenMP threads only slow single queries
        faiss.omp_set_num_threads(1)
        path, lock = await asyncio.to_thread(_lock_index_folder, Path(settings.catalog.index_path))
        try:
            if embedding_dim is None:
                embedding_dim = await _catalog_width(store, path)
            service = cls(store, FaissIndex(embedding_dim, settings.search.index_factory), path,
                          ProductThumbnails.from_settings(store, settings), settings.catalog.metadata_cache_products)
            service._folder_lock = lock
            await service._load_or_rebuild(settings.search.index_factory)
        except BaseException:
            if lock is not None:
                lock.close()
            raise
        return service

    async def _load_or_rebuild(self, factory: str) -> None:
        manifest = await asyncio.to_thread(FaissIndex.read_manifest, self.index_path)
        reason = "missing" if manifest is None else "built with another index factory"
        if manifest is not None and manifest.factory == factory:
            try:
                index, _ = await asyncio.to_thread(FaissIndex.load, self.index_path, dim=self.index.dim)
            except IndexFileError as error:
                log.warning("the saved vector index is unusable (%s); rebuilding it from the store", error)
                reason = "unusable"
            else:
                self.index, self.synced_generation = index, manifest.generation
                applied = await self.sync()
                if applied is not None:
                    log.info("loaded the vector index (%d products, generation %d, %d changes applied)",
                             len(self.index), self.synced_generation, applied)
                    self._loaded()
                    return
                reason = "older than the store's change log"
        log.info("the saved vector index is %s; rebuilding it from the store", reason)
        await self._rebuild()
        self._loaded()

    async def _rebuild(self) -> None:
        """Refills the index with every stored embedding (searches go on meanwhile; the index journals concurrent
        changes), labelled with the settled generation read before the iteration (every change up to it is
        in what the iteration reads; later ones come through the change log)."""
        generation = await self.store.settled_generation()
        self.metadata.clear()
        try:
            count = await self.index.rebuild_from(batch.products async for batch in self.store.iter_embeddings())
        except InvalidInput as error:
            raise SnapfitError(f"the catalog's embeddings do not fit the served CLIP model ({error.message}); "
                               f"re-import the catalog, or serve the model it was imported with") from None
        self.synced_generation = generation
        INDEX_VECTORS.set(len(self.index))
        try:
            await self.save()
        except StoreUnavailable as error:  # a full disk or read-only volume: serve it, save it later
            log.warning("could not save the rebuilt vector index (%s)", error.message)
        log.info("rebuilt the vector index from the store: %d products", count)

    async def sync(self) -> int | None:
        """Applies the store's changes since `synced_generation`; the number of products re-read, or None when
        the change log cannot answer (the caller rebuilds).

        Each chunk is read and applied under the write lock: a product this replica writes meanwhile is either
        read after its write or written after it was applied, so a stale read never overwrites (or resurrects)
        a local change."""
        changes = await self.store.changes_since(self.synced_generation)
        if not changes.complete:
            return None
        ids = list(changes.product_ids)
        for start in range(0, len(ids), SYNC_CHUNK):
            chunk = ids[start:start + SYNC_CHUNK]
            async with self._write_lock:
                current = await self.store.get_many(chunk, include_embeddings=True)
                present = [p for p in current.values() if p.embedding is not None]
                gone = [i for i in chunk if i not in current or current[i].embedding is None]
                if gone:
                    await asyncio.to_thread(self.index.remove, gone)
                if present:
                    await asyncio.to_thread(self.index.upsert, present)
                self.metadata.invalidate(chunk)
                INDEX_VECTORS.set(len(self.index))
        self.synced_generation = changes.generation
        INDEX_GENERATION.set(changes.generation)
        return len(ids)

    def follow(self, interval_s: float) -> None:
        """Starts applying other replicas' changes every `interval_s` in the background (stopped by close())."""
        if self._follower is None:
            self._follower = asyncio.create_task(self._follow(interval_s), name="catalog-follower")

    async def _follow(self, interval_s: float) -> None:
        last_save = time.monotonic()
        while True:
            await asyncio.sleep(interval_s)
            try:
                if await self.sync() is None:
                    log.warning("the store's change log cannot bring the index up to date; rebuilding it")
                    await self._rebuild()
                # a restart catches up from the saved generation, so saving now and then only shortens that
                if time.monotonic() - last_save > SAVE_EVERY_S and self.synced_generation != self._saved_generation:
                    await self.save()
                    last_save = time.monotonic()
            except SnapfitError as error:
                INDEX_SYNC_ERRORS.inc()
                log.warning("cannot follow the catalog's changes (%s); retrying in %.1f s", error.message,
                            interval_s)
            except Exception:  # noqa: BLE001 - the follower must outlive any one failed poll
                INDEX_SYNC_ERRORS.inc()
                log.exception("following the catalog's changes failed; retrying in %.1f s", interval_s)

    def preload_metadata(self, page_size: int = PRELOAD_PAGE) -> None:
        """Starts filling `metadata` from the store in the background, in pages of `page_size` products, until it
        is full or has every product (stopped by close()); searches meanwhile read what it lacks from the store."""
        if self._preloader is None and self.metadata.max_products:
            self._preloader = asyncio.create_task(self._preload_metadata(page_size), name="metadata-preload")

    async def _preload_metadata(self, page_size: int) -> None:
        async def pages():
            after = ""
            while True:
                page = await self.store.list_page(after, page_size)
                yield page.products
                if page.next_after is None:
                    return
                after = page.next_after

        started = time.monotonic()
        try:
            async with contextlib.aclosing(pages()) as scan:
                kept = await self.metadata.preload(scan)
        except SnapfitError as error:
            log.warning("could not preload the search results' metadata (%s); searches read it from the store",
                        error.message)
            return
        except Exception:  # noqa: BLE001 - a failed preload costs speed, never a search
            log.exception("preloading the search results' metadata failed; searches read it from the store")
            return
        log.info("search results' metadata: %d products preloaded in %.1f s", kept, time.monotonic() - started)

    def _loaded(self) -> None:
        self.index_loaded = True
        INDEX_VECTORS.set(len(self.index))
        INDEX_GENERATION.set(self.synced_generation)

    async def save(self) -> None:
        """Persists the index labelled with the generation it has applied (one save at a time); on the next start
        the change log brings it up to date from there."""
        async with self._write_lock:
            generation = self.synced_generation
            try:
                await asyncio.to_thread(self.index.save, self.index_path, generation)
            except IndexFileError as error:  # the previous save stays loadable; the change log covers the gap
                raise StoreUnavailable(error.message) from error
            self._saved_generation = generation

    async def get_many(self, product_ids: list[str]) -> dict[str, Product]:
        """Stored products by id (metadata only); unknown ids are absent."""
        return await self.store.get_many(product_ids)

    async def get(self, product_id: str) -> Product:
        """One product with its metadata; NotFound for an unknown id."""
        product = await self.store.get(product_id)
        if product is None:
            raise NotFound(f"no product {product_id!r}")
        return product

    async def page(self, after: str, limit: int, query: str | None = None) -> ProductPage:
        """Up to `limit` products after the product id `after`, by id, optionally matching `query` (a
        case-insensitive substring of id, name or brand), with the cursor of the next page and the match count."""
        return await self.store.list_page(after, limit, query)

    async def thumbnail(self, product_id: str) -> Thumbnail:
        """The product photo's thumbnail (made now from a local photo when none is stored: ProductThumbnails);
        NotFound for an unknown product, or one without a thumbnail that none can be made for."""
        product = (await self.store.get_many([product_id])).get(product_id)
        if product is None:
            raise NotFound(f"no product {product_id!r}")
        return await self.thumbnails.for_product(product)

    async def add(self, products: list[Product]) -> UpsertResult:
        """Upserts products (with embeddings) into the store, then their vectors into the index."""
        async with self._write_lock:
            try:
                result = await self.store.upsert_many(products)
            finally:  # a write that failed half-way may have changed some of them
                self.metadata.invalidate(p.product_id for p in products)
            changed = set(result.changed_ids)
            if changed:
                await asyncio.to_thread(self.index.upsert, [p for p in products if p.product_id in changed])
                INDEX_VECTORS.set(len(self.index))
        return result

    async def update(self, product_id: str, changes: dict[str, Any]) -> Product:
        async with self._write_lock:
            try:
                product = await self.store.update(product_id, changes)
            finally:
                self.metadata.invalidate([product_id])
            if product.embedding is not None:
                await asyncio.to_thread(self.index.upsert, [product])  # filters read the new metadata
        return product

    async def delete(self, product_id: str) -> bool:
        """True when the product existed. The vector leaves the index before the store, so no search sees it; when
        the store refuses the delete, the vector goes back (store and index keep agreeing)."""
        async with self._write_lock:
            stored = (await self.store.get_many([product_id], include_embeddings=True)).get(product_id)
            await asyncio.to_thread(self.index.remove, [product_id])
            try:
                deleted = await self.store.delete(product_id)
            except SnapfitError:
                if stored is not None and stored.embedding is not None:
                    await asyncio.to_thread(self.index.upsert, [stored])
                raise
            finally:
                self.metadata.invalidate([product_id])
                INDEX_VECTORS.set(len(self.index))
        return deleted

    async def close(self) -> None:
        if self._preloader is not None:
            self._preloader.cancel()
            await asyncio.gather(self._preloader, return_exceptions=True)
            self._preloader = None
        if self._follower is not None:
            self._follower.cancel()
            await asyncio.gather(self._follower, return_exceptions=True)
            self._follower = None
        if self.index_loaded:
            try:
                await self.save()
            except StoreUnavailable as error:  # a full disk must not stop the shutdown
                log.error("could not save the vector index on the way out (%s); the next start catches up "
                          "from the store's change log", error.message)
        if self._folder_lock is not None:
            self._folder_lock.close()
            self._folder_lock = None


def _lock_index_folder(path: Path) -> tuple[Path, IO | None]:
    """`path`, or `path-2`, `path-3`, ... : the first index folder no other live process holds (an exclusive
    flock on its `.lock` file, released when the process ends). So uvicorn workers, or replicas started with the
    same settings on one machine, never save over each other's index. On a read-only volume: `path` without a
    lock (nothing can be saved there; the index is loaded from it, or rebuilt in memory)."""
    for n in range(1, 1025):
        folder = path if n == 1 else path.with_name(f"{path.name}-{n}")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            handle = open(folder / ".lock", "a+b")  # noqa: SIM115 - held open for the service's lifetime
        except OSError as error:
            if error.errno != errno.EROFS:
                raise
            log.warning("the index folder %s is on a read-only volume: the index is not saved until it is "
                        "writable", path)
            return path, None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        if n > 1:
            log.info("index folder %s is in use by another process; this one keeps its index in %s", path, folder)
        return folder, handle
    raise SnapfitError(f"every index folder {path}[-N] is in use by another process")


async def _catalog_width(store: CatalogStore, index_path: Path) -> int:
    """The width of the vectors the catalog already holds: the saved index's, else the first stored vector's,
    else (an empty catalog) the contract's."""
    manifest = await asyncio.to_thread(FaissIndex.read_manifest, index_path)
    if manifest is not None:
        return manifest.dim
    async with contextlib.aclosing(store.iter_embeddings(batch_size=1)) as batches:
        async for batch in batches:
            return int(batch.embeddings.shape[1])
    return contract.CLIP_EMBEDDING_DIM
