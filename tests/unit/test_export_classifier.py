"""Exporting `tryon_classifier` (tiny EfficientNetV2) with its parity check against torch."""

from __future__ import annotations

import copy
import json

import numpy as np
import onnx
import pytest
import torch

import export.classifier as classifier
from export.classifier import PROBABILITY_TOLERANCE, export_classifier, torch_classifier
from export.classifier_model import build_network, synthetic_photos
from export.errors import ExportError, ExportParityError
from export.onnx_io import open_session, run_session
from export.precision import Precision
from export.repository import copy_configs
from export.request import ExportRequest
from snapfit.preprocessing.classifier import resize_for_classifier


def tiny_request(tmp_path, **overrides) -> ExportRequest:
    return ExportRequest.for_profile("tiny", copy_configs(tmp_path / "repo"), **overrides)


def new_photos(count: int, seed: int) -> np.ndarray:
    """Nx384x384x3 uint8: smooth gradients of varied aspect ratios, letterboxed like the serving client does."""
    rng = np.random.default_rng(seed)
    photos = []
    for _ in range(count):
        height, width = int(rng.integers(200, 600)), int(rng.integers(200, 600))
        yy, xx = np.mgrid[0:height, 0:width]
        base = np.stack([np.sin(xx / rng.uniform(10, 60) + c) * np.cos(yy / rng.uniform(10, 60)) for c in range(3)], -1)
        photos.append(resize_for_classifier((base * 120 + 128).clip(0, 255).astype(np.uint8)))
    return np.stack(photos)


def weight_bytes(graph: onnx.GraphProto) -> int:
    return sum(onnx.numpy_helper.to_array(t).nbytes for t in graph.initializer)


def test_export_writes_model_and_passing_parity_json(tmp_path):
    steps = []
    request = tiny_request(tmp_path)
    report = export_classifier(request, step=steps.append)

    version = request.version_dir("tryon_classifier")
    assert (version / "model.onnx").is_file()
    saved = json.loads((version / "parity.json").read_text())
    assert saved["passed"] is True and saved["precision"] == "fp32" and saved["source"] == "random-init"
    assert set(saved["metrics"]) == {"probabilities_max_abs_diff", "decision_agreement"}
    assert report.metrics["probabilities_max_abs_diff"].value <= 1e-5
    assert steps == ["building torch model", "exporting", "checking parity"]
    session, _ = open_session(version / "model.onnx")
    assert [(i.name, i.type, i.shape[1:]) for i in session.get_inputs()] == [("image", "tensor(uint8)", [384, 384, 3])]
    assert [(o.name, o.type, o.shape[1:]) for o in session.get_outputs()] == [("probabilities", "tensor(float)", [2])]


def test_exported_model_matches_torch_on_new_photos_at_another_batch_size(tmp_path):
    request = tiny_request(tmp_path)
    export_classifier(request)
    photos = new_photos(3, seed=123)

    session, _ = open_session(request.version_dir("tryon_classifier") / "model.onnx")
    onnx_probabilities = run_session(session, {"image": photos})["probabilities"]
    with torch.no_grad():
        torch_probabilities = torch_classifier("tiny", None, request.seed)(torch.from_numpy(photos)).numpy()

    assert onnx_probabilities.shape == (3, 2)
    np.testing.assert_allclose(onnx_probabilities, torch_probabilities, atol=1e-5)
    np.testing.assert_allclose(onnx_probabilities.sum(axis=1), 1.0, atol=1e-6)
    # the BatchNorm calibration of random weights makes images score differently, so parity is not vacuous
    assert np.ptp(torch_probabilities[:, 1]) > 1e-3


@pytest.mark.parametrize("precision", [Precision.int8, Precision.fp16])
def test_reduced_precision_variants_export_with_their_own_thresholds(tmp_path, precision):
    request = tiny_request(tmp_path, precision=precision)
    report = export_classifier(request)

    saved = json.loads((request.version_dir("tryon_classifier") / "parity.json").read_text())
    assert saved["precision"] == precision.value and saved["passed"] is True
    diff = saved["metrics"]["probabilities_max_abs_diff"]
    assert diff["threshold"] == PROBABILITY_TOLERANCE[precision] and 0 < diff["value"] <= diff["threshold"]
    assert report.metrics["decision_agreement"].value == 1.0


