"""The catalog as the API sees it: the store (source of truth) and the FAISS index (derived) kept in step.

On start the persisted index is loaded when its generation equals the store's, and rebuilt from the store's
embeddings otherwise (missing, stale, or corrupt). Every change goes to the store first and then to the
index; deletions leave the index first, so a deleted product can never be returned by a search.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import faiss

from orchestrator.domain import Product
from orchestrator.index import FaissIndex, IndexFileError
from orchestrator.metrics import INDEX_VECTORS
from orchestrator.settings import Settings
from orchestrator.stores.catalog import CatalogStore, UpsertResult

log = logging.getLogger(__name__)
EMBEDDING_DIM = 512


class CatalogService:
    def __init__(self, store: CatalogStore, index: FaissIndex, index_path: Path):
        self.store = store
        self.index = index
        self.index_path = Path(index_path)
        self.index_loaded = False
        # store write + index update happen under one lock, and save() takes it too, so a saved index is
        # never labelled with a generation whose changes it lacks
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, store: CatalogStore, settings: Settings) -> "CatalogService":
        # concurrency comes from the request thread pool; FAISS's own OpenMP threads only slow single queries
        faiss.omp_set_num_threads(1)
        path = Path(settings.catalog.index_path)
        service = cls(store, FaissIndex(EMBEDDING_DIM, settings.search.index_factory), path)
        await service._load_or_rebuild(settings.search.index_factory)
        return service

    async def _load_or_rebuild(self, factory: str) -> None:
        generation = await self.store.generation()
        manifest = await asyncio.to_thread(FaissIndex.read_manifest, self.index_path)
        if manifest is not None and manifest.generation == generation and manifest.factory == factory:
            try:
                self.index, _ = await asyncio.to_thread(FaissIndex.load, self.index_path, dim=EMBEDDING_DIM)
                log.info("loaded the vector index (%d products, generation %d)", len(self.index), generation)
                self._loaded()
                return
            except IndexFileError as error:
                log.warning("the saved vector index is unusable (%s); rebuilding it from the store", error)
        reason = "missing" if manifest is None else "stale"
        log.info("the saved vector index is %s; rebuilding it from the store", reason)
        count = await self.index.rebuild_from(batch.products async for batch in self.store.iter_embeddings())
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
