"""Person preprocessing: pose map, frame fitting, keypoints from mediapipe, inpainting masks.

Geometric tests use hand-made keypoints; the mediapipe tests use skimage's astronaut photo (a real person, waist
up: mediapipe finds the face, both shoulders and the right elbow, not the hips, which lie below the photo).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from skimage import data

from tryon.posemap import KEYPOINT_NAMES, Joint, pose_map
from tryon.preprocess import (InvalidPhoto, ModelNotBundled, PersonNotFound, UnknownCategory,
                              detect_keypoints, fit_to_frame, inpaint_mask, prepare_person)
from tryon.preprocess.body import BodyGeometry
from tryon.preprocess.pose import landmarks_to_openpose
from tryon.preprocess.prompts import garment_prompt_points

FRAME_HW = (512, 384)

# a standing person facing the camera in the 512 x 384 frame; person's right = image left
STANDING = {
    Joint.NOSE: (192, 60), Joint.NECK: (192, 112),
    Joint.R_SHOULDER: (152, 112), Joint.R_ELBOW: (140, 185), Joint.R_WRIST: (135, 250),
    Joint.L_SHOULDER: (232, 112), Joint.L_ELBOW: (244, 185), Joint.L_WRIST: (249, 250),
    Joint.R_HIP: (168, 255), Joint.R_KNEE: (165, 355), Joint.R_ANKLE: (163, 450),
    Joint.L_HIP: (216, 255), Joint.L_KNEE: (219, 355), Joint.L_ANKLE: (221, 450),
    Joint.R_EYE: (185, 52), Joint.L_EYE: (199, 52), Joint.R_EAR: (176, 56), Joint.L_EAR: (208, 56),
}


def standing_keypoints(scale: float = 1.0, drop: tuple[Joint, ...] = ()) -> np.ndarray:
    keypoints = np.zeros((18, 3), np.float32)
    for joint, (x, y) in STANDING.items():
        if joint not in drop:
            keypoints[joint] = (x * scale, y * scale, 0.9)
    return keypoints


def at(mask: np.ndarray, x: float, y: float) -> bool:
    return bool(mask[int(round(y)), int(round(x))])


def face_disk(keypoints: np.ndarray, radius: float) -> np.ndarray:
    ys, xs = np.mgrid[0:FRAME_HW[0], 0:FRAME_HW[1]]
    disk = np.zeros(FRAME_HW, bool)
    for joint in (Joint.NOSE, Joint.R_EYE, Joint.L_EYE, Joint.R_EAR, Joint.L_EAR):
        x, y, _ = keypoints[joint]
        disk |= (xs - x) ** 2 + (ys - y) ** 2 <= radius**2
    return disk


# ---- pose map -------------------------------------------------------------------------------------------------

def test_pose_map_peaks_at_one_on_the_keypoint_and_leaves_missing_channels_zero():
    keypoints = standing_keypoints(drop=(Joint.L_ANKLE,))
    heatmaps = pose_map(keypoints, *FRAME_HW)
    assert heatmaps.shape == (18, 512, 384) and heatmaps.dtype == np.float32
    x, y = STANDING[Joint.NOSE]
    assert heatmaps[Joint.NOSE, y, x] == pytest.approx(1.0)
    assert heatmaps[Joint.NOSE].max() == pytest.approx(1.0)
    assert heatmaps[Joint.NOSE, y, x + 9] == pytest.approx(np.exp(-1.0), rel=1e-4)  # exp(-d²/σ²), σ = 9 px
    assert not heatmaps[Joint.L_ANKLE].any()


def test_pose_map_scales_sigma_with_frame_height():
    keypoints = standing_keypoints(scale=0.5)
    heatmaps = pose_map(keypoints, 256, 192)
    x, y = (v // 2 for v in STANDING[Joint.NOSE])
    assert heatmaps[Joint.NOSE, y, x + 9] < 0.05  # σ is 4.5 px here, so 9 px away is 2σ
    assert heatmaps[Joint.NOSE, y + 4, x] == pytest.approx(np.exp(-(4 / 4.5) ** 2), rel=1e-3)


def test_pose_map_treats_nan_low_confidence_and_off_frame_keypoints_as_missing():
    keypoints = standing_keypoints()
    keypoints[Joint.NOSE] = (np.nan, np.nan, 0.9)
    keypoints[Joint.NECK, 2] = 0.01
    keypoints[Joint.R_ANKLE, :2] = (100, 600)
    heatmaps = pose_map(keypoints, *FRAME_HW)
    for joint in (Joint.NOSE, Joint.NECK, Joint.R_ANKLE):
        assert not heatmaps[joint].any(), KEYPOINT_NAMES[joint]
    assert np.isfinite(heatmaps).all()


# ---- frame fitting --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("photo_hw", [(512, 512), (1000, 450), (300, 225), (120, 400)])
def test_fit_then_to_original_returns_the_photo_size_and_content(photo_hw):
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (photo_hw[0] // 20 + 1, photo_hw[1] // 20 + 1, 3), dtype=np.uint8)
    photo = np.kron(small, np.ones((20, 20, 1), np.uint8))[:photo_hw[0], :photo_hw[1]]  # smooth enough to resample
    fitted, fit = fit_to_frame(photo, FRAME_HW)
    assert fitted.shape == (512, 384, 3) and fitted.dtype == np.uint8
    assert fit.padded_hw[0] * 384 == pytest.approx(fit.padded_hw[1] * 512, rel=0.01)  # 4:3 tall canvas
    back = fit.to_original(fitted)
    assert back.shape == photo.shape and back.dtype == np.uint8
    assert np.median(np.abs(back.astype(int) - photo.astype(int))) <= 2


def test_frame_fit_maps_points_both_ways_and_keeps_missing_keypoints_at_zero():
    photo = np.full((400, 800, 3), 90, np.uint8)  # landscape: padded above and below
    _, fit = fit_to_frame(photo, FRAME_HW)
    assert fit.pad_left == 0 and fit.pad_top > 0
    points = np.array([[0, 0], [799, 399], [400, 200]], np.float32)
    assert np.allclose(fit.points_to_original(fit.points_to_frame(points)), points, atol=1e-3)
    assert np.allclose(fit.points_to_frame(points[2:]), [[192, 256]], atol=1.0)  # photo centre -> frame centre
    keypoints = np.array([[400, 200, 0.9], [0, 0, 0.0]], np.float32)
    moved = fit.keypoints_to_frame(keypoints)
    assert moved[0, 2] == pytest.approx(0.9) and (moved[1] == 0).all()


def test_frame_fit_resizes_a_mask_back_as_a_mask():
    _, fit = fit_to_frame(np.zeros((300, 600, 3), np.uint8), FRAME_HW)
    mask = np.zeros(FRAME_HW, bool)
    mask[200:300, 100:200] = True
    back = fit.to_original(mask)
    assert back.dtype == bool and back.shape == (300, 600) and back.any()
    assert fit.to_original(mask[::2, ::2]).shape == (300, 600)  # any size with the frame's aspect
    with pytest.raises(ValueError, match="aspect"):
        fit.to_original(np.zeros((512, 512), bool))


def test_fit_to_frame_rejects_a_non_rgb_photo():
    with pytest.raises(InvalidPhoto):
        fit_to_frame(np.zeros((100, 100), np.uint8))
    with pytest.raises(InvalidPhoto):
        fit_to_frame(np.zeros((100, 100, 3), np.float32))


# ---- mediapipe landmarks -> OpenPose-18 (no model needed) -----------------------------------------------------

def fake_landmarks(visibility: float = 0.99) -> np.ndarray:
    """33 mediapipe landmarks where landmark i sits at (10 + i, 20 + i)."""
    index = np.arange(33, dtype=np.float32)
    return np.stack([10 + index, 20 + index, np.full(33, visibility, np.float32)], axis=1)


def test_landmarks_to_openpose_uses_the_persons_own_sides_and_synthesises_the_neck():
    keypoints = landmarks_to_openpose(fake_landmarks(), (200, 200))
    expected = {Joint.NOSE: 0, Joint.R_SHOULDER: 12, Joint.L_SHOULDER: 11, Joint.R_WRIST: 16, Joint.L_WRIST: 15,
                Joint.R_HIP: 24, Joint.L_HIP: 23, Joint.R_ANKLE: 28, Joint.L_ANKLE: 27, Joint.R_EYE: 5,
                Joint.L_EYE: 2, Joint.R_EAR: 8, Joint.L_EAR: 7}
    for joint, index in expected.items():
        assert tuple(keypoints[joint, :2]) == (10 + index, 20 + index), KEYPOINT_NAMES[joint]
    assert tuple(keypoints[Joint.NECK, :2]) == (10 + 11.5, 20 + 11.5)


def test_landmarks_to_openpose_drops_invisible_and_outside_landmarks():
    landmarks = fake_landmarks()
    landmarks[12, 2] = 0.3            # right shoulder hidden -> no neck either
    landmarks[27, :2] = (50, 250)     # left ankle below a 200-px-high photo
    keypoints = landmarks_to_openpose(landmarks, (200, 200))
    for joint in (Joint.R_SHOULDER, Joint.NECK, Joint.L_ANKLE):
        assert (keypoints[joint] == 0).all(), KEYPOINT_NAMES[joint]
    assert keypoints[Joint.L_SHOULDER, 2] > 0


# ---- inpainting masks from hand-made keypoints ----------------------------------------------------------------

def mask_for(category: str, **kwargs) -> np.ndarray:
    kwargs.setdefault("frame_hw", FRAME_HW)
    return inpaint_mask(standing_keypoints(), kwargs.pop("silhouette", None), category, **kwargs)


def test_upper_body_mask_covers_torso_and_arms_but_not_face_hands_or_legs():
    mask = mask_for("upper_body")
    assert mask.shape == FRAME_HW and mask.dtype == bool
    assert at(mask, 192, 180) and at(mask, 192, 130)           # chest, below the neck
    assert at(mask, 146, 150) and at(mask, 242, 150)           # upper arms
    assert at(mask, 192, 105)                                  # neck band
    assert not at(mask, 135, 265) and not at(mask, 249, 265)   # hands beyond the wrists
    assert not mask[320:].any()                                # nothing below the hips (+ margin)


def test_lower_body_mask_lies_below_the_waist_and_covers_the_legs_but_not_the_feet():
    mask = mask_for("lower_body")
    rows = np.flatnonzero(mask.any(axis=1))
    assert rows.min() > 180                                    # waistband, ~0.3 torso above the hip joints
    assert at(mask, 192, 260) and at(mask, 166, 305) and at(mask, 220, 405)  # pelvis, thigh, shin
    assert not at(mask, 192, 150)                              # chest kept
    assert not at(mask, 163, 470) and not at(mask, 221, 470)   # feet kept


def test_dresses_mask_covers_chest_hips_and_between_the_knees():
    mask = mask_for("dresses")
    assert at(mask, 192, 180) and at(mask, 192, 260) and at(mask, 166, 305) and at(mask, 192, 340)
    assert not at(mask, 163, 470)


@pytest.mark.parametrize("category", ["upper_body", "lower_body", "dresses"])
def test_the_face_is_never_in_the_mask(category):
    keypoints = standing_keypoints()
    assert not (mask_for(category) & face_disk(keypoints, radius=12)).any()


def test_the_mask_stays_near_the_person_silhouette():
    silhouette = np.zeros(FRAME_HW, bool)
    silhouette[40:470, 130:255] = True          # a narrow person
    mask = mask_for("dresses", silhouette=silhouette)
    assert not mask[:, :100].any() and not mask[:, 285:].any()  # 15 px growth + 10 px dilation at most
    assert at(mask, 192, 180)


def test_a_garment_region_widens_the_mask():
    region = np.zeros(FRAME_HW, bool)
    region[150:240, 60:110] = True              # a wide sleeve the keypoints know nothing about
    without = mask_for("upper_body")
    with_region = mask_for("upper_body", garment_region=region)
    assert not without[190, 80] and with_region[190, 80]
    assert (with_region >= without).all()


def test_upper_body_estimates_missing_hips_but_lower_body_and_dresses_need_them():
    hipless = standing_keypoints(drop=(Joint.R_HIP, Joint.L_HIP, Joint.R_KNEE, Joint.L_KNEE, Joint.R_ANKLE,
                                       Joint.L_ANKLE))
    mask = inpaint_mask(hipless, None, "upper_body", frame_hw=FRAME_HW)
    assert at(mask, 192, 180)
    for category in ("lower_body", "dresses"):
        with pytest.raises(PersonNotFound, match="r_hip, l_hip") as raised:
            inpaint_mask(hipless, None, category, frame_hw=FRAME_HW)
        assert raised.value.missing == ("r_hip", "l_hip")


def test_lower_body_works_from_the_hips_alone():
    legs_only = standing_keypoints(drop=(Joint.NOSE, Joint.NECK, Joint.R_SHOULDER, Joint.L_SHOULDER, Joint.R_ELBOW,
                                         Joint.L_ELBOW, Joint.R_WRIST, Joint.L_WRIST, Joint.R_EYE, Joint.L_EYE,
                                         Joint.R_EAR, Joint.L_EAR))
    mask = inpaint_mask(legs_only, None, "lower_body", frame_hw=FRAME_HW)
    assert at(mask, 166, 305) and at(mask, 220, 405) and not mask[:150].any()
    with pytest.raises(PersonNotFound, match="r_shoulder, l_shoulder"):
        inpaint_mask(legs_only, None, "upper_body", frame_hw=FRAME_HW)


def test_the_mask_scales_with_the_frame():
    full = mask_for("upper_body")
    small = inpaint_mask(standing_keypoints(scale=0.5), None, "upper_body", frame_hw=(256, 192))
    downscaled = full[::2, ::2]
    iou = (small & downscaled).sum() / (small | downscaled).sum()
    assert iou > 0.9


def test_an_unknown_category_is_refused():
    with pytest.raises(UnknownCategory):
        mask_for("hats")


def test_prompt_points_lie_on_the_torso_for_upper_body_and_on_the_thighs_for_lower_body():
    body = BodyGeometry.from_keypoints(standing_keypoints(), FRAME_HW)
    points, labels = garment_prompt_points(body, "upper_body")
    positives = points[labels == 1]
    assert len(positives) >= 1 and (positives[:, 1] > 112).all() and (positives[:, 1] < 255).all()
    assert (positives[:, 0] > 152).all() and (positives[:, 0] < 232).all()
    points, labels = garment_prompt_points(body, "lower_body")
    assert (points[labels == 1][:, 1] >= 255).all()


# ---- mediapipe on a real photo --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


@pytest.fixture(scope="module")
def astronaut_keypoints(astronaut) -> np.ndarray:
    return detect_keypoints(astronaut)


def test_astronaut_keypoints_are_plausible(astronaut_keypoints):
    kp = astronaut_keypoints
    assert kp.shape == (18, 3) and kp.dtype == np.float32
    found = {KEYPOINT_NAMES[j] for j in range(18) if kp[j, 2] > 0}
    assert {"nose", "neck", "r_shoulder", "l_shoulder", "r_eye", "l_eye", "r_ear", "l_ear"} <= found
    assert not {"r_hip", "l_hip", "r_knee", "l_knee", "r_ankle", "l_ankle"} & found  # waist-up photo
    assert kp[Joint.NOSE, 1] < kp[Joint.NECK, 1]
    assert kp[Joint.R_SHOULDER, 0] < kp[Joint.NECK, 0] < kp[Joint.L_SHOULDER, 0]  # facing the camera
    assert kp[Joint.R_EYE, 0] < kp[Joint.L_EYE, 0]
    visible = kp[kp[:, 2] > 0]
    assert (visible[:, :2] >= 0).all() and (visible[:, 0] < 512).all() and (visible[:, 1] < 512).all()


def test_prepare_person_upper_body_masks_the_chest_but_not_the_face(astronaut):
    conditions = prepare_person(astronaut, "upper_body")
    kp, mask = conditions.keypoints, conditions.inpaint_mask
    assert conditions.person.shape == (512, 384, 3) and mask.shape == FRAME_HW
    assert conditions.pose_map.shape == (18, 512, 384)
    chest = (kp[Joint.R_SHOULDER, :2] + kp[Joint.L_SHOULDER, :2]) / 2 + (0, 60)
    assert mask[int(chest[1]) - 10:int(chest[1]) + 10, int(chest[0]) - 10:int(chest[0]) + 10].all()
    assert not (mask & face_disk(kp, radius=15)).any()
    assert 0.1 < mask.mean() < 0.5
    assert conditions.pose_map[Joint.NOSE].max() == pytest.approx(1.0)
    assert not conditions.pose_map[Joint.R_HIP].any()
    back = conditions.frame_fit.to_original(conditions.person)
    assert back.shape == astronaut.shape and np.abs(back.astype(int) - astronaut).mean() < 6


def test_prepare_person_refuses_lower_body_and_dresses_on_a_waist_up_photo(astronaut):
    for category in ("lower_body", "dresses"):
        with pytest.raises(PersonNotFound, match="hip"):
            prepare_person(astronaut, category)


@pytest.mark.parametrize("photo", [data.coffee(), np.full((480, 360, 3), 128, np.uint8)],
                         ids=["coffee", "grey"])
def test_a_photo_without_a_person_raises_person_not_found(photo):
    with pytest.raises(PersonNotFound, match="no person"):
        detect_keypoints(photo)
    with pytest.raises(PersonNotFound):
        prepare_person(photo, "upper_body")


def test_the_garment_region_hook_gets_body_points_and_its_mask_is_used(astronaut):
    plain = prepare_person(astronaut, "upper_body")
    calls = []

    def hook(fitted, points, labels):
        calls.append((fitted, points, labels))
        region = np.zeros(fitted.shape[:2], bool)
        region[295:320, 262:272] = True   # the suit's left flank: no detected elbow on that side reaches it
        return region

    hooked = prepare_person(astronaut, "upper_body", garment_region_fn=hook)
    (fitted, points, labels), = calls
    assert fitted.shape == (512, 384, 3) and points.dtype == np.float32 and labels.dtype == np.int32
    kp = hooked.keypoints
    positives = points[labels == 1]
    assert len(positives) >= 1
    assert (positives[:, 0] > kp[Joint.R_SHOULDER, 0]).all() and (positives[:, 0] < kp[Joint.L_SHOULDER, 0]).all()
    assert (positives[:, 1] > kp[Joint.NECK, 1]).all()
    assert not plain.inpaint_mask[300:315, 266:271].any() and hooked.inpaint_mask[300:315, 266:271].all()


def test_only_the_bundled_pose_model_is_used(astronaut):
    with pytest.raises(ModelNotBundled, match="model_complexity=1"):
        detect_keypoints(astronaut, model_complexity=2)


def test_detect_keypoints_is_safe_from_several_threads(astronaut, astronaut_keypoints):
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda _: detect_keypoints(astronaut), range(4)))
    for keypoints in results:
        np.testing.assert_allclose(keypoints, astronaut_keypoints, atol=1e-4)