def test_int8_is_static_qdq_calibrated_on_other_photos_than_the_parity_ones(tmp_path):
    fp32_request = tiny_request(tmp_path / "fp32")
    export_classifier(fp32_request)
    request = tiny_request(tmp_path / "int8", precision=Precision.int8)
    report = export_classifier(request)

    model_path = request.version_dir("tryon_classifier") / "model.onnx"
    graph = onnx.load(str(model_path)).graph
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in graph.node}
    # the uint8 image goes straight into the in-graph Cast, and the probabilities leave Softmax in fp32
    assert [i.type.tensor_type.elem_type for i in graph.input] == [onnx.TensorProto.UINT8]
    assert [n.op_type for n in graph.node if "image" in n.input] == ["Cast"]
    assert [n.op_type for n in graph.node if "probabilities" in n.output] == ["Softmax"]
    # weights only: on a model this small the QDQ nodes and their names outweigh the 4x smaller weights
    fp32_graph = onnx.load(str(fp32_request.version_dir("tryon_classifier") / "model.onnx")).graph
    assert weight_bytes(graph) < weight_bytes(fp32_graph) / 2
    assert report.passed and report.metrics["decision_agreement"].value == 1.0
    feeds = classifier.calibration_feeds(request)
    calibration = np.concatenate([f["image"] for f in feeds])
    assert calibration.shape == (classifier.CALIBRATION_IMAGES, 384, 384, 3) and calibration.dtype == np.uint8
    parity = synthetic_photos(classifier.PARITY_IMAGES, seed=request.seed + 1)
    assert not any((calibration == photo).all(axis=(1, 2, 3)).any() for photo in parity)
    assert classifier.calibration_feeds(tiny_request(tmp_path / "fp16", precision=Precision.fp16)) is None


def test_a_perturbed_export_fails_parity_and_installs_nothing(tmp_path, monkeypatch):
    real_export = classifier.export_module

    def export_with_a_bias(module, *args, **kwargs):
        tampered = copy.deepcopy(module)
        with torch.no_grad():
            tampered.network.classifier[1].bias += torch.tensor([0.5, -0.5])
        return real_export(tampered, *args, **kwargs)

    monkeypatch.setattr(classifier, "export_module", export_with_a_bias)
    request = tiny_request(tmp_path)
    with pytest.raises(ExportParityError, match="probabilities_max_abs_diff"):
        export_classifier(request)
    assert not (request.version_dir("tryon_classifier") / "model.onnx").exists()


def test_a_missing_checkpoint_raises_export_error(tmp_path):
    with pytest.raises(ExportError, match="does not exist"):
        export_classifier(tiny_request(tmp_path, classifier_checkpoint=tmp_path / "nope.pt"))


def test_a_checkpoint_of_another_architecture_raises_a_clear_export_error(tmp_path):
    torch.manual_seed(0)
    state = build_network("tiny").state_dict()
    state["classifier.1.weight"] = torch.zeros(2, 64)  # a different width
    del state["features.0.0.weight"]
    path = tmp_path / "other.pt"
    torch.save(state, path)
    path.with_suffix(".json").write_text(json.dumps({"variant": "efficientnet_v2_s"}))

    with pytest.raises(ExportError, match="does not fit the 'tiny' classifier.*missing: features.0.0.weight"
                                          ".*wrong shape: classifier.1.weight.*trained as 'efficientnet_v2_s'"):
        export_classifier(tiny_request(tmp_path, classifier_checkpoint=path))


def test_a_file_that_is_not_a_state_dict_raises_export_error(tmp_path):
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"definitely not a torch file")
    with pytest.raises(ExportError, match="cannot read classifier checkpoint"):
        export_classifier(tiny_request(tmp_path, classifier_checkpoint=path))


def test_an_unknown_variant_raises_export_error(tmp_path):
    with pytest.raises(ExportError, match="unknown classifier variant 'resnet50'"):
        export_classifier(tiny_request(tmp_path, classifier_variant="resnet50"))


def test_random_weights_are_deterministic_per_seed():
    a = torch_classifier("tiny", None, seed=5).state_dict()
    classifier._cached_classifier.cache_clear()
    b = torch_classifier("tiny", None, seed=5).state_dict()
    c = torch_classifier("tiny", None, seed=6).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
