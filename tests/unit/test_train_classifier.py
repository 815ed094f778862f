"""`snapfit train-classifier` on tiny synthetic datasets: metrics, checkpoints the exporter loads, bad data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from export.classifier import export_classifier, torch_classifier
from export.classifier_model import build_network, load_weights
from export.errors import ExportError
from export.labelled_images import DatasetError, find_labelled_images
from export.onnx_io import open_session, run_session
from export.repository import copy_configs
from export.request import ExportRequest
from export.train_classifier import binary_metrics, stratified_split, train
from snapfit.preprocessing.classifier import resize_for_classifier


def catalogue_photo(rng: np.random.Generator) -> np.ndarray:
    """A 'usable' photo: one garment-like coloured shape on a white studio background, portrait aspect."""
    height, width = int(rng.integers(240, 320)), int(rng.integers(160, 220))
    image = np.full((height, width, 3), 255, dtype=np.uint8)
    cx, top = width // 2 + int(rng.integers(-10, 10)), int(rng.integers(20, 50))
    half = int(rng.integers(30, 50))
    image[top:top + height // 2, cx - half:cx + half] = rng.integers(0, 200, size=3)
    image[top:top + height // 8, cx - 2 * half:cx + 2 * half] = image[top, cx]
    return image


def busy_scene(rng: np.random.Generator) -> np.ndarray:
    """An 'unusable' photo: a cluttered, noisy scene with no clear product, landscape aspect."""
    height, width = int(rng.integers(160, 220)), int(rng.integers(240, 320))
    blocks = rng.integers(0, 256, size=(6, 6, 3)).repeat(height // 6 + 1, 0).repeat(width // 6 + 1, 1)[:height, :width]
    return (blocks + rng.normal(0, 50, size=(height, width, 3))).clip(0, 255).astype(np.uint8)


def write_folder_dataset(root: Path, per_class: int = 20, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for name, make in (("usable", catalogue_photo), ("unusable", busy_scene)):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(make(rng)).save(root / name / f"{i:03d}.{'png' if i % 2 else 'jpg'}")
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short training run on the synthetic folder dataset, shared by the tests that inspect its outputs."""
    root = tmp_path_factory.mktemp("trained")
    data = write_folder_dataset(root / "data")
    return train(data, root / "runs", variant="tiny", epochs=2, batch_size=8, lr=3e-3, progress=False)


def test_training_writes_a_checkpoint_and_metrics_json_with_held_out_scores(trained):
    report = trained
    assert report.checkpoint.is_file() and report.checkpoint.name == "tryon_classifier.pt"  # output was a folder
    assert (report.train_images, report.val_images) == (32, 8)
    m = report.metrics
    for value in (m.accuracy, m.precision, m.recall, m.f1):
        assert 0.0 <= value <= 1.0
    assert m.true_positives + m.false_positives + m.true_negatives + m.false_negatives == 8
    assert m.true_positives + m.false_negatives == 4  # the split is stratified: 4 usable photos held out
    saved = json.loads(report.metadata.read_text())
    assert report.metadata == report.checkpoint.with_suffix(".json")
    assert saved["variant"] == "tiny" and saved["class_names"] == ["unusable", "usable"]
    assert saved["held_out"]["f1"] == pytest.approx(m.f1) and len(saved["history"]) == 2
    assert "F1" in str(report)


def test_training_learns_the_separable_synthetic_task(trained):
    assert trained.metrics.accuracy >= 0.75, trained.history


def test_a_trained_checkpoint_exports_with_passing_parity(trained, tmp_path):
    repository = copy_configs(tmp_path / "repo")
    request = ExportRequest.for_profile("tiny", repository, classifier_checkpoint=trained.checkpoint)
    report = export_classifier(request)

    assert report.passed and report.source == str(trained.checkpoint)
    photos = np.stack([resize_for_classifier(make(np.random.default_rng(99)))
                       for make in (catalogue_photo, busy_scene)])
    session, _ = open_session(request.version_dir("tryon_classifier") / "model.onnx")
    served = run_session(session, {"image": photos})["probabilities"]
    with torch.no_grad():
        expected = torch_classifier("tiny", trained.checkpoint, request.seed)(torch.from_numpy(photos)).numpy()
    np.testing.assert_allclose(served, expected, atol=1e-5)


def test_a_trained_checkpoint_fits_only_its_own_variant(trained):
    with pytest.raises(ExportError, match="trained as 'tiny'"):
        load_weights(build_network("efficientnet_v2_s"), "efficientnet_v2_s", trained.checkpoint)


def test_an_imagenet_style_head_is_replaced_when_fine_tuning_starts_from_it(tmp_path):
    torch.manual_seed(0)
    state = build_network("tiny").state_dict()
    state["classifier.1.weight"], state["classifier.1.bias"] = torch.randn(1000, 128), torch.randn(1000)
    torch.save(state, tmp_path / "imagenet.pt")
    network = build_network("tiny")

    load_weights(network, "tiny", tmp_path / "imagenet.pt", allow_new_head=True)
    assert torch.equal(network.state_dict()["features.0.0.weight"], state["features.0.0.weight"])
    with pytest.raises(ExportError, match="wrong shape: classifier.1.bias, classifier.1.weight"):
        load_weights(build_network("tiny"), "tiny", tmp_path / "imagenet.pt")


