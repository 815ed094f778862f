"""CLIP exports (tiny profile): files and parity reports, agreement with torch on new inputs, failure modes,
model resolution without the hub, and the clip_tokenizer Python model's logic (without Triton)."""

from __future__ import annotations

import importlib.util
import json
import logging
import time
import types

import numpy as np
import pytest
import torch
from google.protobuf import json_format
from open_clip.transform import image_transform_v2
from PIL import Image

from export import clip, clip_models
from export.clip_models import hub_architecture, load_network
from export.errors import ExportError, ExportParityError
from export.onnx_io import open_session, run_session
from export.parity import max_abs_diff, min_cosine
from export.precision import Precision
from export.repository import SOURCE_REPOSITORY, copy_configs, load_config
from export.request import ExportRequest
from snapfit.preprocessing.clip import batch

TOKENIZER_MODEL = SOURCE_REPOSITORY / "clip_tokenizer" / "1" / "model.py"
EOT = 49407


def tiny_request(repository, **overrides) -> ExportRequest:
    return ExportRequest.for_profile("tiny", repository, **overrides)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A repository with clip_image and clip_text exported in fp32, and their reports."""
    repository = copy_configs(tmp_path_factory.mktemp("clip") / "repo")
    request = tiny_request(repository)
    return repository, clip.export_image(request), clip.export_text(request)


@pytest.fixture(scope="module")
def tokenizer_model():
    spec = importlib.util.spec_from_file_location("clip_tokenizer_model", TOKENIZER_MODEL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def hub_offline(monkeypatch):
    monkeypatch.setattr(clip_models, "_hub_reachable", lambda endpoint: False)


def torch_image_embeddings(images: list[np.ndarray]) -> np.ndarray:
    network = load_network("tiny", None, 0)
    preprocess = image_transform_v2(network.preprocess, is_train=False)
    with torch.no_grad():
        pixels = torch.stack([preprocess(Image.fromarray(image)) for image in images])
        return network.model.encode_image(pixels, normalize=True).numpy()


def torch_text_embeddings(texts: list[str]) -> np.ndarray:
    import open_clip

    ids = open_clip.get_tokenizer("ViT-B-16")(texts)
    with torch.no_grad():
        return load_network("tiny", None, 0).model.encode_text(ids, normalize=True).numpy()


def strings(texts: list[str]) -> np.ndarray:
    """Bx1 object array of UTF-8 bytes, as Triton hands TYPE_STRING inputs to a Python model."""
    return np.array([[t.encode("utf-8")] for t in texts], dtype=object)


# --- exports -------------------------------------------------------------------------------------------

def test_export_image_writes_model_and_a_passing_parity_report(exported):
    repository, image_report, _ = exported
    folder = repository / "clip_image" / "1"
    assert (folder / "model.onnx").is_file()
    saved = json.loads((folder / "parity.json").read_text())
    assert saved["passed"] and saved["precision"] == "fp32" and saved["architecture"] == "tiny"
    assert set(saved["metrics"]) == {"cosine", "top10_overlap"}
    assert image_report.metrics["top10_overlap"].value == 1.0


def test_export_text_writes_model_report_and_the_tokenizer_spec(exported):
    repository, _, text_report = exported
    assert (repository / "clip_text" / "1" / "model.onnx").is_file()
    assert json.loads((repository / "clip_text" / "1" / "parity.json").read_text())["passed"]
    assert text_report.metrics["cosine"].value >= 0.9999
    spec = json.loads((repository / "clip_tokenizer" / "1" / "tokenizer.json").read_text())
    assert spec == {"model": "ViT-B-16", "context_length": 77}


def test_exported_image_model_matches_torch_on_new_images_at_any_batch_size(exported):
    repository = exported[0]
    session, _ = open_session(repository / "clip_image" / "1" / "model.onnx")
    images = clip.parity_images(6, seed=1234)  # not the seed the export's parity check used
    expected = torch_image_embeddings(images)
    for chunk in (slice(0, 1), slice(1, 6)):
        served = run_session(session, {"image": batch(images[chunk])})["embeddings"]
        assert served.dtype == np.float32 and served.shape == (chunk.stop - chunk.start, 512)
        assert max_abs_diff(expected[chunk], served) < 1e-4
    np.testing.assert_allclose(np.linalg.norm(served, axis=1), 1.0, atol=1e-5)


def test_tokenizer_model_logic_feeds_the_exported_text_model_like_open_clip_feeds_torch(exported, tokenizer_model):
    repository = exported[0]
    tokenization = tokenizer_model.ClipTokenization.from_version_dir(repository / "clip_tokenizer" / "1")
    texts = ["navy pinstripe blazer", "빨간 드레스", "", "sandals " * 90]
    session, _ = open_session(repository / "clip_text" / "1" / "model.onnx")
    served = run_session(session, {"input_ids": tokenization(strings(texts))})["embeddings"]
    assert min_cosine(torch_text_embeddings(texts), served) >= 0.9999


def test_parity_check_catches_a_wrapper_that_skips_normalisation_and_installs_nothing(tmp_path, monkeypatch):
    repository = copy_configs(tmp_path / "repo")
    monkeypatch.setattr(clip.ClipImageEncoder, "pixel_values",
                        lambda self, image: image.permute(0, 3, 1, 2).to(torch.float32) / 255.0)
    with pytest.raises(ExportParityError, match="cosine"):
        clip.export_image(tiny_request(repository))
    assert not (repository / "clip_image" / "1" / "model.onnx").exists()


def test_impossible_text_threshold_fails_the_export_without_model_or_tokenizer_spec(tmp_path, monkeypatch):
    repository = copy_configs(tmp_path / "repo")
    monkeypatch.setitem(clip.THRESHOLDS[Precision.fp32], "cosine", 1.5)
    with pytest.raises(ExportParityError):
        clip.export_text(tiny_request(repository))
    assert not (repository / "clip_text" / "1" / "model.onnx").exists()
    assert not (repository / "clip_tokenizer" / "1" / "tokenizer.json").exists()


def test_int8_exports_record_cosine_and_top10_overlap(tmp_path, exported):
    repository = copy_configs(tmp_path / "repo")
    request = tiny_request(repository, precision=Precision.int8)
    for report in (clip.export_image(request), clip.export_text(request)):
        assert report.precision == "int8" and report.passed
        assert set(report.metrics) == {"cosine", "top10_overlap"}
    fp32_bytes = exported[1].onnx_bytes
    assert (repository / "clip_image" / "1" / "model.onnx").stat().st_size < fp32_bytes


def test_fp16_variant_exports_with_its_own_cosine_and_overlap(tmp_path):
    repository = copy_configs(tmp_path / "repo")
    report = clip.export_text(tiny_request(repository, precision=Precision.fp16))
    assert report.precision == "fp16" and report.passed
    assert set(report.metrics) == {"cosine", "top10_overlap"}


def test_committed_configs_match_the_exported_tensors(exported):
    for model in ("clip_image", "clip_text"):
        for path in sorted((SOURCE_REPOSITORY / model).rglob("*.pbtxt")):
            config = load_config(path)
            assert [(t.name, list(t.dims)) for t in config.input] in (
                [("image", [224, 224, 3])], [("input_ids", [77])]), path


# --- choosing the network -----------------------------------------------------------------------------

def test_missing_checkpoint_raises_export_error(tmp_path):
    request = tiny_request(tmp_path / "repo", clip_pretrained=str(tmp_path / "missing.pt"))
    with pytest.raises(ExportError, match="neither a file nor a pretrained tag"):
        clip.export_image(request)


@pytest.mark.parametrize("content", [b"not a checkpoint", None])
def test_checkpoint_that_does_not_fit_raises_export_error(tmp_path, content):
    path = tmp_path / "bad.pt"
    if content is None:
        torch.save({"visual.conv1.weight": torch.zeros(3)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(ExportError, match="does not fit tiny"):
        load_network("tiny", str(path), 0)


def test_checkpoint_of_the_same_architecture_is_loaded(tmp_path):
    reference = load_network("tiny", None, 0).model
    path = tmp_path / "tiny.pt"
    torch.save(reference.state_dict(), path)
    loaded = load_network("tiny", str(path), seed=7)
    assert loaded.source == str(path)
    torch.testing.assert_close(loaded.model.text_projection, reference.text_projection)


def test_unknown_pretrained_tag_lists_the_known_ones():
    with pytest.raises(ExportError, match="laion2b_s34b_b88k"):
        load_network("ViT-B-16", "no_such_tag", 0)


def test_unknown_model_name_raises_export_error():
    with pytest.raises(ExportError, match="unknown open_clip model"):
        load_network("ViT-Q-99", None, 0)


def test_hub_architecture_comes_from_open_clip_registry_or_the_known_map():
    assert hub_architecture("hf-hub:laion/CLIP-ViT-B-16-laion2B-s34B-b88K") == "ViT-B-16"
    assert hub_architecture("hf-hub:Marqo/marqo-fashionCLIP") == "ViT-B-16"
    with pytest.raises(ExportError, match="cannot tell the architecture"):
        hub_architecture("hf-hub:someone/unknown-model")


def test_hub_models_with_a_plain_clip_tokenizer_are_tokenized_without_the_hub(monkeypatch):
    import open_clip

    configs = {"hf-hub:a/plain": {"text_cfg": {"context_length": 77}},
               "hf-hub:b/siglip": {"text_cfg": {"hf_tokenizer_name": "timm/ViT-B-16-SigLIP"}}}
    monkeypatch.setattr(open_clip, "get_model_config", configs.get)
    assert clip_models.hub_tokenizer_name("hf-hub:a/plain") == "ViT-B-16"
    assert clip_models.hub_tokenizer_name("hf-hub:b/siglip") == "hf-hub:b/siglip"


def test_unreachable_hub_switches_huggingface_hub_offline_only_inside_the_block(hub_offline):
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    with clip_models.hub_access():
        assert constants.HF_HUB_OFFLINE
    assert constants.HF_HUB_OFFLINE == before


def test_production_hub_model_without_network_falls_back_fast_to_random_vit_b_16(hub_offline, caplog):
    started = time.perf_counter()
    with caplog.at_level(logging.WARNING):
        network = load_network("hf-hub:Marqo/marqo-fashionCLIP", None, 0)
    assert time.perf_counter() - started < 30  # huggingface_hub's own retries alone take ~25 s
    assert (network.architecture, network.source, network.tokenizer_name) == ("ViT-B-16", "random-init", "ViT-B-16")
    assert network.image_size == 224 and network.context_length == 77
    assert network.model.text_projection.shape[1] == 512
    assert any("RANDOM weights" in r.getMessage() for r in caplog.records)


def test_pretrained_tag_without_network_keeps_the_architecture_and_its_normalisation(hub_offline, caplog):
    import open_clip

    with caplog.at_level(logging.WARNING):
        network = load_network("ViT-B-32", "laion2b_s34b_b79k", 0)
    assert (network.architecture, network.source) == ("ViT-B-32", "random-init")
    assert tuple(network.preprocess.mean) == tuple(open_clip.get_pretrained_cfg("ViT-B-32", "laion2b_s34b_b79k")["mean"])
    assert any("RANDOM weights" in r.getMessage() for r in caplog.records)


# --- clip_tokenizer Python model (its logic, without Triton) ------------------------------------------

TOKENIZER_STRINGS = [
    "", " ", "검은색 원피스", "but in black", "FLORAL Summer DRESS!!", "👗👠 party look", "naïve café crème brûlée",
    "ＦＵＬＬ　ＷＩＤＴＨ ｔｅｘｔ", "tab\tand\nnewline", "日本語のテキスト", "فستان أسود", "👩‍👩‍👧 family", "zero\u200bwidth",
    "<|endoftext|> <start_of_text>", "&amp; &lt;b&gt; html", "ﬁ ligature", "a" * 500, "denim " * 60,
    "Vintage high-waisted pleated midi skirt in soft pastel pink with a thin gold belt, " * 4,
]


def test_tokenizer_model_ids_are_identical_to_open_clip(tokenizer_model):
    import open_clip

    ids = tokenizer_model.ClipTokenization("ViT-B-16", 77)(strings(TOKENIZER_STRINGS))
    expected = open_clip.get_tokenizer("ViT-B-16")(TOKENIZER_STRINGS).numpy()
    assert ids.dtype == np.int64 and ids.shape == (len(TOKENIZER_STRINGS), 77)
    np.testing.assert_array_equal(ids, expected)


def test_tokenizer_truncates_long_text_keeping_eot_and_pads_empty_text_with_zeros(tokenizer_model):
    ids = tokenizer_model.ClipTokenization("ViT-B-16", 77)(strings(["denim " * 90, ""]))
    assert ids[0, -1] == EOT and ids[0, 0] == EOT - 1
    assert list(ids[1, :2]) == [EOT - 1, EOT] and not ids[1, 2:].any()


def test_tokenizer_rejects_non_utf8_and_oversized_text_naming_the_item(tokenizer_model):
    tokenization = tokenizer_model.ClipTokenization("ViT-B-16", 77, max_text_bytes=100)
    with pytest.raises(ValueError, match=r"text\[1\] is not valid UTF-8"):
        tokenization(np.array([[b"fine"], [b"\xff\xfe\xfa"]], dtype=object))
    with pytest.raises(ValueError, match=r"text\[0\] is 101 bytes"):
        tokenization(strings(["x" * 101]))


class FakeTritonError(Exception):
    INVALID_ARG, INTERNAL = "INVALID_ARG", "INTERNAL"

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


class FakeTensor:
    def __init__(self, name, array):
        self.name, self.array = name, array

    def as_numpy(self):
        return self.array


class FakeResponse:
    def __init__(self, output_tensors=(), error=None):
        self.output_tensors, self.error = list(output_tensors), error


FAKE_PB_UTILS = types.SimpleNamespace(
    TritonError=FakeTritonError, Tensor=FakeTensor, InferenceResponse=FakeResponse,
    get_output_config_by_name=lambda config, name: next(o for o in config["output"] if o["name"] == name),
    triton_string_to_numpy={"TYPE_INT64": np.int64}.__getitem__,
    get_input_tensor_by_name=lambda request, name: request[name],
)


def triton_args(repository) -> dict:
    config = load_config(repository / "clip_tokenizer" / "config.pbtxt")
    return {"model_config": json.dumps(json_format.MessageToDict(config, preserving_proto_field_name=True)),
            "model_repository": str(repository / "clip_tokenizer"), "model_version": "1"}


def test_tokenizer_model_answers_a_bad_request_with_its_own_error_and_serves_the_rest(
        exported, tokenizer_model, monkeypatch):
    import open_clip

    monkeypatch.setattr(tokenizer_model, "pb_utils", FAKE_PB_UTILS)
    model = tokenizer_model.TritonPythonModel()
    model.initialize(triton_args(exported[0]))
    requests = [{"text": FakeTensor("text", strings(["black dress", "검은색"]))},
                {"text": FakeTensor("text", np.array([[b"\xff"]], dtype=object))},
                {"text": FakeTensor("text", strings(["but in black"]))}]
    good, bad, last = model.execute(requests)
    assert bad.error is not None and bad.error.code == "INVALID_ARG"
    np.testing.assert_array_equal(good.output_tensors[0].array,
                                  open_clip.get_tokenizer("ViT-B-16")(["black dress", "검은색"]).numpy())
    assert good.error is None and last.output_tensors[0].array.shape == (1, 77)


def test_tokenizer_model_refuses_to_load_without_tokenizer_json(tmp_path, tokenizer_model, monkeypatch):
    monkeypatch.setattr(tokenizer_model, "pb_utils", FAKE_PB_UTILS)
    repository = copy_configs(tmp_path / "repo")
    with pytest.raises(FileNotFoundError, match="export clip_text first"):
        tokenizer_model.TritonPythonModel().initialize(triton_args(repository))


def test_explicitly_requested_hub_weights_that_cannot_load_are_an_error_not_random_weights(hub_offline):
    with pytest.raises(ExportError, match="requested CLIP weights hf-hub:Marqo/marqo-fashionCLIP could not be loaded"):
        load_network("hf-hub:Marqo/marqo-fashionCLIP", None, 0, weights_required=True)
    with pytest.raises(ExportError, match="requested CLIP weights ViT-B-32 pretrained 'laion2b_s34b_b79k'"):
        load_network("ViT-B-32", "laion2b_s34b_b79k", 0, weights_required=True)


def test_only_a_clip_choice_the_user_made_requires_its_weights(tmp_path):
    assert not ExportRequest.for_profile("base", tmp_path).choices.clip_weights_required  # the profile's default
    assert ExportRequest.for_profile("base", tmp_path,
                                     clip_model="hf-hub:Marqo/marqo-fashionCLIP").choices.clip_weights_required
    assert ExportRequest.for_profile("tiny", tmp_path, clip_pretrained="x.pt").choices.clip_weights_required


def test_the_export_command_fails_when_the_requested_clip_cannot_load(tmp_path, hub_offline):
    from typer.testing import CliRunner

    from snapfit.cli import app

    result = CliRunner().invoke(app, ["export", "--profile", "tiny", "--repository", str(tmp_path / "repo"),
                                      "--only", "clip_text", "--clip-model", "hf-hub:Marqo/marqo-fashionCLIP"])
    assert result.exit_code == 1, result.output
    assert "could not be loaded" in " ".join(result.output.split())
    assert not (tmp_path / "repo" / "clip_text" / "1" / "model.onnx").exists()
