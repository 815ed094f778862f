"""Builders for segment-anything networks: the three published ViT sizes, MobileSAM, and tiny ones for tests.

Every variant keeps SAM's tensor interface (1024x1024 input frame, 256x64x64 image embeddings,
256x256 low-resolution masks, transformer_dim 256), so one set of Triton configs serves them all.
`mobile_sam` is MobileSAM (Zhang et al. 2023): its TinyViT image encoder, from the authors' code as packaged
on PyPI by `mobilesam-mirror` (import name `mobile_sam`), in front of SAM's own prompt encoder and mask
decoder at ViT-B sizes, which is how MobileSAM builds it, so a `mobile_sam.pt` loads unchanged.
`tiny` and `tiny_mobile_sam` are narrower and shallower; their weights are always random.
"""

from __future__ import annotations

import functools
import logging
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

from export.errors import ExportError
from snapfit import contract

log = logging.getLogger(__name__)

# the contract's sizes, under the names segment_anything's builders use
IMAGE_SIZE = contract.SAM_FRAME  # the encoder's square input frame; clients resize the longest side to this
PATCH_SIZE = contract.SAM_FRAME // contract.SAM_EMBEDDING_SIZE  # 16
EMBED_DIM = contract.SAM_EMBEDDING_CHANNELS  # image-embedding channels and the decoder's transformer_dim
EMBED_SIZE = contract.SAM_EMBEDDING_SIZE  # 64
LOW_RES_MASK_SIZE = contract.SAM_LOW_RES_MASK_SIZE  # 256
NUM_MASKS = contract.SAM_MASKS  # token 0 (single-mask output) + the 3 multimask outputs
PIXEL_MEAN = (123.675, 116.28, 103.53)  # SAM's statistics on the 0-255 scale
PIXEL_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class SamSpec:
    """Encoder width/depth and decoder depth of one SAM variant."""

    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048


@dataclass(frozen=True)
class TinyVitSpec:
    """MobileSAM's TinyViT encoder: four stages (a conv stage, then windowed attention), a 256-channel neck.

    The last stage must be 320, 448 or 576 wide: MobileSAM's PatchMerging keys its stride-1 last merge (which
    keeps the 64x64 grid SAM's decoder expects) on those widths.
    """

    embed_dims: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    num_heads: tuple[int, int, int, int]
    window_sizes: tuple[int, int, int, int] = (7, 7, 14, 7)
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048


SAM_SPECS: dict[str, SamSpec | TinyVitSpec] = {
    # one windowed and one global-attention block; 64 wide so a 1024x1024 image encodes in well under a second
    "tiny": SamSpec(embed_dim=64, depth=2, num_heads=2, global_attn_indexes=(1,), decoder_mlp_dim=256),
    "vit_b": SamSpec(embed_dim=768, depth=12, num_heads=12, global_attn_indexes=(2, 5, 8, 11)),
    "vit_l": SamSpec(embed_dim=1024, depth=24, num_heads=16, global_attn_indexes=(5, 11, 17, 23)),
    "vit_h": SamSpec(embed_dim=1280, depth=32, num_heads=16, global_attn_indexes=(7, 15, 23, 31)),
    # MobileSAM's build_sam_vit_t: TinyViT-5M at 1024x1024 (about 77 GFLOP, 5.7 M encoder parameters)
    "mobile_sam": TinyVitSpec(embed_dims=(64, 128, 160, 320), depths=(2, 2, 6, 2), num_heads=(2, 4, 5, 10)),
    # one block per stage, for tests of the cpu profile's wiring
    "tiny_mobile_sam": TinyVitSpec(embed_dims=(16, 32, 64, 320), depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 5),
                                   decoder_mlp_dim=256),
}
# variants exported with random weights without a warning: they exist for tests
TEST_VARIANTS = ("tiny", "tiny_mobile_sam")


def build_sam(variant: str, checkpoint: Path | None = None, seed: int = 0) -> Sam:
    """SAM `variant` in eval mode, weights from `checkpoint` (a segment-anything .pth) or seeded random ones.

    Cached per (variant, checkpoint, seed), so sam_encoder and sam_decoder exported in one process share weights.
    Raises ExportError for an unknown variant or a checkpoint that is missing or does not fit the variant.
    """
    if variant not in SAM_SPECS:
        raise ExportError(f"unknown SAM variant '{variant}'; choose one of {', '.join(SAM_SPECS)}")
    if checkpoint is not None and not Path(checkpoint).is_file():
        # checked before building: a vit_h network takes a while and 2.5 GB just to be thrown away
        raise ExportError(f"SAM checkpoint not found: {checkpoint}")
    return _build_cached(variant, str(checkpoint) if checkpoint is not None else None, seed)


@functools.lru_cache(maxsize=1)  # one network at a time: vit_h alone holds 2.5 GB
def _build_cached(variant: str, checkpoint: str | None, seed: int) -> Sam:
    torch.manual_seed(seed)
    sam = _assemble(SAM_SPECS[variant])
    if checkpoint is not None:
        _load_checkpoint(sam, Path(checkpoint), variant)
    else:
        if variant not in TEST_VARIANTS:
            log.warning("SAM %s: no checkpoint given (--sam-checkpoint); exporting RANDOM weights, "
                        "so embeddings and masks will be meaningless", variant)
        _randomise_zero_init(sam)
    return sam.eval()


