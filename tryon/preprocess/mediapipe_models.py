"""mediapipe's legacy solutions (pose, selfie segmentation), built once and shared behind a lock.

mediapipe 0.10.14 bundles pose_detection, pose_landmark_full (model_complexity=1) and selfie_segmentation in its
wheel; the lite and heavy pose landmark models are downloaded on first use, which cannot happen here, so they are
refused up front instead of failing with a URLError (or writing into site-packages). A solution object runs one
graph and is not thread-safe, so each one is used under its own lock. mediapipe is imported lazily: importing
tryon.preprocess stays cheap and does not load mediapipe's protobuf descriptors unless a photo is processed.
"""

from __future__ import annotations

import functools
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from tryon.preprocess.errors import ModelNotBundled

POSE_LANDMARK_FILES = {0: "pose_landmark_lite.tflite", 1: "pose_landmark_full.tflite", 2: "pose_landmark_heavy.tflite"}
BUNDLED_POSE_COMPLEXITY = 1


def _mediapipe():
    import mediapipe

    _ignore_protobuf_deprecation()
    return mediapipe


def _ignore_protobuf_deprecation() -> None:
    # mediapipe 0.10.14 calls a protobuf API that protobuf 4.25 deprecates, from every process() call; re-applied
    # per call because test runners reset warning filters (adding an existing filter again does not duplicate it)
    warnings.filterwarnings("ignore", message=r"SymbolDatabase\.GetPrototype\(\) is deprecated", category=UserWarning)


def bundled_pose_complexities() -> tuple[int, ...]:
    """The pose `model_complexity` values whose landmark model ships inside the installed mediapipe wheel."""
    modules = Path(_mediapipe().__file__).parent / "modules" / "pose_landmark"
    return tuple(c for c, name in POSE_LANDMARK_FILES.items() if (modules / name).is_file())


class LockedSolution:
    """One mediapipe solution object; `process` serialises callers and copies results out under the lock."""

    def __init__(self, solution: Any):
        self._solution = solution
        self._lock = threading.Lock()

    def process(self, image: np.ndarray, read: Any) -> Any:
        """Runs the graph on uint8 [H, W, 3] RGB `image`; `read(results)` extracts numpy copies before unlocking."""
        with self._lock:
            _ignore_protobuf_deprecation()
            return read(self._solution.process(image))


@functools.lru_cache(maxsize=4)
def pose_solution(model_complexity: int, min_detection_confidence: float) -> LockedSolution:
    """A static-image mediapipe Pose (33 landmarks) of the given complexity; raises ModelNotBundled if absent."""
    if model_complexity not in POSE_LANDMARK_FILES:
        raise ValueError(f"model_complexity must be 0, 1 or 2, got {model_complexity}")
    if model_complexity not in bundled_pose_complexities():
        raise ModelNotBundled(
            f"mediapipe's pose model for model_complexity={model_complexity} "
            f"({POSE_LANDMARK_FILES[model_complexity]}) is not bundled in the installed wheel and cannot be "
            f"downloaded here; use model_complexity={BUNDLED_POSE_COMPLEXITY}")
    pose = _mediapipe().solutions.pose.Pose(static_image_mode=True, model_complexity=model_complexity,
                                            enable_segmentation=False,
                                            min_detection_confidence=min_detection_confidence)
    return LockedSolution(pose)


@functools.lru_cache(maxsize=2)
def selfie_segmentation_solution(model_selection: int) -> LockedSolution:
    """mediapipe SelfieSegmentation: 0 = general (256x256 input), 1 = landscape (144x256); both bundled."""
    if model_selection not in (0, 1):
        raise ValueError(f"model_selection must be 0 or 1, got {model_selection}")
    segmentation = _mediapipe().solutions.selfie_segmentation.SelfieSegmentation(model_selection=model_selection)
    return LockedSolution(segmentation)
