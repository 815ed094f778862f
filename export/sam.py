"""SAM as two Triton models: `sam_encoder` (image -> embeddings) and `sam_decoder` (embeddings + prompt -> masks).

Tensor contracts (see snapfit/preprocessing/sam.py for the client half):

sam_encoder
    image            UINT8 [B, H, W, 3]  RGB, longest side exactly 1024 (resize_for_encoder); H, W dynamic
    image_embeddings FP32  [B, 256, 64, 64]
sam_decoder (no batch axis; the official `SamOnnxModel` semantics with all 4 masks)
    image_embeddings FP32 [1, 256, 64, 64]
    point_coords     FP32 [1, N, 2]   (x, y) in the 1024 frame; N dynamic
    point_labels     FP32 [1, N]      1 fg, 0 bg, 2/3 box corners, -1 pad
    mask_input       FP32 [1, 1, 256, 256]  a previous low_res_masks map, or zeros
    has_mask_input   FP32 [1]         1 when mask_input is used, else 0
    orig_im_size     FP32 [2]         original (H, W)
    ->  masks          FP32 [1, 4, H, W]       logits at the original size (threshold at 0)
        iou_predictions FP32 [1, 4]            mask 0 is the single-mask token, 1-3 the multimask outputs
        low_res_masks   FP32 [1, 4, 256, 256]  logits
"""

from __future__ import annotations

import functools
import time
import types
from collections.abc import Callable
from copy import deepcopy as copy_module
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from segment_anything import SamPredictor
from segment_anything.modeling import MaskDecoder, Sam
from segment_anything.modeling.common import LayerNorm2d
from segment_anything.utils.onnx import SamOnnxModel

from export import onnx_io
from export.parity import ParityReport, mask_iou, max_abs_diff, min_cosine
from export.precision import Precision
from export.publish import publish
from export.request import ExportRequest
from export.sam_models import EMBED_DIM, EMBED_SIZE, IMAGE_SIZE, LOW_RES_MASK_SIZE, architecture, build_sam
from snapfit import contract
from snapfit.preprocessing.sam import longest_side_size, prompt_arrays, resize_for_encoder

Step = Callable[[str], None]

ENCODER_INPUTS = ["image"]
ENCODER_OUTPUTS = ["image_embeddings"]
DECODER_INPUTS = ["image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input", "orig_im_size"]
DECODER_OUTPUTS = ["masks", "iou_predictions", "low_res_masks"]

# Parity thresholds per precision. Measured on random weights (tiny with seeds 0-3, and vit_b) and set
# below the worst value seen (the comments give the measurements). Random weights may behave worse than trained
# ones under reduced precision (nothing was trained to tolerate rounding, and the mask logits of a random
# decoder sit near 0 over large areas, so small errors flip many pixels), but trained ViTs have activation
# outliers that per-tensor int8 activations handle poorly, so the int8 margins are generous.
ENCODER_THRESHOLDS: dict[Precision, dict[str, float]] = {
    # measured 1.1e-5 / 1.0 (tiny, vit_b); 5e-4 leaves room for deeper trained encoders (vit_h)
    Precision.fp32: {"embeddings_max_abs_diff": 5e-4, "embeddings_min_cosine": 0.99999},
    # measured 0.004-0.005 / 0.9999995 (tiny, vit_b; LayerNorm and softmax stay fp32; ORT on CPU)
    Precision.fp16: {"embeddings_max_abs_diff": 0.05, "embeddings_min_cosine": 0.9995},
    # measured 0.095-0.17 / 0.99966-0.9999 with 7-bit weights (tiny seeds 0-3, vit_b), the same on AVX2 and VNNI
    # CPUs; a broken graph, or 8-bit weights on an AVX2 CPU (0.91 / 0.9865), scores far below
    Precision.int8: {"embeddings_max_abs_diff": 0.5, "embeddings_min_cosine": 0.995},
}
DECODER_THRESHOLDS: dict[Precision, dict[str, float]] = {
    # measured 1e-7, 4e-7, mask IoU 0.99999 (a few boundary pixels of 1.5 M)
    Precision.fp32: {"iou_predictions_max_abs_diff": 1e-4, "low_res_masks_max_abs_diff": 1e-3,
                     "mask_iou": 0.999, "predictor_mask_iou": 0.999, "predictor_iou_predictions_max_abs_diff": 1e-4},
    # measured <= 1.8e-4, <= 4.7e-4, mask IoU >= 0.998 (tiny, vit_b; ORT on CPU)
    Precision.fp16: {"iou_predictions_max_abs_diff": 0.005, "low_res_masks_max_abs_diff": 0.05,
                     "mask_iou": 0.99, "predictor_mask_iou": 0.99, "predictor_iou_predictions_max_abs_diff": 0.005},
    # measured <= 0.0057, <= 0.011, mask IoU 0.938-0.985 with 7-bit weights (tiny seeds 0-3, vit_b), the same on
    # every CPU; 8-bit weights on an AVX2 CPU gave mask IoU 0.28
    Precision.int8: {"iou_predictions_max_abs_diff": 0.02, "low_res_masks_max_abs_diff": 0.05,
                     "mask_iou": 0.93, "predictor_mask_iou": 0.93, "predictor_iou_predictions_max_abs_diff": 0.02},
}


