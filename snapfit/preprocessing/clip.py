"""Client-side half of the CLIP contract: the resize and crop open_clip applies before its image tower.

`clip_image` takes `image` UINT8 [B, S, S, 3] RGB (S = 224 for ViT-B-16 and the tiny model); casting,
/255, mean/std normalisation and HWC->CHW happen inside the graph. `clip_text` takes `input_ids`
INT64 [B, 77] from the `clip_tokenizer` Triton model (or open_clip's tokenizer).
numpy and PIL only, so the orchestrator imports it without torch.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from snapfit import contract

_RESAMPLING = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


def resize_and_crop(image: np.ndarray, size: int = contract.CLIP_IMAGE_SIZE,
                    interpolation: str = "bicubic") -> np.ndarray:
    """open_clip's validation transform up to the tensor conversion, byte for byte.

    torchvision `Resize(size)` on a PIL image (shortest side to `size`, long side truncated to
    int(size * long / short), PIL resampling with antialiasing) followed by `CenterCrop(size)`
    (offsets rounded half to even, as Python's round does).

    image: HxWx3 uint8 RGB. Returns: size x size x 3 uint8 RGB.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {image.dtype} {image.shape}")
    if interpolation not in _RESAMPLING:
        raise ValueError(f"interpolation must be one of {sorted(_RESAMPLING)}, got '{interpolation}'")
    height, width = image.shape[:2]
    new_width, new_height = _shortest_side_size(width, height, size)
    pil = Image.fromarray(np.ascontiguousarray(image))
    if (new_width, new_height) != (width, height):
        pil = pil.resize((new_width, new_height), _RESAMPLING[interpolation])
    top = int(round((new_height - size) / 2.0))
    left = int(round((new_width - size) / 2.0))
    return np.asarray(pil.crop((left, top, left + size, top + size)), dtype=np.uint8)


def batch(images: list[np.ndarray], size: int = contract.CLIP_IMAGE_SIZE) -> np.ndarray:
    """Resizes and crops each HxWx3 uint8 image; returns the `image` input, Bx size x size x3 uint8."""
    return np.stack([resize_and_crop(image, size) for image in images])


def _shortest_side_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(new_width, new_height) with the shorter side equal to `size`, as torchvision computes it."""
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    return (new_short, new_long) if width <= height else (new_long, new_short)
