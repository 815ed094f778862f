"""`snapfit up --profile P` serves P's models: parity.json records each export's profile, models of another
profile are exported again, and a model whose profile is unknown is refused rather than overwritten."""

from __future__ import annotations

import json
import shutil

import pytest
import typer

from export.errors import ExportError
from export.repository import exports_to_refresh, recorded_profile
from snapfit import contract


@pytest.fixture
def repository(tiny_repository, tmp_path):
    copy = tmp_path / "repo"
    shutil.copytree(tiny_repository, copy, symlinks=True)
    return copy


def test_every_export_records_its_profile(tiny_repository):
    assert {model: recorded_profile(tiny_repository, model) for model in contract.ONNX_MODELS} == \
        dict.fromkeys(contract.ONNX_MODELS, "tiny")


def test_a_repository_exported_with_the_served_profile_needs_nothing(repository):
    assert exports_to_refresh(repository, "tiny") == {}


def test_models_of_another_profile_and_missing_ones_are_listed_with_the_reason(repository):
    (repository / "clip_text" / "1" / "model.onnx").unlink()
    refresh = exports_to_refresh(repository, "base")
    assert refresh == {**dict.fromkeys(contract.ONNX_MODELS, "exported with the tiny profile"),
                       "clip_text": "not exported yet"}


def test_a_model_without_a_recorded_profile_is_refused_not_overwritten(repository):
    parity = repository / "sam_encoder" / "1" / "parity.json"
    report = json.loads(parity.read_text())
    del report["profile"]
    parity.write_text(json.dumps(report))
    with pytest.raises(ExportError, match="sam_encoder holds a model.onnx without a recorded profile"):
        exports_to_refresh(repository, "base")


def test_up_exports_what_the_profile_lacks_before_starting(repository, monkeypatch):
    from snapfit.cli import serve_cmd

    exported = []
    monkeypatch.setattr("export.runner.export_models", lambda profile, **kwargs: exported.append((profile, kwargs)))
    serve_cmd._export_what_the_profile_lacks("base", repository)
    assert [(profile, kwargs["only"]) for profile, kwargs in exported] == [("base", list(contract.ONNX_MODELS))]

    exported.clear()
    serve_cmd._export_what_the_profile_lacks("tiny", repository)
    assert exported == []


def test_without_a_profile_up_serves_what_is_there_and_exports_only_missing_models(repository, monkeypatch):
    from snapfit.cli import serve_cmd

    exported = []
    monkeypatch.setattr("export.runner.export_models", lambda profile, **kwargs: exported.append((profile, kwargs)))
    parity = repository / "clip_image" / "1" / "parity.json"
    parity.write_text(json.dumps({**json.loads(parity.read_text()), "profile": "base"}))  # as if a base export
    serve_cmd._export_what_the_profile_lacks(None, repository)
    assert exported == []
    (repository / "clip_text" / "1" / "model.onnx").unlink()
    serve_cmd._export_what_the_profile_lacks(None, repository)
    assert [(profile, kwargs["only"]) for profile, kwargs in exported] == [("tiny", ["clip_text"])]


def test_an_export_of_the_users_own_checkpoint_is_never_overwritten(repository):
    parity = repository / "tryon_classifier" / "1" / "parity.json"
    parity.write_text(json.dumps({**json.loads(parity.read_text()), "profile": "base",
                                  "source": "/models/my_classifier.pt"}))
    with pytest.raises(ExportError, match="exported from /models/my_classifier.pt with the base profile; serving the "
                                          "tiny profile would overwrite it"):
        exports_to_refresh(repository, "tiny")
    assert "tryon_classifier" not in exports_to_refresh(repository, "base")


def test_up_stops_with_the_message_for_an_unknown_profile(repository):
    from snapfit.cli import serve_cmd

    (repository / "clip_image" / "1" / "parity.json").unlink()
    with pytest.raises(typer.Exit) as stopped:
        serve_cmd._export_what_the_profile_lacks("base", repository)
    assert stopped.value.exit_code == 1


def record(repository, model: str, **fields) -> None:
    parity = repository / model / "1" / "parity.json"
    parity.write_text(json.dumps({**json.loads(parity.read_text()), **fields}))


DEMO_MODELS = ["clip_image", "clip_text", "tryon_classifier"]


def test_the_demo_exports_its_trained_clip_and_classifier_over_random_weights_and_keeps_the_rest(repository):
    refresh = exports_to_refresh(repository, "tiny", demo_weights="key-1")
    assert refresh == dict.fromkeys(DEMO_MODELS, "holds random weights; the demo trains its own")
    for model in DEMO_MODELS:
        record(repository, model, source="/cache/key-1/clip.pt", demo_weights="key-1")
    assert exports_to_refresh(repository, "tiny", demo_weights="key-1") == {}
    assert exports_to_refresh(repository, None, demo_weights="key-1") == {}
    # retrained (another catalog, or other code): exported again
    assert set(exports_to_refresh(repository, "tiny", demo_weights="key-2")) == set(DEMO_MODELS)


def test_serving_a_profile_replaces_demo_weights_and_serving_what_is_there_keeps_them(repository):
    record(repository, "clip_image", profile="base", source="/cache/key-1/clip.pt", demo_weights="key-1")
    assert exports_to_refresh(repository, None) == {}
    assert exports_to_refresh(repository, "tiny") == {
        "clip_image": "holds the demo's weights, which know only the synthetic catalog"}


def test_the_demo_serves_the_users_own_checkpoint_export_rather_than_its_weights(repository):
    record(repository, "tryon_classifier", profile="base", source="/models/my_classifier.pt")
    refresh = exports_to_refresh(repository, "base", demo_weights="key-1")
    assert "tryon_classifier" not in refresh and {"clip_image", "clip_text"} <= set(refresh)


def test_up_exports_the_demo_weights_in_fp32_and_the_other_models_in_the_profile(repository, monkeypatch, tmp_path):
    from export.demo_models import DemoWeights
    from snapfit.cli import serve_cmd

    exported = []
    monkeypatch.setattr("export.runner.export_models", lambda profile, **kwargs: exported.append((profile, kwargs)))
    (repository / "sam_decoder" / "1" / "model.onnx").unlink()
    demo = DemoWeights("key-1", tmp_path / "key-1")
    serve_cmd._export_what_the_profile_lacks("tiny", repository, demo)
    assert [(profile, kwargs["only"]) for profile, kwargs in exported] == [("tiny", ["sam_decoder"]),
                                                                          ("tiny", DEMO_MODELS)]
    demo_export = exported[1][1]
    assert demo_export["precision"] == "fp32" and demo_export["demo_weights"] == "key-1"
    assert demo_export["clip_pretrained"] == str(demo.clip.resolve())
    assert demo_export["classifier_checkpoint"] == demo.classifier.resolve()
