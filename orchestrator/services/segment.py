"""A shopper's click becomes masks: SAM decoder on the cached image embedding, top-3 by predicted IoU."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from orchestrator.domain import MaskPrediction
from orchestrator.errors import InvalidInput
from orchestrator.services.dependencies import MaskPredictor, UploadedPhotos
from orchestrator.timing import stage

MULTIMASK_OUTPUTS = slice(1, 4)  # SAM's three multimask tokens; token 0 is the single-mask output


@dataclass
class ScoredMask:
    """mask: HxW bool at the original image size; score: SAM's predicted IoU."""

    mask: np.ndarray
    score: float


class SegmentService:
    def __init__(self, images: UploadedPhotos, models: MaskPredictor):
        self.images = images
        self.models = models

    async def masks(self, image_id: str, points: list[tuple[float, float]], labels: list[int],
                    box: tuple[float, float, float, float] | None) -> list[ScoredMask]:
        """Top-3 masks, best first. points: (x, y) pixels of the original image; labels: 1 positive, 0 negative."""
        pixels = await self.images.pixels(image_id)
        height, width = pixels.shape[:2]
        _validate_prompt(points, labels, box, width, height)
        embedding = await self.images.embedding(image_id)
        prediction = await self.models.sam_masks(
            embedding, (height, width),
            points=np.asarray(points, dtype=np.float32).reshape(-1, 2) if points else None,
            labels=np.asarray(labels, dtype=np.float32) if points else None,
            box=np.asarray(box, dtype=np.float32) if box is not None else None,
        )
        scores = prediction.iou_predictions[MULTIMASK_OUTPUTS]
        order = [int(i) for i in np.argsort(-scores, kind="stable")]
        with stage("masks"):
            # one worker thread per mask: OpenCV and numpy release the GIL, so the masks upsample side by side
            masks = await asyncio.gather(*(asyncio.to_thread(_thresholded, prediction, MULTIMASK_OUTPUTS.start + i)
                                           for i in order))
        return [ScoredMask(mask=mask, score=float(scores[i])) for mask, i in zip(masks, order)]


def _thresholded(prediction: MaskPrediction, index: int) -> np.ndarray:
    """Mask `index` of the prediction: HxW bool at the photo's size (logits > 0)."""
    return prediction.logits([index])[0] > 0.0


def _validate_prompt(points, labels, box, width: int, height: int) -> None:
    if not points and box is None:
        raise InvalidInput("give at least one point or a box")
    if len(points) != len(labels):
        raise InvalidInput(f"{len(points)} points but {len(labels)} labels")
    if any(label not in (0, 1) for label in labels):
        raise InvalidInput("point labels must be 1 (garment) or 0 (not garment)")
    for x, y in points:
        if not (0 <= x < width and 0 <= y < height):
            raise InvalidInput(f"point ({x}, {y}) lies outside the {width}x{height} image")
    if box is not None:
        x0, y0, x1, y1 = box
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise InvalidInput(f"box {list(box)} must satisfy 0 <= x0 < x1 <= {width} and 0 <= y0 < y1 <= {height}")
