"""Photo -> 18 OpenPose-COCO keypoints, with mediapipe's bundled BlazePose (33 landmarks) as the detector.

The checkpoints were trained on pytorch-openpose keypoints; mediapipe's landmarks are re-ordered to OpenPose-18,
OpenPose's neck is synthesised as the shoulders' midpoint, and landmarks mediapipe itself rates as not visible
(or that fall outside the photo) become missing, (0, 0, 0) as OpenPose writes them.
"""

from __future__ import annotations

import numpy as np

from tryon.posemap import KEYPOINT_NAMES, NUM_KEYPOINTS, Joint
from tryon.preprocess.errors import PersonNotFound
from tryon.preprocess.mediapipe_models import BUNDLED_POSE_COMPLEXITY, pose_solution
from tryon.preprocess.photo import check_photo

NUM_MEDIAPIPE_LANDMARKS = 33
MIN_VISIBILITY = 0.5
MIN_DETECTION_CONFIDENCE = 0.5

MEDIAPIPE_INDEX: dict[Joint, int] = {
    Joint.NOSE: 0,
    Joint.R_SHOULDER: 12, Joint.R_ELBOW: 14, Joint.R_WRIST: 16,
    Joint.L_SHOULDER: 11, Joint.L_ELBOW: 13, Joint.L_WRIST: 15,
    Joint.R_HIP: 24, Joint.R_KNEE: 26, Joint.R_ANKLE: 28,
    Joint.L_HIP: 23, Joint.L_KNEE: 25, Joint.L_ANKLE: 27,
    Joint.R_EYE: 5, Joint.L_EYE: 2, Joint.R_EAR: 8, Joint.L_EAR: 7,
}
"""OpenPose-18 joint -> mediapipe Pose landmark index (both name sides after the person's own left/right).
The neck has no mediapipe landmark; it is the midpoint of the shoulders."""

ANCHOR_PAIRS = ((Joint.R_SHOULDER, Joint.L_SHOULDER), (Joint.R_HIP, Joint.L_HIP))


def landmarks_to_openpose(landmarks: np.ndarray, photo_hw: tuple[int, int],
                          min_visibility: float = MIN_VISIBILITY) -> np.ndarray:
    """mediapipe landmarks -> OpenPose-18 keypoints.

    Args:
        landmarks: float32 [33, 3], (x, y) in photo pixels and mediapipe's visibility in [0, 1].
        photo_hw: (h, w) of the photo; landmarks outside it are missing.

    Returns:
        float32 [18, 3] (x, y, confidence) in photo pixels; confidence = visibility, and (0, 0, 0) where the
        visibility is below `min_visibility` or the point lies outside the photo. The neck is the shoulders'
        midpoint with the lower of their confidences, and missing unless both shoulders are present.
    """
    landmarks = np.asarray(landmarks, np.float32)
    if landmarks.shape != (NUM_MEDIAPIPE_LANDMARKS, 3):
        raise ValueError(f"landmarks must be [{NUM_MEDIAPIPE_LANDMARKS}, 3], got {list(landmarks.shape)}")
    h, w = photo_hw
    keypoints = np.zeros((NUM_KEYPOINTS, 3), np.float32)
    for joint, index in MEDIAPIPE_INDEX.items():
        x, y, visibility = landmarks[index]
        if visibility >= min_visibility and 0 <= x <= w - 1 and 0 <= y <= h - 1:
            keypoints[joint] = (x, y, visibility)
    right, left = keypoints[Joint.R_SHOULDER], keypoints[Joint.L_SHOULDER]
    if right[2] > 0 and left[2] > 0:
        keypoints[Joint.NECK] = ((right[0] + left[0]) / 2, (right[1] + left[1]) / 2, min(right[2], left[2]))
    return keypoints


def _read_landmarks(photo_hw: tuple[int, int]):
    def read(results) -> np.ndarray | None:
        if results.pose_landmarks is None:
            return None
        h, w = photo_hw
        return np.array([(lm.x * w, lm.y * h, lm.visibility) for lm in results.pose_landmarks.landmark], np.float32)
    return read


def detect_landmarks(photo: np.ndarray, model_complexity: int = BUNDLED_POSE_COMPLEXITY,
                     min_detection_confidence: float = MIN_DETECTION_CONFIDENCE) -> np.ndarray | None:
    """uint8 [H, W, 3] RGB -> mediapipe's float32 [33, 3] (x px, y px, visibility), or None when nobody is found."""
    photo = check_photo(photo)
    solution = pose_solution(model_complexity, float(min_detection_confidence))
    return solution.process(photo, _read_landmarks(photo.shape[:2]))


def detect_keypoints(photo: np.ndarray, model_complexity: int = BUNDLED_POSE_COMPLEXITY,
                     min_visibility: float = MIN_VISIBILITY,
                     min_detection_confidence: float = MIN_DETECTION_CONFIDENCE) -> np.ndarray:
    """The shopper's 18 OpenPose keypoints.

    Args:
        photo: uint8 [H, W, 3] RGB.
        model_complexity: mediapipe Pose complexity; only 1 (pose_landmark_full) is bundled with mediapipe 0.10.14,
            others raise ModelNotBundled.
        min_visibility: mediapipe visibility below which a landmark is reported missing.

    Returns:
        float32 [18, 3] (x, y, confidence) in the photo's pixels; missing points are (0, 0, 0).

    Raises:
        PersonNotFound: nobody in the photo, or neither both shoulders nor both hips are visible (too little of a
            body to place a garment on). Category-specific needs are checked later (tryon.preprocess.body).
        InvalidPhoto: the photo is not uint8 [H, W, 3].
    """
    photo = check_photo(photo)
    landmarks = detect_landmarks(photo, model_complexity, min_detection_confidence)
    if landmarks is None:
        raise PersonNotFound("no person was found in the photo; use a photo of one person, head to feet, facing "
                             "the camera")
    keypoints = landmarks_to_openpose(landmarks, photo.shape[:2], min_visibility)
    if not any(keypoints[a, 2] > 0 and keypoints[b, 2] > 0 for a, b in ANCHOR_PAIRS):
        missing = tuple(KEYPOINT_NAMES[j] for pair in ANCHOR_PAIRS for j in pair if keypoints[j, 2] <= 0)
        raise PersonNotFound("a person was found, but neither both shoulders nor both hips are visible "
                             f"(missing: {', '.join(missing)}); the body must face the camera", missing=missing)
    return keypoints
