"""UploadedImages: content-addressed uploads that survive the decoded-image cache, ids checked, and one SAM
encoder call per image however often it is clicked."""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest
from PIL import Image

from orchestrator.errors import InvalidInput, NotFound
from orchestrator.images import content_hash
from orchestrator.services.embedding_cache import EmbeddingCache
from orchestrator.services.images import DECODED_CACHE_ENTRIES, UploadedImages
from orchestrator.settings import ImageSettings
from tests.support.fakes import FakeModels


def png(value: int, size=(30, 20)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def images(tmp_path):
    return UploadedImages(tmp_path / "uploads", ImageSettings(), EmbeddingCache(64 * 1024 * 1024), FakeModels())


async def test_an_upload_is_stored_under_its_sha256_and_decodes_again_after_eviction(images, tmp_path):
    data = png(10)
    info = await images.add(data)
    assert (info.image_id, info.width, info.height) == (content_hash(data), 20, 30)
    for value in range(DECODED_CACHE_ENTRIES + 1):  # push it out of the decoded cache
        await images.add(png(100 + value))
    assert (await images.pixels(info.image_id) == 10).all()
    assert (tmp_path / "uploads" / info.image_id).read_bytes() == data


async def test_the_same_bytes_give_the_same_id(images):
    assert (await images.add(png(5))).image_id == (await images.add(png(5))).image_id


@pytest.mark.parametrize("image_id, error", [("../../etc/passwd", InvalidInput), ("A" * 64, InvalidInput),
                                             ("0" * 64, NotFound)])
async def test_ids_are_checked_before_the_disk_is_touched(images, image_id, error):
    with pytest.raises(error):
        await images.pixels(image_id)


async def test_concurrent_clicks_on_a_new_photo_encode_it_once(images):
    info = await images.add(png(7))
    embeddings = await asyncio.gather(*(images.embedding(info.image_id) for _ in range(5)))
    assert all(e.shape == (1, 256, 64, 64) for e in embeddings)
    assert [c[0] for c in images.models.calls] == ["sam_embedding"]
