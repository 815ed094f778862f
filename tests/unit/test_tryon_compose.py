"""tryon.compose.keep_unmasked: original pixels where nothing is repainted, generated ones inside the mask."""

from __future__ import annotations

import numpy as np
import pytest

from tryon.compose import keep_unmasked


def test_keeps_the_original_outside_and_the_generated_inside_with_a_soft_seam():
    original = np.full((64, 48, 3), 10, np.uint8)
    generated = np.full((64, 48, 3), 250, np.uint8)
    mask = np.zeros((64, 48), bool)
    mask[20:44, 12:36] = True
    out = keep_unmasked(generated, original, mask, feather_px=3)
    assert (out[:20 - 5 * 3] == 10).all() and (out[44 + 5 * 3:] == 10).all()  # beyond the seam: untouched
    assert (out[22:42, 14:34] >= 247).all() and (out[24:40, 16:32] == 250).all()  # inside: generated
    seam = out[20 - 12:22, 24, 0].astype(int)
    assert (np.diff(seam) >= 0).all() and seam[0] < 30 and seam[-1] > 240  # a ramp outside the mask


def test_without_feathering_the_mask_is_exact():
    original, generated = np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 200, np.uint8)
    mask = np.eye(8, dtype=bool)
    assert (keep_unmasked(generated, original, mask, feather_px=0)[..., 0] == mask * 200).all()


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="shapes differ"):
        keep_unmasked(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8), np.zeros((8, 8), bool))
