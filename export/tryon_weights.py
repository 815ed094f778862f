"""The try-on model's weights for `snapfit export`: LaDI-VTON is served from PyTorch, not ONNX.

Real weights are placed by hand (README: "Try-on weights"); when `model_repository/ladi_vton/1/weights/`
holds none, the export writes the tiny profile's random weights there in the same layout, so the stack
starts and the whole try-on path runs (with meaningless images) until real checkpoints are placed.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from snapfit import contract
from snapfit.repository_layout import has_tryon_weights as has_weights
from snapfit.repository_layout import tryon_weights_dir as weights_dir

log = logging.getLogger(__name__)
TRYON_MODEL = contract.LADI_VTON


def ensure_tryon_weights(repository: Path, profile: str, step: Callable[[str], None] = lambda d: None) -> str:
    """Writes the tiny random weights unless weights are present; returns what it did, for the summary."""
    from tryon.weights import save_tiny_weights

    target = weights_dir(repository)
    if has_weights(repository):
        step("weights present, kept")
        return f"kept the weights in {target}"
    if profile != "tiny":
        log.warning("no LaDI-VTON weights in %s: writing the TINY random try-on model (the full-size one with random "
                    "weights would be 8 GB of noise); place the published checkpoints there for real try-ons "
                    "(README: Try-on weights)", target)
    step("writing tiny random weights")
    partial = target.with_name("weights.partial")
    shutil.rmtree(partial, ignore_errors=True)
    save_tiny_weights(partial, seed=0)
    partial.rename(target)
    step("done")
    return f"wrote tiny random try-on weights to {target}"
