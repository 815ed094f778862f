"""The `sam_decoder` graph's mask upsampling, done in the client for the masks a click actually returns.

The graph turns its 4 low-resolution logit maps into `masks` at the photo's size (segment_anything's
`SamOnnxModel.mask_postprocessing`): bilinear up to the 1024 frame, crop the padding, bilinear to the photo's
(H, W), both with half-pixel centres (`align_corners=False`) and no antialiasing. For a 1024x768 photo that
is 4 x 3 MB of float logits through Triton per click. A click asks only for `low_res_masks` (1 MB) and
`iou_predictions`, and this module repeats the same two resizes here for the 3 multimask outputs, with
OpenCV's INTER_LINEAR, whose sampling is the same half-pixel bilinear as torch's. Pixels whose logit sits
within float rounding of 0 may threshold differently; tests/unit/test_sam_upscale.py bounds that against
the graph.
"""

from __future__ import annotations

import cv2
import numpy as np

from snapfit import contract


def prepadded_size(orig_hw: tuple[int, int], frame: int = contract.SAM_FRAME) -> tuple[int, int]:
    """The photo's (h, w) inside the 1024 frame, rounded in float32 exactly as the decoder graph rounds."""
    size = np.asarray(orig_hw, dtype=np.float32)
    scale = np.float32(frame) / size.max()
    scaled = np.floor(scale * size + np.float32(0.5))
    return int(scaled[0]), int(scaled[1])


def upscale_masks(low_res: np.ndarray, orig_hw: tuple[int, int]) -> np.ndarray:
    """low_res: [N, 256, 256] float32 logits -> [N, H, W] float32 logits at the photo's size.

    Column-major: the result is a transposed view of [N, W, H] memory. Bilinear resizing is separable, so resizing
    each mask's transpose gives the transpose of the resized mask, and the masks come out in the column-major
    order COCO run-length encoding reads (orchestrator.masks.encode_rle then needs no transposing copy; a
    threshold like `logits > 0` keeps the layout). One mask at a time: OpenCV's single-channel resize is
    faster here than one over channels-last stacks.
    """
    height, width = orig_hw
    crop_h, crop_w = prepadded_size(orig_hw)
    logits = np.asarray(low_res, dtype=np.float32)
    transposed = np.empty((logits.shape[0], width, height), dtype=np.float32)
    for index, mask in enumerate(logits):
        frame = cv2.resize(np.ascontiguousarray(mask.T), (contract.SAM_FRAME, contract.SAM_FRAME),
                           interpolation=cv2.INTER_LINEAR)
        cv2.resize(frame[:crop_w, :crop_h], (height, width), dst=transposed[index], interpolation=cv2.INTER_LINEAR)
    return transposed.transpose(0, 2, 1)
