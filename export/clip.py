"""CLIP image and text towers (open_clip) as two ONNX models, each checked against torch before install.

Triton contracts (D = 512 for the tiny model and ViT-B-16):
- clip_image: `image` UINT8 [B, S, S, 3] RGB, already resized and centre-cropped by
  `snapfit.preprocessing.clip.resize_and_crop` -> `embeddings` FP32 [B, D], L2-normalised.
- clip_text: `input_ids` INT64 [B, 77] from open_clip's tokenizer -> `embeddings` FP32 [B, D], L2-normalised.
Exporting clip_text also writes `<repository>/clip_tokenizer/1/tokenizer.json`, naming the tokenizer
the `clip_tokenizer` Python model must build so served token ids match the exported tower.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import open_clip
import torch
import torch.nn.functional as F
from open_clip.transform import image_transform_v2
from PIL import Image

from export import onnx_io
from export.clip_models import ClipNetwork, load_network
from export.errors import ExportError
from export.parity import ParityReport, min_cosine, topk_overlap
from export.precision import Precision
from export.publish import publish
from export.request import ExportRequest
from snapfit import contract
from snapfit.preprocessing.clip import resize_and_crop

# Parity thresholds per precision. fp32 must reproduce torch. The others were set from measurements on
# random weights (tiny and ViT-B-16): int8 (7-bit weights, identical on every CPU) gave cosine >= 0.997 and
# top-10 overlap 0.94-1.0, fp16 cosine >= 0.9999 and overlap 0.99-1.0. Random towers put every gallery
# image within ~1e-3 of its neighbours in score, so rankings flip at the slightest noise; trained
# weights spread scores further but have outlier activations that quantise worse, hence floors
# below the measured values rather than at them.
THRESHOLDS: dict[Precision, dict[str, float]] = {
    Precision.fp32: {"cosine": 0.9999, "top10_overlap": 1.0},
    Precision.fp16: {"cosine": 0.995, "top10_overlap": 0.9},
    Precision.int8: {"cosine": 0.99, "top10_overlap": 0.8},
}

# Fashion queries the text tower must encode like torch: Korean, a follow-up fragment, the empty
# string, emoji, and one longer than 77 tokens that the tokenizer truncates (keeping EOT).
PARITY_QUERIES = [
    "검은색 원피스",
    "but in black",
    "floral summer dress",
    "",
    "흰색 운동화 size 250",
    "oversized denim jacket 👖✨",
    "red leather biker jacket with silver zippers",
    "striped linen shirt, relaxed fit",
    "navy wool double-breasted coat",
    "Vintage High-Waisted pleated midi skirt in soft pastel pink, thin gold belt, "
    "worn with a cream cable-knit cardigan, white canvas sneakers and a small woven straw bag "
    "for a sunny afternoon picnic in the park with friends and family, photographed outdoors",
]
GALLERY_SIZE = 48
ONNX_CHUNK = 16  # exercises the dynamic batch axis and bounds memory on the 2-core CPU
TOKENIZER_FILE = "tokenizer.json"

Step = Callable[[str], None]


class ClipImageEncoder(torch.nn.Module):
    """image: Bx S x S x3 uint8 RGB (resized + cropped) -> embeddings: BxD float32, L2-normalised."""

    def __init__(self, network: ClipNetwork):
        super().__init__()
        self.clip = network.model
        self.register_buffer("mean", torch.tensor(network.preprocess.mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(network.preprocess.std, dtype=torch.float32).view(1, 3, 1, 1))

    def pixel_values(self, image: torch.Tensor) -> torch.Tensor:
        """The rest of open_clip's transform (ToTensor + Normalize): Bx3xSxS float32."""
        x = image.permute(0, 3, 1, 2).to(torch.float32).div(255.0)
        return (x - self.mean) / self.std

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.clip.encode_image(self.pixel_values(image)), dim=-1)


class ClipTextEncoder(torch.nn.Module):
    """input_ids: BxL int64 token ids (EOT = highest id) -> embeddings: BxD float32, L2-normalised."""

    def __init__(self, network: ClipNetwork):
        super().__init__()
        self.clip = network.model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # EOT pooling is an ArgMax over the ids. ORT 1.32's CPU kernel takes int64, but older ORT builds
        # lack an int64 ArgMax (openai/CLIP#219) and TensorRT works in int32; every id (< 49408) fits.
        return F.normalize(self.clip.encode_text(input_ids.to(torch.int32)), dim=-1)


