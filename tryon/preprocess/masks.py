"""The per-category inpainting mask (True = repaint), after Dress Code's recipe but from body geometry.

Dress Code builds it from an SCHP parsing: garment labels + a 45-px arm polyline + a neck band, dilated
(5x5, 5 iterations), minus the fixed labels (head, hair, shoes, bag; the other garment). Without a parser
(no SCHP/ATR weights can be obtained here), the garment area is drawn from the keypoints instead, optionally
unioned with a segmenter's garment region (SAM prompted at body points), limited to the person's silhouette
grown a little, dilated, and the fixed regions are drawn from the keypoints too:

    mask = dilate((geometric_area | garment_region) & grow(silhouette)) & ~fixed

Pixel constants are those of the 512-px-high frame and scale with the frame height.
"""

from __future__ import annotations

import cv2
import numpy as np

from tryon.posemap import MIN_CONFIDENCE, Joint
from tryon.preprocess.body import BodyGeometry, require_keypoints
from tryon.preprocess.categories import check_category
from tryon.preprocess.errors import InvalidGarmentRegion, PersonNotFound
from tryon.preprocess.silhouette import person_silhouette

__all__ = ["inpaint_mask", "garment_area", "fixed_area", "person_silhouette"]

ARM_WIDTH_PX = 45
NECK_BAND_PX = 20
DILATION_RADIUS_PX = 10  # Dress Code: a 5x5 kernel applied 5 times grows the area by 10 px each way
SILHOUETTE_GROWTH_PX = 15
MIN_MASK_FRACTION = 0.002


def _grid(hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:hw[0], 0:hw[1]]
    return xs.astype(np.float32), ys.astype(np.float32)


def _polygon(hw: tuple[int, int], corners: list[np.ndarray]) -> np.ndarray:
    canvas = np.zeros(hw, np.uint8)
    cv2.fillPoly(canvas, [np.round(np.array(corners)).astype(np.int32)], 1)
    return canvas.astype(bool)


def _polyline(hw: tuple[int, int], points: list[np.ndarray], thickness: float) -> np.ndarray:
    canvas = np.zeros(hw, np.uint8)
    if len(points) >= 2:
        cv2.polylines(canvas, [np.round(np.array(points)).astype(np.int32)], False, 1, max(int(round(thickness)), 1))
    return canvas.astype(bool)


