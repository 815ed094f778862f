"""Storage behind the services: the product catalog (SQLite embedded default, MongoDB in production) and the
vector index. Services depend on the `CatalogStore` protocol; `open_catalog_store(url)` picks the backend."""

from orchestrator.stores.catalog import CatalogStore, EmbeddingBatch, UpsertResult, open_catalog_store

__all__ = ["CatalogStore", "EmbeddingBatch", "UpsertResult", "open_catalog_store"]
