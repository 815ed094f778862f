"""The demo's trained weights are cached by what made them: the same catalog and code reuse them, anything else
trains afresh; a stopped training leaves no entry that looks finished. (Training itself: test_demo_search.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from export import demo_models
from export.demo_models import cached_demo_weights, demo_weights_key, ensure_demo_weights
from snapfit.demo_catalog import generate_catalog


@pytest.fixture
def catalog(tmp_path) -> Path:
    return generate_catalog(tmp_path / "catalog", count=12)


@pytest.fixture
def trainings(monkeypatch) -> list[str]:
    """Replaces both trainings with writers of placeholder files; lists what was trained."""
    trained: list[str] = []

    def fake_clip(csv_path, output, **recipe):
        trained.append("clip")
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_bytes(b"clip")
        return "clip report"

    def fake_classifier(data, output, **recipe):
        trained.append("classifier")
        Path(output).write_bytes(b"classifier")
        return "classifier report"

    monkeypatch.setattr("export.train_clip.train_clip", fake_clip)
    monkeypatch.setattr("export.train_classifier.train", fake_classifier)
    monkeypatch.setattr(demo_models, "catalog_search_quality", lambda clip, csv: demo_models.CatalogSearchQuality(
        {"en": 0.0, "ko": 0.0}, ("red dress", 0.0), 0.0, 0.0))
    return trained


def test_the_same_catalog_and_code_reuse_the_cached_weights(catalog, tmp_path, trainings):
    first = ensure_demo_weights(catalog, tmp_path / "cache", say=lambda line: None)
    assert trainings == ["clip", "classifier"] and first.clip.read_bytes() == b"clip"
    said: list[str] = []
    again = ensure_demo_weights(catalog, tmp_path / "cache", say=said.append)
    assert again == first and trainings == ["clip", "classifier"]
    assert "reusing" in said[0]


def test_another_catalog_or_recipe_trains_afresh_and_replaces_the_old_entry(catalog, tmp_path, trainings,
                                                                             monkeypatch):
    first = ensure_demo_weights(catalog, tmp_path / "cache", say=lambda line: None)
    other = generate_catalog(tmp_path / "other", count=13)
    assert demo_weights_key(other) != first.key
    monkeypatch.setitem(demo_models.CLIP_RECIPE, "epochs", 99)
    assert demo_weights_key(catalog) != first.key
    second = ensure_demo_weights(catalog, tmp_path / "cache", say=lambda line: None)
    assert trainings == ["clip", "classifier"] * 2
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [second.key]


def test_a_training_stopped_half_way_leaves_no_cached_entry(catalog, tmp_path, trainings, monkeypatch):
    def stopped(data, output, **recipe):
        raise KeyboardInterrupt

    monkeypatch.setattr("export.train_classifier.train", stopped)
    with pytest.raises(KeyboardInterrupt):
        ensure_demo_weights(catalog, tmp_path / "cache", say=lambda line: None)
    assert cached_demo_weights(catalog, tmp_path / "cache") is None


def test_a_changed_photo_changes_the_key(catalog):
    key = demo_weights_key(catalog)
    photo = sorted((catalog.parent / "images").iterdir())[0]
    photo.write_bytes(photo.read_bytes() + b"\0")
    assert demo_weights_key(catalog) != key


def test_the_classifier_trains_on_every_non_product_photo_and_three_product_photos_each(tmp_path):
    import csv

    catalog = generate_catalog(tmp_path / "catalog", count=60)
    subset = demo_models._classifier_labels(catalog.parent / "tryon_labels.csv", tmp_path / "subset.csv")
    with subset.open(encoding="utf-8") as file:
        labels = [row["label"] for row in csv.DictReader(file)]
    unusable = labels.count("unusable")
    assert unusable == 6 and labels.count("usable") == 3 * unusable
    with subset.open(encoding="utf-8") as file:
        assert all(Path(row["image"]).is_absolute() and Path(row["image"]).is_file() for row in csv.DictReader(file))
