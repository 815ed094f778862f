"""Cutting the chosen garment out of a photo so CLIP sees the garment, not the scene around it."""

from __future__ import annotations

import cv2
import numpy as np

from orchestrator.errors import InvalidInput


def cut_out(pixels: np.ndarray, mask: np.ndarray, background: tuple[int, int, int] = (255, 255, 255),
            margin_fraction: float = 0.05) -> np.ndarray:
    """pixels: HxWx3 uint8, mask: HxW bool -> hxwx3 uint8: the mask's bounding box (plus a margin), with
    everything outside the mask painted `background` (product photos are shot on plain backgrounds)."""
    if mask.shape != pixels.shape[:2]:
        raise InvalidInput(f"mask is {mask.shape[0]}x{mask.shape[1]} but the image is "
                           f"{pixels.shape[0]}x{pixels.shape[1]}")
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise InvalidInput("the chosen mask is empty; pick another mask or click again")
    height, width = mask.shape
    pad_y = int(round((rows[-1] - rows[0] + 1) * margin_fraction))
    pad_x = int(round((cols[-1] - cols[0] + 1) * margin_fraction))
    y0, y1 = max(rows[0] - pad_y, 0), min(rows[-1] + 1 + pad_y, height)
    x0, x1 = max(cols[0] - pad_x, 0), min(cols[-1] + 1 + pad_x, width)
    crop = np.empty((y1 - y0, x1 - x0, 3), dtype=np.uint8)
    crop[:] = np.tile(np.asarray(background, dtype=np.uint8), (x1 - x0, 1))  # row-wise: 40x faster than per pixel
    # OpenCV's masked copy: ~3x faster than boolean indexing on a ragged (e.g. random-weight SAM) mask
    cv2.copyTo(np.ascontiguousarray(pixels[y0:y1, x0:x1]),
               np.ascontiguousarray(mask[y0:y1, x0:x1]).view(np.uint8), crop)
    return crop
