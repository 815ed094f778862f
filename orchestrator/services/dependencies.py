"""What the services need from the outside world, as Protocols (immich's `ModelSession` pattern).

Production wiring (orchestrator/app.py) passes the Triton-backed `ModelGateway`, the FAISS index, the catalog
store and the mediapipe person preprocessor; unit tests pass small fakes. Arrays are numpy; shapes in each
method's docstring.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

import numpy as np

from orchestrator.domain import MaskPrediction, Product, ProductFilter, Thumbnail, TryOnUpdate
from orchestrator.stores.catalog_store import ImportRecord, UpsertResult


class ImageEncoder(Protocol):
    async def sam_embedding(self, image: np.ndarray) -> np.ndarray:
        """image: HxWx3 uint8 RGB -> 1x256x64x64 float32 SAM image embedding."""
        ...


class MaskPredictor(Protocol):
    async def sam_masks(self, embedding: np.ndarray, orig_hw: tuple[int, int], points: np.ndarray | None,
                        labels: np.ndarray | None, box: np.ndarray | None,
                        mask_input: np.ndarray | None = None) -> MaskPrediction:
        """points: Nx2 (x, y) original pixels; labels: N (1 positive, 0 negative); box: 4 (x0, y0, x1, y1)."""
        ...


class Embedder(Protocol):
    async def clip_image(self, images: list[np.ndarray]) -> np.ndarray:
        """images: HxWx3 uint8 RGB each -> NxD float32, L2-normalised."""
        ...

    async def clip_text(self, texts: list[str]) -> np.ndarray:
        """texts -> NxD float32, L2-normalised."""
        ...


class CatalogModels(Protocol):
    """The two models every imported product photo goes through."""

    async def clip_image(self, images: list[np.ndarray]) -> np.ndarray:
        """images: HxWx3 uint8 RGB each -> NxD float32, L2-normalised."""
        ...

    async def tryon_probability(self, images: list[np.ndarray]) -> np.ndarray:
        """images: HxWx3 uint8 RGB each -> N float32, P(photo usable for try-on)."""
        ...


class TryOnModels(Protocol):
    def tryon(self, *, person: np.ndarray, garment: np.ndarray, keypoints: np.ndarray, inpaint_mask: np.ndarray,
              category: str, garment_key: str, steps: int, guidance: float, seed: int, scheduler: str,
              timeout_s: float) -> AsyncIterator[TryOnUpdate]:
        """person: HxWx3 uint8; garment: hxwx3 uint8; keypoints: 18x3 float32 person pixels; inpaint_mask: HxW bool.
        Yields progress per denoising step; the last update carries the image."""
        ...

    async def best_mask(self, image: np.ndarray, points: np.ndarray, labels: np.ndarray) -> np.ndarray | None:
        """image: HxWx3 uint8; points: Nx2 (x, y); labels: N -> HxW bool, SAM's best mask (None if empty)."""
        ...


class UploadedPhotos(Protocol):
    async def pixels(self, image_id: str) -> np.ndarray:
        """HxWx3 uint8 RGB of an uploaded photo; NotFound / InvalidInput for unknown or malformed ids."""
        ...

    async def embedding(self, image_id: str) -> np.ndarray:
        """1x256x64x64 float32 SAM embedding of an uploaded photo (cached)."""
        ...


class VectorIndex(Protocol):
    @property
    def searches_inline(self) -> bool:
        """Whether a search is quick enough (~1 ms) to run on the event loop instead of a worker thread."""
        ...

    def search(self, queries: np.ndarray, k: int,
               filter: ProductFilter | None = None) -> list[list[tuple[str, float]]]:  # noqa: A002 - FaissIndex's name
        """queries: QxD float32 -> per query up to k (product_id, score), best first."""
        ...


class ThumbnailStore(Protocol):
    """Where product thumbnails live (the catalog store; see stores/catalog_store.py)."""

    async def put_thumbnails(self, thumbnails: dict[str, Thumbnail]) -> int:
        """Stores them by product id (unknown products skipped); how many were stored."""
        ...

    async def get_thumbnail(self, product_id: str) -> Thumbnail | None: ...

    async def thumbnail_ids(self, product_ids: list[str]) -> set[str]:
        """Which of these products have a stored thumbnail."""
        ...


class ThumbnailWriter(Protocol):
    """How an import makes and keeps its products' thumbnails (services/thumbnails.py)."""

    def make(self, pixels: np.ndarray) -> Thumbnail:
        """pixels: HxWx3 uint8 RGB -> the JPEG thumbnail (CPU work: call it off the event loop)."""
        ...

    async def missing(self, product_ids: list[str]) -> set[str]:
        """Which of these products have no stored thumbnail."""
        ...

    async def put_many(self, thumbnails: dict[str, Thumbnail]) -> int: ...


class ProductWriter(Protocol):
    """Where an import puts its products (ProductService: store first, then the index) and their thumbnails."""

    thumbnails: ThumbnailWriter

    async def get_many(self, product_ids: list[str]) -> dict[str, Product]:
        """Stored products by id (metadata, incl. source_hash); unknown ids are absent."""
        ...

    async def add(self, products: list[Product]) -> UpsertResult: ...

    async def save(self) -> None:
        """Persists what was added (the vector index)."""
        ...


class ImportJobStore(Protocol):
    """Where import jobs and their leases live (the catalog store; see stores/catalog_store.py)."""

    async def create_import(self, record: ImportRecord) -> None: ...

    async def update_import(self, job_id: str, owner: str, status: str, state: dict) -> bool: ...

    async def get_import(self, job_id: str) -> ImportRecord | None: ...

    async def claim_stale_import(self, owner: str, lease_s: float) -> ImportRecord | None: ...

    async def reopen_import(self, job_id: str, owner: str) -> ImportRecord | None: ...

    async def prune_imports(self, finished_before: float) -> int: ...


class ProductLookup(Protocol):
    async def get(self, product_id: str) -> Product | None: ...

    async def get_many(self, product_ids: list[str], *, include_embeddings: bool = False) -> dict[str, Product]: ...


class ProductMetadata(Protocol):
    """Search hits' metadata by product id (services/product_cache.py; any ProductLookup will do too)."""

    async def get_many(self, product_ids: list[str]) -> dict[str, Product]: ...


GarmentLoader = Callable[[Product], Awaitable[np.ndarray]]
"""async (product) -> uint8 [H, W, 3], the product's photo."""
GarmentRegion = Callable[[np.ndarray, np.ndarray, np.ndarray], Awaitable["np.ndarray | None"]]
"""async (fitted photo HxWx3 uint8, points Nx2 float32, labels N int32) -> HxW bool mask of the worn garment."""


class PersonPreprocessor(Protocol):
    """A shopper's photo -> what the try-on model is conditioned on (orchestrator/clients/person.py)."""

    async def keypoints(self, photo: np.ndarray, category: str) -> np.ndarray:
        """photo: HxWx3 uint8 -> 18x3 float32 OpenPose keypoints in photo pixels. PersonNotFound without the body
        parts `category` needs; InvalidInput for a photo that cannot be prepared."""
        ...

    async def conditions(self, photo: np.ndarray, category: str, frame_hw: tuple[int, int], keypoints: np.ndarray,
                         garment_region: GarmentRegion | None):
        """The person conditions (tryon.preprocess.PersonConditions) for `photo` framed to `frame_hw`, from the
        keypoints `keypoints()` returned for it."""
        ...
