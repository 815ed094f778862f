"""The nine parts of a LaDI-VTON pipeline, and builders that create each from a LadiConfig (random weights)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from torch import nn
from transformers import CLIPTextModel, CLIPTokenizer, CLIPVisionModelWithProjection

from tryon.config import LadiConfig
from tryon.modules import EMASC, ConvNetTPS, InversionAdapter, RefinementUNet
from tryon.schedulers import SD2_SCHEDULER_CONFIG


@dataclass
class LadiComponents:
    """Frozen SD2 / CLIP parts plus LaDI's four trained checkpoints (unet, emasc, inversion_adapter, warping)."""

    tokenizer: CLIPTokenizer
    text_encoder: CLIPTextModel
    vae: AutoencoderKL
    vision_encoder: CLIPVisionModelWithProjection
    unet: UNet2DConditionModel
    emasc: EMASC
    inversion_adapter: InversionAdapter
    tps: ConvNetTPS
    refinement: RefinementUNet
    scheduler_config: dict[str, Any] = field(default_factory=lambda: dict(SD2_SCHEDULER_CONFIG))

    def modules(self) -> dict[str, nn.Module]:
        return {name: getattr(self, name) for name in (
            "text_encoder", "vae", "vision_encoder", "unet", "emasc", "inversion_adapter", "tps", "refinement")}


def build_unet(config: LadiConfig) -> UNet2DConditionModel:
    """The SD2-inpainting UNet widened to `config.unet_in_channels` (31) input channels."""
    return UNet2DConditionModel(**config.unet_diffusers_config())


def build_vae(config: LadiConfig) -> AutoencoderKL:
    return AutoencoderKL(**config.vae.diffusers_config())


def build_text_encoder(config: LadiConfig) -> CLIPTextModel:
    return CLIPTextModel(config.text_encoder.transformers_config())


def build_vision_encoder(config: LadiConfig) -> CLIPVisionModelWithProjection:
    return CLIPVisionModelWithProjection(config.vision_encoder.transformers_config())


def build_emasc(config: LadiConfig) -> EMASC:
    return EMASC(config.vae.emasc_in_channels, config.vae.emasc_out_channels)


def build_inversion_adapter(config: LadiConfig) -> InversionAdapter:
    return InversionAdapter(config.vision_encoder.transformers_config(), word_dim=config.text_encoder.hidden_size,
                            num_words=config.num_pseudo_words)


def build_tps(config: LadiConfig) -> ConvNetTPS:
    w = config.warping
    return ConvNetTPS(*config.tps_size, person_channels=config.tps_input_channels,
                      extractor_channels=w.extractor_channels, extractor_layers=w.extractor_layers,
                      regression_channels=w.regression_channels, grid_size=w.grid_size, grid_span=w.grid_span)


def build_refinement(config: LadiConfig) -> RefinementUNet:
    return RefinementUNet(config.refinement_input_channels, 3, config.warping.refinement_channels)


# The published .pth files and the builders of the modules they load into.
CHECKPOINT_BUILDERS = {
    "unet": build_unet,
    "emasc": build_emasc,
    "inversion_adapter": build_inversion_adapter,
    "tps": build_tps,
    "refinement": build_refinement,
}


def build_random_components(config: LadiConfig, seed: int = 0) -> LadiComponents:
    """Every part with random weights drawn from `seed` (the global RNG is left untouched); modules in eval mode."""
    from tryon.tokenizer import build_clip_tokenizer

    config.validate()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        components = LadiComponents(
            tokenizer=build_clip_tokenizer(),
            text_encoder=build_text_encoder(config),
            vae=build_vae(config),
            vision_encoder=build_vision_encoder(config),
            unet=build_unet(config),
            emasc=build_emasc(config),
            inversion_adapter=build_inversion_adapter(config),
            tps=build_tps(config),
            refinement=build_refinement(config),
        )
    for module in components.modules().values():
        module.eval().requires_grad_(False)
    return components
