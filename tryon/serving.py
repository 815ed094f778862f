"""The served try-on: Triton's tensors in, a dressed person photo out (used by model_repository/ladi_vton).

Kept free of Triton so it is tested in-process; `model_repository/ladi_vton/1/model.py` only moves tensors.

Request tensors (shapes without a batch axis; the model has max_batch_size 0):
    person        uint8 [H, W, 3]   the shopper, already framed at the model's aspect (H:W = 4:3)
    garment       uint8 [h, w, 3]   the product photo, any size (padded with white to the aspect)
    keypoints     float32 [18, 3]   OpenPose-18 (x, y, confidence) in `person` pixels
    inpaint_mask  uint8 [H, W]      1 = repaint, in `person` pixels
    category      bytes [1]         upper_body | lower_body | dresses
    garment_key   bytes [1]         cache key of the garment ("" = do not cache)
    steps int32 [1], guidance float32 [1], seed int64 [1], scheduler bytes [1] (ddim | dpmpp)
The result is uint8 [H, W, 3]: the person photo's own size.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from PIL import Image

from snapfit.contract import POSE_KEYPOINTS
from tryon.errors import TryOnInputError
from tryon.posemap import pose_map

ASPECT_TOLERANCE = 0.02
MAX_SIDE = 4096


class TryOnRequestError(TryOnInputError):
    """A request tensor is missing or malformed (Triton: INVALID_ARG). The values of category, steps, guidance,
    seed and scheduler are checked once, by the pipeline (tryon.inputs, on snapfit.contract's limits), which
    raises the parent class TryOnInputError."""


@dataclass(frozen=True)
class TryOnRequest:
    person: np.ndarray
    garment: np.ndarray
    keypoints: np.ndarray
    inpaint_mask: np.ndarray
    category: str
    garment_key: str
    steps: int
    guidance: float
    seed: int
    scheduler: str


def _scalar(arrays: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    if name not in arrays:
        raise TryOnRequestError(f"missing input {name!r}")
    value = np.asarray(arrays[name]).reshape(-1)
    if value.size != 1:
        raise TryOnRequestError(f"{name} must hold exactly one value, got shape {np.shape(arrays[name])}")
    return value[0]


def _text(arrays: Mapping[str, np.ndarray], name: str) -> str:
    value = _scalar(arrays, name)
    try:
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)
    except UnicodeDecodeError:
        raise TryOnRequestError(f"{name} is not UTF-8") from None


def _image(arrays: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    if name not in arrays:
        raise TryOnRequestError(f"missing input {name!r}")
    image = np.asarray(arrays[name])
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise TryOnRequestError(f"{name} must be uint8 [H, W, 3], got {image.dtype} {list(image.shape)}")
    if min(image.shape[:2]) < 16 or max(image.shape[:2]) > MAX_SIDE:
        raise TryOnRequestError(f"{name} must be 16..{MAX_SIDE} pixels per side, got {list(image.shape[:2])}")
    return image


def parse_request(arrays: Mapping[str, np.ndarray]) -> TryOnRequest:
    """Reads the request tensors into Python values; raises TryOnRequestError naming the first malformed one."""
    person, garment = _image(arrays, "person"), _image(arrays, "garment")
    keypoints = np.asarray(arrays.get("keypoints", np.zeros(0)), dtype=np.float32)
    if keypoints.shape != (POSE_KEYPOINTS, 3):
        raise TryOnRequestError(f"keypoints must be float32 [{POSE_KEYPOINTS}, 3], got {list(keypoints.shape)}")
    mask = np.asarray(arrays.get("inpaint_mask", np.zeros(0)))
    if mask.shape != person.shape[:2]:
        raise TryOnRequestError(f"inpaint_mask must be [H, W] of the person {list(person.shape[:2])}, "
                                f"got {list(mask.shape)}")
    category, scheduler = _text(arrays, "category"), _text(arrays, "scheduler")
    steps, guidance = int(_scalar(arrays, "steps")), float(_scalar(arrays, "guidance"))
    return TryOnRequest(person=person, garment=garment, keypoints=keypoints, inpaint_mask=mask.astype(bool),
                        category=category, garment_key=_text(arrays, "garment_key") if "garment_key" in arrays else "",
                        steps=steps, guidance=guidance, seed=int(_scalar(arrays, "seed")), scheduler=scheduler)


def _resize(image: np.ndarray, height: int, width: int, resample=Image.BICUBIC) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((width, height), resample))


def pad_to_aspect(image: np.ndarray, height: int, width: int, fill: int = 255) -> np.ndarray:
    """uint8 [h, w, 3] -> uint8 [height, width, 3]: centred on a `fill` canvas of the target aspect, resized."""
    h, w = image.shape[:2]
    canvas_h, canvas_w = (h, round(h * width / height)) if h * width >= w * height else (round(w * height / width), w)
    canvas = np.full((canvas_h, canvas_w, 3), fill, np.uint8)
    top, left = (canvas_h - h) // 2, (canvas_w - w) // 2
    canvas[top:top + h, left:left + w] = image
    return _resize(canvas, height, width)


class TryOnServing:
    """One loaded pipeline and its frame; `run` turns one request into the dressed person photo."""

    def __init__(self, pipeline, frame_hw: tuple[int, int]):
        self.pipeline = pipeline
        self.frame_h, self.frame_w = frame_hw

    def run(self, request: TryOnRequest, on_step: Callable[[int, int], None] = lambda step, total: None,
            cancelled: Callable[[], bool] = lambda: False) -> np.ndarray:
        """-> uint8 [H, W, 3] at the person's size. Raises TryOnRequestError, or the pipeline's TryOnCancelled."""
        from tryon.pipeline import TryOnInputs, TryOnOptions

        height, width = request.person.shape[:2]
        if abs(height / width - self.frame_h / self.frame_w) > ASPECT_TOLERANCE * self.frame_h / self.frame_w:
            raise TryOnRequestError(f"person must have the model's aspect H:W = {self.frame_h}:{self.frame_w}, "
                                    f"got {height}x{width}; frame it first (tryon.preprocess.frame)")
        scale = np.array([self.frame_w / width, self.frame_h / height], np.float32)
        keypoints = request.keypoints.copy()
        keypoints[:, :2] *= scale
        mask = _resize(request.inpaint_mask.astype(np.uint8) * 255, self.frame_h, self.frame_w, Image.NEAREST) > 127
        inputs = TryOnInputs(
            person=_resize(request.person, self.frame_h, self.frame_w),
            garment=pad_to_aspect(request.garment, self.frame_h, self.frame_w),
            pose_map=pose_map(keypoints, self.frame_h, self.frame_w),
            inpaint_mask=mask, category=request.category, garment_key=request.garment_key or None)
        options = TryOnOptions(steps=request.steps, guidance=request.guidance, seed=request.seed,
                               scheduler=request.scheduler)
        result = self.pipeline(inputs, options, on_step=on_step, cancelled=cancelled)
        return result if (height, width) == result.shape[:2] else _resize(result, height, width)