@dataclass(frozen=True)
class _References:
    """torch outputs both exports compare against (computed once per network)."""

    gallery_images: np.ndarray  # Gx S x S x3 uint8, what clients send to clip_image
    gallery_embeddings: np.ndarray  # GxD float32, torch encode_image on open_clip's own preprocess
    query_ids: np.ndarray  # QxL int64, open_clip's tokenizer
    query_embeddings: np.ndarray  # QxD float32, torch encode_text


def export_image(request: ExportRequest, step: Step = lambda s: None) -> ParityReport:
    """Exports `clip_image` into `request.repository`; raises ExportParityError when it disagrees with torch."""
    started = time.perf_counter()
    step("building torch model")
    network = _network(request)
    encoder = ClipImageEncoder(network).eval()
    size = network.image_size
    with onnx_io.staging_dir(contract.CLIP_IMAGE) as staging:
        step("exporting")
        fp32_path = onnx_io.export_module(
            encoder, (torch.zeros(2, size, size, 3, dtype=torch.uint8),), Path(staging) / "model.onnx",
            input_names=["image"], output_names=["embeddings"],
            dynamic_axes={"image": {0: "batch"}, "embeddings": {0: "batch"}}, opset=request.opset)
        step("checking parity")
        refs = _references(request)

        def measure(session: ort.InferenceSession, report: ParityReport) -> None:
            candidate = _run_chunked(session, "image", refs.gallery_images)
            _add_metrics(report, request.precision,
                         cosine=min_cosine(refs.gallery_embeddings, candidate),
                         overlap=topk_overlap(refs.query_embeddings, refs.gallery_embeddings,
                                              refs.query_embeddings, candidate))

        report = _report(contract.CLIP_IMAGE, network)
        return publish(request, contract.CLIP_IMAGE, fp32_path, report, measure, started)


def export_text(request: ExportRequest, step: Step = lambda s: None) -> ParityReport:
    """Exports `clip_text` and writes clip_tokenizer's tokenizer.json; raises ExportParityError on mismatch."""
    started = time.perf_counter()
    step("building torch model")
    network = _network(request)
    encoder = ClipTextEncoder(network).eval()
    with onnx_io.staging_dir(contract.CLIP_TEXT) as staging:
        step("exporting")
        dummy = torch.from_numpy(_tokenize(network, ["a photo of a dress", "shoes"]))
        fp32_path = onnx_io.export_module(
            encoder, (dummy,), Path(staging) / "model.onnx",
            input_names=["input_ids"], output_names=["embeddings"],
            dynamic_axes={"input_ids": {0: "batch"}, "embeddings": {0: "batch"}}, opset=request.opset)
        step("checking parity")
        refs = _references(request)

        def measure(session: ort.InferenceSession, report: ParityReport) -> None:
            candidate = _run_chunked(session, "input_ids", refs.query_ids)
            _add_metrics(report, request.precision,
                         cosine=min_cosine(refs.query_embeddings, candidate),
                         overlap=topk_overlap(refs.query_embeddings, refs.gallery_embeddings,
                                              candidate, refs.gallery_embeddings))

        report = _report(contract.CLIP_TEXT, network)
        report = publish(request, contract.CLIP_TEXT, fp32_path, report, measure, started)
    step("writing tokenizer.json")
    write_tokenizer_config(request.version_dir(contract.CLIP_TOKENIZER), network)
    return report


def write_tokenizer_config(version_dir: Path, network: ClipNetwork) -> Path:
    """Writes {"model": <get_tokenizer name>, "context_length": L} for the clip_tokenizer Python model."""
    version_dir.mkdir(parents=True, exist_ok=True)
    target = version_dir / TOKENIZER_FILE
    tmp = version_dir / f".{TOKENIZER_FILE}.tmp"
    tmp.write_text(json.dumps({"model": network.tokenizer_name, "context_length": network.context_length},
                              indent=2) + "\n")
    os.replace(tmp, target)
    return target