def test_csv_rows_that_are_broken_are_skipped_and_reported(tmp_path):
    rng = np.random.default_rng(1)
    (tmp_path / "img").mkdir()
    rows = ["image,label"]
    for i in range(6):
        Image.fromarray(catalogue_photo(rng)).save(tmp_path / "img" / f"u{i}.png")
        Image.fromarray(busy_scene(rng)).save(tmp_path / "img" / f"n{i}.jpg")
        rows += [f"img/u{i}.png,{['1', 'usable', 'TRUE'][i % 3]}", f"img/n{i}.jpg,{['0', 'unusable', 'no'][i % 3]}"]
    (tmp_path / "img" / "broken.jpg").write_bytes(b"truncated")
    rows += ["img/missing.png,1", "img/u0.png,maybe", ",0", "img/broken.jpg,0"]
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("\n".join(rows) + "\n")

    report = train(csv_path, tmp_path / "out.pt", variant="tiny", epochs=1, batch_size=4, progress=False)

    assert report.checkpoint == tmp_path / "out.pt" and (tmp_path / "out.json").is_file()
    assert report.train_images + report.val_images == 12
    assert len(report.skipped) == 4
    reasons = "\n".join(report.skipped)
    assert "line 14: image img/missing.png not found" in reasons
    assert "line 15: label 'maybe' is not one of" in reasons
    assert "line 16: empty image path" in reasons
    assert "broken.jpg: cannot decode" in reasons
    assert json.loads(report.metadata.read_text())["skipped"] == report.skipped


def test_a_dataset_with_only_one_class_raises_a_clear_error(tmp_path):
    rng = np.random.default_rng(2)
    (tmp_path / "usable").mkdir()
    for i in range(4):
        Image.fromarray(catalogue_photo(rng)).save(tmp_path / "usable" / f"{i}.png")
    with pytest.raises(DatasetError, match="only one class \\(4 usable\\)"):
        train(tmp_path, tmp_path / "out.pt", variant="tiny", epochs=1, progress=False)


def test_a_folder_without_class_subfolders_raises_a_clear_error(tmp_path):
    (tmp_path / "photos").mkdir()
    with pytest.raises(DatasetError, match="neither usable/ nor unusable/"):
        find_labelled_images(tmp_path)


def test_a_csv_without_the_expected_columns_raises_a_clear_error(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("file,class\na.jpg,1\n")
    with pytest.raises(DatasetError, match="needs 'image' and 'label' columns"):
        find_labelled_images(path)


def test_folder_names_are_case_insensitive_and_other_folders_are_noted(tmp_path):
    for folder in ("Usable/shoot1", "UNUSABLE", "misc"):
        (tmp_path / folder).mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "Usable" / "shoot1" / "a.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "UNUSABLE" / "b.jpg")
    (tmp_path / "UNUSABLE" / "notes.txt").write_text("not a photo")

    found = find_labelled_images(tmp_path)
    assert found.class_counts() == {"unusable": 1, "usable": 1}
    assert len(found.skipped) == 2 and "misc" in found.skipped[0] and "notes.txt" in found.skipped[1]


def test_the_held_out_split_is_stratified_and_seeded():
    labels = np.array([1] * 10 + [0] * 30)
    train_idx, val_idx = stratified_split(labels, 0.2, seed=3)
    assert sorted(np.concatenate([train_idx, val_idx]).tolist()) == list(range(40))
    assert (labels[val_idx] == 1).sum() == 2 and (labels[val_idx] == 0).sum() == 6
    assert np.array_equal(val_idx, stratified_split(labels, 0.2, seed=3)[1])
    assert not np.array_equal(val_idx, stratified_split(labels, 0.2, seed=4)[1])


def test_binary_metrics_count_usable_as_the_positive_class():
    truth = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    predicted = np.array([1, 1, 0, 0, 0, 1, 0, 1])
    m = binary_metrics(truth, predicted)
    assert (m.true_positives, m.false_positives, m.true_negatives, m.false_negatives) == (3, 1, 3, 1)
    assert (m.accuracy, m.precision, m.recall, m.f1) == (0.75, 0.75, 0.75, 0.75)
    assert binary_metrics(np.array([0, 0]), np.array([0, 0])).f1 == 0.0  # no positives: 0, not a division error


@pytest.mark.parametrize("kwargs, message", [
    ({"variant": "resnet"}, "unknown classifier variant"),
    ({"val_fraction": 1.0}, "val_fraction"),
    ({"epochs": 0}, "at least 1"),
])
def test_bad_arguments_are_rejected_before_reading_any_image(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        train(tmp_path / "does-not-matter", tmp_path / "out.pt", progress=False, **kwargs)
