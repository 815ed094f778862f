"""ModelGateway.clip_image: what it sends Triton for photos of any size and for inputs already sized for CLIP."""

from __future__ import annotations

import asyncio

import numpy as np

from orchestrator.clients.models import ModelGateway
from orchestrator.timing import start_request
from snapfit import contract
from snapfit.preprocessing.clip import resize_and_crop

SIZE = contract.CLIP_IMAGE_SIZE


class RecordingTriton:
    """Answers clip_image with one unit vector per image and keeps every `image` input it was sent."""

    def __init__(self, max_batch_size: int = 8):
        self.sent: list[np.ndarray] = []
        self._max_batch_size = max_batch_size

    async def max_batch_size(self, model: str) -> int:
        return self._max_batch_size

    async def infer(self, model, inputs, outputs, timeout_s=None):
        assert model == contract.CLIP_IMAGE and list(outputs) == ["embeddings"]
        self.sent.append(inputs["image"])
        embeddings = np.zeros((len(inputs["image"]), 512), np.float32)
        embeddings[:, 0] = 1.0
        return {"embeddings": embeddings}


def embed(images: list[np.ndarray], triton: RecordingTriton) -> tuple[np.ndarray, dict[str, float]]:
    async def run():
        stages = start_request()
        return await ModelGateway(triton).clip_image(images), stages

    return asyncio.run(run())


def test_a_photo_is_resized_and_cropped_as_open_clip_does_before_it_is_sent():
    photo = np.random.default_rng(0).integers(0, 256, (300, 260, 3), dtype=np.uint8)
    triton = RecordingTriton()
    embeddings, stages = embed([photo], triton)
    assert embeddings.shape == (1, 512)
    np.testing.assert_array_equal(triton.sent[0], resize_and_crop(photo)[None])
    assert "preprocess" in stages


def test_images_already_sized_for_clip_are_sent_as_they_are_without_preprocessing():
    rng = np.random.default_rng(1)
    prepared = [rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(3)]
    triton = RecordingTriton()
    embeddings, stages = embed(prepared, triton)
    assert embeddings.shape == (3, 512)
    np.testing.assert_array_equal(triton.sent[0], np.stack(prepared))
    # what resize_and_crop would have sent: the same bytes, so skipping it changes no answer
    np.testing.assert_array_equal(triton.sent[0], np.stack([resize_and_crop(i) for i in prepared]))
    assert "preprocess" not in stages


def test_a_mixed_batch_is_resized_where_needed_and_split_into_the_models_batch_size():
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8),
              rng.integers(0, 256, (400, 500, 3), dtype=np.uint8),
              rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)]
    triton = RecordingTriton(max_batch_size=2)
    embeddings, _ = embed(images, triton)
    assert embeddings.shape == (3, 512)
    assert [len(batch) for batch in triton.sent] == [2, 1]
    np.testing.assert_array_equal(np.concatenate(triton.sent), np.stack([resize_and_crop(i) for i in images]))
