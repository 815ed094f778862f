"""Decoding the photos shoppers upload: bytes in, an RGB array out, every client mistake a typed error.

Only JPEG, PNG and WebP are accepted, identified by PIL from the bytes (never from a filename or a
declared content type). Limits are checked before pixels are decoded, so a small file that claims
huge dimensions (a decompression bomb) costs a header read, not gigabytes of memory.
"""

from __future__ import annotations

import hashlib
import io
import struct
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from orchestrator.errors import BadRequest, InvalidInput, PayloadTooLarge, UnsupportedMediaType

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP")
"""PIL format names `decode_image` accepts."""

_SIGNATURES = {
    "JPEG": (b"\xff\xd8\xff",),
    "PNG": (b"\x89PNG\r\n\x1a\n",),
}

_WHITE = (255, 255, 255)

MAX_ASPECT_RATIO = 32
"""How many times longer than the other one side of a photo may be. Past it, the models' resizes go wrong both
ways: CLIP's shortest-side-to-224 turns a 1 x 100000 strip into 224 x 22,400,000 pixels (15 GB), and SAM's
longest-side-to-1024 leaves it 0 pixels wide. 32:1 keeps the shorter side at 32 or more of SAM's 1024."""


def content_hash(data: bytes) -> str:
    """The image id of an upload: sha256 of its bytes, 64 lowercase hex characters."""
    return hashlib.sha256(data).hexdigest()


def sniff_format(data: bytes) -> str | None:
    """The allowed format whose magic bytes `data` starts with ("JPEG", "PNG", "WEBP"), else None.

    Used only to tell a corrupt JPEG/PNG/WebP (400) from another kind of file (415); the format
    itself is identified by PIL.
    """
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    for name, prefixes in _SIGNATURES.items():
        if data.startswith(prefixes):
            return name
    return None


def decode_image(data: bytes, max_bytes: int, max_pixels: int) -> np.ndarray:
    """Decodes an uploaded JPEG, PNG or WebP photo.

    EXIF orientation is applied; transparency is composited on white; palette, greyscale, CMYK and
    16-bit images are converted to 8-bit RGB. Animated images give their first frame.

    returns: HxWx3 uint8, RGB, C-contiguous, in the orientation a viewer would show.
    raises: PayloadTooLarge when `data` exceeds `max_bytes` or the image has more than `max_pixels`
        pixels (read from the header, before decoding); InvalidInput when one side is more than
        MAX_ASPECT_RATIO times the other (also from the header); UnsupportedMediaType when the bytes are not
        JPEG, PNG or WebP; BadRequest when the file is empty, truncated or corrupt.
    """
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"image is {len(data)} bytes; the limit is {max_bytes} bytes")
    if not data:
        raise BadRequest("image is empty (0 bytes)")
    image = _open(data, max_pixels)
    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise PayloadTooLarge(f"image is too large to decode: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow reports truncation and bad chunks as OSError/SyntaxError with a terse message.
        raise BadRequest(f"{image.format} image is truncated or corrupt ({exc})") from None
    image = _oriented(image)
    rgb = _to_rgb(image)
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Reads the header only: format and dimensions. Raises the errors `decode_image` documents."""
    try:
        with warnings.catch_warnings():
            # DecompressionBombWarning is superseded by our own `max_pixels` check just below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError as exc:
        raise PayloadTooLarge(f"image dimensions are too large: {exc}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        claimed = sniff_format(data)
        if claimed is not None:
            raise BadRequest(f"{claimed} image is truncated or corrupt ({exc})") from None
        raise UnsupportedMediaType("unsupported image format: expected JPEG, PNG or WebP") from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise BadRequest(f"{image.format} image has invalid dimensions {width}x{height}")
    if width * height > max_pixels:
        raise PayloadTooLarge(
            f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels} pixels"
        )
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise InvalidInput(f"image is {width}x{height} pixels; one side may be at most {MAX_ASPECT_RATIO} times "
                           "the other")
    return image


def _oriented(image: Image.Image) -> Image.Image:
    """`image` rotated/flipped as its EXIF Orientation tag says (unchanged when there is none)."""
    try:
        return ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, KeyError, TypeError, struct.error):
        # A broken EXIF block should not reject an otherwise decodable photo: show it as stored.
        return image


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB; transparency composited on white; 16-bit greyscale scaled, not clipped."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        return _wide_grey_to_rgb(image)
    has_alpha = image.mode in ("RGBA", "LA", "La", "PA", "RGBa") or "transparency" in image.info
    if not has_alpha:
        return image.convert("RGB")  # P, L, 1, CMYK, YCbCr: PIL's conversions are exact enough
    rgba = image.convert("RGBA")
    background = Image.new("RGB", rgba.size, _WHITE)
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _wide_grey_to_rgb(image: Image.Image) -> Image.Image:
    """16-bit greyscale (PNG) to 8-bit RGB: PIL's own conversion clips everything above 255 to white."""
    values = np.asarray(image).astype(np.float64)
    grey = np.clip(np.rint(values * (255.0 / 65535.0)), 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(np.stack([grey] * 3, axis=-1)), "RGB")
