"""Client-side half of the SAM contract: resizing the image and mapping prompts into the 1024 frame.

Where each step of SAM's preprocessing happens:

- **Resizing: here, in the client.** `resize_for_encoder` scales the image so its longest side is exactly
  1024 (`int(side * 1024 / max(h, w) + 0.5)`, segment_anything's `ResizeLongestSide`), with PIL's bilinear
  filter, as segment_anything does through torchvision's `to_pil_image` + `resize`. The bytes sent to
  `sam_encoder` are this resized image, UINT8 [H, W, 3] RGB (a batch stacks equal-size images).
- **Normalisation and padding: in the `sam_encoder` graph.** It casts to float, normalises with SAM's
  pixel mean/std on the 0-255 scale, transposes HWC to CHW, then zero-pads bottom/right to 1024x1024
  (padding after normalising, so the pad is 0 in normalised space, as `Sam.preprocess` does).
- **Prompts: here.** `prompt_arrays` maps points and a box from original-image pixels into the resized
  1024 frame (`ResizeLongestSide.apply_coords`), encodes a box as two corner points labelled 2 and 3, and
  appends SAM's (0, 0) / -1 padding point when there is no box. The `sam_decoder` graph upsamples its
  masks back to `orig_im_size` itself.

numpy and PIL only: the orchestrator imports this module without torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from snapfit import contract

PAD_LABEL = -1.0
BOX_LABELS = (2.0, 3.0)  # top-left, bottom-right corner


def longest_side_size(h: int, w: int, target: int = contract.SAM_FRAME) -> tuple[int, int]:
    """(new_h, new_w) with the longest side equal to `target`, rounded as segment_anything rounds.

    Same float operations as `ResizeLongestSide.get_preprocess_shape`, so sizes agree bit for bit.
    """
    if h <= 0 or w <= 0:
        raise ValueError(f"image size must be positive, got {h}x{w}")
    scale = target * 1.0 / max(h, w)
    return int(h * scale + 0.5), int(w * scale + 0.5)


def resize_for_encoder(image: np.ndarray) -> np.ndarray:
    """The `sam_encoder` input for one image.

    image: HxWx3 uint8 RGB. Returns: H'xW'x3 uint8 with max(H', W') == 1024, see `longest_side_size`.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {image.dtype} {image.shape}")
    new_h, new_w = longest_side_size(image.shape[0], image.shape[1])
    if (new_h, new_w) == image.shape[:2]:
        return image  # torchvision returns the image untouched in this case too
    return np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))


def map_coords(coords: np.ndarray, orig_hw: tuple[int, int]) -> np.ndarray:
    """...x2 (x, y) pixels of the original image -> the same points in the resized 1024 frame (float64)."""
    new_h, new_w = longest_side_size(*orig_hw)
    mapped = np.array(coords, dtype=np.float64)
    mapped[..., 0] *= new_w / orig_hw[1]
    mapped[..., 1] *= new_h / orig_hw[0]
    return mapped


def prompt_arrays(
    points: np.ndarray | Sequence[Sequence[float]] | None,
    labels: np.ndarray | Sequence[int] | None,
    box: np.ndarray | Sequence[float] | None,
    orig_hw: tuple[int, int],
    mask_input: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The prompt feeds of `sam_decoder` (everything except `image_embeddings`).

    points: Nx2 (x, y) in pixels of the original image, or None. labels: N ints, 1 foreground, 0 background.
    box: 4 floats x0, y0, x1, y1 in pixels of the original image, or None. orig_hw: original (H, W).
    mask_input: a previous low-resolution mask logit map (one of the decoder's `low_res_masks`),
    256x256 (or 1x256x256, 1x1x256x256), or None.

    Returns float32 arrays: point_coords 1xMx2 (1024 frame), point_labels 1xM, mask_input 1x1x256x256,
    has_mask_input [1], orig_im_size [2] (H, W). M = N + 2 with a box, N + 1 (the pad point) without.
    """
    coords, point_labels = _points(points, labels)
    if box is not None:
        corners = np.asarray(box, dtype=np.float64)
        if corners.size != 4:
            raise ValueError(f"box must be 4 numbers x0, y0, x1, y1, got shape {corners.shape}")
        coords = np.concatenate([coords, corners.reshape(2, 2)])
        point_labels = np.concatenate([point_labels, BOX_LABELS])
    else:
        coords = np.concatenate([coords, np.zeros((1, 2))])  # SAM pads point-only prompts with a non-point
        point_labels = np.concatenate([point_labels, [PAD_LABEL]])
    if len(coords) == 1:
        raise ValueError("a SAM prompt needs at least one point or a box")
    mask, has_mask = _mask_feed(mask_input)
    return {
        "point_coords": map_coords(coords, orig_hw)[None].astype(np.float32),
        "point_labels": point_labels[None].astype(np.float32),
        "mask_input": mask,
        "has_mask_input": np.array([has_mask], dtype=np.float32),
        "orig_im_size": np.array(orig_hw, dtype=np.float32),
    }


def _points(points, labels) -> tuple[np.ndarray, np.ndarray]:
    if points is None:
        if labels is not None and len(labels):
            raise ValueError("point labels were given without points")
        return np.zeros((0, 2)), np.zeros(0)
    coords = np.asarray(points, dtype=np.float64).reshape(-1, 2) if len(points) else np.zeros((0, 2))
    point_labels = np.asarray(labels if labels is not None else [], dtype=np.float64).reshape(-1)
    if len(point_labels) != len(coords):
        raise ValueError(f"{len(coords)} points but {len(point_labels)} labels")
    if not np.isin(point_labels, (0, 1)).all():
        raise ValueError(f"point labels must be 1 (foreground) or 0 (background), got {point_labels.tolist()}")
    return coords, point_labels


def _mask_feed(mask_input: np.ndarray | None) -> tuple[np.ndarray, float]:
    shape = (1, 1, contract.SAM_LOW_RES_MASK_SIZE, contract.SAM_LOW_RES_MASK_SIZE)
    if mask_input is None:
        return np.zeros(shape, dtype=np.float32), 0.0
    mask = np.asarray(mask_input, dtype=np.float32)
    if mask.shape[-2:] != shape[-2:] or mask.size != contract.SAM_LOW_RES_MASK_SIZE**2:
        raise ValueError(f"mask_input must be one 256x256 low-resolution mask, got shape {mask.shape}")
    return mask.reshape(shape), 1.0
