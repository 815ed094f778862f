"""Uploaded photos: validated once, stored by content hash, decoded on demand, SAM-encoded at most once.

Originals live on disk (content-addressed, so an image id survives restarts); SAM embeddings live in a
bytes-bounded LRU.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from orchestrator.errors import InvalidInput, NotFound, StoreUnavailable
from orchestrator.images import content_hash, decode_image
from orchestrator.services.dependencies import ImageEncoder
from orchestrator.services.embedding_cache import EmbeddingCache
from orchestrator.settings import ImageSettings

log = logging.getLogger(__name__)
_IMAGE_ID = re.compile(r"^[0-9a-f]{64}$")
DECODED_CACHE_ENTRIES = 8


@dataclass(frozen=True)
class ImageInfo:
    image_id: str
    width: int
    height: int


class UploadedImages:
    def __init__(self, folder: Path, settings: ImageSettings, cache: EmbeddingCache, models: ImageEncoder):
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:  # a read-only volume: uploads answer 503 until it is writable, the rest works
            log.warning("cannot create the upload folder %s (%s)", self.folder, error.strerror or error)
        self.settings = settings
        self.cache = cache
        self.models = models
        self._decoded: OrderedDict[str, np.ndarray] = OrderedDict()

    async def add(self, data: bytes) -> ImageInfo:
        """Validates and stores an upload (JPEG/PNG/WebP); the same bytes always give the same id."""
        pixels = await asyncio.to_thread(decode_image, data, self.settings.max_upload_bytes, self.settings.max_pixels)
        image_id = content_hash(data)
        path = self.folder / image_id
        if not path.exists():
            await asyncio.to_thread(_write_atomically, path, data)
        self._remember(image_id, pixels)
        return ImageInfo(image_id, width=pixels.shape[1], height=pixels.shape[0])

    async def pixels(self, image_id: str) -> np.ndarray:
        """HxWx3 uint8 RGB, EXIF orientation applied. NotFound for unknown ids."""
        if image_id in self._decoded:
            self._decoded.move_to_end(image_id)
            return self._decoded[image_id]
        path = self._path(image_id)
        data = await asyncio.to_thread(path.read_bytes)
        pixels = await asyncio.to_thread(decode_image, data, self.settings.max_upload_bytes, self.settings.max_pixels)
        self._remember(image_id, pixels)
        return pixels

    async def embedding(self, image_id: str) -> np.ndarray:
        """1x256x64x64 float32 SAM embedding, computed once per image while it stays in the cache."""
        pixels = await self.pixels(image_id)
        return await self.cache.get_or_compute(image_id, lambda: self.models.sam_embedding(pixels))

    def _path(self, image_id: str) -> Path:
        if not _IMAGE_ID.match(image_id or ""):
            raise InvalidInput("image_id must be the 64-character hex id returned by POST /v1/images")
        path = self.folder / image_id
        if not path.exists():
            raise NotFound(f"no uploaded image {image_id}; upload it with POST /v1/images")
        return path

    def _remember(self, image_id: str, pixels: np.ndarray) -> None:
        self._decoded[image_id] = pixels
        self._decoded.move_to_end(image_id)
        while len(self._decoded) > DECODED_CACHE_ENTRIES:
            self._decoded.popitem(last=False)


def _write_atomically(path: Path, data: bytes) -> None:
    """Writes `data` at `path` whole or not at all; StoreUnavailable when the disk refuses (full, read-only)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as error:
        with contextlib.suppress(OSError):  # a read-only volume refuses the unlink too
            tmp.unlink(missing_ok=True)
        raise StoreUnavailable(f"cannot keep the uploaded photo in {path.parent}: {error.strerror or error}") \
            from error
