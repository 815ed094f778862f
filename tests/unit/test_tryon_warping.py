"""ConvNet_TPS pieces (correlation order, TPS grid) and the warping stage on the tiny profile."""

from __future__ import annotations

import pytest
import torch

from tryon.components import build_refinement, build_tps
from tryon.config import TINY
from tryon.modules.warping import TPSGridGenerator, control_point_grid, correlate, warp_garment


def test_correlation_channels_index_cloth_positions_column_major():
    cloth, person = torch.randn(1, 5, 4, 3), torch.randn(1, 5, 4, 3)
    corr = correlate(cloth, person)
    assert corr.shape == (1, 12, 4, 3)
    ya, xa, y, x = 2, 1, 3, 0
    expected = (cloth[0, :, ya, xa] * person[0, :, y, x]).sum()
    torch.testing.assert_close(corr[0, xa * 4 + ya, y, x], expected)


def test_tps_grid_at_the_control_points_is_the_identity():
    points = control_point_grid(5, 0.9)
    assert points[1].tolist() == pytest.approx([-0.45, -0.9]) and points[5].tolist() == pytest.approx([-0.9, -0.45])
    generator = TPSGridGenerator(9, 7, points)
    grid = generator(points[None])
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, 9), torch.linspace(-1, 1, 7), indexing="ij")
    torch.testing.assert_close(grid[0], torch.stack([xs, ys], dim=-1), atol=1e-5, rtol=0)


@torch.no_grad()
def test_untrained_tps_predicts_the_identity_warp():
    torch.manual_seed(0)
    tps = build_tps(TINY).eval()
    h, w = TINY.tps_size
    grid = tps(torch.randn(2, 3, h, w), torch.randn(2, TINY.tps_input_channels, h, w))
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    assert grid.shape == (2, h, w, 2)
    torch.testing.assert_close(grid[1], torch.stack([xs, ys], dim=-1), atol=1e-4, rtol=0)


@torch.no_grad()
def test_warp_garment_returns_a_clamped_full_frame_garment():
    torch.manual_seed(0)
    tps, refinement = build_tps(TINY).eval(), build_refinement(TINY).eval()
    garment = torch.rand(1, 3, *TINY.frame_hw) * 2 - 1
    masked_person, pose_map = torch.zeros(1, 3, *TINY.frame_hw), torch.rand(1, 18, *TINY.frame_hw)
    warped = warp_garment(tps, refinement, garment, masked_person, pose_map, TINY.tps_size)
    assert warped.shape == (1, 3, *TINY.frame_hw) and warped.dtype == torch.float32
    assert warped.min() >= -1 and warped.max() <= 1
