"""The try-on-readiness classifier (torchvision EfficientNetV2) as the `tryon_classifier` ONNX model.

Triton contract:
- input  `image`: UINT8 [B, 384, 384, 3] RGB, letterboxed onto white by
  `snapfit.preprocessing.classifier.resize_for_classifier`;
- output `probabilities`: FP32 [B, 2] softmax; column 1 = P(product photo usable for try-on).
Cast, /255, ImageNet mean/std, HWC->CHW and softmax happen inside the graph (`TryOnClassifier`).
Weights: `request.choices.classifier_checkpoint` (written by `snapfit train-classifier`), else random.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from export.classifier_model import (
    TryOnClassifier,
    build_network,
    calibrate_batchnorm,
    load_weights,
    resolve_checkpoint,
    synthetic_photos,
)
from export.errors import ExportError
from export.onnx_io import export_module, run_session, staging_dir
from export.parity import ParityReport, max_abs_diff
from export.precision import Precision
from export.publish import publish
from export.request import ExportRequest
from snapfit import contract
from snapfit.preprocessing.classifier import CLASSIFIER_SIZE

log = logging.getLogger(__name__)

MODEL = contract.TRYON_CLASSIFIER
PARITY_IMAGES = 8  # half catalogue-like, half busy scenes
# Static int8 takes its activation ranges from photos of the same kind as the parity ones, but not the same
# photos, so parity measures how the calibration generalises.
CALIBRATION_IMAGES = 32
# Largest |p_onnx - p_torch| allowed per precision. fp32 must reproduce torch (measured <= 1e-6 on the tiny
# and full-size random models). int8/fp16 budgets sit above the measured drift (see the report in
# parity.json) but well below the gap that separates a confident decision from a coin flip. int8 measured 0.013
# on efficientnet_v2_s and 0.0095 on the tiny model (seed 0), the same on every CPU; on random weights other seeds
# exceed it with either int8 recipe (benchmarks/int8_recipes.py, docs/models.md), and the export then refuses.
PROBABILITY_TOLERANCE: dict[Precision, float] = {
    Precision.fp32: 1e-5,
    Precision.fp16: 1e-2,
    Precision.int8: 5e-2,
}

Step = Callable[[str], None]


def export_classifier(request: ExportRequest, step: Step = lambda s: None) -> ParityReport:
    """Exports `tryon_classifier` into `request.repository` after checking it against torch."""
    started = time.perf_counter()
    variant, checkpoint = request.choices.classifier_variant, request.choices.classifier_checkpoint
    step("building torch model")
    model = torch_classifier(variant, checkpoint, request.seed)
    report = ParityReport(model=MODEL, precision=request.precision.value,
                          source=str(resolve_checkpoint(checkpoint)) if checkpoint else "random-init",
                          architecture=f"torchvision {variant}, 2 classes, {CLASSIFIER_SIZE}x{CLASSIFIER_SIZE} "
                                       "uint8 HWC")
    images = synthetic_photos(PARITY_IMAGES, seed=request.seed + 1)
    with torch.no_grad():
        reference = model(torch.from_numpy(images)).numpy()
    with staging_dir(MODEL) as tmp:
        step("exporting")
        # a batch of 2 at trace time keeps the batch axis symbolic rather than specialised to 1
        fp32_path = export_module(model, (torch.from_numpy(images[:2]),), Path(tmp) / "model.onnx",
                                  input_names=["image"], output_names=["probabilities"],
                                  dynamic_axes={"image": {0: "batch"}, "probabilities": {0: "batch"}},
                                  opset=request.opset)
        step("checking parity")
        tolerance = PROBABILITY_TOLERANCE[request.precision]

        def measure(session, report: ParityReport) -> None:
            candidate = run_session(session, {"image": images})["probabilities"]
            add_parity_metrics(report, reference, candidate, tolerance)

        try:
            return publish(request, MODEL, fp32_path, report, measure, started, calibration_feeds(request))
        except ExportError:
            raise
        except Exception as exc:  # onnxruntime's own error types do not derive from a common base
            if request.precision is Precision.fp16:
                raise ExportError(f"{MODEL}: the fp16 variant could not be run by ONNX Runtime here ({exc}); "
                                  "verify fp16 with onnxruntime-gpu on a GPU machine") from exc
            raise


def calibration_feeds(request: ExportRequest) -> list[dict[str, np.ndarray]] | None:
    """CALIBRATION_IMAGES feeds of one 1x384x384x3 uint8 photo for static int8 quantisation; None otherwise.

    One photo per feed: calibrating efficientnet_v2_s on batches of 8 peaked at 8.8 GB RSS (2.3 GB one by one)
    and took longer; min/max ranges do not depend on the batching.
    """
    if request.precision is not Precision.int8:
        return None
    photos = synthetic_photos(CALIBRATION_IMAGES, seed=request.seed + 2000)
    return [{"image": photos[i:i + 1]} for i in range(CALIBRATION_IMAGES)]


def add_parity_metrics(report: ParityReport, reference: np.ndarray, candidate: np.ndarray, tolerance: float) -> None:
    """reference, candidate: Nx2 probabilities (torch, ONNX). Adds the two metrics `tryon_classifier` is held to.

    decision_agreement: share of images with the same usable/unusable call; an image torch itself places within
    `tolerance` of 0.5 counts as agreeing, since flipping it stays inside the probability budget.
    """
    report.add("probabilities_max_abs_diff", max_abs_diff(reference, candidate), tolerance, higher_is_better=False)
    if reference.shape != candidate.shape:
        report.add("decision_agreement", 0.0, 1.0, higher_is_better=True)
        return
    same = (reference[:, 1] >= 0.5) == (candidate[:, 1] >= 0.5)
    borderline = np.abs(reference[:, 1] - 0.5) <= tolerance
    report.add("decision_agreement", float(np.mean(same | borderline)), 1.0, higher_is_better=True)


def torch_classifier(variant: str, checkpoint: Path | None, seed: int) -> TryOnClassifier:
    """The eval-mode torch model an export is checked against (cached per variant, checkpoint file and seed)."""
    if checkpoint is None:
        return _cached_classifier(variant, None, seed)
    path = resolve_checkpoint(checkpoint)
    return _cached_classifier(variant, (str(path.resolve()), path.stat().st_mtime_ns), seed)


@functools.lru_cache(maxsize=4)
def _cached_classifier(variant: str, checkpoint_key: tuple[str, int] | None, seed: int) -> TryOnClassifier:
    torch.manual_seed(seed)
    model = TryOnClassifier(build_network(variant))
    if checkpoint_key is not None:
        load_weights(model.network, variant, Path(checkpoint_key[0]))
    else:
        if variant != "tiny":
            logging.warning("tryon_classifier: no classifier checkpoint given, exporting %s with RANDOM weights; "
                            "its probabilities will be meaningless. Train one with `snapfit train-classifier` "
                            "and pass --classifier-checkpoint.", variant)
        calibrate_batchnorm(model, synthetic_photos(16, seed=seed + 1000))
    return model.eval()
