"""Small fakes of the services' dependencies (the Protocols in orchestrator/services/dependencies.py).

Each records what it was asked, so tests can check what a service did; none re-implements our own logic.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import AsyncIterator

import numpy as np

from orchestrator.domain import MaskPrediction, Product, TryOnUpdate

DIM = 8


def unit_vector(seed: str, dim: int = DIM) -> np.ndarray:
    """A deterministic L2-normalised float32 vector for `seed`."""
    rng = np.random.default_rng(int(hashlib.sha256(seed.encode()).hexdigest()[:8], 16))
    vector = rng.standard_normal(dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


class FakePhotos:
    """UploadedPhotos: images by id, embeddings of a fixed shape."""

    def __init__(self, images: dict[str, np.ndarray]):
        self.images = images
        self.embedding_requests: list[str] = []

    async def pixels(self, image_id: str) -> np.ndarray:
        from orchestrator.errors import NotFound

        if image_id not in self.images:
            raise NotFound(f"no uploaded image {image_id}")
        return self.images[image_id]

    async def embedding(self, image_id: str) -> np.ndarray:
        self.embedding_requests.append(image_id)
        return np.zeros((1, 256, 64, 64), np.float32)


class FakeModels:
    """ImageEncoder, MaskPredictor, Embedder, CatalogModels and TryOnModels at once."""

    def __init__(self, ious=(0.5, 0.9, 0.2, 0.7), probability: float = 0.8, tryon_steps: int = 3,
                 tryon_image: bool = True):
        self.ious = np.asarray(ious, np.float32)
        self.probability = probability
        self.tryon_steps = tryon_steps
        self.tryon_image = tryon_image
        self.calls: list[tuple] = []

    async def sam_embedding(self, image: np.ndarray) -> np.ndarray:
        self.calls.append(("sam_embedding", image.shape))
        return np.zeros((1, 256, 64, 64), np.float32)

    async def sam_masks(self, embedding, orig_hw, points, labels, box, mask_input=None) -> MaskPrediction:
        self.calls.append(("sam_masks", orig_hw, points, labels, box))
        h, w = orig_hw
        # mask i covers the first (i + 1) rows: distinguishable, and logits > 0 exactly there
        masks = np.full((4, h, w), -1.0, np.float32)
        for i in range(4):
            masks[i, : i + 1] = 1.0
        return MaskPrediction(self.ious, orig_hw, np.zeros((4, 256, 256), np.float32), masks)

    async def clip_image(self, images: list[np.ndarray]) -> np.ndarray:
        vectors = np.stack([unit_vector(f"image:{int(image.sum())}") for image in images])
        self.calls.append(("clip_image", len(images), vectors))
        return vectors

    async def clip_text(self, texts: list[str]) -> np.ndarray:
        self.calls.append(("clip_text", tuple(texts)))
        return np.stack([unit_vector(f"text:{text}") for text in texts])

    async def tryon_probability(self, images: list[np.ndarray]) -> np.ndarray:
        self.calls.append(("tryon_probability", len(images)))
        return np.full(len(images), self.probability, np.float32)

    async def tryon(self, *, person, garment, keypoints, inpaint_mask, category, garment_key, steps, guidance, seed,
                    scheduler, timeout_s) -> AsyncIterator[TryOnUpdate]:
        self.calls.append(("tryon", person.shape, category, garment_key, steps, guidance, seed, scheduler))
        for step in range(1, self.tryon_steps + 1):
            last = step == self.tryon_steps
            image = np.full(person.shape, 77, np.uint8) if last and self.tryon_image else None
            yield TryOnUpdate(step=step, total_steps=self.tryon_steps, image=image)

    async def best_mask(self, image, points, labels):
        self.calls.append(("best_mask", image.shape))
        return None


class FakeProducts:
    """ProductLookup over a dict."""

    def __init__(self, products: list[Product] = ()):
        self.products = {p.product_id: p for p in products}

    async def get(self, product_id: str) -> Product | None:
        return self.products.get(product_id)

    async def get_many(self, product_ids: list[str], *, include_embeddings: bool = False) -> dict[str, Product]:
        return {i: self.products[i] for i in product_ids if i in self.products}


class FakeIndex:
    """VectorIndex answering with fixed hits and recording the queries (and the threads that searched)."""

    def __init__(self, hits: list[tuple[str, float]], searches_inline: bool = False):
        self.hits = hits
        self.searches_inline = searches_inline
        self.queries: list[tuple[np.ndarray, int, object]] = []
        self.search_threads: list[int] = []

    def search(self, queries: np.ndarray, k: int, filter=None) -> list[list[tuple[str, float]]]:  # noqa: A002
        self.queries.append((queries, k, filter))
        self.search_threads.append(threading.get_ident())
        return [self.hits[:k] for _ in queries]
