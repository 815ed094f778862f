"""Decoding uploaded photos: formats, orientation, colour modes, limits and corrupt files."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from orchestrator.errors import BadRequest, InvalidInput, PayloadTooLarge, UnsupportedMediaType
from orchestrator.images import content_hash, decode_image, sniff_format

MAX_BYTES = 10_000_000
MAX_PIXELS = 4_000_000
RED, BLUE = (220, 20, 30), (20, 40, 220)


def _two_halves(width: int = 40, height: int = 20) -> Image.Image:
    """Left half red, right half blue, so any rotation or flip is visible."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 2] = RED
    pixels[:, width // 2 :] = BLUE
    return Image.fromarray(pixels, "RGB")


def _encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_header_only(width: int, height: int) -> bytes:
    """A ~60-byte PNG whose header claims width x height RGB pixels (the pixel data is a stub)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + _png_chunk(b"IEND", b"")
    )


def _close(actual: np.ndarray, expected: tuple[int, int, int], tolerance: int = 12) -> bool:
    return bool(np.all(np.abs(actual.astype(int) - np.array(expected)) <= tolerance))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_decode_returns_hxwx3_uint8_rgb_for_each_allowed_format(fmt):
    data = _encode(_two_halves(), fmt, **({"quality": 95} if fmt != "PNG" else {}))

    pixels = decode_image(data, MAX_BYTES, MAX_PIXELS)

    assert pixels.shape == (20, 40, 3) and pixels.dtype == np.uint8 and pixels.flags.c_contiguous
    assert _close(pixels[10, 5], RED) and _close(pixels[10, 35], BLUE)


def test_decode_applies_exif_orientation_of_a_jpeg():
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the viewer rotates the stored image 90 degrees clockwise
    data = _encode(_two_halves(), "JPEG", quality=95, exif=exif.tobytes())

    pixels = decode_image(data, MAX_BYTES, MAX_PIXELS)

    assert pixels.shape == (40, 20, 3)  # portrait now
    assert _close(pixels[5, 10], RED)  # the stored left half ends up on top
    assert _close(pixels[35, 10], BLUE)


def test_decode_composites_transparent_pixels_on_white():
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[:, :5] = (0, 0, 0, 0)  # fully transparent black
    rgba[:, 5:] = (0, 0, 255, 255)  # opaque blue
    data = _encode(Image.fromarray(rgba, "RGBA"), "PNG")

    pixels = decode_image(data, MAX_BYTES, MAX_PIXELS)

    assert tuple(pixels[0, 0]) == (255, 255, 255)
    assert tuple(pixels[0, 9]) == (0, 0, 255)


def test_decode_composites_a_palette_png_with_a_transparent_index_on_white():
    image = Image.new("P", (8, 8), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.paste(1, (4, 0, 8, 8))
    data = _encode(image, "PNG", transparency=0)

    pixels = decode_image(data, MAX_BYTES, MAX_PIXELS)

    assert tuple(pixels[0, 0]) == (255, 255, 255) and tuple(pixels[0, 7]) == (255, 0, 0)


def test_decode_converts_greyscale_and_cmyk_to_rgb():
    grey = decode_image(_encode(Image.new("L", (6, 4), 128), "PNG"), MAX_BYTES, MAX_PIXELS)
    cmyk = decode_image(_encode(Image.new("CMYK", (6, 4), (0, 255, 255, 0)), "JPEG"), MAX_BYTES, MAX_PIXELS)

    assert grey.shape == (4, 6, 3) and tuple(grey[0, 0]) == (128, 128, 128)
    assert cmyk.shape == (4, 6, 3) and _close(cmyk[0, 0], (255, 0, 0), tolerance=20)


def test_decode_scales_16_bit_greyscale_instead_of_clipping_it():
    values = np.full((4, 4), 32896, np.uint16)  # mid-grey in 16 bits
    pixels = decode_image(_encode(Image.fromarray(values), "PNG"), MAX_BYTES, MAX_PIXELS)

    assert tuple(pixels[0, 0]) == (128, 128, 128)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(_encode(_two_halves(), "GIF"), id="gif"),
        pytest.param(_encode(_two_halves(), "BMP"), id="bmp"),
        pytest.param("<html>not an image</html>".encode(), id="text"),
    ],
)
def test_decode_refuses_other_formats_with_415(data):
    with pytest.raises(UnsupportedMediaType, match="JPEG, PNG or WebP"):
        decode_image(data, MAX_BYTES, MAX_PIXELS)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_decode_reports_a_truncated_file_as_bad_request(fmt):
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = _encode(Image.fromarray(noise, "RGB"), fmt)

    with pytest.raises(BadRequest, match="truncated or corrupt") as caught:
        decode_image(data[: len(data) // 2], MAX_BYTES, MAX_PIXELS)
    assert fmt in caught.value.message


def test_decode_reports_a_png_with_a_corrupt_header_as_bad_request_not_415():
    data = bytearray(_encode(_two_halves(), "PNG"))
    data[20:24] = b"\x00\x00\x00\x00"  # breaks the IHDR checksum-protected fields

    with pytest.raises(BadRequest) as caught:
        decode_image(bytes(data), MAX_BYTES, MAX_PIXELS)
    assert type(caught.value) is BadRequest


def test_decode_refuses_an_empty_upload():
    with pytest.raises(BadRequest, match="empty"):
        decode_image(b"", MAX_BYTES, MAX_PIXELS)


def test_decode_refuses_more_bytes_than_the_limit_before_reading_them():
    data = _encode(_two_halves(), "PNG")

    with pytest.raises(PayloadTooLarge, match=f"limit is {len(data) - 1} bytes"):
        decode_image(data, len(data) - 1, MAX_PIXELS)


def test_decode_refuses_a_header_claiming_more_pixels_than_the_limit_without_decoding():
    data = _png_header_only(5000, 5000)  # 25 Mpx claimed, 60 bytes sent

    with pytest.raises(PayloadTooLarge, match="5000x5000"):
        decode_image(data, MAX_BYTES, MAX_PIXELS)


@pytest.mark.parametrize("width, height", [(1, 33), (10_000, 312), (100_000, 1)])
def test_decode_refuses_a_strip_more_than_32_times_longer_than_wide_from_its_header(width, height):
    with pytest.raises(InvalidInput, match=f"{width}x{height}"):
        decode_image(_png_header_only(width, height), MAX_BYTES, MAX_PIXELS)


def test_decode_accepts_a_photo_exactly_32_times_longer_than_wide():
    assert decode_image(_encode(Image.new("RGB", (640, 20)), "PNG"), MAX_BYTES, MAX_PIXELS).shape == (20, 640, 3)


def test_decode_turns_pils_decompression_bomb_error_into_payload_too_large():
    data = _png_header_only(50_000, 50_000)  # 2.5 Gpx: PIL itself refuses it at open()

    with pytest.raises(PayloadTooLarge):
        decode_image(data, MAX_BYTES, max_pixels=10**12)


def test_content_hash_is_the_sha256_hex_of_the_bytes():
    assert content_hash(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_sniff_format_recognises_allowed_magic_bytes_only():
    assert sniff_format(_encode(_two_halves(), "WEBP")) == "WEBP"
    assert sniff_format(_encode(_two_halves(), "JPEG")) == "JPEG"
    assert sniff_format(_encode(_two_halves(), "GIF")) is None
