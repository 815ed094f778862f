"""Representative inputs for each served model, built with the same client-side preprocessing the orchestrator uses."""

from __future__ import annotations

import numpy as np

from snapfit.preprocessing.classifier import resize_for_classifier
from snapfit.preprocessing.clip import resize_and_crop
from snapfit.preprocessing.sam import prompt_arrays, resize_for_encoder


def photo(height: int, width: int, seed: int) -> np.ndarray:
    """HxWx3 uint8: smooth colour gradients plus a blob, closer to a photo than uniform noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = [np.sin(xx / rng.uniform(20, 80) + c) * np.cos(yy / rng.uniform(20, 80)) for c in range(3)]
    image = (np.stack(channels, axis=-1) * 100 + 128).clip(0, 255)
    cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
    blob = ((yy - cy) ** 2 + (xx - cx) ** 2) < (min(height, width) / 5) ** 2
    image[blob] = rng.uniform(0, 255, size=3)
    return image.astype(np.uint8)


def sam_encoder_feeds(seed: int = 0) -> dict[str, np.ndarray]:
    return {"image": resize_for_encoder(photo(480, 640, seed))[None]}


def sam_decoder_feeds(image_embeddings: np.ndarray) -> dict[str, np.ndarray]:
    """image_embeddings: 1x256x64x64 float32. One positive click on a 480x640 photo."""
    feeds = prompt_arrays(points=np.array([[320.0, 240.0]]), labels=np.array([1]), box=None, orig_hw=(480, 640))
    return {"image_embeddings": image_embeddings.astype(np.float32), **feeds}


def clip_image_feeds(batch: int = 2, size: int = 224, seed: int = 0) -> dict[str, np.ndarray]:
    return {"image": np.stack([resize_and_crop(photo(300 + 20 * i, 400, seed + i), size) for i in range(batch)])}


def tryon_classifier_feeds(batch: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    return {"image": np.stack([resize_for_classifier(photo(500, 350 + 30 * i, seed + i)) for i in range(batch)])}
