"""VAE encode with the five intermediate features EMASC reads, and decode with EMASC skips added.

Works on a stock `diffusers.AutoencoderKL` (4 down/up blocks), reading its submodules rather than patching them.
Feature taps, for SD2's VAE at 512 x 384:
    f1 = conv_in output              128 x 512 x 384
    f2 = input of down-block 0       128 x 512 x 384 (the same tensor as f1)
    f3 = input of down-block 1       128 x 256 x 192
    f4 = input of down-block 2       256 x 128 x 96
    f5 = input of down-block 3       512 x 64 x 48
Decode: post_quant_conv -> conv_in -> mid_block; for k = 0..3: h += g_{5-k}, h = up_block_k(h);
norm_out -> SiLU -> h += g1 -> conv_out.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from diffusers import AutoencoderKL
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution


def encode_with_features(vae: AutoencoderKL, image: torch.Tensor) -> tuple[DiagonalGaussianDistribution,
                                                                           list[torch.Tensor]]:
    """image: B x 3 x H x W in [-1, 1]  ->  (posterior over B x 4 x H/8 x W/8 unscaled latents, [f1..f5])."""
    encoder = vae.encoder
    if len(encoder.down_blocks) != 4:
        raise ValueError(f"EMASC taps need a VAE with 4 down-blocks, this one has {len(encoder.down_blocks)}")
    h = encoder.conv_in(image)
    features = [h]
    for down_block in encoder.down_blocks:
        features.append(h)
        h = down_block(h)
    h = encoder.mid_block(h)
    h = encoder.conv_out(encoder.conv_act(encoder.conv_norm_out(h)))
    if vae.quant_conv is not None:
        h = vae.quant_conv(h)
    return DiagonalGaussianDistribution(h), features


def sample_latents(posterior: DiagonalGaussianDistribution, generator: torch.Generator, scaling_factor: float
                   ) -> torch.Tensor:
    """A seeded sample of the posterior times the VAE scaling factor (LaDI samples, it does not take the mode).

    The noise is drawn in fp32 with `generator` (a CPU generator gives the same noise on every device).
    """
    noise = torch.randn(posterior.mean.shape, generator=generator, device=generator.device, dtype=torch.float32)
    noise = noise.to(device=posterior.mean.device, dtype=posterior.mean.dtype)
    return (posterior.mean + posterior.std * noise) * scaling_factor


def decode_with_skips(vae: AutoencoderKL, latents: torch.Tensor, skips: Sequence[torch.Tensor]) -> torch.Tensor:
    """latents: B x 4 x h x w, already divided by the scaling factor; skips: g1..g5 (masked EMASC outputs).

    Returns the image, B x 3 x 8h x 8w, roughly in [-1, 1] (not clamped).
    """
    decoder = vae.decoder
    if len(skips) != len(decoder.up_blocks) + 1:
        raise ValueError(f"expected {len(decoder.up_blocks) + 1} skips, got {len(skips)}")
    h = vae.post_quant_conv(latents) if vae.post_quant_conv is not None else latents
    h = decoder.mid_block(decoder.conv_in(h))
    for k, up_block in enumerate(decoder.up_blocks):
        h = up_block(h + skips[len(skips) - 1 - k])
    h = decoder.conv_act(decoder.conv_norm_out(h)) + skips[0]
    return decoder.conv_out(h)
