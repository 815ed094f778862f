"""ProductService: the products as the API changes them, in the store (source of truth) and the FAISS index
(derived), kept in step. (The store is stores/catalog_store.py; CSV imports are services/imports.py.)

On start the persisted index is loaded when its generation equals the store's, and rebuilt from the store's
embeddings otherwise (missing, stale, or corrupt). Every change goes to the store first and then to the
index; deletions leave the index first, so a deleted product can never be returned by a search.
The index's dimension is the served CLIP model's (ModelGateway.embedding_dim), so a model with another width
needs no code change; the store's vectors must match it (a rebuild says which dimension it found).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import faiss

from orchestrator.domain import Product
from orchestrator.errors import InvalidInput, NotFound, SnapfitError
from orchestrator.index import FaissIndex, IndexFileError
from orchestrator.metrics import INDEX_VECTORS
from orchestrator.settings import Settings
from orchestrator.stores.catalog_store import CatalogStore, UpsertResult
from snapfit import contract

log = logging.getLogger(__name__)


class ProductService:
    def __init__(self, store: CatalogStore, index: FaissIndex, index_path: Path):
        self.store = store
        self.index = index
        self.index_path = Path(index_path)
        self.index_loaded = False
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
        path = Path(settings.catalog.index_path)
        if embedding_dim is None:
            embedding_dim = await _catalog_width(store, path)
        service = cls(store, FaissIndex(embedding_dim, settings.search.index_factory), path)
        await service._load_or_rebuild(settings.search.index_factory)
        return service

    async def _load_or_rebuild(self, factory: str) -> None:
        generation = await self.store.generation()
        manifest = await asyncio.to_thread(FaissIndex.read_manifest, self.index_path)
        if manifest is not None and manifest.generation == generation and manifest.factory == factory:
            try:
                self.index, _ = await asyncio.to_thread(FaissIndex.load, self.index_path, dim=self.index.dim)
                log.info("loaded the vector index (%d products, generation %d)", len(self.index), generation)
                self._loaded()
                return
            except IndexFileError as error:
                log.warning("the saved vector index is unusable (%s); rebuilding it from the store", error)
        reason = "missing" if manifest is None else "stale"
        log.info("the saved vector index is %s; rebuilding it from the store", reason)
        try:
            count = await self.index.rebuild_from(batch.products async for batch in self.store.iter_embeddings())
        except InvalidInput as error:
            raise SnapfitError(f"the catalog's embeddings do not fit the served CLIP model ({error.message}); "
                               f"re-import the catalog, or serve the model it was imported with") from None
        await self.save()
        log.info("rebuilt the vector index from the store: %d products", count)
        self._loaded()

    def _loaded(self) -> None:
        self.index_loaded = True
        INDEX_VECTORS.set(len(self.index))

    async def save(self) -> None:
        """Persists the index with the store's current generation (one save at a time)."""
        async with self._write_lock:
            generation = await self.store.generation()
            await asyncio.to_thread(self.index.save, self.index_path, generation)

    async def get_many(self, product_ids: list[str]) -> dict[str, Product]:
        """Stored products by id (metadata only); unknown ids are absent."""
        return await self.store.get_many(product_ids)

    async def get(self, product_id: str) -> Product:
        """One product with its metadata; NotFound for an unknown id."""
        product = await self.store.get(product_id)
        if product is None:
            raise NotFound(f"no product {product_id!r}")
        return product

    async def add(self, products: list[Product]) -> UpsertResult:
        """Upserts products (with embeddings) into the store, then their vectors into the index."""
        async with self._write_lock:
            result = await self.store.upsert_many(products)
            changed = set(result.changed_ids)
            if changed:
                await asyncio.to_thread(self.index.upsert, [p for p in products if p.product_id in changed])
                INDEX_VECTORS.set(len(self.index))
        return result

    async def update(self, product_id: str, changes: dict[str, Any]) -> Product:
        async with self._write_lock:
            product = await self.store.update(product_id, changes)
            if product.embedding is not None:
                await asyncio.to_thread(self.index.upsert, [product])  # filters read the new metadata
        await self.save()
        return product

    async def delete(self, product_id: str) -> bool:
        """True when the product existed. The vector leaves the index before the store, so no search sees it."""
        async with self._write_lock:
            await asyncio.to_thread(self.index.remove, [product_id])
            deleted = await self.store.delete(product_id)
            INDEX_VECTORS.set(len(self.index))
        await self.save()
        return deleted

    async def close(self) -> None:
        if self.index_loaded:
            await self.save()


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
