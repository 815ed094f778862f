"""The garment cut-out: cropped to the mask with a margin, the rest painted the neutral background."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.cutout import cut_out
from orchestrator.errors import InvalidInput


def test_cut_out_crops_to_the_mask_and_paints_the_rest():
    pixels = np.full((100, 80, 3), 7, dtype=np.uint8)
    mask = np.zeros((100, 80), dtype=bool)
    mask[20:60, 10:50] = True
    mask[20, 10] = False
    crop = cut_out(pixels, mask, background=(255, 255, 255), margin_fraction=0.1)
    assert crop.shape == (48, 48, 3)  # 40x40 box plus 4 pixels each side
    assert (crop[4 + 1, 4 + 1] == 7).all()
    assert (crop[0, 0] == 255).all() and (crop[4, 4] == 255).all()


def test_an_empty_mask_is_invalid_input():
    with pytest.raises(InvalidInput, match="empty"):
        cut_out(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), bool))


def test_a_mask_of_another_size_is_invalid_input():
    with pytest.raises(InvalidInput):
        cut_out(np.zeros((4, 4, 3), np.uint8), np.ones((5, 4), bool))
