"""The served models as typed async calls: client-side preprocessing (off the event loop) + one Triton call.

Shapes follow the Triton contracts (snapfit/contract.py, docs/models.md); preprocessing comes from
`snapfit/preprocessing/`, the same code the exporters' parity checks use.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np

from orchestrator.clients.triton import TritonClient
from orchestrator.domain import MaskPrediction, TryOnUpdate
from orchestrator.errors import InvalidInput
from orchestrator.timing import stage
from snapfit import contract
from snapfit.preprocessing.classifier import resize_for_classifier
from snapfit.preprocessing.clip import resize_and_crop
from snapfit.preprocessing.sam import prompt_arrays, resize_for_encoder

# what a click asks sam_decoder for; its CPU config serves this set from a graph pruned to it (output_sets)
CLICK_OUTPUTS = ["low_res_masks", "iou_predictions"]
# the inputs of a prompt without a previous mask (zeros and 0), left out where the served config makes them optional
NO_MASK_INPUTS = frozenset({"mask_input", "has_mask_input"})


class ModelGateway:
    """Every model the services call (the Protocols of services/dependencies.py), served by one Triton."""

    def __init__(self, triton: TritonClient):
        self.triton = triton

    async def embedding_dim(self) -> int:
        """D of the served clip_image's `embeddings` output, from Triton's model config (the index is built with
        it). Raises ModelUnavailable when Triton cannot say."""
        dims = await self.triton.output_dims(contract.CLIP_IMAGE, "embeddings")
        return int(dims[-1])

    async def sam_embedding(self, image: np.ndarray) -> np.ndarray:
        """image: HxWx3 uint8 RGB -> 1x256x64x64 float32."""
        with stage("preprocess"):
            resized = await asyncio.to_thread(resize_for_encoder, image)
        out = await self.triton.infer(contract.SAM_ENCODER, {"image": resized[None]}, ["image_embeddings"],
                                      timeout_s=self.triton.settings.encoder_timeout_s)
        return out["image_embeddings"]

    async def sam_masks(self, embedding: np.ndarray, orig_hw: tuple[int, int], points: np.ndarray | None,
                        labels: np.ndarray | None, box: np.ndarray | None,
                        mask_input: np.ndarray | None = None) -> MaskPrediction:
        """points: Nx2 (x, y) pixels of the original image, labels: N (1 positive, 0 negative), box: 4 (x0,y0,x1,y1).

        Asks the decoder for its low-resolution logits and scores only (1 MB instead of the 4 photo-size
        logit maps, 3 MB each at 1024x768, that its `masks` output would ship); MaskPrediction.logits upsamples
        the masks the caller keeps (snapfit/preprocessing/sam_upscale.py)."""
        try:
            feeds = prompt_arrays(points=points, labels=labels, box=box, orig_hw=orig_hw, mask_input=mask_input)
        except ValueError as error:
            raise InvalidInput(str(error)) from None
        feeds = {name: value.astype(np.float32) for name, value in feeds.items()}
        if mask_input is None and NO_MASK_INPUTS <= await self.triton.optional_inputs(contract.SAM_DECODER):
            # the CPU config then runs a graph with the mask branch folded away (its zero_when_absent)
            feeds = {name: value for name, value in feeds.items() if name not in NO_MASK_INPUTS}
        out = await self.triton.infer(contract.SAM_DECODER, {"image_embeddings": embedding, **feeds},
                                      CLICK_OUTPUTS)
        return MaskPrediction(out["iou_predictions"][0], orig_hw, low_res_masks=out["low_res_masks"][0])

    async def clip_image(self, images: list[np.ndarray]) -> np.ndarray:
        """images: HxWx3 uint8 RGB each -> Nx512 float32, L2-normalised. Images already SxSx3 (S =
        contract.CLIP_IMAGE_SIZE, what `resize_and_crop` returns) go as they are, without a trip to a worker thread:
        resizing and cropping them would change nothing."""
        size = contract.CLIP_IMAGE_SIZE
        if all(i.shape == (size, size, 3) and i.dtype == np.uint8 for i in images):
            batch = np.stack(images)
        else:
            with stage("preprocess"):
                batch = await asyncio.to_thread(lambda: np.stack([resize_and_crop(i) for i in images]))
        return await self._batched(contract.CLIP_IMAGE, "image", batch, "embeddings")

    async def clip_text(self, texts: list[str]) -> np.ndarray:
        """texts -> Nx512 float32, L2-normalised, tokenised inside Triton (clip_text_embed ensemble)."""
        data = np.array([[t.encode("utf-8")] for t in texts], dtype=np.object_)
        return (await self.triton.infer(contract.CLIP_TEXT_EMBED, {"text": data}, ["embeddings"]))["embeddings"]

    async def tryon_probability(self, images: list[np.ndarray]) -> np.ndarray:
        """images: HxWx3 uint8 RGB each -> N float32, P(photo usable for try-on)."""
        with stage("preprocess"):
            batch = await asyncio.to_thread(lambda: np.stack([resize_for_classifier(i) for i in images]))
        return (await self._batched(contract.TRYON_CLASSIFIER, "image", batch, "probabilities"))[:, 1]

    async def _batched(self, model: str, input_name: str, batch: np.ndarray, output: str) -> np.ndarray:
        """Splits `batch` into the model's max_batch_size and runs the pieces concurrently (Triton batches them)."""
        size = max(await self.triton.max_batch_size(model), 1)
        pieces = [batch[i:i + size] for i in range(0, len(batch), size)]
        results = await asyncio.gather(*(self.triton.infer(model, {input_name: p}, [output]) for p in pieces))
        return np.concatenate([r[output] for r in results])

    async def best_mask(self, image: np.ndarray, points: np.ndarray, labels: np.ndarray) -> np.ndarray | None:
        """image: HxWx3 uint8; points: Nx2 (x, y); labels: N -> bool HxW, SAM's best-scored multimask output
        (None when SAM finds nothing)."""
        embedding = await self.sam_embedding(image)
        prediction = await self.sam_masks(embedding, image.shape[:2], points, labels, None)
        best = 1 + int(np.argmax(prediction.iou_predictions[1:]))
        mask = (await asyncio.to_thread(prediction.logits, [best]))[0] > 0
        return mask if mask.any() else None

    async def tryon(self, *, person: np.ndarray, garment: np.ndarray, keypoints: np.ndarray, inpaint_mask: np.ndarray,
                    category: str, garment_key: str, steps: int, guidance: float, seed: int, scheduler: str,
                    timeout_s: float) -> AsyncIterator[TryOnUpdate]:
        """person: HxWx3 uint8 (4:3 tall frame); garment: hxwx3 uint8; keypoints: 18x3 float32 in person pixels;
        inpaint_mask: HxW bool. Yields progress per denoising step; the last update carries the image."""
        inputs = {
            "person": np.ascontiguousarray(person, dtype=np.uint8),
            "garment": np.ascontiguousarray(garment, dtype=np.uint8),
            "keypoints": np.ascontiguousarray(keypoints, dtype=np.float32),
            "inpaint_mask": np.ascontiguousarray(inpaint_mask, dtype=np.uint8),
            "category": np.array([category.encode()], dtype=np.object_),
            "garment_key": np.array([garment_key.encode()], dtype=np.object_),
            "steps": np.array([steps], dtype=np.int32),
            "guidance": np.array([guidance], dtype=np.float32),
            "seed": np.array([seed], dtype=np.int64),
            "scheduler": np.array([scheduler.encode()], dtype=np.object_),
        }
        async for response in self.triton.stream(contract.LADI_VTON, inputs, contract.output_names(contract.LADI_VTON),
                                                 timeout_s):
            yield TryOnUpdate(step=int(response["step"][0]) if "step" in response else 0,
                              total_steps=int(response["total_steps"][0]) if "total_steps" in response else steps,
                              image=response.get("image"))
