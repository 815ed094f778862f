"""A shopper's ordinary photo -> everything LaDI-VTON is conditioned on, with no manual step."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from snapfit.contract import POSE_KEYPOINTS
from tryon.posemap import pose_map
from tryon.preprocess.body import BodyGeometry, require_keypoints
from tryon.preprocess.categories import check_category
from tryon.preprocess.errors import InvalidGarmentRegion, InvalidPhoto
from tryon.preprocess.frame import DEFAULT_FRAME_HW, FrameFit, fit_to_frame
from tryon.preprocess.masks import inpaint_mask
from tryon.preprocess.pose import detect_keypoints
from tryon.preprocess.prompts import garment_prompt_points
from tryon.preprocess.silhouette import person_silhouette

GarmentRegionFn = Callable[[np.ndarray, np.ndarray, np.ndarray], "np.ndarray | None"]
"""(fitted photo uint8 [H, W, 3], points float32 [N, 2] (x, y) frame pixels, labels int32 [N] 1/0)
-> bool [H, W] mask of the garment the person wears now, or None to skip."""


@dataclass(frozen=True)
class PersonConditions:
    """The person side of a try-on request, in the model frame (H x W, 512 x 384 by default).

    person: uint8 [H, W, 3] the fitted photo. keypoints: float32 [18, 3] OpenPose-18 in frame pixels.
    pose_map: float32 [18, H, W]. inpaint_mask: bool [H, W], True = repaint.
    frame_fit: maps the frame back to the photo (`frame_fit.to_original(result)`).
    """

    person: np.ndarray
    keypoints: np.ndarray
    pose_map: np.ndarray
    inpaint_mask: np.ndarray
    frame_fit: FrameFit


def _garment_region(fn: GarmentRegionFn, fitted: np.ndarray, body: BodyGeometry,
                    category: str) -> np.ndarray | None:
    points, labels = garment_prompt_points(body, category)
    if len(points) == 0:
        return None
    region = fn(fitted, points, labels)
    if region is None:
        return None
    region = np.asarray(region)
    if region.shape != fitted.shape[:2]:
        raise InvalidGarmentRegion(f"garment_region_fn must return a bool mask of the frame "
                                   f"{list(fitted.shape[:2])}, got {list(region.shape)}")
    return region != 0


def prepare_person(photo: np.ndarray, category: str, frame_hw: tuple[int, int] = DEFAULT_FRAME_HW,
                   garment_region_fn: GarmentRegionFn | None = None,
                   photo_keypoints: np.ndarray | None = None) -> PersonConditions:
    """Keypoints, pose map and inpainting mask for one photo and garment category.

    Args:
        photo: uint8 [h, w, 3] RGB, any size and aspect; one person, facing the camera.
        category: upper_body | lower_body | dresses.
        frame_hw: (H, W) of the model frame.
        garment_region_fn: optional segmenter hook (e.g. SAM through Triton), called once with the fitted photo and
            body points chosen for the category (tryon.preprocess.prompts); its mask widens the garment area.
        photo_keypoints: float32 [18, 3] from `detect_keypoints(photo)` when the caller has already run it (pose
            detection is the slow part); detected here otherwise.

    Raises:
        PersonNotFound: nobody in the photo, or not the body parts `category` needs (hips for lower_body and
            dresses; shoulders for upper_body and dresses).
        InvalidPhoto, UnknownCategory, InvalidGarmentRegion.
    """
    check_category(category)
    if photo_keypoints is None:
        photo_keypoints = detect_keypoints(photo)
    elif np.shape(photo_keypoints) != (POSE_KEYPOINTS, 3):
        raise InvalidPhoto(f"photo_keypoints must be float32 [{POSE_KEYPOINTS}, 3], "
                           f"got {list(np.shape(photo_keypoints))}")
    fitted, fit = fit_to_frame(photo, frame_hw)
    keypoints = fit.keypoints_to_frame(photo_keypoints)
    require_keypoints(keypoints, category)
    silhouette = person_silhouette(fitted)
    region = None
    if garment_region_fn is not None:
        body = BodyGeometry.from_keypoints(keypoints, fit.frame_hw)
        region = _garment_region(garment_region_fn, fitted, body, category)
    mask = inpaint_mask(keypoints, silhouette, category, region)
    return PersonConditions(person=fitted, keypoints=keypoints, pose_map=pose_map(keypoints, *fit.frame_hw),
                            inpaint_mask=mask, frame_fit=fit)
