"""encode_thumbnail: decoded pixels -> a bounded RGB JPEG with a strong ETag."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from orchestrator.errors import InvalidInput
from orchestrator.thumbnails import encode_thumbnail, thumbnail_etag


def pixels(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize("height, width, expected_size", [
    (600, 1000, (384, 230)),   # landscape: the width is bounded
    (1200, 300, (96, 384)),    # portrait: the height is bounded
    (384, 384, (384, 384)),    # at the bound: kept
    (16, 20, (20, 16)),        # smaller: never enlarged
    (5000, 1, (1, 384)),       # a sliver keeps at least one pixel
])
def test_the_longest_side_is_bounded_and_the_aspect_ratio_kept(height, width, expected_size):
    thumbnail = encode_thumbnail(pixels(height, width), max_side_px=384, jpeg_quality=85)

    image = opened(thumbnail.data)
    assert (image.format, image.mode) == ("JPEG", "RGB")
    assert image.size == expected_size


def test_the_etag_is_a_hash_of_the_bytes_and_the_same_pixels_give_the_same_thumbnail():
    photo = pixels(300, 200, seed=1)

    first = encode_thumbnail(photo, 128, 85)
    again = encode_thumbnail(photo.copy(), 128, 85)
    other = encode_thumbnail(pixels(300, 200, seed=2), 128, 85)

    assert first.etag == hashlib.blake2b(first.data, digest_size=16).hexdigest() == thumbnail_etag(first.data)
    assert again == first
    assert other.etag != first.etag


def test_quality_trades_bytes_for_fidelity():
    photo = pixels(400, 400)

    assert len(encode_thumbnail(photo, 384, 40).data) < len(encode_thumbnail(photo, 384, 95).data)


@pytest.mark.parametrize("bad", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 4), np.uint8),
                                 np.zeros((10, 10, 3), np.float32), np.zeros((0, 10, 3), np.uint8)])
def test_anything_but_hxwx3_uint8_pixels_is_refused(bad):
    with pytest.raises(InvalidInput, match="HxWx3 uint8"):
        encode_thumbnail(bad, 384, 85)
