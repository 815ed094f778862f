"""Client-side half of the `tryon_classifier` contract: decoding and resizing product photos to 384x384.

The served model takes `image` UINT8 [B, 384, 384, 3] RGB and does cast, /255, ImageNet normalisation and
HWC->CHW itself. The client only has to turn a product photo of any size into a 384x384x3 uint8 array, and
`snapfit train-classifier` uses the very same functions, so training and serving see identical pixels.

Resizing rule: letterbox, not centre-crop. The long side is scaled to 384 and the short side is padded with
white. Product photos vary from tall dress shots (~2:3) to wide flat-lays, and usability for try-on depends on
the *whole* garment (is it cut off? are the sleeves visible? is there a second item?). A centre crop would cut
exactly those parts off a tall dress photo; letterboxing keeps every pixel of the garment. White matches the
studio background most catalogue photos already have, so the padding adds no edge the model could latch onto.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from snapfit import contract

CLASSIFIER_SIZE = contract.CLASSIFIER_SIZE  # EfficientNetV2-S's evaluation resolution
CLASS_NAMES = contract.CLASSIFIER_CLASSES  # index = class id; class 1 means "usable for try-on"
PAD_VALUE = 255  # white, the usual studio background of product photos


def letterbox_geometry(height: int, width: int, size: int = CLASSIFIER_SIZE) -> tuple[int, int, int, int]:
    """Where an HxW image lands inside the size x size letterbox.

    Returns (top, left, new_height, new_width). The long side becomes exactly `size`; the short side is
    `floor(short * size / long + 0.5)` (at least 1). The padding is split evenly; an odd leftover pixel goes
    to the bottom / right.
    """
    if height < 1 or width < 1:
        raise ValueError(f"image must be at least 1x1, got {height}x{width}")
    scale = size / max(height, width)
    new_height = max(1, min(size, int(np.floor(height * scale + 0.5))))
    new_width = max(1, min(size, int(np.floor(width * scale + 0.5))))
    return (size - new_height) // 2, (size - new_width) // 2, new_height, new_width


def resize_for_classifier(image: np.ndarray, size: int = CLASSIFIER_SIZE) -> np.ndarray:
    """Letterboxes an RGB image onto a white square.

    image: HxWx3 uint8 RGB, any size. Returns size x size x 3 uint8 RGB (a new array).
    Resampling is PIL's antialiased bilinear, as in torchvision's EfficientNetV2 evaluation transform.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        described = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"expected an HxWx3 uint8 RGB array, got {described}")
    top, left, new_height, new_width = letterbox_geometry(image.shape[0], image.shape[1], size)
    out = np.full((size, size, 3), PAD_VALUE, dtype=np.uint8)
    if (new_height, new_width) == image.shape[:2]:
        resized = image
    else:
        resized = np.asarray(Image.fromarray(image).resize((new_width, new_height), Image.Resampling.BILINEAR))
    out[top:top + new_height, left:left + new_width] = resized
    return out


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """A decoded PIL image as HxWx3 uint8 RGB, upright and with transparency composited onto white.

    Product PNGs are often cut out on a transparent background; dropping alpha would leave whatever colour
    the transparent pixels happen to store (often black), so they are composited onto the same white the
    letterbox uses.
    """
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (PAD_VALUE, PAD_VALUE, PAD_VALUE, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def load_for_classifier(path: Path, size: int = CLASSIFIER_SIZE) -> np.ndarray:
    """Decodes an image file and letterboxes it: returns size x size x 3 uint8 RGB.

    Raises OSError (PIL's UnidentifiedImageError is one) when the file is missing or cannot be decoded.
    """
    with Image.open(path) as image:
        image.load()
        return resize_for_classifier(to_rgb_array(image), size)