def _network(request: ExportRequest) -> ClipNetwork:
    choices = request.choices
    network = load_network(choices.clip_model, choices.clip_pretrained, request.seed,
                           weights_required=choices.clip_weights_required)
    # clients call resize_and_crop with its defaults; a model preprocessed otherwise would be served
    # subtly wrong inputs, so refuse it (e.g. DFN5B tags "squash", CLIPA tags resize bilinearly)
    if network.preprocess.resize_mode != "shortest" or network.preprocess.interpolation != "bicubic":
        raise ExportError(
            f"{network.architecture} expects '{network.preprocess.resize_mode}' resizing with "
            f"'{network.preprocess.interpolation}' interpolation; snapfit.preprocessing.clip implements "
            f"open_clip's shortest-side bicubic resize + centre crop only")
    return network


def _report(model: str, network: ClipNetwork) -> ParityReport:
    return ParityReport(model=model, precision="", source=network.source, architecture=network.architecture)


def _add_metrics(report: ParityReport, precision: Precision, cosine: float, overlap: float) -> None:
    thresholds = THRESHOLDS[precision]
    report.add("cosine", cosine, thresholds["cosine"], higher_is_better=True)
    report.add("top10_overlap", overlap, thresholds["top10_overlap"], higher_is_better=True)


def _run_chunked(session: ort.InferenceSession, name: str, inputs: np.ndarray) -> np.ndarray:
    outputs = [onnx_io.run_session(session, {name: inputs[i:i + ONNX_CHUNK]})["embeddings"]
               for i in range(0, len(inputs), ONNX_CHUNK)]
    return np.concatenate(outputs).astype(np.float32)


def _tokenize(network: ClipNetwork, texts: list[str]) -> np.ndarray:
    """QxL int64 ids from the exact tokenizer clip_tokenizer will serve."""
    try:
        tokenizer = open_clip.get_tokenizer(network.tokenizer_name, context_length=network.context_length)
    except Exception as error:  # noqa: BLE001 - e.g. HF tokenizers need `transformers` and the hub
        raise ExportError(f"cannot build the tokenizer '{network.tokenizer_name}': {error}") from error
    return tokenizer(texts).numpy().astype(np.int64)


def _references(request: ExportRequest) -> _References:
    choices = request.choices
    return _cached_references(choices.clip_model, None if choices.clip_pretrained is None
                              else str(choices.clip_pretrained), request.seed, choices.clip_weights_required)


@functools.lru_cache(maxsize=2)
def _cached_references(clip_model: str, clip_pretrained: str | None, seed: int, weights_required: bool) -> _References:
    network = load_network(clip_model, clip_pretrained, seed, weights_required=weights_required)
    raw = parity_images(GALLERY_SIZE, seed)
    preprocess = image_transform_v2(network.preprocess, is_train=False)
    query_ids = _tokenize(network, PARITY_QUERIES)
    with torch.no_grad():
        pixels = torch.stack([preprocess(Image.fromarray(image)) for image in raw])
        gallery = torch.cat([network.model.encode_image(chunk, normalize=True) for chunk in pixels.split(ONNX_CHUNK)])
        queries = network.model.encode_text(torch.from_numpy(query_ids), normalize=True)
    return _References(
        gallery_images=np.stack([resize_and_crop(image, network.image_size) for image in raw]),
        gallery_embeddings=gallery.numpy().astype(np.float32),
        query_ids=query_ids,
        query_embeddings=queries.numpy().astype(np.float32),
    )


def parity_images(count: int, seed: int) -> list[np.ndarray]:
    """`count` HxWx3 uint8 RGB images of assorted sizes and aspect ratios: smooth colour fields plus
    noise, varied enough that a gallery of them has a stable top-10 ranking."""
    rng = np.random.default_rng(seed + 1)
    images = []
    for _ in range(count):
        height, width = (int(v) for v in rng.integers(160, 420, size=2))
        cells = rng.integers(0, 256, size=(int(rng.integers(2, 9)), int(rng.integers(2, 9)), 3), dtype=np.uint8)
        field = np.asarray(Image.fromarray(cells).resize((width, height), Image.Resampling.BILINEAR), dtype=np.int16)
        noise = rng.integers(-24, 25, size=field.shape, dtype=np.int16)
        images.append(np.clip(field + noise, 0, 255).astype(np.uint8))
    return images
