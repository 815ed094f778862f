"""sam_encoder / sam_decoder exports: installed only when they match torch, and they keep matching on new inputs."""

import copy
import json

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor

from export import sam
from export.errors import ExportError, ExportParityError
from export.onnx_io import open_session, run_session
from export.parity import mask_iou, max_abs_diff, min_cosine
from export.precision import Precision
from export.registry import resolve
from export.repository import copy_configs
from export.request import ExportRequest
from export.sam_models import SAM_SPECS, build_sam
from snapfit.preprocessing.sam import prompt_arrays, resize_for_encoder


@pytest.fixture(scope="module")
def tiny_sam():
    return build_sam("tiny", None, 0)


@pytest.fixture(scope="module")
def fp32_repo(tmp_path_factory):
    """A repository with both tiny SAM models exported in fp32 (once for the module)."""
    repo = copy_configs(tmp_path_factory.mktemp("sam_fp32") / "repo")
    request = ExportRequest.for_profile("tiny", repo)
    steps = []
    reports = {"sam_encoder": sam.export_encoder(request, steps.append),
               "sam_decoder": sam.export_decoder(request, steps.append)}
    return repo, reports, steps


def fresh_request(tmp_path, **overrides) -> ExportRequest:
    return ExportRequest.for_profile("tiny", copy_configs(tmp_path / "repo"), **overrides)


def session(repo, model):
    return open_session(repo / model / "1" / "model.onnx")[0]


@pytest.mark.parametrize("model", ["sam_encoder", "sam_decoder"])
def test_export_installs_model_and_a_passing_parity_report(fp32_repo, model):
    repo, reports, steps = fp32_repo
    parity = json.loads((repo / model / "1" / "parity.json").read_text())
    assert (repo / model / "1" / "model.onnx").stat().st_size > 0
    assert parity["passed"] and parity["precision"] == "fp32" and parity["source"] == "random-init"
    assert reports[model].passed and {"building torch model", "exporting", "checking parity"} <= set(steps)


def test_decoder_parity_covers_point_box_and_mask_prompts_against_predictor(fp32_repo):
    metrics = fp32_repo[1]["sam_decoder"].metrics
    assert {"mask_iou_point", "mask_iou_point_box", "mask_iou_mask_input", "predictor_mask_iou",
            "iou_predictions_max_abs_diff"} <= set(metrics)


def test_onnx_encoder_on_client_resized_image_equals_sam_predictor_set_image(fp32_repo, tiny_sam):
    image = np.random.default_rng(7).integers(0, 256, (600, 450, 3), dtype=np.uint8)  # upscaled to 1024x768
    predictor = SamPredictor(tiny_sam)
    predictor.set_image(image)
    ours = run_session(session(fp32_repo[0], "sam_encoder"), {"image": resize_for_encoder(image)[None]})
    assert max_abs_diff(predictor.features.numpy(), ours["image_embeddings"]) < 1e-3
    assert min_cosine(predictor.features.numpy(), ours["image_embeddings"]) > 0.99999


def test_onnx_encoder_rejects_images_larger_than_the_1024_frame(fp32_repo):
    with pytest.raises(Exception, match="ConstantOfShape|shape"):
        run_session(session(fp32_repo[0], "sam_encoder"), {"image": np.zeros((1, 1100, 800, 3), np.uint8)})


def test_onnx_decoder_matches_predictor_on_new_prompts_and_image_size(fp32_repo, tiny_sam):
    decoder = session(fp32_repo[0], "sam_decoder")
    embedding = np.random.default_rng(3).normal(size=(1, 256, 64, 64)).astype(np.float32)
    orig_hw = (480, 640)
    for prompt in ({"points": [[100, 50], [400, 300], [600, 20]], "labels": [1, 1, 0], "box": None},
                   {"points": None, "labels": None, "box": [40, 30, 500, 470]}):
        ours = run_session(decoder, {"image_embeddings": embedding, **prompt_arrays(**prompt, orig_hw=orig_hw)})
        masks, scores = sam.predictor_reference(tiny_sam, embedding, orig_hw, prompt)
        assert ours["masks"].shape == (1, 4, 480, 640) and ours["low_res_masks"].shape == (1, 4, 256, 256)
        assert mask_iou(masks, ours["masks"][0, 1:]) > 0.99
        assert max_abs_diff(scores, ours["iou_predictions"][0, 1:]) < 1e-4


def test_encoder_padding_before_normalising_fails_parity_and_installs_nothing(tmp_path, monkeypatch):
    class PadsFirst(sam.SamEncoderOnnx):  # pads with pixel value 0 instead of normalised 0
        def forward(self, image):
            x = image.permute(0, 3, 1, 2).to(torch.float32)
            x = torch.nn.functional.pad(x, (0, 1024 - x.shape[-1], 0, 1024 - x.shape[-2]))
            return self.image_encoder((x - self.pixel_mean) / self.pixel_std)

    monkeypatch.setattr(sam, "SamEncoderOnnx", PadsFirst)
    request = fresh_request(tmp_path)
    with pytest.raises(ExportParityError, match="embeddings"):
        sam.export_encoder(request)
    assert not (request.version_dir("sam_encoder") / "model.onnx").exists()


def test_int8_exports_are_smaller_and_record_their_metrics(tmp_path, fp32_repo):
    request = fresh_request(tmp_path, precision=Precision.int8)
    reports = {"sam_encoder": sam.export_encoder(request), "sam_decoder": sam.export_decoder(request)}
    for model, report in reports.items():
        parity = json.loads((request.version_dir(model) / "parity.json").read_text())
        assert parity["passed"] and parity["precision"] == "int8"
        # only MatMul/Gemm weights become int8; the tiny encoder is mostly convolutions
        assert report.onnx_bytes < fp32_repo[1][model].onnx_bytes
    assert "embeddings_min_cosine" in reports["sam_encoder"].metrics
    assert {"mask_iou_point", "mask_iou_point_box", "mask_iou_mask_input"} <= set(reports["sam_decoder"].metrics)


