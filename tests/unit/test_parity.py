"""Parity metrics and the report: thresholds are enforced in the direction each metric needs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from export.errors import ExportParityError
from export.parity import ParityReport, check_thresholds, mask_iou, max_abs_diff, min_cosine, topk_overlap


def test_metrics_on_identical_outputs_are_perfect():
    a = np.random.default_rng(0).standard_normal((5, 16)).astype(np.float32)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    assert max_abs_diff(a, a) == 0.0
    assert min_cosine(a, a) == pytest.approx(1.0)
    assert topk_overlap(a, a, a, a, k=3) == 1.0
    assert mask_iou(a.reshape(5, 4, 4), a.reshape(5, 4, 4)) == 1.0


def test_mismatched_shapes_fail_every_metric():
    a, b = np.zeros((2, 3)), np.zeros((3, 3))
    assert max_abs_diff(a, b) == float("inf")
    assert min_cosine(a, b) == float("-inf")
    assert mask_iou(a, b) == 0.0


def test_mask_iou_compares_binarised_logits():
    reference = np.full((1, 4, 4), -1.0)
    reference[0, :2] = 1.0  # 8 pixels on
    candidate = np.full((1, 4, 4), -1.0)
    candidate[0, :1] = 2.0  # 4 of them
    assert mask_iou(reference, candidate) == pytest.approx(0.5)


def test_a_missed_threshold_raises_and_names_the_metric(tmp_path):
    report = ParityReport(model="clip_text", precision="int8", source="random-init", architecture="tiny")
    report.add("cosine", 0.98, 0.99, higher_is_better=True)
    report.add("max_abs_diff", 1e-6, 1e-4, higher_is_better=False)
    with pytest.raises(ExportParityError, match=r"cosine=0\.98 \(needs >= 0\.99\)"):
        check_thresholds(report)
    report.write(tmp_path / "parity.json")
    written = json.loads((tmp_path / "parity.json").read_text())
    assert written["passed"] is False and written["metrics"]["max_abs_diff"]["passed"] is True


def test_nan_never_passes():
    report = ParityReport(model="m", precision="fp32", source="x", architecture="y")
    report.add("max_abs_diff", float("nan"), 1.0, higher_is_better=False)
    assert not report.passed


def test_a_report_without_metrics_is_refused():
    with pytest.raises(ExportParityError, match="no parity metric"):
        check_thresholds(ParityReport(model="m", precision="fp32", source="x", architecture="y"))
