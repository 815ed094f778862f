"""Domain records shared by the catalog stores, the vector index, the services and the model clients (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Product:
    """One catalog product.

    embedding: D float32, L2-normalised CLIP image embedding of `image` (None until embedded).
    tryon_probability: P(photo usable for try-on) from the classifier; tryon_ready = probability >= threshold.
    source_hash: hash of the CSV row's fields plus the image bytes, so re-importing an unchanged row is a no-op.
    """

    product_id: str
    name: str
    image: str
    link: str = ""
    brand: str = ""
    price: float | None = None
    tags: list[str] = field(default_factory=list)
    category: str = ""
    tryon_ready: bool = False
    tryon_probability: float | None = None
    embedding: np.ndarray | None = None
    source_hash: str = ""
    updated_at: float = 0.0


@dataclass(frozen=True)
class Thumbnail:
    """A product photo's thumbnail as it is served.

    data: a JPEG, RGB, its longest side at most `catalog.thumbnail_max_side_px` (orchestrator/thumbnails.py).
    etag: 32 lowercase hex characters, the BLAKE2b-128 of `data`; the ETag header quotes it.
    """

    data: bytes
    etag: str


@dataclass(frozen=True)
class ProductFilter:
    """Search filters, applied inside the vector search. None means "no constraint"."""

    categories: frozenset[str] | None = None
    brands: frozenset[str] | None = None
    min_price: float | None = None
    max_price: float | None = None
    tryon_ready: bool | None = None

    @property
    def is_empty(self) -> bool:
        return all(v is None for v in (self.categories, self.brands, self.min_price, self.max_price, self.tryon_ready))

    def matches(self, product: Product) -> bool:
        if self.categories is not None and product.category not in self.categories:
            return False
        if self.brands is not None and product.brand not in self.brands:
            return False
        if self.min_price is not None and (product.price is None or product.price < self.min_price):
            return False
        if self.max_price is not None and (product.price is None or product.price > self.max_price):
            return False
        if self.tryon_ready is not None and product.tryon_ready != self.tryon_ready:
            return False
        return True


@dataclass
class MaskPrediction:
    """What the SAM decoder returns for one prompt.

    Mask 0 is the single-mask token, 1-3 the multimask outputs. iou_predictions: 4 float32; orig_hw: the photo's
    (H, W); low_res_masks: 4x256x256 float32 logits (also what a later prompt feeds back as mask_input); masks:
    4xHxW float32 logits at the photo's size when the decoder returned them, else None and `logits` upsamples
    the low-resolution ones as the decoder graph would.
    """

    iou_predictions: np.ndarray
    orig_hw: tuple[int, int]
    low_res_masks: np.ndarray | None = None
    masks: np.ndarray | None = None

    def logits(self, indices: list[int]) -> np.ndarray:
        """len(indices)xHxW float32 logits at the photo's size (mask = logits > 0). CPU work of a few
        milliseconds when upsampling: call it off the event loop."""
        if self.masks is not None:
            return self.masks[indices]
        if self.low_res_masks is None:
            raise ValueError("this prediction carries no masks")
        from snapfit.preprocessing.sam_upscale import upscale_masks  # OpenCV, only where masks are upsampled

        return upscale_masks(self.low_res_masks[indices], self.orig_hw)


@dataclass
class TryOnUpdate:
    """One response of the decoupled try-on model: progress, and on the last one the image
    (uint8 [H, W, 3] at the size of the person sent)."""

    step: int
    total_steps: int
    image: np.ndarray | None = None
