"""What a try-on request carries, and its validation (TryOnInputError names the offending field)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tryon.config import CATEGORIES, POSE_CHANNELS
from tryon.errors import TryOnInputError
from tryon.schedulers import SCHEDULERS

MAX_STEPS = 500  # DDIM with steps_offset 1 indexes past 1000 training steps at 1000


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
    """steps: denoising steps (1..500); guidance: classifier-free guidance scale (>= 0; <= 1 runs the conditional
    branch only, as LaDI); seed: noise seed; scheduler: "ddim" (LaDI's) or "dpmpp" (DPM-Solver++)."""

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
    if inputs.category not in CATEGORIES:
        raise TryOnInputError(f"category must be one of {list(CATEGORIES)}, got {inputs.category!r}")
    if inputs.garment_key is not None and not isinstance(inputs.garment_key, str):
        raise TryOnInputError(f"garment_key must be a string or None, got {type(inputs.garment_key).__name__}")


def validate_options(options: TryOnOptions) -> None:
    """Raises TryOnInputError for steps outside 1..500, a negative or non-finite guidance, a bad seed or scheduler."""
    if not isinstance(options, TryOnOptions):
        raise TryOnInputError(f"expected TryOnOptions, got {type(options).__name__}")
    if isinstance(options.steps, bool) or not isinstance(options.steps, (int, np.integer)) \
            or not 1 <= options.steps <= MAX_STEPS:
        raise TryOnInputError(f"steps must be an integer in 1..{MAX_STEPS}, got {options.steps!r}")
    if isinstance(options.guidance, bool) or not isinstance(options.guidance, (int, float, np.floating, np.integer)) \
            or not math.isfinite(options.guidance) or options.guidance < 0:
        raise TryOnInputError(f"guidance must be a finite number >= 0, got {options.guidance!r}")
    if isinstance(options.seed, bool) or not isinstance(options.seed, (int, np.integer)) \
            or not 0 <= options.seed < 2 ** 63:
        raise TryOnInputError(f"seed must be an integer in 0..2**63-1, got {options.seed!r}")
    if options.scheduler not in SCHEDULERS:
        raise TryOnInputError(f"scheduler must be one of {list(SCHEDULERS)}, got {options.scheduler!r}")
