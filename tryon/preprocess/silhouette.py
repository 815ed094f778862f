"""Photo -> the person's silhouette, with mediapipe's bundled selfie segmentation."""

from __future__ import annotations

import numpy as np

from tryon.preprocess.mediapipe_models import selfie_segmentation_solution
from tryon.preprocess.photo import check_photo

SILHOUETTE_THRESHOLD = 0.5


def _read_mask(results) -> np.ndarray:
    return np.array(results.segmentation_mask, np.float32, copy=True)


def person_probability(photo: np.ndarray, model_selection: int = 0) -> np.ndarray:
    """uint8 [H, W, 3] RGB -> float32 [H, W] in [0, 1], the probability that a pixel belongs to a person."""
    photo = check_photo(photo)
    return selfie_segmentation_solution(model_selection).process(photo, _read_mask)


def person_silhouette(photo: np.ndarray, threshold: float = SILHOUETTE_THRESHOLD,
                      model_selection: int = 0) -> np.ndarray:
    """uint8 [H, W, 3] RGB -> bool [H, W], True on the person (and on whatever they hold or lean on).

    model_selection: 0 = general model (square 256x256 input; suits a 4:3 portrait frame), 1 = landscape model.
    """
    return person_probability(photo, model_selection) >= threshold
