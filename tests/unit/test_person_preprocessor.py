"""MediapipePersonPreprocessor: tryon.preprocess behind the orchestrator's errors, with pose detected once."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.data import astronaut

from orchestrator.clients.person import MediapipePersonPreprocessor
from orchestrator.errors import InvalidInput, PersonNotFound

FRAME_HW = (128, 96)


@pytest.mark.parametrize("shape", [(8, 8, 3), (9000, 64, 3), (64, 64)])
async def test_a_photo_preprocessing_cannot_use_is_invalid_input_not_a_crash(shape):
    with pytest.raises(InvalidInput, match="cannot be prepared for try-on"):
        await MediapipePersonPreprocessor().keypoints(np.zeros(shape, np.uint8), "upper_body")


async def test_a_photo_without_a_person_is_person_not_found():
    with pytest.raises(PersonNotFound, match="no person"):
        await MediapipePersonPreprocessor().keypoints(np.full((256, 256, 3), 127, np.uint8), "upper_body")


async def test_conditions_reuse_the_keypoints_instead_of_detecting_again(monkeypatch):
    import tryon.preprocess.person as person_module

    preprocessor = MediapipePersonPreprocessor()
    photo = astronaut()
    keypoints = await preprocessor.keypoints(photo, "upper_body")
    assert keypoints.shape == (18, 3) and keypoints[:, 2].max() > 0

    def detect_again(_photo):
        raise AssertionError("pose detection ran a second time")

    monkeypatch.setattr(person_module, "detect_keypoints", detect_again)
    conditions = await preprocessor.conditions(photo, "upper_body", FRAME_HW, keypoints, None)
    assert conditions.person.shape == (*FRAME_HW, 3) and conditions.inpaint_mask.any()


async def test_the_garment_region_hook_is_awaited_on_the_event_loop():
    preprocessor = MediapipePersonPreprocessor()
    photo = astronaut()
    keypoints = await preprocessor.keypoints(photo, "upper_body")
    seen = []

    async def region(fitted, points, labels):
        seen.append((fitted.shape, len(points)))
        return np.ones(fitted.shape[:2], bool)

    conditions = await preprocessor.conditions(photo, "upper_body", FRAME_HW, keypoints, region)
    assert seen and seen[0][0] == (*FRAME_HW, 3)
    assert conditions.inpaint_mask.shape == FRAME_HW
