"""VAE encode-with-features / decode-with-skips: the EMASC taps have the spec's shapes and match a stock VAE."""

from __future__ import annotations

import pytest
import torch

from tryon.components import build_emasc, build_vae
from tryon.config import FULL, TINY
from tryon.modules.emasc import masked_skips
from tryon.modules.vae_skips import decode_with_skips, encode_with_features, sample_latents

# ladi_vton.md §5 step 6: f1..f5 and the EMASC outputs g1..g5 at 512 x 384.
FULL_FEATURES = [(128, 512, 384), (128, 512, 384), (128, 256, 192), (256, 128, 96), (512, 64, 48)]
FULL_SKIPS = [(128, 512, 384), (256, 512, 384), (512, 256, 192), (512, 128, 96), (512, 64, 48)]


def test_full_vae_taps_and_skips_have_the_published_shapes():
    with torch.device("meta"):
        vae, emasc = build_vae(FULL), build_emasc(FULL)
        posterior, features = encode_with_features(vae, torch.zeros(1, 3, 512, 384))
        skips = masked_skips(emasc, features, torch.zeros(1, 1, 512, 384))
        image = decode_with_skips(vae, posterior.mean, skips)
    assert [tuple(f.shape[1:]) for f in features] == FULL_FEATURES
    assert [tuple(g.shape[1:]) for g in skips] == FULL_SKIPS
    assert tuple(posterior.mean.shape) == (1, 4, 64, 48)
    assert tuple(image.shape) == (1, 3, 512, 384)
    assert FULL.vae.emasc_in_channels == (128, 128, 128, 256, 512)
    assert FULL.vae.emasc_out_channels == (128, 256, 512, 512, 512)


@pytest.fixture(scope="module")
def tiny_vae():
    torch.manual_seed(0)
    return build_vae(TINY).eval()


@torch.no_grad()
def test_encoding_with_features_matches_the_stock_encoder(tiny_vae):
    image = torch.rand(1, 3, *TINY.frame_hw) * 2 - 1
    posterior, features = encode_with_features(tiny_vae, image)
    stock = tiny_vae.encode(image).latent_dist
    torch.testing.assert_close(posterior.mean, stock.mean)
    torch.testing.assert_close(posterior.std, stock.std)
    assert features[0] is features[1]  # f2 (input of down-block 0) is the conv_in output f1


@torch.no_grad()
def test_decoding_with_zero_skips_matches_the_stock_decoder(tiny_vae):
    latents = torch.randn(1, 4, *TINY.latent_size)
    _, features = encode_with_features(tiny_vae, torch.zeros(1, 3, *TINY.frame_hw))
    zero_skips = [torch.zeros(1, c, *f.shape[-2:]) for c, f in zip(TINY.vae.emasc_out_channels, features)]
    torch.testing.assert_close(decode_with_skips(tiny_vae, latents, zero_skips), tiny_vae.decode(latents).sample)


@torch.no_grad()
def test_skips_are_zero_inside_the_repainted_region():
    torch.manual_seed(0)
    vae, emasc = build_vae(TINY).eval(), build_emasc(TINY).eval()
    _, features = encode_with_features(vae, torch.rand(1, 3, *TINY.frame_hw))
    mask = torch.zeros(1, 1, *TINY.frame_hw)
    mask[..., : TINY.height // 2, :] = 1
    for g in masked_skips(emasc, features, mask):
        half = g.shape[-2] // 2
        assert torch.all(g[..., :half, :] == 0)
        assert torch.any(g[..., half:, :] != 0)


def test_sampled_latents_are_seeded_and_scaled(tiny_vae):
    with torch.no_grad():
        posterior, _ = encode_with_features(tiny_vae, torch.zeros(1, 3, *TINY.frame_hw))
    draw = lambda seed: sample_latents(posterior, torch.Generator().manual_seed(seed), 0.18215)  # noqa: E731
    torch.testing.assert_close(draw(1), draw(1))
    assert not torch.equal(draw(1), draw(2))
    assert not torch.allclose(draw(1), posterior.mean * 0.18215)  # a sample, not the mode
