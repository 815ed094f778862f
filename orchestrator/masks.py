"""Binary masks in the compact forms a browser can overlay: COCO run-length encoding and PNG."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from orchestrator.errors import InvalidInput


def encode_rle(mask: np.ndarray) -> dict:
    """HxW bool -> COCO uncompressed RLE {"size": [H, W], "counts": [...]}: column-major runs, zeros first."""
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": rle_counts(mask).tolist()}


def rle_counts(mask: np.ndarray) -> np.ndarray:
    """HxW bool -> the COCO RLE run lengths as an int64 array (column-major runs, zeros first), for serialisers
    that write numpy arrays directly (a noisy mask has ~10^5 runs: a Python list of them costs milliseconds)."""
    flat = np.ascontiguousarray(np.asarray(mask, dtype=bool).T).reshape(-1)  # column-major order
    bounds = np.concatenate([[0], np.flatnonzero(flat[1:] != flat[:-1]) + 1, [flat.size]])
    counts = np.diff(bounds).astype(np.int64, copy=False)
    if flat.size and flat[0]:
        counts = np.concatenate([np.zeros(1, np.int64), counts])
    return counts


def decode_rle(rle: dict, expected_hw: tuple[int, int] | None = None) -> np.ndarray:
    """COCO uncompressed RLE -> HxW bool; InvalidInput when the runs do not fill the stated size."""
    try:
        height, width = (int(v) for v in rle["size"])
        counts = np.asarray(rle["counts"], dtype=np.int64)
    except (KeyError, TypeError, ValueError):
        raise InvalidInput("mask must be COCO RLE: {'size': [H, W], 'counts': [int, ...]}") from None
    if expected_hw is not None and (height, width) != tuple(expected_hw):
        raise InvalidInput(f"mask size {height}x{width} does not match the image ({expected_hw[0]}x{expected_hw[1]})")
    if (counts < 0).any() or counts.sum() != height * width:
        raise InvalidInput(f"mask RLE counts must be non-negative and sum to {height}*{width}")
    values = np.arange(len(counts)) % 2 == 1
    return np.repeat(values, counts).reshape((height, width), order="F")


def encode_png(mask: np.ndarray) -> str:
    """HxW bool -> base64 PNG (1-bit), for <img src="data:image/png;base64,...">."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(mask, dtype=bool)).save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_png(data: str, expected_hw: tuple[int, int] | None = None) -> np.ndarray:
    try:
        image = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
        mask = np.asarray(image.convert("L")) > 127
    except Exception:
        raise InvalidInput("mask must be a base64-encoded PNG") from None
    if expected_hw is not None and mask.shape != tuple(expected_hw):
        raise InvalidInput(f"mask size {mask.shape[0]}x{mask.shape[1]} does not match the image")
    return mask