def test_fp16_exports_pass_parity_with_onnxruntime_on_cpu(tmp_path, fp32_repo):
    request = fresh_request(tmp_path, precision=Precision.fp16)
    reports = {"sam_encoder": sam.export_encoder(request), "sam_decoder": sam.export_decoder(request)}
    for model, report in reports.items():
        assert report.passed and report.precision == "fp16"
        # only MatMul/Gemm weights become int8; the tiny encoder is mostly convolutions
        assert report.onnx_bytes < fp32_repo[1][model].onnx_bytes


def test_missing_checkpoint_raises_export_error_before_building(tmp_path):
    request = fresh_request(tmp_path, sam_variant="vit_h", sam_checkpoint=tmp_path / "sam_vit_h_4b8939.pth")
    with pytest.raises(ExportError, match="SAM checkpoint not found"):
        sam.export_encoder(request)


def test_unreadable_checkpoint_raises_export_error(tmp_path):
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ExportError, match="could not be read"):
        build_sam("tiny", bad)


def test_checkpoint_of_another_architecture_raises_export_error(tmp_path, tiny_sam):
    state = dict(tiny_sam.state_dict())
    state["image_encoder.patch_embed.proj.weight"] = torch.zeros(768, 3, 16, 16)  # a vit_b-sized tensor
    path = tmp_path / "other.pth"
    torch.save(state, path)
    with pytest.raises(ExportError, match="does not fit the tiny architecture"):
        build_sam("tiny", path)


def test_checkpoint_weights_are_loaded(tmp_path, tiny_sam):
    state = {k: v + 1.0 if v.is_floating_point() else v for k, v in tiny_sam.state_dict().items()}
    path = tmp_path / "shifted.pth"
    torch.save(state, path)
    loaded = build_sam("tiny", path)
    assert torch.equal(loaded.mask_decoder.iou_token.weight, state["mask_decoder.iou_token.weight"])


def test_random_weights_are_deterministic_per_seed():
    def weights(seed):
        return build_sam("tiny", None, seed).image_encoder.patch_embed.proj.weight.clone()

    first = weights(0)
    assert not torch.equal(first, weights(1))
    assert torch.equal(first, weights(0))


def test_unknown_variant_raises_export_error():
    with pytest.raises(ExportError, match="unknown SAM variant 'vit_x'"):
        build_sam("vit_x")


def test_all_published_variants_keep_the_tiny_interface():
    assert {"tiny", "vit_b", "vit_l", "vit_h"} <= set(SAM_SPECS)
    assert SAM_SPECS["vit_h"].embed_dim == 1280 and SAM_SPECS["vit_h"].depth == 32


def test_registry_points_at_the_sam_exporters():
    assert resolve("sam_encoder") is sam.export_encoder and resolve("sam_decoder") is sam.export_decoder


def test_channels_last_upscaling_equals_the_transposed_convolutions(tiny_sam):
    """The exported decoder's output_upscaling (matrix products + pixel shuffle) computes what SAM's
    ConvTranspose / LayerNorm2d / GELU stack computes, for weights that are not the initialisation's."""
    original = tiny_sam.mask_decoder.output_upscaling
    assert sam.ChannelsLastUpscaling.fits(original)
    reference = copy.deepcopy(original)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
        channels = reference[0].in_channels
        x = torch.randn(2, channels, 8, 6, generator=generator)
        expected, got = reference(x), sam.ChannelsLastUpscaling(reference)(x)
    assert got.shape == expected.shape == (2, reference[3].out_channels, 32, 24)
    assert max_abs_diff(got.numpy(), expected.numpy()) < 1e-4 * float(expected.abs().max())


def test_upscaling_of_another_layout_is_left_alone():
    other = torch.nn.Sequential(torch.nn.ConvTranspose2d(8, 4, 3, 2), torch.nn.GELU())
    assert not sam.ChannelsLastUpscaling.fits(other)


def test_the_one_prompt_decoder_predicts_what_segment_anythings_does(tiny_sam):
    """predict_masks_for_one_prompt (no per-prompt repeat of the image embedding) gives the original's masks and
    scores for a prompt of points, with non-trivial weights and embeddings."""
    decoder = copy.deepcopy(tiny_sam.mask_decoder)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for parameter in decoder.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
        channels, size = tiny_sam.prompt_encoder.embed_dim, tiny_sam.prompt_encoder.image_embedding_size
        image = torch.randn(1, channels, *size, generator=generator)
        pe = tiny_sam.prompt_encoder.get_dense_pe()
        sparse = torch.randn(1, 3, channels, generator=generator)
        dense = torch.randn(1, channels, *size, generator=generator)
        expected = decoder.predict_masks(image, pe, sparse, dense)
        got = sam.predict_masks_for_one_prompt(decoder, image, pe, sparse, dense)
    for want, have in zip(expected, got):
        assert have.shape == want.shape
        assert max_abs_diff(have.numpy(), want.numpy()) < 1e-5 * float(want.abs().max())


def test_the_exported_decoder_copies_no_image_embedding_per_prompt(fp32_repo):
    import onnx

    graph = onnx.load(str(fp32_repo[0] / "sam_decoder" / "1" / "model.onnx")).graph
    assert not [node.name for node in graph.node if node.op_type == "Tile"]