def architecture(variant: str) -> str:
    """What parity.json records as the architecture of `variant`."""
    if isinstance(SAM_SPECS.get(variant), TinyVitSpec):
        return f"MobileSAM TinyViT {variant} (mobile_sam from mobilesam-mirror) + segment_anything decoder"
    return f"segment_anything {variant}"


def _assemble(spec: SamSpec | TinyVitSpec) -> Sam:
    """The same wiring as segment_anything.build_sam._build_sam (MobileSAM's build_sam_vit_t for a TinyVitSpec)."""
    encoder = _tiny_vit(spec) if isinstance(spec, TinyVitSpec) else _vit(spec)
    prompt_encoder = PromptEncoder(
        embed_dim=EMBED_DIM, image_embedding_size=(EMBED_SIZE, EMBED_SIZE),
        input_image_size=(IMAGE_SIZE, IMAGE_SIZE), mask_in_chans=16,
    )
    mask_decoder = MaskDecoder(
        num_multimask_outputs=NUM_MASKS - 1,
        transformer=TwoWayTransformer(depth=spec.decoder_depth, embedding_dim=EMBED_DIM,
                                      mlp_dim=spec.decoder_mlp_dim, num_heads=8),
        transformer_dim=EMBED_DIM, iou_head_depth=3, iou_head_hidden_dim=256,
    )
    return Sam(image_encoder=encoder, prompt_encoder=prompt_encoder, mask_decoder=mask_decoder,
               pixel_mean=list(PIXEL_MEAN), pixel_std=list(PIXEL_STD))


def _vit(spec: SamSpec) -> torch.nn.Module:
    return ImageEncoderViT(
        depth=spec.depth, embed_dim=spec.embed_dim, img_size=IMAGE_SIZE, mlp_ratio=4,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=spec.num_heads, patch_size=PATCH_SIZE,
        qkv_bias=True, use_rel_pos=True, global_attn_indexes=spec.global_attn_indexes, window_size=14,
        out_chans=EMBED_DIM,
    )


def _tiny_vit(spec: TinyVitSpec) -> torch.nn.Module:
    """MobileSAM's TinyViT as build_sam_vit_t makes it (num_classes=1000: its unused head is in mobile_sam.pt)."""
    with warnings.catch_warnings():
        # mobile_sam imports timm's deprecated paths and re-registers timm's tiny_vit_* names; neither matters here
        warnings.simplefilter("ignore")
        from mobile_sam.modeling import TinyViT
        from mobile_sam.modeling.tiny_vit_sam import PatchMerging

    encoder = TinyViT(img_size=IMAGE_SIZE, in_chans=3, num_classes=1000, embed_dims=list(spec.embed_dims),
                      depths=list(spec.depths), num_heads=list(spec.num_heads), window_sizes=list(spec.window_sizes),
                      mlp_ratio=4.0, drop_rate=0.0, drop_path_rate=0.0, use_checkpoint=False,
                      mbconv_expand_ratio=4.0, local_conv_size=3, layer_lr_decay=0.8)
    for module in encoder.modules():
        if type(module) is PatchMerging:
            module.__class__ = _traced_batch_patch_merging(PatchMerging)
    return encoder


@functools.cache
def _traced_batch_patch_merging(patch_merging: type) -> type:
    """MobileSAM's PatchMerging reading the batch size as `x.shape[0]`.

    The original takes `len(x)`, a Python int the ONNX tracer freezes at the example's batch, so an export
    traced with one image reshapes a batch of two into one image of twice the channels (ONNX Runtime then
    rejects it). Same arithmetic otherwise; parameters and state-dict keys are unchanged.
    """

    class BatchTracedPatchMerging(patch_merging):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.ndim == 3:  # B x (H*W) x C tokens -> B x C x H x W
                h, w = self.input_resolution
                x = x.view(x.shape[0], h, w, -1).permute(0, 3, 1, 2)
            x = self.act(self.conv1(x))
            x = self.act(self.conv2(x))
            return self.conv3(x).flatten(2).transpose(1, 2)

    return BatchTracedPatchMerging


def _randomise_zero_init(sam: Sam) -> None:
    """Gives the zero-initialised positional parameters small random values.

    Left at zero, the absolute and relative position paths (TinyViT's attention biases) contribute nothing, and
    an export that mishandled them would still pass parity. TinyViT's batch norms get random statistics and
    scales too: some start with zero scale (a residual branch that adds nothing) and identity statistics.
    """
    with torch.no_grad():
        for name, param in sam.image_encoder.named_parameters():
            if name == "pos_embed" or name.endswith(("rel_pos_h", "rel_pos_w", "attention_biases")):
                param.normal_(0.0, 0.02)
        for module in sam.image_encoder.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.1)
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 1.5)


def _load_checkpoint(sam: Sam, path: Path, variant: str) -> None:
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and weights_only errors all mean "not a usable checkpoint"
        raise ExportError(f"SAM checkpoint {path} could not be read as a state dict: {e}") from e
    if not isinstance(state_dict, dict):
        raise ExportError(f"SAM checkpoint {path} holds a {type(state_dict).__name__}, not a state dict")
    try:
        sam.load_state_dict(state_dict)
    except RuntimeError as e:
        first_lines = "; ".join(line.strip() for line in str(e).splitlines()[1:4])
        raise ExportError(f"SAM checkpoint {path} does not fit the {variant} architecture "
                          f"(is it a checkpoint of another size?): {first_lines}") from e
