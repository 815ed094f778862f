"""The contract every part of snapfit shares: served models, their tensors, request limits and default ports.

One source for values that must agree across processes: the exporters write models to it, the Triton configs
declare it (tests/unit/test_model_repository_configs.py checks every `config.pbtxt` against `MODELS`), the orchestrator calls it,
the try-on backend validates with it, and the CLI and benchmarks default to its ports. Pure data, no imports of
ours, no third-party imports: every package may import it.

Tensor dims follow Triton's convention: with `max_batch_size > 0` the batch axis is implicit and not listed;
-1 is a dynamic axis.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

# ---------------------------------------------------------------- model names (Triton's <family>_<role>)

SAM_ENCODER = "sam_encoder"
SAM_DECODER = "sam_decoder"
CLIP_IMAGE = "clip_image"
CLIP_TEXT = "clip_text"
CLIP_TOKENIZER = "clip_tokenizer"
CLIP_TEXT_EMBED = "clip_text_embed"
TRYON_CLASSIFIER = "tryon_classifier"
LADI_VTON = "ladi_vton"

# models `snapfit export` writes a model.onnx for, in export order
ONNX_MODELS = (SAM_ENCODER, SAM_DECODER, CLIP_IMAGE, CLIP_TEXT, TRYON_CLASSIFIER)
# the try-on model's weights folder inside its version folder (`model_repository/ladi_vton/1/weights/`)
TRYON_WEIGHTS_DIR = "weights"
# models the orchestrator calls (its readiness checks these)
SERVED_MODELS = (SAM_ENCODER, SAM_DECODER, CLIP_IMAGE, CLIP_TEXT_EMBED, TRYON_CLASSIFIER, LADI_VTON)

# ---------------------------------------------------------------- sizes

SAM_FRAME = 1024  # the encoder's square frame: clients resize an image's longest side to this
SAM_EMBEDDING_CHANNELS = 256
SAM_EMBEDDING_SIZE = 64  # SAM_FRAME / 16-pixel patches
SAM_LOW_RES_MASK_SIZE = 256  # 4 x SAM_EMBEDDING_SIZE; a low_res_masks map can be fed back as mask_input
SAM_MASKS = 4  # token 0 (single-mask output) + the 3 multimask outputs
CLIP_IMAGE_SIZE = 224
CLIP_CONTEXT_LENGTH = 77
CLIP_EMBEDDING_DIM = 512  # what the configs declare; the orchestrator asks the served clip_image for its own
CLASSIFIER_SIZE = 384
CLASSIFIER_CLASSES = ("unusable", "usable")  # index = class id: probabilities[:, 1] = P(usable for try-on)
POSE_KEYPOINTS = 18  # OpenPose-18

# ---------------------------------------------------------------- try-on requests

TRYON_CATEGORIES = ("upper_body", "lower_body", "dresses")
TRYON_SCHEDULERS = ("ddim", "dpmpp")  # DDIM (LaDI-VTON's) and DPM-Solver++
TRYON_MIN_STEPS, TRYON_MAX_STEPS = 1, 500  # DDIM with steps_offset 1 indexes past 1000 training steps at 1000
TRYON_MIN_GUIDANCE, TRYON_MAX_GUIDANCE = 0.0, 30.0  # <= 1 runs the conditional branch only, as LaDI does
TRYON_MAX_SEED = 2**63 - 1
TRYON_DEFAULT_STEPS = 50
TRYON_DEFAULT_GUIDANCE = 7.5
TRYON_DEFAULT_SCHEDULER = "ddim"


def tryon_option_errors(steps: object, guidance: object, seed: object, scheduler: object) -> list[str]:
    """Every problem with a try-on's options, one message each naming the field; [] when they are valid.

    The one definition of these rules: the HTTP route declares the same bounds for OpenAPI, the try-on
    library and the Triton backend call this.
    """
    errors = []
    if isinstance(steps, bool) or not _is_integer(steps) or not TRYON_MIN_STEPS <= steps <= TRYON_MAX_STEPS:
        errors.append(f"steps must be an integer in {TRYON_MIN_STEPS}..{TRYON_MAX_STEPS}, got {steps!r}")
    if isinstance(guidance, bool) or not _is_number(guidance) \
            or not TRYON_MIN_GUIDANCE <= float(guidance) <= TRYON_MAX_GUIDANCE:
        errors.append(f"guidance must be a number in {TRYON_MIN_GUIDANCE:g}..{TRYON_MAX_GUIDANCE:g}, got {guidance!r}")
    if isinstance(seed, bool) or not _is_integer(seed) or not 0 <= seed <= TRYON_MAX_SEED:
        errors.append(f"seed must be an integer in 0..2**63-1, got {seed!r}")
    if scheduler not in TRYON_SCHEDULERS:
        errors.append(f"scheduler must be one of {', '.join(TRYON_SCHEDULERS)}, got {scheduler!r}")
    return errors


def _is_integer(value: object) -> bool:
    return isinstance(value, numbers.Integral)  # int and numpy integers (registered), not floats or strings


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and math.isfinite(value)


# ---------------------------------------------------------------- default ports

API_PORT = 8080
TRITON_HTTP_PORT = 8000
TRITON_GRPC_PORT = 8001
TRITON_METRICS_PORT = 8002

# ---------------------------------------------------------------- tensors


@dataclass(frozen=True)
class Tensor:
    """One input or output: Triton data type ("TYPE_FP32", ...) and dims without the implicit batch axis."""

    name: str
    data_type: str
    dims: tuple[int, ...]
    optional: bool = False


@dataclass(frozen=True)
class ModelContract:
    """A served model's tensors. batched: Triton adds the batch axis (max_batch_size > 0)."""

    name: str
    batched: bool
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    decoupled: bool = False

    def input(self, name: str) -> Tensor:
        return next(t for t in self.inputs if t.name == name)

    def output(self, name: str) -> Tensor:
        return next(t for t in self.outputs if t.name == name)


