"""Person preprocessing: an ordinary photo -> OpenPose-18 keypoints, pose map and inpainting mask (no manual step).

mediapipe is imported only when a photo is actually processed.
"""

from tryon.preprocess.body import require_keypoints
from tryon.preprocess.categories import CATEGORIES
from tryon.preprocess.errors import (InvalidGarmentRegion, InvalidPhoto, ModelNotBundled, PersonNotFound,
                                     PreprocessError, UnknownCategory)
from tryon.preprocess.frame import DEFAULT_FRAME_HW, FrameFit, fit_to_frame
from tryon.preprocess.masks import inpaint_mask
from tryon.preprocess.person import PersonConditions, prepare_person
from tryon.preprocess.pose import detect_keypoints
from tryon.preprocess.silhouette import person_silhouette

__all__ = [
    "CATEGORIES", "DEFAULT_FRAME_HW", "FrameFit", "InvalidGarmentRegion", "InvalidPhoto", "ModelNotBundled",
    "PersonConditions", "PersonNotFound", "PreprocessError", "UnknownCategory", "detect_keypoints",
    "fit_to_frame", "inpaint_mask", "person_silhouette", "prepare_person", "require_keypoints",
]
