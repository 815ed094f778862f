"""Paste the untouched part of the shopper's photo back over the generated image.

LaDI-VTON regenerates the whole frame through the VAE; faces, hands and backgrounds come back slightly
changed (users of every diffusion try-on patch faces afterwards). Keeping the original pixels wherever the
inpainting mask says "keep", with a feathered seam, preserves them exactly.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter


def keep_unmasked(generated: np.ndarray, original: np.ndarray, inpaint_mask: np.ndarray,
                  feather_px: float = 4.0) -> np.ndarray:
    """generated, original: uint8 [H, W, 3]; inpaint_mask: bool [H, W] (True = repainted) -> uint8 [H, W, 3].

    The mask is grown by 2 x feather_px and blurred with sigma feather_px, so the seam ramps over ~4 x feather_px
    pixels just outside the repainted region: the generated pixels win inside it, the original ones beyond.
    """
    if generated.shape != original.shape or inpaint_mask.shape != generated.shape[:2]:
        raise ValueError(f"shapes differ: generated {generated.shape}, original {original.shape}, "
                         f"mask {inpaint_mask.shape}")
    mask = Image.fromarray(inpaint_mask.astype(np.uint8) * 255)
    if feather_px > 0:
        grow = 2 * round(2 * feather_px) + 1  # the blur then ramps outside the mask, not into it
        mask = mask.filter(ImageFilter.MaxFilter(grow)).filter(ImageFilter.GaussianBlur(feather_px))
    alpha = (np.asarray(mask, np.float32) / 255.0)[..., None]
    blended = alpha * generated.astype(np.float32) + (1.0 - alpha) * original.astype(np.float32)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)
