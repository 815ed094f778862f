"""Vector index of catalog products (FAISS): exact or approximate inner-product search with filters."""

from orchestrator.index.faiss_index import FaissIndex, IndexFileError, IndexManifest

__all__ = ["FaissIndex", "IndexFileError", "IndexManifest"]
