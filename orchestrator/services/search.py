"""Garment crop and/or text -> matching products, ranked by CLIP similarity inside FAISS, filters applied there.

Fusion of image and text: both embeddings are L2-normalised, combined as
`q = w * image + (1 - w) * text` (w = settings.search.image_weight, or the request's `image_weight`) and
re-normalised, so a score is still a cosine similarity. "this skirt, but in black" keeps the garment's
shape from the image while the text pulls the colour.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from orchestrator.cutout import cut_out
from orchestrator.domain import Product, ProductFilter
from orchestrator.errors import InvalidInput
from orchestrator.services.dependencies import Embedder, ProductMetadata, UploadedPhotos, VectorIndex
from orchestrator.settings import SearchSettings
from orchestrator.timing import stage
from snapfit.preprocessing.clip import resize_and_crop

# Server-Timing stage of the image's cut-out and resize: `preprocess` when the request waits for it, and
# `preprocess.overlapped` when it runs during the text tower's call, which the request waits for instead
OWN_STAGE, OVERLAPPED_STAGE = "preprocess", "preprocess.overlapped"


@dataclass
class SearchQuery:
    """At least one of: an uploaded image with a mask (HxW bool), free text, or a whole image (HxWx3 uint8)."""

    image_id: str | None = None
    mask: np.ndarray | None = None
    text: str | None = None
    image: np.ndarray | None = None
    k: int = 20
    image_weight: float | None = None
    filter: ProductFilter | None = None


@dataclass
class SearchHit:
    product: Product
    score: float


class SearchService:
    def __init__(self, images: UploadedPhotos, models: Embedder, index: VectorIndex, products: ProductMetadata,
                 settings: SearchSettings):
        self.images = images
        self.models = models
        self.index = index
        self.products = products
        self.settings = settings

    async def search(self, query: SearchQuery) -> list[SearchHit]:
        if not 1 <= query.k <= self.settings.max_k:
            raise InvalidInput(f"k must be between 1 and {self.settings.max_k}")
        vector = await self.query_vector(query)
        with stage("index"):
            if self.index.searches_inline:  # a small exact index: quicker than a hand-off to a worker thread
                hits = self.index.search(vector[None], query.k, query.filter)[0]
            else:
                hits = (await asyncio.to_thread(self.index.search, vector[None], query.k, query.filter))[0]
        with stage("store"):
            products = await self.products.get_many([product_id for product_id, _ in hits])
        # a product deleted between the index search and the lookup is simply skipped
        return [SearchHit(products[pid], score) for pid, score in hits if pid in products]

    async def query_vector(self, query: SearchQuery) -> np.ndarray:
        """D float32, L2-normalised."""
        text = (query.text or "").strip()
        has_image = query.image_id is not None or query.image is not None
        if not has_image and not text:
            raise InvalidInput("give an image_id with a mask, an image, or text to search with")
        if query.image_id is not None and query.mask is None:
            raise InvalidInput("searching by image_id needs the chosen mask")
        weight = self.settings.image_weight if query.image_weight is None else query.image_weight
        if has_image and text and not 0.0 <= weight <= 1.0:
            raise InvalidInput("image_weight must be between 0 and 1")
        if not has_image:
            return (await self.models.clip_text([text]))[0]
        if not text:
            return (await self.models.clip_image([await self._clip_input(query, OWN_STAGE)]))[0]
        # The text tower runs while the image is cut out and sized on a worker thread (~5 ms of one core alone, ~9
        # beside the text tower's threads, which it slows: the search's overhead went from 11.4 to 10.2 ms on a
        # 2-core Xeon, docs/benchmarks.md 12-07 m and n). The towers themselves run one after the other: at once,
        # their ONNX Runtime threads (two each) fight over the cores (2-core Xeon, 60 text & image searches over
        # HTTP: p50 118 ms at once, 113 ms in turn)
        text_call = asyncio.ensure_future(self.models.clip_text([text]))
        try:
            await asyncio.sleep(0)  # the text call runs until its request is sent, before the crop takes a core
            image = await self._clip_input(query, OVERLAPPED_STAGE)
            text_vector = (await text_call)[0]
        except BaseException:
            _discard(text_call)
            raise
        image_vector = (await self.models.clip_image([image]))[0]
        fused = weight * image_vector + (1.0 - weight) * text_vector
        return (fused / max(float(np.linalg.norm(fused)), 1e-12)).astype(np.float32)

    async def _clip_input(self, query: SearchQuery, stage_name: str) -> np.ndarray:
        """The query's image as clip_image takes it, SxSx3 uint8 (cut out by the mask when it is an uploaded
        photo), made on a worker thread in one trip; clip_image then sends it as it is."""
        if query.image_id is not None:
            pixels = await self.images.pixels(query.image_id)
            with stage(stage_name):
                return await asyncio.to_thread(
                    lambda: resize_and_crop(cut_out(pixels, query.mask, self.settings.background_rgb)))
        with stage(stage_name):
            return await asyncio.to_thread(resize_and_crop, query.image)


def _discard(task: asyncio.Future) -> None:
    """Cancels a call whose answer is no longer wanted, and reads an error it already ended with, so that asyncio
    does not log it as never retrieved."""
    if task.cancel():
        return
    if not task.cancelled():
        task.exception()
