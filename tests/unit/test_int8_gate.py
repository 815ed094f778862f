"""The int8 gate measures real figures on the demo catalog: identical models score 1.0, perturbed ones fail."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from PIL import Image, ImageDraw

from export.int8_gate import (
    _CLICK_AT,
    THRESHOLDS,
    TRYON_THRESHOLD,
    CatalogGate,
    demo_sample,
    mask_iou,
    topk_overlap,
)
from snapfit import contract, demo_catalog

GATED = (contract.SAM_ENCODER, contract.SAM_DECODER, contract.CLIP_IMAGE, contract.CLIP_TEXT,
         contract.TRYON_CLASSIFIER)


@pytest.fixture(scope="module")
def sample():
    return demo_sample(count=32)


def _perturbed_copy(repository: Path, destination: Path, model: str, relative_noise: float) -> Path:
    """`repository` copied to `destination`, with `model`'s float weights multiplied by 1 + noise."""
    shutil.copytree(repository, destination)
    path = destination / model / "1" / "model.onnx"
    graph = onnx.load(str(path))
    rng = np.random.default_rng(0)
    for tensor in graph.graph.initializer:
        values = numpy_helper.to_array(tensor)
        if values.dtype == np.float32 and values.size >= 64:
            noisy = values * (1 + relative_noise * rng.standard_normal(values.shape)).astype(np.float32)
            tensor.CopyFrom(numpy_helper.from_array(noisy, tensor.name))
    onnx.save(graph, str(path))
    return destination


def test_identical_exports_score_one_and_pass_every_gate(tiny_repository, sample):
    gate = CatalogGate(tiny_repository, tiny_repository, sample, sam_photos=3)
    for model in GATED:
        result = gate.gate(model)
        assert result.value == pytest.approx(1.0), model
        assert result.passed and result.samples > 0
        assert result.to_dict()["threshold"] == THRESHOLDS[result.metric]


def test_a_perturbed_clip_text_tower_fails_its_top10_overlap(tiny_repository, sample, tmp_path):
    perturbed = _perturbed_copy(tiny_repository, tmp_path / "int8", contract.CLIP_TEXT, 0.5)
    result = CatalogGate(tiny_repository, perturbed, sample).gate(contract.CLIP_TEXT)
    assert result.metric == "top10_overlap" and result.samples == len(sample.text_queries)
    assert result.value < THRESHOLDS["top10_overlap"] and not result.passed


def test_a_perturbed_sam_decoder_fails_its_best_mask_iou(tiny_repository, sample, tmp_path):
    perturbed = _perturbed_copy(tiny_repository, tmp_path / "int8", contract.SAM_DECODER, 1.0)
    result = CatalogGate(tiny_repository, perturbed, sample, sam_photos=3).gate(contract.SAM_DECODER)
    assert result.samples == 3 and result.value < THRESHOLDS["best_mask_iou"] and not result.passed
    assert result.to_dict()["min_iou"] <= result.value


def test_topk_overlap_counts_shared_results_and_can_leave_the_query_out():
    gallery = np.eye(12, dtype=np.float32)
    assert topk_overlap(gallery[:2], gallery, gallery[:2], gallery, k=3) == pytest.approx(1.0)
    swapped = gallery[:, ::-1].copy()  # every item embedded elsewhere: no shared results among the top 1
    assert topk_overlap(gallery[:1], gallery, gallery[:1], swapped, k=1) == 0.0
    # with itself left out, query 0 of an identity gallery ranks the others by index (stable sort)
    assert topk_overlap(gallery, gallery, gallery, gallery, k=10, leave_one_out=True) == pytest.approx(1.0)


def test_mask_iou_of_empty_masks_is_one():
    empty = np.zeros((4, 4), dtype=bool)
    half = empty.copy()
    half[:2] = True
    assert mask_iou(empty, empty) == 1.0
    assert mask_iou(half, np.ones((4, 4), dtype=bool)) == 0.5


def test_the_demo_sample_is_deterministic_and_queries_names_and_tags(sample):
    again = demo_sample.__wrapped__(count=32)
    assert all(np.array_equal(a, b) for a, b in zip(sample.photos, again.photos))
    assert "red" in sample.text_queries and sample.names[0] in sample.text_queries
    assert any(g is None for g in sample.garments) and sum(g is not None for g in sample.garments) > 20


@pytest.mark.parametrize("garment", list(demo_catalog.GARMENTS))
def test_the_click_lands_inside_the_garment_even_when_it_is_shifted(garment):
    size = 200
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).polygon([(x * size, y * size) for x, y in demo_catalog._OUTLINES[garment]], fill=255)
    x, y = _CLICK_AT.get(garment, (0.5, 0.5))
    for dx in (-0.04, 0, 0.04):
        for dy in (-0.04, 0, 0.04):
            assert mask.getpixel((int((x + dx) * size), int((y + dy) * size))) == 255, (garment, dx, dy)


def test_the_classifier_gate_uses_the_orchestrators_tryon_threshold():
    from orchestrator.settings import CatalogSettings

    assert CatalogSettings().tryon_threshold == TRYON_THRESHOLD
