"""OpenPose-COCO-18 keypoints -> the 18-channel Gaussian pose map LaDI-VTON is conditioned on.

Follows Dress Code / VITON-HD's `kpoint_to_heatmap`: one channel per keypoint, exp(-d²/σ²) with σ = 9 px at a
512-pixel-high frame, peak 1, all zero where the keypoint is missing.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "neck",
    "r_shoulder", "r_elbow", "r_wrist",
    "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle",
    "l_hip", "l_knee", "l_ankle",
    "r_eye", "l_eye", "r_ear", "l_ear",
)
"""OpenPose-COCO-18 order; right/left are the person's own (a front-facing person's right is on the image's left)."""


class Joint(IntEnum):
    """Index of each OpenPose-18 keypoint, for code that reads better than `keypoints[5]`."""

    NOSE = 0
    NECK = 1
    R_SHOULDER = 2
    R_ELBOW = 3
    R_WRIST = 4
    L_SHOULDER = 5
    L_ELBOW = 6
    L_WRIST = 7
    R_HIP = 8
    R_KNEE = 9
    R_ANKLE = 10
    L_HIP = 11
    L_KNEE = 12
    L_ANKLE = 13
    R_EYE = 14
    L_EYE = 15
    R_EAR = 16
    L_EAR = 17


NUM_KEYPOINTS = len(KEYPOINT_NAMES)
REFERENCE_HEIGHT_PX = 512
REFERENCE_SIGMA_PX = 9.0
MIN_CONFIDENCE = 0.1
"""A keypoint whose confidence is below this (or NaN) counts as missing."""


def check_keypoints(keypoints: np.ndarray) -> np.ndarray:
    """Returns keypoints as float32 [18, 3]; raises ValueError for any other shape."""
    keypoints = np.asarray(keypoints, dtype=np.float32)
    if keypoints.shape != (NUM_KEYPOINTS, 3):
        raise ValueError(f"keypoints must be [{NUM_KEYPOINTS}, 3] (x, y, confidence), got {list(keypoints.shape)}")
    return keypoints


def present_keypoints(keypoints: np.ndarray, min_confidence: float = MIN_CONFIDENCE) -> np.ndarray:
    """keypoints float32 [18, 3] -> bool [18]: finite coordinates and confidence >= min_confidence."""
    keypoints = check_keypoints(keypoints)
    finite = np.isfinite(keypoints).all(axis=1)
    with np.errstate(invalid="ignore"):
        return finite & (keypoints[:, 2] >= min_confidence)


def default_sigma(height: int) -> float:
    """σ in pixels for a frame `height` pixels high: 9 px at 512, proportionally less for smaller frames."""
    return REFERENCE_SIGMA_PX * height / REFERENCE_HEIGHT_PX


def pose_map(keypoints: np.ndarray, height: int, width: int, sigma: float | None = None,
             min_confidence: float = MIN_CONFIDENCE) -> np.ndarray:
    """Gaussian heatmaps of the 18 OpenPose keypoints.

    Args:
        keypoints: float32 [18, 3], (x, y) in pixels of the height x width frame, then confidence.
            A keypoint is missing when its confidence is below `min_confidence`, it is NaN, or it lies
            outside the frame (OpenPose, which the checkpoints were trained with, reports only points in the image).
        sigma: Gaussian width in pixels; default 9 px scaled by height / 512.

    Returns:
        float32 [18, height, width] in [0, 1]: exp(-d²/σ²) normalised to peak 1; all zero for a missing keypoint.
    """
    keypoints = check_keypoints(keypoints)
    sigma = default_sigma(height) if sigma is None else float(sigma)
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    x, y = keypoints[:, 0], keypoints[:, 1]
    with np.errstate(invalid="ignore"):
        inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    present = present_keypoints(keypoints, min_confidence) & inside
    heatmaps = np.zeros((NUM_KEYPOINTS, height, width), np.float32)
    cols = np.arange(width, dtype=np.float32)
    rows = np.arange(height, dtype=np.float32)
    for index in np.flatnonzero(present):
        # separable: exp(-(dx² + dy²)/σ²) = exp(-dx²/σ²) * exp(-dy²/σ²)
        across = np.exp(-((cols - x[index]) ** 2) / sigma**2)
        down = np.exp(-((rows - y[index]) ** 2) / sigma**2)
        heatmap = np.outer(down, across)
        heatmaps[index] = heatmap / heatmap.max()
    return heatmaps
