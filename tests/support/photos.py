"""Photos for try-on tests: a real person (skimage's astronaut, public domain) and one without anyone in it."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def jpeg(pixels: np.ndarray) -> bytes:
    """HxWx3 uint8 RGB -> JPEG bytes (quality 92)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def person_jpeg() -> bytes:
    """A real photo of a person, 512 x 512."""
    from skimage.data import astronaut

    return jpeg(astronaut())


def no_person_jpeg() -> bytes:
    """Smooth colour gradients, 360 x 480: nothing a pose detector takes for a person."""
    yy, xx = np.mgrid[0:480, 0:360].astype(np.float32)
    pixels = np.stack([xx / 360 * 255, yy / 480 * 255, np.full_like(xx, 120)], axis=-1)
    return jpeg(pixels.astype(np.uint8))