class SamEncoderOnnx(torch.nn.Module):
    """Export-only wrapper: SAM's normalisation and padding (`Sam.preprocess`) in front of the image encoder.

    image: UINT8 [B, H, W, 3], max(H, W) == 1024 -> image_embeddings: FP32 [B, 256, 64, 64].
    """

    def __init__(self, sam: Sam) -> None:
        super().__init__()
        self.image_encoder = sam.image_encoder
        self.register_buffer("pixel_mean", sam.pixel_mean.detach().clone().reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", sam.pixel_std.detach().clone().reshape(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.permute(0, 3, 1, 2).to(torch.float32)
        x = (x - self.pixel_mean) / self.pixel_std
        # Zero-pad bottom/right after normalising, as Sam.preprocess does (the padding is 0 in normalised
        # space). Concatenating zeros rather than F.pad: ONNX Pad crops on negative pads, so an image over
        # 1024 would be silently cut, while zeros of a negative size make ONNX Runtime reject the request.
        b, c, h, w = x.shape
        x = torch.cat([x, x.new_zeros(b, c, h, IMAGE_SIZE - w)], dim=3)
        x = torch.cat([x, x.new_zeros(b, c, IMAGE_SIZE - h, IMAGE_SIZE)], dim=2)
        return self.image_encoder(x)


class SamDecoderOnnx(SamOnnxModel):
    """Export-only wrapper: segment-anything's official decoder export module returning all 4 masks."""

    def __init__(self, sam: Sam) -> None:
        super().__init__(sam, return_single_mask=False)
        # SamOnnxModel keeps the whole Sam; drop the image encoder so only decoder weights count as
        # this module's parameters (export_module would otherwise size a vit_h decoder at 2.5 GB)
        self.model = _PromptAndMaskDecoders(sam)

    def mask_postprocessing(self, masks: torch.Tensor, orig_im_size: torch.Tensor) -> torch.Tensor:
        """SamOnnxModel.mask_postprocessing with the un-padding crop kept dynamic.

        The original crops with `int(prepadded_size[0])`; under the current TorchScript tracer that int()
        freezes the crop at the example input's size, so every other image size got wrongly cropped masks.
        masks: [1, 4, 256, 256], orig_im_size: [2] (H, W) -> [1, 4, H, W].
        """
        masks = F.interpolate(masks, size=(self.img_size, self.img_size), mode="bilinear", align_corners=False)
        prepadded_size = self.resize_longest_image_size(orig_im_size, self.img_size)
        masks = masks[..., : prepadded_size[0], : prepadded_size[1]]
        orig_im_size = orig_im_size.to(torch.int64)
        return F.interpolate(masks, size=(orig_im_size[0], orig_im_size[1]), mode="bilinear", align_corners=False)


class _PromptAndMaskDecoders(torch.nn.Module):
    """The parts of Sam that SamOnnxModel.forward reads, with LayerNorm2d exported as one fused op.

    The mask decoder's upscaling LayerNorm2d (and the prompt encoder's two) are written as mean / pow / sqrt over
    channels, which export as ~10 elementwise ONNX nodes over a 64x128x128 map (measured 8 ms of the decoder's
    70 ms on one core); ChannelsLastLayerNorm computes the same normalisation with one LayerNormalization node.
    The upscaling's two transposed convolutions become matrix products (ChannelsLastUpscaling), which int8
    export quantises, and the mask decoder predicts for the one prompt a call carries (predict_masks_for_one_prompt).
    Copies, so the torch Sam used as the parity reference keeps its original modules.
    """

    def __init__(self, sam: Sam) -> None:
        super().__init__()
        self.prompt_encoder = _with_fused_layer_norms(sam.prompt_encoder)
        self.mask_decoder = _with_fused_layer_norms(sam.mask_decoder)
        if ChannelsLastUpscaling.fits(sam.mask_decoder.output_upscaling):
            self.mask_decoder.output_upscaling = ChannelsLastUpscaling(sam.mask_decoder.output_upscaling)
        self.mask_decoder.predict_masks = types.MethodType(predict_masks_for_one_prompt, self.mask_decoder)
        self.mask_threshold = sam.mask_threshold


def predict_masks_for_one_prompt(decoder: MaskDecoder, image_embeddings: torch.Tensor, image_pe: torch.Tensor,
                                 sparse_prompt_embeddings: torch.Tensor,
                                 dense_prompt_embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """segment-anything's MaskDecoder.predict_masks for a batch of one prompt, which is all a decoder call carries
    (`point_coords` is [1, N, 2]): the image embedding and its positional encoding enter the transformer as they
    are, where the original repeats both once per prompt. Traced, that repeat is two Tile nodes copying 4 MB each
    on every call, and it keeps ONNX Runtime from folding the positional encoding's layout change, a constant, at
    load time (together ~1.1 ms of a 21 ms int8 decoder call in an ONNX Runtime profile on a 2-core EPYC).
    The same arithmetic as the original for one prompt.

    image_embeddings, image_pe, dense_prompt_embeddings: [1, C, h, w]; sparse_prompt_embeddings: [1, T, C] ->
    masks [1, M, 4h, 4w] (M = decoder.num_mask_tokens), iou_pred [1, M].
    """
    output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0).unsqueeze(0)
    tokens = torch.cat((output_tokens, sparse_prompt_embeddings), dim=1)
    src = image_embeddings + dense_prompt_embeddings
    batch, channels, height, width = src.shape
    hs, src = decoder.transformer(src, image_pe, tokens)
    upscaled = decoder.output_upscaling(src.transpose(1, 2).reshape(batch, channels, height, width))
    hyper_in = torch.stack([mlp(hs[:, 1 + i, :]) for i, mlp in enumerate(decoder.output_hypernetworks_mlps)], dim=1)
    batch, channels, height, width = upscaled.shape
    masks = (hyper_in @ upscaled.reshape(batch, channels, height * width)).reshape(batch, -1, height, width)
    return masks, decoder.iou_prediction_head(hs[:, 0, :])


class ChannelsLastLayerNorm(torch.nn.Module):
    """segment-anything's LayerNorm2d (normalise each pixel over channels) as F.layer_norm on an NHWC view.

    x: [B, C, H, W] -> [B, C, H, W]; shares the original module's weight and bias.
    """

    def __init__(self, layer_norm: LayerNorm2d) -> None:
        super().__init__()
        self.weight, self.bias, self.eps = layer_norm.weight, layer_norm.bias, layer_norm.eps
        self.channels = int(layer_norm.weight.shape[0])  # a Python int, so the exported shape is static

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normalised = F.layer_norm(x.permute(0, 2, 3, 1), (self.channels,), self.weight, self.bias, self.eps)
        return normalised.permute(0, 3, 1, 2)


class ChannelsLastUpscaling(torch.nn.Module):
    """The mask decoder's output_upscaling (ConvTranspose 2x2/2, LayerNorm2d, GELU, ConvTranspose 2x2/2, GELU)
    computed channels-last: a 2x2 stride-2 transposed convolution writes each input pixel's 2x2 output block
    independently, so it is a matrix product [pixels, C_in] x [C_in, 2*2*C_out] followed by a pixel shuffle.
    Exported that way it is MatMul nodes (which int8 export quantises; ConvTranspose stays fp32 and was the
    decoder's slowest op, ~6 of ~30 ms here) and the LayerNorm needs no transposes.

    x: [B, C_in, H, W] -> [B, C_out2, 4H, 4W]; weights derived from (and numerically equal to) the original's.
    """

    def __init__(self, upscaling: torch.nn.Sequential) -> None:
        super().__init__()
        first, norm, self.act1, second, self.act2 = upscaling
        self.first_weight, self.first_bias, self.first_out = self._as_matrix(first)
        self.second_weight, self.second_bias, self.second_out = self._as_matrix(second)
        self.norm_weight, self.norm_bias, self.eps = norm.weight, norm.bias, norm.eps

    @staticmethod
    def fits(upscaling: torch.nn.Module) -> bool:
        """Whether `upscaling` has the layout segment-anything's MaskDecoder builds."""
        if not isinstance(upscaling, torch.nn.Sequential) or len(upscaling) != 5:
            return False
        first, norm, _, second, _ = upscaling
        return (all(isinstance(conv, torch.nn.ConvTranspose2d) and conv.kernel_size == (2, 2)
                    and conv.stride == (2, 2) and conv.padding == (0, 0) and conv.output_padding == (0, 0)
                    and conv.groups == 1 and conv.dilation == (1, 1) and conv.bias is not None
                    for conv in (first, second))
                and isinstance(norm, LayerNorm2d))

    @staticmethod
    def _as_matrix(conv: torch.nn.ConvTranspose2d) -> tuple[torch.nn.Parameter, torch.nn.Parameter, int]:
        """weight [C_in, C_out, 2, 2] -> ([2*2*C_out, C_in] ordered (dy, dx, c_out), bias [2*2*C_out], C_out)."""
        in_channels, out_channels = int(conv.weight.shape[0]), int(conv.weight.shape[1])
        weight = conv.weight.detach().permute(2, 3, 1, 0).reshape(4 * out_channels, in_channels)
        bias = conv.bias.detach().repeat(4)
        return torch.nn.Parameter(weight.clone()), torch.nn.Parameter(bias.clone()), out_channels

    @staticmethod
    def _shuffle(x: torch.Tensor, out_channels: int) -> torch.Tensor:
        """[B, H, W, 2*2*C] ordered (dy, dx, c) -> [B, 2H, 2W, C]."""
        batch, height, width = x.shape[0], x.shape[1], x.shape[2]
        x = x.reshape(batch, height, width, 2, 2, out_channels).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(batch, height * 2, width * 2, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x.permute(0, 2, 3, 1), self.first_weight, self.first_bias)
        x = self._shuffle(x, self.first_out)
        x = self.act1(F.layer_norm(x, (self.first_out,), self.norm_weight, self.norm_bias, self.eps))
        x = self.act2(self._shuffle(F.linear(x, self.second_weight, self.second_bias), self.second_out))
        return x.permute(0, 3, 1, 2)


def _with_fused_layer_norms(module: torch.nn.Module) -> torch.nn.Module:
    copy = copy_module(module)
    for name, child in list(copy.named_modules()):
        if isinstance(child, LayerNorm2d):
            parent_name, _, attribute = name.rpartition(".")
            setattr(copy.get_submodule(parent_name) if parent_name else copy, attribute, ChannelsLastLayerNorm(child))
    return copy


# ---------------------------------------------------------------- sam_encoder


def export_encoder(request: ExportRequest, step: Step = lambda s: None) -> ParityReport:
    """Exports `sam_encoder` into `request.repository` after checking it against torch."""
    started = time.perf_counter()
    step("building torch model")
    sam = _build(request)
    report = _report(contract.SAM_ENCODER, request)
    with onnx_io.staging_dir(contract.SAM_ENCODER) as tmp:
        step("exporting")
        path = onnx_io.export_module(
            SamEncoderOnnx(sam), (torch.zeros(1, 768, IMAGE_SIZE, 3, dtype=torch.uint8),),
            _staged(tmp), ENCODER_INPUTS, ENCODER_OUTPUTS,
            dynamic_axes={"image": {0: "batch", 1: "height", 2: "width"}, "image_embeddings": {0: "batch"}},
            opset=request.opset,
        )
        step("checking parity")
        batches, references = _encoder_parity_data(sam, request.seed)
        measure = _encoder_measure(batches, references, ENCODER_THRESHOLDS[request.precision])
        return publish(request, contract.SAM_ENCODER, path, report, measure, started)


@functools.lru_cache(maxsize=1)  # per network: fp32, int8 and fp16 exports in one process share the torch runs
def _encoder_parity_data(sam: Sam, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    batches = encoder_parity_batches(seed)
    return batches, [encoder_reference(sam, batch) for batch in batches]


def encoder_reference(sam: Sam, images: np.ndarray) -> np.ndarray:
    """What segment-anything computes for B equal-size resized images: BxHxWx3 uint8 -> Bx256x64x64."""
    with torch.no_grad():
        x = torch.tensor(images).permute(0, 3, 1, 2)  # a copy: PIL-backed arrays are read-only
        return sam.image_encoder(sam.preprocess(x)).numpy()


def encoder_parity_batches(seed: int) -> list[np.ndarray]:
    """A batch of two landscape 768x1024 images and one portrait 1024x683 image (HxW), uint8 RGB."""
    rng = np.random.default_rng(seed)
    return [
        np.stack([synthetic_image(rng, 768, 1024), synthetic_image(rng, 768, 1024)]),
        synthetic_image(rng, 1024, 683)[None],
    ]


def synthetic_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """HxWx3 uint8: a colour gradient with a few flat rectangles and mild noise, so there is structure to encode."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(0, 255, 3) * 0.5 + np.stack([xx / w, yy / h, (xx + yy) / (h + w)], axis=-1) * 120
    for _ in range(4):
        y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
        base[y0: y0 + rng.integers(h // 8, h // 2), x0: x0 + rng.integers(w // 8, w // 2)] = rng.uniform(0, 255, 3)
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


def _encoder_measure(batches: list[np.ndarray], references: list[np.ndarray], thresholds: dict[str, float]):
    def measure(session, report: ParityReport) -> None:
        outputs = [onnx_io.run_session(session, {"image": b})["image_embeddings"] for b in batches]
        report.add("embeddings_max_abs_diff", max(max_abs_diff(r, o) for r, o in zip(references, outputs)),
                   thresholds["embeddings_max_abs_diff"], higher_is_better=False)
        report.add("embeddings_min_cosine", min(min_cosine(r, o) for r, o in zip(references, outputs)),
                   thresholds["embeddings_min_cosine"], higher_is_better=True)

    return measure


# ---------------------------------------------------------------- sam_decoder

DECODER_PARITY_ORIG_HW = (1536, 1024)  # resizes to 1024x683, one of the encoder parity shapes


def export_decoder(request: ExportRequest, step: Step = lambda s: None) -> ParityReport:
    """Exports `sam_decoder` into `request.repository` after checking it against torch and SamPredictor."""
    started = time.perf_counter()
    step("building torch model")
    sam = _build(request)
    report = _report(contract.SAM_DECODER, request)
    with onnx_io.staging_dir(contract.SAM_DECODER) as tmp:
        step("exporting")
        path = onnx_io.export_module(
            SamDecoderOnnx(sam), _decoder_example_args(), _staged(tmp), DECODER_INPUTS, DECODER_OUTPUTS,
            dynamic_axes={"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"},
                          "masks": {2: "height", 3: "width"}},
            opset=request.opset,
        )
        step("checking parity")
        measure = _decoder_measure(_decoder_parity_data(sam, request.seed), DECODER_THRESHOLDS[request.precision])
        return publish(request, contract.SAM_DECODER, path, report, measure, started)


def _decoder_example_args() -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(0)
    return (
        torch.randn(1, EMBED_DIM, EMBED_SIZE, EMBED_SIZE, generator=generator),
        torch.randint(0, IMAGE_SIZE, (1, 5, 2), generator=generator).float(),
        torch.randint(0, 4, (1, 5), generator=generator).float(),
        torch.randn(1, 1, LOW_RES_MASK_SIZE, LOW_RES_MASK_SIZE, generator=generator),
        torch.tensor([1.0]),
        torch.tensor([1500.0, 2250.0]),  # not square, so no size is folded in as "1024x1024"
    )


def decoder_reference(sam: Sam, embedding: np.ndarray, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The un-exported official SamOnnxModel forward on numpy feeds; returns masks, iou_predictions, low_res_masks."""
    model = SamOnnxModel(sam, return_single_mask=False).eval()
    args = [torch.as_tensor(embedding)] + [torch.as_tensor(feeds[name]) for name in DECODER_INPUTS[1:]]
    with torch.no_grad():
        outputs = model(*args)
    return {name: t.numpy() for name, t in zip(DECODER_OUTPUTS, outputs)}


def predictor_reference(sam: Sam, embedding: np.ndarray, orig_hw: tuple[int, int], prompt: dict):
    """SamPredictor.predict(multimask_output=True, return_logits=True) on a precomputed embedding.

    prompt: points (Nx2, original pixels), labels, box, mask_input (256x256) as for prompt_arrays.
    Returns masks 3xHxW logits and iou_predictions [3] (the decoder's outputs 1-3).
    """
    predictor = SamPredictor(sam)
    predictor.features = torch.as_tensor(embedding)
    predictor.original_size = tuple(orig_hw)
    predictor.input_size = longest_side_size(*orig_hw)  # what set_image would have recorded
    predictor.is_image_set = True
    mask = prompt.get("mask_input")
    masks, ious, _ = predictor.predict(
        point_coords=None if prompt.get("points") is None else np.asarray(prompt["points"], dtype=np.float64),
        point_labels=None if prompt.get("labels") is None else np.asarray(prompt["labels"]),
        box=None if prompt.get("box") is None else np.asarray(prompt["box"], dtype=np.float64),
        mask_input=None if mask is None else np.asarray(mask).reshape(1, LOW_RES_MASK_SIZE, LOW_RES_MASK_SIZE),
        multimask_output=True, return_logits=True,
    )
    return masks, ious


def decoder_parity_embedding(sam: Sam, seed: int, orig_hw: tuple[int, int]) -> np.ndarray:
    """Torch image embedding [1, 256, 64, 64] of a synthetic image of size `orig_hw`, resized as a client would."""
    image = synthetic_image(np.random.default_rng(seed + 1), *orig_hw)
    return encoder_reference(sam, resize_for_encoder(image)[None])


def decoder_parity_cases(sam: Sam, embedding: np.ndarray, orig_hw: tuple[int, int]) -> dict[str, dict]:
    """Three prompts in original-image pixels: a click, a click inside a box, and two clicks refining a mask."""
    h, w = orig_hw
    click = {"points": [[0.42 * w, 0.4 * h]], "labels": [1], "box": None}
    first = decoder_reference(sam, embedding, prompt_arrays(**click, orig_hw=orig_hw))
    best = int(np.argmax(first["iou_predictions"][0]))
    return {
        "point": click,
        "point_box": {**click, "box": [0.18 * w, 0.2 * h, 0.75 * w, 0.75 * h]},
        "mask_input": {"points": [[0.42 * w, 0.4 * h], [0.25 * w, 0.8 * h]], "labels": [1, 0], "box": None,
                       "mask_input": first["low_res_masks"][0, best]},
    }


@dataclass(frozen=True)
class _DecoderCase:
    """One parity prompt: the decoder feeds and what torch (SamOnnxModel, SamPredictor) returns for them."""

    feeds: dict[str, np.ndarray]
    reference: dict[str, np.ndarray]
    predictor_masks: np.ndarray  # 3xHxW logits
    predictor_scores: np.ndarray  # [3]


@functools.lru_cache(maxsize=1)  # per network, as _encoder_parity_data
def _decoder_parity_data(sam: Sam, seed: int) -> dict[str, _DecoderCase]:
    orig_hw = DECODER_PARITY_ORIG_HW
    embedding = decoder_parity_embedding(sam, seed, orig_hw)
    cases = {}
    for name, prompt in decoder_parity_cases(sam, embedding, orig_hw).items():
        feeds = {"image_embeddings": embedding, **prompt_arrays(**prompt, orig_hw=orig_hw)}
        cases[name] = _DecoderCase(feeds, decoder_reference(sam, embedding, feeds),
                                   *predictor_reference(sam, embedding, orig_hw, prompt))
    return cases


def _decoder_measure(cases: dict[str, _DecoderCase], thresholds: dict[str, float]):
    def measure(session, report: ParityReport) -> None:
        iou_diffs, low_res_diffs, predictor_ious, predictor_iou_diffs = [], [], [], []
        for name, case in cases.items():
            ours, ref = onnx_io.run_session(session, case.feeds), case.reference
            iou_diffs.append(max_abs_diff(ref["iou_predictions"], ours["iou_predictions"]))
            low_res_diffs.append(max_abs_diff(ref["low_res_masks"], ours["low_res_masks"]))
            report.add(f"mask_iou_{name}", mask_iou(ref["masks"], ours["masks"]), thresholds["mask_iou"], True)
            predictor_ious.append(mask_iou(case.predictor_masks, ours["masks"][0, 1:]))
            predictor_iou_diffs.append(max_abs_diff(case.predictor_scores, ours["iou_predictions"][0, 1:]))
        for key, values, worst in (("iou_predictions_max_abs_diff", iou_diffs, max),
                                   ("low_res_masks_max_abs_diff", low_res_diffs, max),
                                   ("predictor_mask_iou", predictor_ious, min),
                                   ("predictor_iou_predictions_max_abs_diff", predictor_iou_diffs, max)):
            report.add(key, worst(values), thresholds[key], higher_is_better=worst is min)

    return measure


# ---------------------------------------------------------------- shared


def _build(request: ExportRequest) -> Sam:
    return build_sam(request.choices.sam_variant, request.choices.sam_checkpoint, request.seed)


def _report(model: str, request: ExportRequest) -> ParityReport:
    checkpoint = request.choices.sam_checkpoint
    return ParityReport(model=model, precision=request.precision.value,
                        source=str(checkpoint) if checkpoint else "random-init",
                        architecture=architecture(request.choices.sam_variant))


def _staged(tmp: str) -> Path:
    return Path(tmp) / "model.onnx"
