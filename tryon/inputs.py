"""What a try-on request carries, and its validation (TryOnInputError names the offending field)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snapfit.contract import TRYON_CATEGORIES, tryon_option_errors
from tryon.config import POSE_CHANNELS
from tryon.errors import TryOnInputError


@dataclass(frozen=True)
class TryOnInputs:
    """One try-on, all arrays in the pipeline's frame (H x W = config.height x config.width).

    person:       uint8 [H, W, 3] RGB photo of the person
    garment:      uint8 [H, W, 3] RGB product photo
    pose_map:     float32 [18, H, W] OpenPose-18 Gaussian heatmaps in [0, 1]
    inpaint_mask: bool [H, W], True = region to repaint
    category:     "upper_body" | "lower_body" | "dresses"
    garment_key:  cache key for the garment's text conditioning (e.g. product id + image hash); None or "" = no cache
    """

    person: np.ndarray
    garment: np.ndarray
    pose_map: np.ndarray
    inpaint_mask: np.ndarray
    category: str
    garment_key: str | None = None


@dataclass(frozen=True)
class TryOnOptions:
    """steps: denoising steps (1..500); guidance: classifier-free guidance scale (0..30; <= 1 runs the conditional
    branch only, as LaDI); seed: noise seed; scheduler: "ddim" (LaDI's) or "dpmpp" (DPM-Solver++).
    The limits are snapfit.contract's (TRYON_*), shared with the HTTP API."""

    steps: int = 50
    guidance: float = 7.5
    seed: int = 1234
    scheduler: str = "ddim"


def _check_array(name: str, value: object, shape: tuple[int, ...], dtype: type) -> None:
    if not isinstance(value, np.ndarray):
        raise TryOnInputError(f"{name} must be a numpy array, got {type(value).__name__}")
    if value.dtype != dtype:
        raise TryOnInputError(f"{name} must be {np.dtype(dtype).name}, got {value.dtype}")
    if value.shape != shape:
        raise TryOnInputError(f"{name} must have shape {list(shape)}, got {list(value.shape)}")


def validate_inputs(inputs: TryOnInputs, frame: tuple[int, int]) -> None:
    """Raises TryOnInputError unless every array has the frame's shape and dtype and the category is known."""
    if not isinstance(inputs, TryOnInputs):
        raise TryOnInputError(f"expected TryOnInputs, got {type(inputs).__name__}")
    h, w = frame
    _check_array("person", inputs.person, (h, w, 3), np.uint8)
    _check_array("garment", inputs.garment, (h, w, 3), np.uint8)
    _check_array("pose_map", inputs.pose_map, (POSE_CHANNELS, h, w), np.float32)
    _check_array("inpaint_mask", inputs.inpaint_mask, (h, w), np.bool_)
    if not np.isfinite(inputs.pose_map).all():
        raise TryOnInputError("pose_map contains NaN or infinite values")
    if inputs.category not in TRYON_CATEGORIES:
        raise TryOnInputError(f"category must be one of {', '.join(TRYON_CATEGORIES)}, got {inputs.category!r}")
    if inputs.garment_key is not None and not isinstance(inputs.garment_key, str):
        raise TryOnInputError(f"garment_key must be a string or None, got {type(inputs.garment_key).__name__}")


def validate_options(options: TryOnOptions) -> None:
    """Raises TryOnInputError naming every bad option (snapfit.contract.tryon_option_errors: steps, guidance,
    seed, scheduler)."""
    if not isinstance(options, TryOnOptions):
        raise TryOnInputError(f"expected TryOnOptions, got {type(options).__name__}")
    errors = tryon_option_errors(options.steps, options.guidance, options.seed, options.scheduler)
    if errors:
        raise TryOnInputError("; ".join(errors))
