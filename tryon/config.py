"""LaDI-VTON model profiles: `full` (the published checkpoints) and `tiny` (same structure, random weights, CPU tests).

Only independent choices are stored; every size that follows from them (latent frame, TPS frame, EMASC channels,
UNet input channels, inversion-adapter widths) is a property, so the two profiles cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from snapfit.contract import POSE_KEYPOINTS, TRYON_CATEGORIES

# Channels the extended UNet reads, in this order [ladi_vton.md §1]: noisy latent | mask | masked-person latent |
# pose map | warped-cloth latent.
POSE_CHANNELS = POSE_KEYPOINTS  # one heatmap per OpenPose-18 keypoint
# LaDI's prompt words per category (snapfit.contract.TRYON_CATEGORIES; a test checks they are the same set)
CATEGORY_TEXT = {
    "dresses": "a dress",
    "upper_body": "an upper body garment",
    "lower_body": "a lower body garment",
}
CATEGORIES = TRYON_CATEGORIES

# OpenAI-CLIP normalisation, applied to images already in [0, 1] (no second 1/255 rescale: ladi_vton.md pitfalls).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class UNetConfig:
    """The SD-2-inpainting UNet layout; `in_channels` and `cross_attention_dim` come from the rest of LadiConfig."""

    block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280)
    attention_head_dim: tuple[int, ...] = (5, 10, 20, 20)  # diffusers' name; SD2 uses it as the number of heads
    layers_per_block: int = 2
    norm_num_groups: int = 32

    def diffusers_config(self, in_channels: int, cross_attention_dim: int, sample_size: int) -> dict[str, Any]:
        """Keyword arguments for `diffusers.UNet2DConditionModel` (the published `unet_config` for the full profile)."""
        return {
            "act_fn": "silu",
            "attention_head_dim": list(self.attention_head_dim),
            "block_out_channels": list(self.block_out_channels),
            "center_input_sample": False,
            "cross_attention_dim": cross_attention_dim,
            "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
            "downsample_padding": 1,
            "flip_sin_to_cos": True,
            "freq_shift": 0,
            "in_channels": in_channels,
            "layers_per_block": self.layers_per_block,
            "mid_block_scale_factor": 1,
            "norm_eps": 1e-5,
            "norm_num_groups": self.norm_num_groups,
            "out_channels": 4,
            "sample_size": sample_size,
            "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
            "use_linear_projection": True,
        }


@dataclass(frozen=True)
class VaeConfig:
    """The SD2 AutoencoderKL (f=8, 4 latent channels) and the EMASC widths that follow from it."""

    block_out_channels: tuple[int, ...] = (128, 256, 512, 512)
    layers_per_block: int = 2
    norm_num_groups: int = 32
    latent_channels: int = 4
    scaling_factor: float = 0.18215

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.block_out_channels) - 1)

    @property
    def emasc_in_channels(self) -> tuple[int, ...]:
        """Channels of the encoder taps f1..f5: conv_in output, then the inputs of down-blocks 0..3."""
        c = self.block_out_channels
        return (c[0], c[0], *c[:-1])

    @property
    def emasc_out_channels(self) -> tuple[int, ...]:
        """Channels where g1..g5 are added in the decoder: after norm_out (g1), before up-blocks 3..0 (g2..g5)."""
        c = self.block_out_channels
        return (*c, c[-1])

    def diffusers_config(self) -> dict[str, Any]:
        n = len(self.block_out_channels)
        return {
            "in_channels": 3,
            "out_channels": 3,
            "down_block_types": ["DownEncoderBlock2D"] * n,
            "up_block_types": ["UpDecoderBlock2D"] * n,
            "block_out_channels": list(self.block_out_channels),
            "layers_per_block": self.layers_per_block,
            "act_fn": "silu",
            "latent_channels": self.latent_channels,
            "norm_num_groups": self.norm_num_groups,
            "scaling_factor": self.scaling_factor,
        }


@dataclass(frozen=True)
class TextEncoderConfig:
    """SD2's text encoder: OpenCLIP-H text tower cut at the penultimate layer (23 of 24)."""

    hidden_size: int = 1024
    num_hidden_layers: int = 23
    num_attention_heads: int = 16
    intermediate_size: int = 4096
    max_position_embeddings: int = 77
    vocab_size: int = 49408
    projection_dim: int = 512

    def transformers_config(self):
        from transformers import CLIPTextConfig

        return CLIPTextConfig(
            hidden_size=self.hidden_size, num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads, intermediate_size=self.intermediate_size,
            max_position_embeddings=self.max_position_embeddings, vocab_size=self.vocab_size,
            projection_dim=self.projection_dim, hidden_act="gelu", layer_norm_eps=1e-5,
            bos_token_id=0, eos_token_id=2, pad_token_id=1,
        )


