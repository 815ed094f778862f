"""The orchestrator's upsampling of sam_decoder's low-resolution logits gives the masks the decoder graph gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from export.sam import SamDecoderOnnx
from export.sam_models import build_sam
from snapfit.preprocessing.sam_upscale import prepadded_size, upscale_masks


@pytest.fixture(scope="module")
def graph_postprocessing():
    """The exported decoder's own mask_postprocessing (torch; the ONNX graph is a trace of it)."""
    decoder = SamDecoderOnnx(build_sam("tiny", None, 0)).eval()

    def postprocess(low_res: np.ndarray, orig_hw: tuple[int, int]) -> np.ndarray:
        with torch.no_grad():
            out = decoder.mask_postprocessing(torch.from_numpy(low_res[None]),
                                              torch.tensor(orig_hw, dtype=torch.float32))
        return out[0].numpy()

    return postprocess


def smooth_logits(seed: int, count: int = 3) -> np.ndarray:
    """count x 256 x 256 logits shaped like a decoder's: smooth blobs with a zero crossing, plus noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:256, 0:256].astype(np.float32)
    maps = []
    for _ in range(count):
        cy, cx, radius = rng.uniform(40, 216, 2).tolist() + [rng.uniform(20, 90)]
        maps.append(radius - np.hypot(y - cy, x - cx) + rng.normal(0, 2, (256, 256)))
    return np.stack(maps).astype(np.float32)


@pytest.mark.parametrize("orig_hw", [(1024, 768), (1536, 1024), (480, 640), (333, 2000), (17, 9), (1024, 1024)])
def test_upscaled_masks_match_the_decoder_graph(graph_postprocessing, orig_hw):
    low_res = smooth_logits(seed=sum(orig_hw))
    ours = upscale_masks(low_res, orig_hw)
    reference = graph_postprocessing(low_res, orig_hw)
    assert ours.shape == reference.shape == (3, *orig_hw)
    # float rounding: logits reach ~200, so interpolating near a zero crossing leaves ~1e-4 absolute error
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=5e-4)
    # a pixel may only threshold differently where the logit is within float rounding of 0
    disagree = (ours > 0) != (reference > 0)
    assert np.abs(reference[disagree]).max(initial=0.0) < 1e-3


def test_noise_logits_also_match(graph_postprocessing):
    """Random-weight decoders return noise; the upsampling must not depend on the logits being smooth."""
    low_res = np.random.default_rng(1).standard_normal((2, 256, 256)).astype(np.float32)
    np.testing.assert_allclose(upscale_masks(low_res, (700, 500)), graph_postprocessing(low_res, (700, 500))[:2],
                               atol=1e-4)


@pytest.mark.parametrize(("orig_hw", "expected"), [((1024, 768), (1024, 768)), ((1500, 2250), (683, 1024)),
                                                  ((480, 640), (768, 1024)), ((3, 1000), (3, 1024))])
def test_prepadded_size_rounds_like_segment_anything(orig_hw, expected):
    assert prepadded_size(orig_hw) == expected
