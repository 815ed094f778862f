"""Body geometry from OpenPose-18 keypoints: the joints a mask is drawn from, with missing ones estimated.

Proportions are ratios of mediapipe/OpenPose joint distances on an adult standing upright and facing the camera
(shoulder joints ~35 cm apart, hip joints ~25 cm, shoulders to hips ~51 cm, thigh ~41 cm, shin ~38 cm). They
place hips below a half-body photo's frame edge, or knees and ankles for a photo cut at the thighs, well
enough for a coarse inpainting mask; they are not measurements.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tryon.posemap import KEYPOINT_NAMES, MIN_CONFIDENCE, Joint, check_keypoints, present_keypoints
from tryon.preprocess.categories import check_category
from tryon.preprocess.errors import PersonNotFound

REFERENCE_HEIGHT_PX = 512
TORSO_PER_SHOULDER_WIDTH = 1.45
HIP_PER_SHOULDER_WIDTH = 0.7
THIGH_PER_TORSO = 0.8
SHIN_PER_TORSO = 0.75

SHOULDERS = (Joint.R_SHOULDER, Joint.L_SHOULDER)
HIPS = (Joint.R_HIP, Joint.L_HIP)
REQUIRED_JOINTS: dict[str, tuple[Joint, ...]] = {
    "upper_body": SHOULDERS,
    "lower_body": HIPS,
    "dresses": SHOULDERS + HIPS,
}
"""What each category cannot do without: hips are estimated from the shoulders for upper_body (a waist-up photo
is fine), but a lower-body garment or a dress has nowhere to go without the hips in the photo."""

_ADVICE = {
    "upper_body": "photograph the person from the head to at least the waist, facing the camera",
    "lower_body": "photograph the person from the waist to the feet (ideally head to feet), facing the camera",
    "dresses": "photograph the person from the head to at least the knees, facing the camera",
}


def require_keypoints(keypoints: np.ndarray, category: str, min_confidence: float = MIN_CONFIDENCE) -> None:
    """Raises PersonNotFound naming the keypoints `category` needs that are missing from `keypoints` [18, 3]."""
    check_category(category)
    present = present_keypoints(keypoints, min_confidence)
    missing = tuple(KEYPOINT_NAMES[j] for j in REQUIRED_JOINTS[category] if not present[j])
    if missing:
        raise PersonNotFound(f"a {category} try-on needs {', '.join(missing)} visible in the photo; "
                             f"{_ADVICE[category]}", missing=missing)


def _unit(vector: np.ndarray, fallback: tuple[float, float]) -> np.ndarray:
    length = float(np.hypot(*vector))
    return vector / length if length > 1e-6 else np.array(fallback, np.float64)


@dataclass(frozen=True)
class BodyGeometry:
    """Joint positions (x, y) in frame pixels, detected or estimated, and the body's scale and axes.

    across: unit vector from the person's right side to their left (image-rightwards for a front view).
    down: unit vector from the shoulders' midpoint to the hips' midpoint.
    """

    frame_hw: tuple[int, int]
    joints: dict[Joint, np.ndarray]
    detected: frozenset[Joint]
    across: np.ndarray
    down: np.ndarray
    shoulder_width: float
    hip_width: float
    torso_length: float
    head_centre: np.ndarray
    head_size: float

    @property
    def scale(self) -> float:
        """Frame height / 512: pixel constants of the 512 x 384 recipe (45-px arms, 9-px σ) are multiplied by it."""
        return self.frame_hw[0] / REFERENCE_HEIGHT_PX

    @property
    def shoulder_centre(self) -> np.ndarray:
        return (self.joints[Joint.R_SHOULDER] + self.joints[Joint.L_SHOULDER]) / 2

    @property
    def hip_centre(self) -> np.ndarray:
        return (self.joints[Joint.R_HIP] + self.joints[Joint.L_HIP]) / 2

    def has(self, joint: Joint) -> bool:
        """Whether `joint` was detected (not estimated)."""
        return joint in self.detected

    def arm(self, side: str) -> list[np.ndarray]:
        """Detected points of one arm in order shoulder, elbow, wrist; side is "r" or "l"."""
        chain = (Joint[f"{side.upper()}_SHOULDER"], Joint[f"{side.upper()}_ELBOW"], Joint[f"{side.upper()}_WRIST"])
        return [self.joints[j] for j in chain if self.has(j)]

    def leg(self, side: str) -> list[np.ndarray]:
        """Hip, knee, ankle of one leg (detected or estimated); side is "r" or "l"."""
        return [self.joints[Joint[f"{side.upper()}_{name}"]] for name in ("HIP", "KNEE", "ANKLE")]

    @classmethod
    def from_keypoints(cls, keypoints: np.ndarray, frame_hw: tuple[int, int],
                       min_confidence: float = MIN_CONFIDENCE) -> BodyGeometry:
        """keypoints: float32 [18, 3] in frame pixels; needs both shoulders or both hips (PersonNotFound otherwise)."""
        keypoints = check_keypoints(keypoints)
        present = present_keypoints(keypoints, min_confidence)
        detected = frozenset(Joint(j) for j in np.flatnonzero(present))
        joints = {j: keypoints[j, :2].astype(np.float64) for j in detected}
        has_shoulders = all(j in detected for j in SHOULDERS)
        has_hips = all(j in detected for j in HIPS)
        if not (has_shoulders or has_hips):
            raise PersonNotFound("neither both shoulders nor both hips are visible", missing=tuple(
                KEYPOINT_NAMES[j] for j in SHOULDERS + HIPS if j not in detected))
        _place_torso(joints, has_shoulders, has_hips)
        across = _unit(joints[Joint.L_SHOULDER] - joints[Joint.R_SHOULDER], (1.0, 0.0))
        shoulder_mid = (joints[Joint.R_SHOULDER] + joints[Joint.L_SHOULDER]) / 2
        hip_mid = (joints[Joint.R_HIP] + joints[Joint.L_HIP]) / 2
        down = _unit(hip_mid - shoulder_mid, (0.0, 1.0))
        torso = float(np.hypot(*(hip_mid - shoulder_mid)))
        # a side view brings the shoulders together; never let the widths collapse below half the expected
        shoulder_width = max(float(np.hypot(*(joints[Joint.L_SHOULDER] - joints[Joint.R_SHOULDER]))),
                             0.5 * torso / TORSO_PER_SHOULDER_WIDTH)
        hip_width = max(float(np.hypot(*(joints[Joint.L_HIP] - joints[Joint.R_HIP]))),
                        0.5 * HIP_PER_SHOULDER_WIDTH * shoulder_width)
        joints.setdefault(Joint.NECK, shoulder_mid)
        for side in ("R", "L"):
            _place_leg(joints, side, down, torso)
        centre, size = _head(joints, detected, down, shoulder_width)
        return cls(frame_hw=(int(frame_hw[0]), int(frame_hw[1])), joints=joints, detected=detected, across=across,
                   down=down, shoulder_width=shoulder_width, hip_width=hip_width, torso_length=torso,
                   head_centre=centre, head_size=size)


def _place_torso(joints: dict[Joint, np.ndarray], has_shoulders: bool, has_hips: bool) -> None:
    """Fills in whichever pair (shoulders or hips) is missing, assuming an upright person facing the camera."""
    if has_shoulders and has_hips:
        return
    down = np.array([0.0, 1.0])
    if has_shoulders:
        right, left = joints[Joint.R_SHOULDER], joints[Joint.L_SHOULDER]
        half_width = (left - right) / 2
        centre = (right + left) / 2 + down * TORSO_PER_SHOULDER_WIDTH * 2 * np.hypot(*half_width)
        hip_half = half_width * HIP_PER_SHOULDER_WIDTH
        pair = HIPS
    else:
        right, left = joints[Joint.R_HIP], joints[Joint.L_HIP]
        half_width = (left - right) / 2
        shoulder_half = half_width / HIP_PER_SHOULDER_WIDTH
        centre = (right + left) / 2 - down * TORSO_PER_SHOULDER_WIDTH * 2 * np.hypot(*shoulder_half)
        hip_half = shoulder_half
        pair = SHOULDERS
    joints[pair[0]] = centre - hip_half
    joints[pair[1]] = centre + hip_half


def _place_leg(joints: dict[Joint, np.ndarray], side: str, down: np.ndarray, torso: float) -> None:
    """Estimates a missing knee / ankle by continuing the leg straight down with typical proportions."""
    hip, knee, ankle = (Joint[f"{side}_{name}"] for name in ("HIP", "KNEE", "ANKLE"))
    if knee not in joints:
        joints[knee] = ((joints[hip] + joints[ankle]) / 2 if ankle in joints
                        else joints[hip] + down * THIGH_PER_TORSO * torso)
    if ankle not in joints:
        shin_direction = _unit(joints[knee] - joints[hip], tuple(down))
        joints[ankle] = joints[knee] + shin_direction * SHIN_PER_TORSO * torso


def _head(joints: dict[Joint, np.ndarray], detected: frozenset[Joint], down: np.ndarray,
          shoulder_width: float) -> tuple[np.ndarray, float]:
    """Centre and size (~ half the head's width, hair included) of the head, from whichever cues are present.

    The size is the largest of four estimates (ear distance, twice the eye distance, 0.45 x shoulder width,
    0.65 x nose-to-neck): a head turned sideways shrinks the ear and eye distances, and an over-large fixed head
    only keeps more of the photo, while a small one lets the model repaint the face.
    """
    def distance(a: Joint, b: Joint) -> float:
        return float(np.hypot(*(joints[a] - joints[b]))) if a in detected and b in detected else 0.0

    size = max(distance(Joint.R_EAR, Joint.L_EAR), 2.0 * distance(Joint.R_EYE, Joint.L_EYE),
               0.45 * shoulder_width, 0.65 * distance(Joint.NOSE, Joint.NECK))
    face = [joints[j] for j in (Joint.NOSE, Joint.R_EYE, Joint.L_EYE, Joint.R_EAR, Joint.L_EAR) if j in detected]
    if Joint.R_EAR in detected and Joint.L_EAR in detected:
        centre = (joints[Joint.R_EAR] + joints[Joint.L_EAR]) / 2
    elif face:
        centre = np.mean(face, axis=0)
    else:
        centre = joints[Joint.NECK] - down * 0.7 * shoulder_width
    # ears and eyes sit below the middle of a head that includes the hair
    return centre - down * 0.2 * size, size
