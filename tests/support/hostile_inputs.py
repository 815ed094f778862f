"""A corpus of hostile and unusual inputs, generated (never stored as binaries), each with the answer it must get.

    for case in photo_cases(): ...   # bytes for POST /v1/images, expected status, and the size the user sees
    for case in text_cases(): ...    # search texts
    for case in json_cases(): ...    # raw request bodies for POST /v1/search

What real shoppers and attackers send: truncated and polyglot files, extreme aspect ratios, decompression bombs,
every pixel layout Pillow decodes, animations, EXIF rotations and broken or huge EXIF blocks, texts that are
not UTF-8, very long, right-to-left or emoji, and JSON that is deeply nested or huge. tests/integration/
test_hostile_inputs.py sends each through the real API; docs/reliability.md lists the classes and answers.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

# a photo whose pixels vary (a flat one compresses to nothing and hides decoder paths)
_RNG = np.random.default_rng(7)


@dataclass(frozen=True)
class PhotoCase:
    """An upload. status: what POST /v1/images must answer; shown_hw: (height, width) the user sees (EXIF
    applied), for accepted photos; code: the error code of a refusal."""

    name: str
    data: bytes
    status: int
    shown_hw: tuple[int, int] | None = None
    code: str | None = None


@dataclass(frozen=True)
class TextCase:
    name: str
    text: str
    status: int  # what GET /v1/search?q= answers


@dataclass(frozen=True)
class JsonCase:
    name: str
    body: bytes
    statuses: tuple[int, ...]  # acceptable answers of POST /v1/search


def _pixels(height: int, width: int, channels: int = 3) -> np.ndarray:
    shape = (height, width) if channels == 1 else (height, width, channels)
    return _RNG.integers(0, 256, shape, dtype=np.uint8)


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _jpeg_with_app1(payload: bytes, height: int = 64, width: int = 48) -> bytes:
    """A JPEG with an APP1 (EXIF) segment carrying `payload` right after its SOI marker."""
    jpeg = _encode(Image.fromarray(_pixels(height, width)), "JPEG")
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + segment + jpeg[2:]


def _exif_rotated_jpeg(stored_hw: tuple[int, int], orientation: int) -> bytes:
    image = Image.fromarray(_pixels(*stored_hw))
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encode(image, "JPEG", exif=exif.tobytes())


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height RGB pixels, followed by a tiny deflate stream of zeros (a
    decompression bomb: ~100 bytes that would decode to width*height*3 bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 4096, 9))
            + chunk(b"IEND", b""))


def _animated(fmt: str) -> bytes:
    frames = [Image.fromarray(_pixels(40, 30)) for _ in range(3)]
    return _encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


def photo_cases() -> list[PhotoCase]:
    jpeg = _encode(Image.fromarray(_pixels(64, 48)), "JPEG", quality=90)
    png = _encode(Image.fromarray(_pixels(64, 48)), "PNG")
    webp = _encode(Image.fromarray(_pixels(64, 48)), "WEBP")
    rgba = _pixels(64, 48, 4)
    grey16 = Image.fromarray((_RNG.integers(0, 65536, (64, 48))).astype(np.uint16))
    palette = Image.fromarray(_pixels(64, 48)).convert("P", palette=Image.Palette.ADAPTIVE)
    cases = [
        PhotoCase("jpeg", jpeg, 200, (64, 48)),
        PhotoCase("truncated jpeg", jpeg[: len(jpeg) // 2], 400, code="bad_request"),
        PhotoCase("truncated png", png[: len(png) // 2], 400, code="bad_request"),
        PhotoCase("truncated webp", webp[: len(webp) // 2], 400, code="bad_request"),
        PhotoCase("png with html appended (polyglot)", png + b"<html><script>alert(1)</script></html>", 200,
                  (64, 48)),
        PhotoCase("jpeg with a zip appended (polyglot)", jpeg + b"PK\x03\x04" + b"\x00" * 26 + b"PK\x05\x06"
                  + b"\x00" * 18, 200, (64, 48)),
        PhotoCase("html", b"<!doctype html><img src=x onerror=alert(1)>", 415, code="unsupported_media_type"),
        PhotoCase("svg with a script", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
                  415, code="unsupported_media_type"),
        PhotoCase("pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", 415,
                  code="unsupported_media_type"),
        PhotoCase("empty file", b"", 400, code="bad_request"),
        PhotoCase("1 x 100000", _encode(Image.fromarray(_pixels(100_000, 1)), "PNG"), 422, code="invalid_input"),
        PhotoCase("100000 x 1", _encode(Image.fromarray(_pixels(1, 100_000)), "PNG"), 422, code="invalid_input"),
        PhotoCase("32:1, the most elongated accepted", _encode(Image.fromarray(_pixels(20, 640)), "PNG"), 200,
                  (20, 640)),
        PhotoCase("decompression bomb (30000 x 30000 claimed)", _png_claiming(30_000, 30_000), 413,
                  code="payload_too_large"),
        PhotoCase("cmyk jpeg", _encode(Image.fromarray(_pixels(64, 48, 4), mode="CMYK"), "JPEG"), 200, (64, 48)),
        PhotoCase("16-bit greyscale png", _encode(grey16, "PNG"), 200, (64, 48)),
        PhotoCase("greyscale jpeg", _encode(Image.fromarray(_pixels(64, 48, 1)), "JPEG"), 200, (64, 48)),
        PhotoCase("palette png", _encode(palette, "PNG"), 200, (64, 48)),
        PhotoCase("rgba png", _encode(Image.fromarray(rgba), "PNG"), 200, (64, 48)),
        PhotoCase("animated webp", _animated("WEBP"), 200, (40, 30)),
        PhotoCase("animated png", _animated("PNG"), 200, (40, 30)),
        PhotoCase("animated gif (not an accepted format)", _animated("GIF"), 415, code="unsupported_media_type"),
        # stored 48 wide x 64 high, shown rotated a quarter turn: the user sees 48 high x 64 wide
        PhotoCase("exif-rotated jpeg (orientation 6)", _exif_rotated_jpeg((64, 48), 6), 200, (48, 64)),
        PhotoCase("exif-mirrored jpeg (orientation 2)", _exif_rotated_jpeg((64, 48), 2), 200, (64, 48)),
        PhotoCase("jpeg with an empty exif block", _jpeg_with_app1(b"Exif\x00\x00"), 200, (64, 48)),
        PhotoCase("jpeg with a broken exif block", _jpeg_with_app1(b"Exif\x00\x00MM\x00*" + b"\xff" * 64), 200,
                  (64, 48)),
        PhotoCase("jpeg with a 60 KB exif block", _jpeg_with_app1(b"Exif\x00\x00" + bytes(60_000)), 200, (64, 48)),
    ]
    return cases


def text_cases() -> list[TextCase]:
    return [
        TextCase("korean", "빨간 원피스", 200),
        TextCase("right-to-left arabic", "فستان أحمر", 200),
        TextCase("emoji and joiners", "👗🔥 👩‍👩‍👧 dress", 200),
        TextCase("control characters", "red\x00dress\x1b[31m\u202e", 200),
        TextCase("1000 characters", "d" * 1000, 200),
        TextCase("1001 characters", "d" * 1001, 422),
    ]


def json_cases() -> list[JsonCase]:
    deep = 100_000
    return [
        JsonCase("not json", b"text=red dress", (400, 422)),
        JsonCase("invalid utf-8", b'{"text": "\xff\xfe"}', (400, 422)),
        JsonCase("deeply nested arrays", b"[" * deep + b"]" * deep, (400, 422)),
        JsonCase("deeply nested objects", b'{"a":' * deep + b"1" + b"}" * deep, (400, 422)),
        JsonCase("a 1 MB text", b'{"text": "' + b"d" * 1_000_000 + b'"}', (413, 422)),
        JsonCase("a huge number", b'{"text": "dress", "k": 1' + b"0" * 5000 + b"}", (400, 422)),
        JsonCase("a number where text goes", b'{"text": 12}', (422,)),
        JsonCase("duplicate keys", b'{"text": "a", "text": "red dress"}', (200,)),
    ]