_IMAGE = "image"
_EMBEDDINGS = "embeddings"

MODELS: dict[str, ModelContract] = {contract.name: contract for contract in (
    ModelContract(SAM_ENCODER, batched=True,
                  inputs=(Tensor(_IMAGE, "TYPE_UINT8", (-1, -1, 3)),),  # longest side exactly SAM_FRAME
                  outputs=(Tensor("image_embeddings", "TYPE_FP32",
                                  (SAM_EMBEDDING_CHANNELS, SAM_EMBEDDING_SIZE, SAM_EMBEDDING_SIZE)),)),
    ModelContract(SAM_DECODER, batched=False,
                  inputs=(Tensor("image_embeddings", "TYPE_FP32",
                                 (1, SAM_EMBEDDING_CHANNELS, SAM_EMBEDDING_SIZE, SAM_EMBEDDING_SIZE)),
                          Tensor("point_coords", "TYPE_FP32", (1, -1, 2)),
                          Tensor("point_labels", "TYPE_FP32", (1, -1)),
                          Tensor("mask_input", "TYPE_FP32", (1, 1, SAM_LOW_RES_MASK_SIZE, SAM_LOW_RES_MASK_SIZE)),
                          Tensor("has_mask_input", "TYPE_FP32", (1,)),
                          Tensor("orig_im_size", "TYPE_FP32", (2,))),
                  outputs=(Tensor("masks", "TYPE_FP32", (1, SAM_MASKS, -1, -1)),
                           Tensor("iou_predictions", "TYPE_FP32", (1, SAM_MASKS)),
                           Tensor("low_res_masks", "TYPE_FP32",
                                  (1, SAM_MASKS, SAM_LOW_RES_MASK_SIZE, SAM_LOW_RES_MASK_SIZE)))),
    ModelContract(CLIP_IMAGE, batched=True,
                  inputs=(Tensor(_IMAGE, "TYPE_UINT8", (CLIP_IMAGE_SIZE, CLIP_IMAGE_SIZE, 3)),),
                  outputs=(Tensor(_EMBEDDINGS, "TYPE_FP32", (CLIP_EMBEDDING_DIM,)),)),
    ModelContract(CLIP_TEXT, batched=True,
                  inputs=(Tensor("input_ids", "TYPE_INT64", (CLIP_CONTEXT_LENGTH,)),),
                  outputs=(Tensor(_EMBEDDINGS, "TYPE_FP32", (CLIP_EMBEDDING_DIM,)),)),
    ModelContract(CLIP_TOKENIZER, batched=True,
                  inputs=(Tensor("text", "TYPE_STRING", (1,)),),
                  outputs=(Tensor("input_ids", "TYPE_INT64", (CLIP_CONTEXT_LENGTH,)),)),
    ModelContract(CLIP_TEXT_EMBED, batched=True,
                  inputs=(Tensor("text", "TYPE_STRING", (1,)),),
                  outputs=(Tensor(_EMBEDDINGS, "TYPE_FP32", (CLIP_EMBEDDING_DIM,)),)),
    ModelContract(TRYON_CLASSIFIER, batched=True,
                  inputs=(Tensor(_IMAGE, "TYPE_UINT8", (CLASSIFIER_SIZE, CLASSIFIER_SIZE, 3)),),
                  outputs=(Tensor("probabilities", "TYPE_FP32", (len(CLASSIFIER_CLASSES),)),)),
    ModelContract(LADI_VTON, batched=False, decoupled=True,
                  inputs=(Tensor("person", "TYPE_UINT8", (-1, -1, 3)),
                          Tensor("garment", "TYPE_UINT8", (-1, -1, 3)),
                          Tensor("keypoints", "TYPE_FP32", (POSE_KEYPOINTS, 3)),
                          Tensor("inpaint_mask", "TYPE_UINT8", (-1, -1)),
                          Tensor("category", "TYPE_STRING", (1,)),
                          Tensor("garment_key", "TYPE_STRING", (1,), optional=True),
                          Tensor("steps", "TYPE_INT32", (1,)),
                          Tensor("guidance", "TYPE_FP32", (1,)),
                          Tensor("seed", "TYPE_INT64", (1,)),
                          Tensor("scheduler", "TYPE_STRING", (1,))),
                  outputs=(Tensor("step", "TYPE_INT32", (1,)),
                           Tensor("total_steps", "TYPE_INT32", (1,)),
                           Tensor(_IMAGE, "TYPE_UINT8", (-1, -1, 3)))),
)}


def input_names(model: str) -> list[str]:
    return [tensor.name for tensor in MODELS[model].inputs]


def output_names(model: str) -> list[str]:
    return [tensor.name for tensor in MODELS[model].outputs]
