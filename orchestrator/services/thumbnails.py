"""ProductThumbnails: the small JPEG of each product's photo, kept in the catalog store so every replica serves it.

Made at import from the pixels the importer decodes anyway (services/imports.py). A product imported before
thumbnails existed gets one when its row is imported again, or on its first request when its photo is a local
file under `catalog.image_root` (symlinks resolved; nothing outside the root is ever read). A photo at a URL is
never fetched on a shopper's request: re-importing the row makes its thumbnail.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import numpy as np

from orchestrator.domain import Product, Thumbnail
from orchestrator.errors import InvalidInput, NotFound, SnapfitError
from orchestrator.images import decode_image
from orchestrator.ingest import ImageLoader
from orchestrator.services.dependencies import ThumbnailStore
from orchestrator.settings import Settings
from orchestrator.thumbnails import encode_thumbnail

log = logging.getLogger(__name__)
# photos decoded at once for thumbnails made on request: each may be up to images.max_pixels (3 bytes a pixel)
MAX_CONCURRENT_FALLBACKS = 2


class ProductThumbnails:
    """Makes, stores and finds product thumbnails.

    max_side_px / jpeg_quality: the thumbnails' size and quality (catalog settings).
    image_root: the folder local photos must lie in for a thumbnail made on request (None: never made on request).
    max_file_bytes / max_pixels: limits on such a photo (catalog.fetch_max_bytes, images.max_pixels).
    """

    def __init__(self, store: ThumbnailStore, *, max_side_px: int, jpeg_quality: int, image_root: Path | None,
                 max_file_bytes: int, max_pixels: int):
        self.store = store
        self.max_side_px = max_side_px
        self.jpeg_quality = jpeg_quality
        self.image_root = image_root
        self.max_file_bytes = max_file_bytes
        self.max_pixels = max_pixels
        self._fallbacks = asyncio.Semaphore(MAX_CONCURRENT_FALLBACKS)

    @classmethod
    def from_settings(cls, store: ThumbnailStore, settings: Settings) -> ProductThumbnails:
        catalog = settings.catalog
        return cls(store, max_side_px=catalog.thumbnail_max_side_px, jpeg_quality=catalog.thumbnail_jpeg_quality,
                   image_root=catalog.image_root, max_file_bytes=catalog.fetch_max_bytes,
                   max_pixels=settings.images.max_pixels)

    def make(self, pixels: np.ndarray) -> Thumbnail:
        """pixels: HxWx3 uint8 RGB -> its thumbnail (a few ms of CPU: call it off the event loop)."""
        return encode_thumbnail(pixels, self.max_side_px, self.jpeg_quality)

    async def missing(self, product_ids: list[str]) -> set[str]:
        """Which of these products have no stored thumbnail."""
        return set(product_ids) - await self.store.thumbnail_ids(product_ids)

    async def put_many(self, thumbnails: dict[str, Thumbnail]) -> int:
        """Stores thumbnails by product id (those of unknown products are skipped); how many were stored."""
        return await self.store.put_thumbnails(thumbnails) if thumbnails else 0

    async def for_product(self, product: Product) -> Thumbnail:
        """The stored thumbnail, else one made (and stored) now from the product's local photo under the image
        root. NotFound, saying why, when there is none and none can be made."""
        stored = await self.store.get_thumbnail(product.product_id)
        if stored is not None:
            return stored
        async with self._fallbacks:
            stored = await self.store.get_thumbnail(product.product_id)  # made meanwhile by a request like this
            if stored is not None:
                return stored
            thumbnail = await self._from_image_root(product)
            await self.store.put_thumbnails({product.product_id: thumbnail})
        return thumbnail

    async def _from_image_root(self, product: Product) -> Thumbnail:
        no_thumbnail = f"product {product.product_id!r} has no thumbnail yet"
        if "://" in product.image:
            raise NotFound(f"{no_thumbnail}: its photo is at a URL, and those thumbnails are made at import "
                           "(import its row again)")
        if self.image_root is None:
            raise NotFound(f"{no_thumbnail}, and this server has no image root to make one from its photo "
                           "(SNAPFIT_CATALOG__IMAGE_ROOT)")
        async with ImageLoader(max_bytes=self.max_file_bytes, allow_local_files=True,
                               allowed_root=self.image_root) as loader:
            try:
                data = await loader.load(product.image)
            except InvalidInput as error:  # outside the root, a folder, ...: the detail names server paths
                log.info("no thumbnail made for product %r: %s", product.product_id, error.message)
                raise NotFound(f"{no_thumbnail}, and its photo is not a file under the image root") from None
            except SnapfitError as error:
                raise NotFound(f"{no_thumbnail}, and its photo cannot be read: {error.message}") from None
        try:
            return await asyncio.to_thread(self._decode_and_make, data)
        except SnapfitError as error:
            raise NotFound(f"{no_thumbnail}, and its photo cannot be decoded: {error.message}") from None

    def _decode_and_make(self, data: bytes) -> Thumbnail:
        return self.make(decode_image(data, self.max_file_bytes, self.max_pixels))
