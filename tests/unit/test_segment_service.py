"""SegmentService on fakes: a click becomes SAM's three multimask outputs, best first, with the prompt checked."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.errors import InvalidInput, NotFound
from orchestrator.services.segment import SegmentService
from tests.support.fakes import FakeModels, FakePhotos


@pytest.fixture
def service():
    return SegmentService(FakePhotos({"img": np.zeros((40, 60, 3), np.uint8)}), FakeModels(ious=(0.99, 0.5, 0.9, 0.1)))


async def test_masks_are_the_three_multimask_outputs_best_first(service):
    masks = await service.masks("img", [(10.0, 5.0)], [1], None)
    # multimask outputs 1-3 scored 0.5, 0.9, 0.1: token 0 (0.99) is never offered
    assert [m.score for m in masks] == pytest.approx([0.9, 0.5, 0.1])
    assert [int(m.mask[:, 0].sum()) for m in masks] == [3, 2, 4]  # fake mask i covers i + 1 rows
    assert all(m.mask.dtype == bool and m.mask.shape == (40, 60) for m in masks)


async def test_the_decoder_gets_pixels_of_the_original_photo_as_float32(service):
    await service.masks("img", [(10.0, 5.0), (20.0, 7.0)], [1, 0], (1.0, 2.0, 30.0, 20.0))
    _, orig_hw, points, labels, box = service.models.calls[-1]
    assert orig_hw == (40, 60) and points.dtype == np.float32 and points.tolist() == [[10, 5], [20, 7]]
    assert labels.tolist() == [1, 0] and box.tolist() == [1, 2, 30, 20]
    assert service.images.embedding_requests == ["img"]


@pytest.mark.parametrize("points, labels, box, message", [
    ([], [], None, "at least one point or a box"),
    ([(1.0, 1.0)], [], None, "1 points but 0 labels"),
    ([(1.0, 1.0)], [2], None, "labels must be 1"),
    ([(60.0, 1.0)], [1], None, "outside the 60x40 image"),
    ([], [], (10.0, 10.0, 5.0, 20.0), "box"),
])
async def test_a_bad_prompt_is_refused_before_any_model_call(service, points, labels, box, message):
    with pytest.raises(InvalidInput, match=message):
        await service.masks("img", points, labels, box)
    assert service.models.calls == [] and service.images.embedding_requests == []


async def test_an_unknown_image_is_not_found(service):
    with pytest.raises(NotFound):
        await service.masks("other", [(1.0, 1.0)], [1], None)