@dataclass(frozen=True)
class VisionEncoderConfig:
    """laion/CLIP-ViT-H-14-laion2B-s32B-b79K's vision tower; LaDI reads its last_hidden_state (257 x 1280)."""

    hidden_size: int = 1280
    num_hidden_layers: int = 32
    num_attention_heads: int = 16
    intermediate_size: int = 5120
    patch_size: int = 14
    image_size: int = 224
    projection_dim: int = 1024

    @property
    def num_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2 + 1

    def transformers_config(self):
        from transformers import CLIPVisionConfig

        return CLIPVisionConfig(
            hidden_size=self.hidden_size, num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads, intermediate_size=self.intermediate_size,
            patch_size=self.patch_size, image_size=self.image_size, projection_dim=self.projection_dim,
            hidden_act="gelu", layer_norm_eps=1e-5,
        )


@dataclass(frozen=True)
class WarpingConfig:
    """ConvNet_TPS (5x5 control points) and the refinement UNet; widths are the published ones for `full`."""

    extractor_channels: int = 64     # first conv of each feature extractor; doubles per stride-2 layer
    extractor_layers: int = 3        # stride-2 layers after the first conv (n_layer)
    regression_channels: int = 64    # last conv of the control-point regressor (512, 256, 128, 64 when 64)
    refinement_channels: int = 64    # first level of the refinement UNet
    grid_size: int = 5
    grid_span: float = 0.9           # control points span [-0.9, 0.9] in grid_sample coordinates


@dataclass(frozen=True)
class LadiConfig:
    """One LaDI-VTON model profile. `height` x `width` is the frame every input and output uses."""

    profile: str
    height: int
    width: int
    unet: UNetConfig = field(default_factory=UNetConfig)
    vae: VaeConfig = field(default_factory=VaeConfig)
    text_encoder: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    vision_encoder: VisionEncoderConfig = field(default_factory=VisionEncoderConfig)
    warping: WarpingConfig = field(default_factory=WarpingConfig)
    num_pseudo_words: int = 16

    @property
    def frame_hw(self) -> tuple[int, int]:
        return self.height, self.width

    @property
    def latent_size(self) -> tuple[int, int]:
        f = self.vae.downsample_factor
        return self.height // f, self.width // f

    @property
    def tps_size(self) -> tuple[int, int]:
        """TPS runs at half the frame (256 x 192 for 512 x 384); its grid is upsampled back."""
        return self.height // 2, self.width // 2

    @property
    def tps_input_channels(self) -> int:
        """Person side of the TPS: masked person (3) + pose map (18) = 21."""
        return 3 + POSE_CHANNELS

    @property
    def refinement_input_channels(self) -> int:
        """Masked person (3) + pose map (18) + TPS-warped cloth (3) = 24."""
        return 3 + POSE_CHANNELS + 3

    @property
    def unet_in_channels(self) -> int:
        """Noisy latent + mask + masked-person latent + pose map + warped-cloth latent = 31 for SD2."""
        latent = self.vae.latent_channels
        return latent + 1 + latent + POSE_CHANNELS + latent

    @property
    def adapter_hidden_size(self) -> int:
        return 4 * self.vision_encoder.hidden_size

    def unet_diffusers_config(self) -> dict[str, Any]:
        return self.unet.diffusers_config(
            in_channels=self.unet_in_channels,
            cross_attention_dim=self.text_encoder.hidden_size,
            sample_size=self.latent_size[0],
        )

    def validate(self) -> None:
        """Raises ValueError when the frame does not divide into the latent, TPS and refinement grids."""
        # The TPS frame is half the frame and the extractors halve it (extractor_layers + 1) times more; the
        # refinement UNet halves the frame four times; the VAE by its downsample factor.
        unit = max(2 ** (self.warping.extractor_layers + 2), 16, self.vae.downsample_factor)
        if self.height % unit or self.width % unit:
            raise ValueError(f"frame {self.height}x{self.width} must be a multiple of {unit} in both dimensions")


FULL = LadiConfig(profile="full", height=512, width=384)

TINY = LadiConfig(
    profile="tiny",
    height=128,
    width=96,
    unet=UNetConfig(block_out_channels=(32, 32, 64, 64), attention_head_dim=(2, 2, 4, 4), layers_per_block=1,
                    norm_num_groups=8),
    vae=VaeConfig(block_out_channels=(16, 32, 64, 64), layers_per_block=1, norm_num_groups=8),
    text_encoder=TextEncoderConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                   projection_dim=32),
    vision_encoder=VisionEncoderConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                       intermediate_size=64, projection_dim=32),
    # 64x48 TPS frame: one stride-2 layer fewer keeps the regressor's input (8x6 -> 2x1) non-empty.
    warping=WarpingConfig(extractor_channels=8, extractor_layers=2, regression_channels=8, refinement_channels=8),
)

PROFILES: dict[str, LadiConfig] = {"full": FULL, "tiny": TINY}


def profile_config(profile: str) -> LadiConfig:
    """The LadiConfig of a named profile; ValueError for an unknown name."""
    try:
        return PROFILES[profile]
    except KeyError:
        raise ValueError(f"unknown LaDI profile {profile!r}; expected one of {sorted(PROFILES)}") from None


__all__ = [
    "CATEGORIES", "CATEGORY_TEXT", "CLIP_MEAN", "CLIP_STD", "FULL", "POSE_CHANNELS", "PROFILES", "TINY",
    "LadiConfig", "TextEncoderConfig", "UNetConfig", "VaeConfig", "VisionEncoderConfig", "WarpingConfig",
    "profile_config",
]
