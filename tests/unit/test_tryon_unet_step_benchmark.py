"""benchmarks.tryon_unet_step measures one guidance-batch UNet step."""

from __future__ import annotations

import torch

from benchmarks.tryon_unet_step import measure


def test_tiny_unet_step_is_timed_on_the_pipeline_input_shape():
    result = measure("tiny", "fp32", repeats=1, device=torch.device("cpu"))
    assert result["input"] == [2, 31, 16, 12]
    assert result["median_ms"] > 0 and result["repeats"] == 1
