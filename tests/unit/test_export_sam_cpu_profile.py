"""The cpu profile: MobileSAM's TinyViT image encoder exported as `sam_encoder`, feeding the unchanged sam_decoder."""

import json
import logging

import numpy as np
import pytest
import torch

from export import sam
from export.errors import ExportError
from export.onnx_io import open_session, run_session
from export.repository import copy_configs, exports_to_refresh
from export.request import PROFILE_DEFAULTS, PROFILES, ExportRequest
from export.sam_models import build_sam
from snapfit import contract
from snapfit.preprocessing.sam import prompt_arrays, resize_for_encoder


@pytest.fixture(scope="module")
def cpu_repo(tmp_path_factory):
    """sam_encoder and sam_decoder of the cpu profile as it ships (full-size MobileSAM, random weights): ~20 s."""
    repo = copy_configs(tmp_path_factory.mktemp("sam_cpu") / "repo")
    request = ExportRequest.for_profile("cpu", repo)
    return repo, {"sam_encoder": sam.export_encoder(request), "sam_decoder": sam.export_decoder(request)}


def test_cpu_profile_uses_mobile_sam_and_keeps_base_for_the_other_models():
    cpu, base = PROFILE_DEFAULTS["cpu"], PROFILE_DEFAULTS["base"]
    assert "cpu" in PROFILES and cpu.sam_variant == "mobile_sam"
    assert (cpu.clip_model, cpu.classifier_variant) == (base.clip_model, base.classifier_variant)


@pytest.mark.parametrize("model", ["sam_encoder", "sam_decoder"])
def test_cpu_profile_export_passes_parity_and_records_profile_cpu(cpu_repo, model):
    repo, reports = cpu_repo
    recorded = json.loads((repo / model / "1" / "parity.json").read_text())
    assert reports[model].passed and recorded["passed"]
    assert recorded["profile"] == "cpu" and recorded["source"] == "random-init"
    assert "MobileSAM TinyViT" in recorded["architecture"]


def test_cpu_profile_encoder_output_feeds_the_decoder_contract(cpu_repo):
    repo, _ = cpu_repo
    encoder = open_session(repo / "sam_encoder" / "1" / "model.onnx")[0]
    decoder = open_session(repo / "sam_decoder" / "1" / "model.onnx")[0]
    rng = np.random.default_rng(3)
    orig_hw = (600, 900)
    images = np.stack([resize_for_encoder(sam.synthetic_image(rng, *orig_hw))] * 2)  # a batch of two
    embeddings = run_session(encoder, {"image": images})["image_embeddings"]
    side, channels = contract.SAM_EMBEDDING_SIZE, contract.SAM_EMBEDDING_CHANNELS
    assert embeddings.shape == (2, channels, side, side) and embeddings.dtype == np.float32
    np.testing.assert_allclose(embeddings[0], embeddings[1], atol=1e-5)  # the batch axis is really dynamic
    feeds = {"image_embeddings": embeddings[:1],
             **prompt_arrays(points=[[450, 300]], labels=[1], box=None, orig_hw=orig_hw)}
    outputs = run_session(decoder, feeds)
    assert outputs["masks"].shape == (1, contract.SAM_MASKS, *orig_hw)
    assert outputs["iou_predictions"].shape == (1, contract.SAM_MASKS)


def test_mobile_sam_without_a_checkpoint_warns_of_random_weights(caplog):
    with caplog.at_level(logging.WARNING, logger="export.sam_models"):
        build_sam("mobile_sam", None, seed=7)
    assert "SAM mobile_sam: no checkpoint given" in caplog.text and "RANDOM weights" in caplog.text


def test_mobile_sam_checkpoint_loads_into_encoder_and_decoder(tmp_path):
    trained = build_sam("tiny_mobile_sam", None, seed=5)
    path = tmp_path / "mobile_sam.pt"
    torch.save(trained.state_dict(), path)
    image = torch.randn(1, 3, contract.SAM_FRAME, contract.SAM_FRAME)
    with torch.no_grad():
        expected = trained.image_encoder(image)
        loaded = build_sam("tiny_mobile_sam", path, seed=0)
        assert loaded is not trained
        # eval() after loading: TinyViT caches its attention biases when switched to eval mode
        torch.testing.assert_close(loaded.image_encoder(image), expected, rtol=0, atol=0)
        assert not torch.equal(build_sam("tiny_mobile_sam", None, seed=0).image_encoder(image), expected)
    assert torch.equal(loaded.mask_decoder.iou_token.weight, trained.mask_decoder.iou_token.weight)


def test_a_vit_checkpoint_does_not_load_into_mobile_sam(tmp_path):
    path = tmp_path / "sam_tiny.pth"
    torch.save(build_sam("tiny", None, 0).state_dict(), path)
    with pytest.raises(ExportError, match="does not fit the tiny_mobile_sam architecture"):
        build_sam("tiny_mobile_sam", path)


def test_serving_the_cpu_profile_refuses_to_overwrite_a_checkpoint_export(cpu_repo, tmp_path):
    repo, _ = cpu_repo
    parity = repo / "sam_encoder" / "1" / "parity.json"
    report = json.loads(parity.read_text())
    assert "sam_encoder" not in exports_to_refresh(repo, "cpu")
    assert exports_to_refresh(repo, "base")["sam_encoder"] == "exported with the cpu profile"
    parity.write_text(json.dumps({**report, "source": "/models/mobile_sam.pt"}))
    try:
        with pytest.raises(ExportError, match="serving the base profile would overwrite it"):
            exports_to_refresh(repo, "base")
    finally:
        parity.write_text(json.dumps(report))


def test_up_with_the_cpu_profile_exports_only_what_the_repository_lacks(cpu_repo, monkeypatch):
    from snapfit.cli import serve_cmd

    repo, _ = cpu_repo
    exported = []
    monkeypatch.setattr("export.runner.export_models", lambda profile, **kwargs: exported.append((profile, kwargs)))
    serve_cmd._export_what_the_profile_lacks("cpu", repo)
    assert len(exported) == 1 and exported[0][0] == "cpu"
    assert not {"sam_encoder", "sam_decoder"} & set(exported[0][1]["only"])
    assert {"clip_image", "clip_text", "tryon_classifier"} <= set(exported[0][1]["only"])
