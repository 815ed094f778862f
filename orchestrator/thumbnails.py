"""Product thumbnails: decoded photo pixels in, a small JPEG and its ETag out (CPU only, no I/O).

The importer makes one from the pixels it already decoded for the models; the product image route serves it.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
from PIL import Image

from orchestrator.domain import Thumbnail
from orchestrator.errors import InvalidInput


def thumbnail_etag(data: bytes) -> str:
    """The strong validator of a thumbnail: BLAKE2b-128 of its bytes, 32 lowercase hex characters (unquoted)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def encode_thumbnail(pixels: np.ndarray, max_side_px: int, jpeg_quality: int) -> Thumbnail:
    """A JPEG thumbnail of a decoded photo.

    pixels: HxWx3 uint8 RGB (what orchestrator.images.decode_image returns).
    returns: a baseline RGB JPEG at `jpeg_quality`, aspect ratio kept, longest side min(max(H, W), max_side_px)
        (never enlarged; each side at least 1 px), with its ETag. A few milliseconds of CPU for a catalog
        photo: call it off the event loop.
    raises: InvalidInput when `pixels` is not HxWx3 uint8 or the limits are out of range.
    """
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8 or 0 in pixels.shape:
        raise InvalidInput(f"a thumbnail needs HxWx3 uint8 pixels, got {pixels.shape} {pixels.dtype}")
    if max_side_px < 1 or not 1 <= jpeg_quality <= 100:
        raise InvalidInput(f"thumbnail limits out of range: max side {max_side_px} px, quality {jpeg_quality}")
    image = Image.fromarray(np.ascontiguousarray(pixels), "RGB")
    # reducing_gap: a cheap box reduction first, then LANCZOS over the last factor of 3 (visually the same)
    image.thumbnail((max_side_px, max_side_px), Image.Resampling.LANCZOS, reducing_gap=3.0)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=jpeg_quality, optimize=True)
    data = buffer.getvalue()
    return Thumbnail(data=data, etag=thumbnail_etag(data))
