"""Derived sizes of the LaDI profiles."""

from __future__ import annotations

import pytest

from tryon.config import FULL, TINY, profile_config


def test_full_profile_derives_the_published_sizes():
    assert FULL.frame_hw == (512, 384)
    assert FULL.latent_size == (64, 48)
    assert FULL.tps_size == (256, 192)
    assert FULL.unet_in_channels == 31
    assert FULL.tps_input_channels == 21 and FULL.refinement_input_channels == 24
    assert FULL.adapter_hidden_size == 5120
    assert FULL.vision_encoder.num_tokens == 257
    assert FULL.unet_diffusers_config()["cross_attention_dim"] == 1024


def test_tiny_profile_keeps_the_structure_in_a_small_frame():
    TINY.validate()
    assert TINY.frame_hw == (128, 96) and TINY.latent_size == (16, 12) and TINY.tps_size == (64, 48)
    assert TINY.unet_in_channels == 31
    assert len(TINY.vae.emasc_in_channels) == 5


def test_unknown_profile_is_a_value_error():
    with pytest.raises(ValueError, match="unknown LaDI profile"):
        profile_config("huge")
