"""EMASC: Enhanced Mask-Aware Skip Connections from the VAE encoder of the masked person to the VAE decoder."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class EMASC(nn.Module):
    """Five nonlinear adapters `conv.{i}` = Conv3x3(in_i -> in_i) -> SiLU -> Conv3x3(in_i -> out_i).

    Published widths: in [128, 128, 128, 256, 512], out [128, 256, 512, 512, 512]
    (checkpoint keys `conv.{0-4}.{0,2}.{weight,bias}`).
    """

    def __init__(self, in_channels: Sequence[int], out_channels: Sequence[int]):
        super().__init__()
        if len(in_channels) != len(out_channels):
            raise ValueError(f"EMASC needs as many input as output widths, got {in_channels} and {out_channels}")
        self.conv = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(c_in, c_in, kernel_size=3, padding=1),
                nn.SiLU(),
                nn.Conv2d(c_in, c_out, kernel_size=3, padding=1),
            )
            for c_in, c_out in zip(in_channels, out_channels)
        )

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """features: f1..f5, each B x in_i x H_i x W_i  ->  returns B x out_i x H_i x W_i per feature."""
        if len(features) != len(self.conv):
            raise ValueError(f"EMASC expects {len(self.conv)} features, got {len(features)}")
        return [adapter(feature) for adapter, feature in zip(self.conv, features)]


def masked_skips(emasc: EMASC, features: Sequence[torch.Tensor], inpaint_mask: torch.Tensor) -> list[torch.Tensor]:
    """The decoder skips g_i = EMASC_i(f_i) * (1 - nearest(inpaint_mask)).

    features: f1..f5 from `vae_skips.encode_with_features`; inpaint_mask: B x 1 x H x W, 1 = region to repaint.
    Returns g1..g5, zero inside the repainted region so only kept pixels leak into the decoder.
    """
    skips = emasc(features)
    return [g * (1 - F.interpolate(inpaint_mask.to(g.dtype), size=g.shape[-2:], mode="nearest")) for g in skips]
