"""The person side of a try-on, from `tryon.preprocess` (mediapipe), behind the orchestrator's errors.

Runs in worker threads (mediapipe takes tens of milliseconds to seconds); translates preprocessing failures into
PersonNotFound / InvalidInput once, here, as clients/triton.py does for Triton's errors. mediapipe is imported on
the first photo, not at start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from orchestrator.errors import InvalidInput, PersonNotFound
from orchestrator.services.dependencies import GarmentRegion


class MediapipePersonPreprocessor:
    """PersonPreprocessor (services/dependencies.py) on mediapipe's bundled pose and selfie-segmentation models."""

    async def keypoints(self, photo: np.ndarray, category: str) -> np.ndarray:
        """photo: HxWx3 uint8 -> 18x3 float32 OpenPose keypoints in photo pixels, checked for `category`."""
        def detect() -> np.ndarray:
            from tryon.preprocess import detect_keypoints, require_keypoints

            with _translated_errors():
                keypoints = detect_keypoints(photo)
                require_keypoints(keypoints, category)
            return keypoints

        return await asyncio.to_thread(detect)

    async def conditions(self, photo: np.ndarray, category: str, frame_hw: tuple[int, int], keypoints: np.ndarray,
                         garment_region: GarmentRegion | None):
        """tryon.preprocess.PersonConditions for `photo` in the model frame; `garment_region` (async) is called
        from the worker thread through the running event loop."""
        loop = asyncio.get_running_loop()
        region_fn: Callable | None = None
        if garment_region is not None:
            def region_fn(fitted: np.ndarray, points: np.ndarray, labels: np.ndarray) -> np.ndarray | None:
                return asyncio.run_coroutine_threadsafe(garment_region(fitted, points, labels), loop).result()

        def prepare():
            from tryon.preprocess import prepare_person

            with _translated_errors():
                return prepare_person(photo, category, frame_hw, region_fn, photo_keypoints=keypoints)

        return await asyncio.to_thread(prepare)


@contextmanager
def _translated_errors() -> Iterator[None]:
    from tryon.preprocess import PersonNotFound as NoPerson
    from tryon.preprocess import PreprocessError

    try:
        yield
    except NoPerson as error:
        raise PersonNotFound(str(error)) from None
    except PreprocessError as error:
        raise InvalidInput(f"the person photo cannot be prepared for try-on: {error}") from None
