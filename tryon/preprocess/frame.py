"""Fit any photo into the model's frame (512 x 384, 4:3 tall) and map results back to the photo.

The photo is padded to the frame's aspect (never cropped, so no part of the person is lost) and resized.
`FrameFit` remembers how, so keypoints can move between the two and the try-on result can be returned at the
shopper's own size and aspect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from tryon.preprocess.photo import check_photo

DEFAULT_FRAME_HW = (512, 384)
ASPECT_TOLERANCE = 0.02
PadMode = Literal["neutral", "edge"]


@dataclass(frozen=True)
class FrameFit:
    """How a photo was placed in the frame.

    photo_hw: (h, w) of the original photo. frame_hw: (H, W) of the model frame.
    pad_top, pad_left: padding added above / left of the photo, in photo pixels.
    padded_hw: (h + pad_top + pad_bottom, w + pad_left + pad_right), the canvas resized to frame_hw.
    """

    photo_hw: tuple[int, int]
    frame_hw: tuple[int, int]
    pad_top: int
    pad_left: int
    padded_hw: tuple[int, int]

    @property
    def scale_xy(self) -> np.ndarray:
        """float32 [2]: frame pixels per photo pixel along x and y (equal up to rounding of the padding)."""
        return np.array([self.frame_hw[1] / self.padded_hw[1], self.frame_hw[0] / self.padded_hw[0]], np.float32)

    def points_to_frame(self, points_xy: np.ndarray) -> np.ndarray:
        """points_xy: float [N, 2] (x, y) in photo pixels -> float32 [N, 2] in frame pixels."""
        offset = np.array([self.pad_left, self.pad_top], np.float32)
        return (np.asarray(points_xy, np.float32) + offset) * self.scale_xy

    def points_to_original(self, points_xy: np.ndarray) -> np.ndarray:
        """points_xy: float [N, 2] (x, y) in frame pixels -> float32 [N, 2] in photo pixels."""
        offset = np.array([self.pad_left, self.pad_top], np.float32)
        return np.asarray(points_xy, np.float32) / self.scale_xy - offset

    def keypoints_to_frame(self, keypoints: np.ndarray) -> np.ndarray:
        """keypoints float32 [K, 3] (x, y, confidence) in photo pixels -> the same in frame pixels.

        Missing keypoints (confidence 0, OpenPose's (0, 0, 0)) stay (0, 0, 0) instead of moving with the padding.
        """
        keypoints = np.asarray(keypoints, np.float32)
        moved = keypoints.copy()
        moved[:, :2] = self.points_to_frame(keypoints[:, :2])
        missing = ~(keypoints[:, 2] > 0)
        moved[missing] = 0.0
        return moved

    def to_original(self, image: np.ndarray) -> np.ndarray:
        """A result in the frame -> the original photo's size and aspect (padding cropped away).

        image: [H, W] or [H, W, C] with the frame's aspect (normally frame_hw itself); uint8/float images are
            resized bilinearly, bool masks nearest.
        Returns [h, w] or [h, w, C] of photo_hw, same dtype.
        """
        image = np.asarray(image)
        frame_h, frame_w = self.frame_hw
        aspect_error = abs(image.shape[0] / image.shape[1] - frame_h / frame_w) / (frame_h / frame_w)
        if image.ndim not in (2, 3) or aspect_error > ASPECT_TOLERANCE:
            raise ValueError(f"expected an image with the frame's aspect {frame_h}:{frame_w}, got {list(image.shape)}")
        is_mask = image.dtype == bool
        source = image.astype(np.uint8) if is_mask else image
        interpolation = cv2.INTER_NEAREST if is_mask else cv2.INTER_LINEAR
        padded = cv2.resize(source, (self.padded_hw[1], self.padded_hw[0]), interpolation=interpolation)
        h, w = self.photo_hw
        cropped = padded[self.pad_top:self.pad_top + h, self.pad_left:self.pad_left + w]
        return cropped.astype(bool) if is_mask else np.ascontiguousarray(cropped)


def _padding(photo_hw: tuple[int, int], frame_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) in photo pixels that bring photo_hw to frame_hw's aspect, centred."""
    h, w = photo_hw
    frame_h, frame_w = frame_hw
    if h * frame_w >= w * frame_h:  # taller than the frame: widen
        extra = max(round(h * frame_w / frame_h) - w, 0)
        return 0, 0, extra // 2, extra - extra // 2
    extra = max(round(w * frame_h / frame_w) - h, 0)
    return extra // 2, extra - extra // 2, 0, 0


def _neutral_colour(photo: np.ndarray, top: int, bottom: int, left: int, right: int) -> tuple[int, int, int]:
    """Median colour of the photo's outermost rows/columns on the sides that get padded (its backdrop, usually)."""
    edges = []
    if top or bottom:
        edges += [photo[0], photo[-1]]
    if left or right:
        edges += [photo[:, 0], photo[:, -1]]
    if not edges:
        return (255, 255, 255)
    return tuple(int(c) for c in np.median(np.concatenate(edges), axis=0))


def fit_to_frame(photo: np.ndarray, frame_hw: tuple[int, int] = DEFAULT_FRAME_HW,
                 pad: PadMode = "neutral") -> tuple[np.ndarray, FrameFit]:
    """Pads `photo` to the frame's aspect and resizes it to the frame.

    Args:
        photo: uint8 [h, w, 3] RGB, any size and aspect.
        frame_hw: (H, W) of the model frame; 512 x 384 for the published checkpoints.
        pad: "neutral" fills with the median colour of the padded sides' outermost pixels (a flat backdrop the
            person segmenter reads as background); "edge" replicates the outermost pixels.

    Returns:
        (uint8 [H, W, 3] fitted photo, FrameFit to map points and results back).
    """
    photo = check_photo(photo)
    frame_h, frame_w = int(frame_hw[0]), int(frame_hw[1])
    if frame_h < 8 or frame_w < 8:
        raise ValueError(f"frame_hw must be at least 8x8, got {frame_hw}")
    top, bottom, left, right = _padding(photo.shape[:2], (frame_h, frame_w))
    if pad == "edge":
        padded = cv2.copyMakeBorder(photo, top, bottom, left, right, cv2.BORDER_REPLICATE)
    elif pad == "neutral":
        colour = _neutral_colour(photo, top, bottom, left, right)
        padded = cv2.copyMakeBorder(photo, top, bottom, left, right, cv2.BORDER_CONSTANT, value=colour)
    else:
        raise ValueError(f"pad must be 'neutral' or 'edge', got {pad!r}")
    # INTER_AREA avoids aliasing when shrinking a large phone photo
    shrinking = padded.shape[0] > frame_h
    fitted = cv2.resize(padded, (frame_w, frame_h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    fit = FrameFit(photo_hw=(photo.shape[0], photo.shape[1]), frame_hw=(frame_h, frame_w), pad_top=top,
                   pad_left=left, padded_hw=(padded.shape[0], padded.shape[1]))
    return fitted, fit