def _beyond(hw: tuple[int, int], origin: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """bool [H, W]: pixels on the side of the line through `origin` that `direction` points to."""
    xs, ys = _grid(hw)
    return (xs - origin[0]) * direction[0] + (ys - origin[1]) * direction[1] > 0


def _disk(hw: tuple[int, int], centre: np.ndarray, radius: float) -> np.ndarray:
    xs, ys = _grid(hw)
    return (xs - centre[0]) ** 2 + (ys - centre[1]) ** 2 <= radius**2


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    if radius < 1:
        return mask
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def _torso(body: BodyGeometry) -> np.ndarray:
    """Shoulders (raised to the top of the shoulder, widened to the shoulder cap) down to just below the hips."""
    up, out = -body.down, body.across
    rs, ls = body.joints[Joint.R_SHOULDER], body.joints[Joint.L_SHOULDER]
    rh, lh = body.joints[Joint.R_HIP], body.joints[Joint.L_HIP]
    sw, hw, torso = body.shoulder_width, body.hip_width, body.torso_length
    return _polygon(body.frame_hw, [
        rs - out * 0.15 * sw + up * 0.12 * sw, ls + out * 0.15 * sw + up * 0.12 * sw,
        lh + out * 0.3 * hw + body.down * 0.05 * torso, rh - out * 0.3 * hw + body.down * 0.05 * torso])


def _neck_band_height(body: BodyGeometry) -> float:
    return min(NECK_BAND_PX * body.scale, 0.25 * body.shoulder_width)


def _neck_band(body: BodyGeometry) -> np.ndarray:
    """Dress Code repaints the neck from 20 px above the shoulder line down (a new collar may sit elsewhere)."""
    neck, out, up = body.joints[Joint.NECK], body.across * 0.3 * body.shoulder_width, -body.down
    top = neck + up * _neck_band_height(body)
    return _polygon(body.frame_hw, [top - out, top + out, neck + out, neck - out])


def _arms(body: BodyGeometry, width_px: float) -> np.ndarray:
    """Polylines through each arm's detected shoulder, elbow and wrist (hands are fixed separately)."""
    return _polyline(body.frame_hw, body.arm("r"), width_px) | _polyline(body.frame_hw, body.arm("l"), width_px)


def _pelvis(body: BodyGeometry) -> np.ndarray:
    """From the waist (0.3 torso above the hip joints) to the crotch, a little wider than the hips."""
    out, down, torso = body.across * 0.35 * body.hip_width, body.down, body.torso_length
    rh, lh = body.joints[Joint.R_HIP], body.joints[Joint.L_HIP]
    return _polygon(body.frame_hw, [rh - out - down * 0.3 * torso, lh + out - down * 0.3 * torso,
                                    lh + out + down * 0.2 * torso, rh - out + down * 0.2 * torso])


def _legs(body: BodyGeometry) -> np.ndarray:
    width = body.hip_width
    return _polyline(body.frame_hw, body.leg("r"), width) | _polyline(body.frame_hw, body.leg("l"), width)


def _skirt(body: BodyGeometry) -> np.ndarray:
    """A trapezoid flaring from the hips to the knees, so a dress also covers the gap between the legs."""
    hip_out, knee_out = body.across * 0.35 * body.hip_width, body.across * 0.6 * body.hip_width
    j = body.joints
    return _polygon(body.frame_hw, [j[Joint.R_HIP] - hip_out, j[Joint.L_HIP] + hip_out,
                                    j[Joint.L_KNEE] + knee_out, j[Joint.R_KNEE] - knee_out])


def garment_area(body: BodyGeometry, category: str) -> np.ndarray:
    """bool [H, W]: where the garment goes, from the body geometry alone (before silhouette and dilation).

    upper_body: torso + arm polylines + neck band; lower_body: pelvis + legs down to the ankles;
    dresses: all of upper_body + pelvis + legs + a hip-to-knee skirt trapezoid.
    """
    check_category(category)
    arm_width = ARM_WIDTH_PX * body.scale
    if category == "upper_body":
        return _torso(body) | _arms(body, arm_width) | _neck_band(body)
    if category == "lower_body":
        return _pelvis(body) | _legs(body)
    return (_torso(body) | _arms(body, arm_width) | _neck_band(body) | _pelvis(body) | _legs(body)
            | _skirt(body))


def _head(body: BodyGeometry) -> np.ndarray:
    """An ellipse over face and hair, cut at the top of the neck band so the neck stays repaintable."""
    xs, ys = _grid(body.frame_hw)
    dx, dy = xs - body.head_centre[0], ys - body.head_centre[1]
    along_across = dx * body.across[0] + dy * body.across[1]
    along_down = dx * body.down[0] + dy * body.down[1]
    ellipse = (along_across / body.head_size) ** 2 + (along_down / (1.25 * body.head_size)) ** 2 <= 1.0
    neck_top = body.joints[Joint.NECK] - body.down * _neck_band_height(body)
    return ellipse & ~_beyond(body.frame_hw, neck_top, body.down)


def _beyond_joint(body: BodyGeometry, joint: Joint, base: Joint, length: float, radius: float) -> np.ndarray:
    """A disk of `radius` centred `length` past `joint` along base -> joint, cut at `joint` (a hand or a foot)."""
    segment = body.joints[joint] - body.joints[base]
    norm = float(np.hypot(*segment))
    direction = segment / norm if norm > 1e-6 else body.down
    centre = body.joints[joint] + direction * length
    return _disk(body.frame_hw, centre, radius) & _beyond(body.frame_hw, body.joints[joint], direction)


def _extremities(body: BodyGeometry) -> np.ndarray:
    """Hands past the detected wrists and feet past the detected ankles.

    A hand is ~0.6 of a forearm long (at least a quarter shoulder width, for a forearm pointing at the camera);
    a foot seen from the front spreads ~0.3 of a shin around the point below the ankle.
    """
    fixed = np.zeros(body.frame_hw, bool)
    for side in ("R", "L"):
        wrist, elbow, shoulder = (Joint[f"{side}_{n}"] for n in ("WRIST", "ELBOW", "SHOULDER"))
        if body.has(wrist):
            base = elbow if body.has(elbow) else shoulder
            forearm = float(np.hypot(*(body.joints[wrist] - body.joints[base])))
            forearm = forearm if base == elbow else forearm / 2
            hand = max(0.6 * forearm, 0.25 * body.shoulder_width)
            fixed |= _beyond_joint(body, wrist, base, 0.5 * hand, 0.65 * hand)
        ankle, knee = Joint[f"{side}_ANKLE"], Joint[f"{side}_KNEE"]
        if body.has(ankle):
            shin = float(np.hypot(*(body.joints[ankle] - body.joints[knee])))
            shin = max(shin, 0.5 * body.torso_length)
            fixed |= _beyond_joint(body, ankle, knee, 0.2 * shin, 0.3 * shin)
    return fixed


def fixed_area(body: BodyGeometry, category: str) -> np.ndarray:
    """bool [H, W]: pixels that must be kept whatever the garment area says.

    Always the head (face and hair), the hands and the feet; for upper_body also everything below the hips
    (0.15 torso below the hip joints); for lower_body also everything above the waist and the arms.
    """
    check_category(category)
    fixed = _head(body) | _extremities(body)
    if category == "upper_body":
        fixed |= _beyond(body.frame_hw, body.hip_centre + body.down * 0.15 * body.torso_length, body.down)
    elif category == "lower_body":
        waist = body.hip_centre - body.down * 0.3 * body.torso_length
        fixed |= _beyond(body.frame_hw, waist, -body.down) | _arms(body, 1.3 * ARM_WIDTH_PX * body.scale)
    return fixed


def _frame_hw(person_silhouette: np.ndarray | None, garment_region: np.ndarray | None,
              frame_hw: tuple[int, int] | None) -> tuple[int, int]:
    shapes = {tuple(np.shape(m)) for m in (person_silhouette, garment_region) if m is not None}
    if frame_hw is not None:
        shapes.add(tuple(int(v) for v in frame_hw))
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise InvalidGarmentRegion(f"person_silhouette, garment_region and frame_hw must agree on one [H, W], "
                                   f"got {sorted(shapes)}" if shapes else
                                   "pass frame_hw when neither person_silhouette nor garment_region is given")
    return next(iter(shapes))


def inpaint_mask(keypoints: np.ndarray, person_silhouette: np.ndarray | None, category: str,
                 garment_region: np.ndarray | None = None, *, frame_hw: tuple[int, int] | None = None,
                 min_confidence: float = MIN_CONFIDENCE) -> np.ndarray:
    """Where LaDI-VTON repaints the person for a garment of `category`.

    Args:
        keypoints: float32 [18, 3] OpenPose-18 (x, y, confidence) in frame pixels.
        person_silhouette: bool [H, W] (tryon.preprocess.silhouette.person_silhouette) or None for no limit.
        category: upper_body | lower_body | dresses.
        garment_region: bool [H, W] or None, e.g. SAM's mask of the current garment, added to the geometric area.
        frame_hw: (H, W); needed only when neither mask is given.

    Returns:
        bool [H, W], True = repaint.

    Raises:
        PersonNotFound: a joint the category needs is missing, or the resulting area is (nearly) empty.
        UnknownCategory, InvalidGarmentRegion.
    """
    check_category(category)
    hw = _frame_hw(person_silhouette, garment_region, frame_hw)
    require_keypoints(keypoints, category, min_confidence)
    body = BodyGeometry.from_keypoints(keypoints, hw, min_confidence)
    area = garment_area(body, category)
    if garment_region is not None:
        area |= np.asarray(garment_region) != 0
    if person_silhouette is not None:
        area &= _dilate(np.asarray(person_silhouette) != 0, round(SILHOUETTE_GROWTH_PX * body.scale))
    mask = _dilate(area, round(DILATION_RADIUS_PX * body.scale)) & ~fixed_area(body, category)
    if mask.sum() < MIN_MASK_FRACTION * mask.size:
        raise PersonNotFound(f"the {category} garment area is empty: the body found in the photo does not overlap "
                             "the person's silhouette; use a clearer photo of one person facing the camera")
    return mask
