"""Validation of the shopper's photo, shared by every preprocessing step."""

from __future__ import annotations

import numpy as np

from tryon.preprocess.errors import InvalidPhoto

MIN_SIDE_PX = 16
MAX_SIDE_PX = 8192


def check_photo(photo: np.ndarray) -> np.ndarray:
    """Returns `photo` as a C-contiguous uint8 [H, W, 3] RGB array; raises InvalidPhoto otherwise."""
    photo = np.asarray(photo)
    if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
        raise InvalidPhoto(f"the photo must be RGB uint8 [H, W, 3], got {photo.dtype} {list(photo.shape)}")
    if min(photo.shape[:2]) < MIN_SIDE_PX or max(photo.shape[:2]) > MAX_SIDE_PX:
        raise InvalidPhoto(f"the photo must be {MIN_SIDE_PX}..{MAX_SIDE_PX} pixels per side, "
                           f"got {photo.shape[0]}x{photo.shape[1]}")
    return np.ascontiguousarray(photo)
