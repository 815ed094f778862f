"""Body points that prompt a promptable segmenter (SAM) for the garment the person wears now."""

from __future__ import annotations

import numpy as np

from tryon.posemap import Joint
from tryon.preprocess.body import BodyGeometry
from tryon.preprocess.categories import check_category

POSITIVE, NEGATIVE = 1, 0


def garment_prompt_points(body: BodyGeometry, category: str) -> tuple[np.ndarray, np.ndarray]:
    """Positive points on the current garment of `category`, negative points on what must not be segmented.

    upper_body: + chest (0.3 torso below the shoulders), + belly (0.65); - face centre; - mid-thighs (detected hips).
    lower_body: + just below the hips' centre, + each mid-thigh; - chest; - face centre.
    dresses: + chest, + hips' centre; - face centre.
    Points outside the frame are dropped; with no positive point left, both arrays are empty.

    Returns:
        (float32 [N, 2] (x, y) in frame pixels, int32 [N] labels: 1 = on the garment, 0 = not).
    """
    check_category(category)
    shoulders, down, torso = body.shoulder_centre, body.down, body.torso_length
    chest, belly = shoulders + down * 0.3 * torso, shoulders + down * 0.65 * torso
    thighs = [body.joints[hip] + 0.4 * (body.joints[knee] - body.joints[hip])
              for hip, knee in ((Joint.R_HIP, Joint.R_KNEE), (Joint.L_HIP, Joint.L_KNEE))]
    face = body.head_centre + down * 0.2 * body.head_size
    if category == "upper_body":
        hips_detected = body.has(Joint.R_HIP) and body.has(Joint.L_HIP)
        prompts = [(chest, POSITIVE), (belly, POSITIVE), (face, NEGATIVE)]
        prompts += [(thigh, NEGATIVE) for thigh in thighs] if hips_detected else []
    elif category == "lower_body":
        pelvis = body.hip_centre + down * 0.05 * torso
        prompts = [(pelvis, POSITIVE)] + [(thigh, POSITIVE) for thigh in thighs] + [(chest, NEGATIVE),
                                                                                   (face, NEGATIVE)]
    else:
        prompts = [(chest, POSITIVE), (body.hip_centre, POSITIVE), (face, NEGATIVE)]
    h, w = body.frame_hw
    inside = [(p, label) for p, label in prompts if 0 <= p[0] <= w - 1 and 0 <= p[1] <= h - 1]
    if not any(label == POSITIVE for _, label in inside):
        return np.zeros((0, 2), np.float32), np.zeros(0, np.int32)
    return (np.array([p for p, _ in inside], np.float32), np.array([label for _, label in inside], np.int32))
