"""LadiVtonPipeline end to end on the tiny profile (random weights, 128 x 96 frame, a few steps)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from tryon.pipeline import LadiVtonPipeline, TryOnCancelled, TryOnInputError, TryOnInputs, TryOnOptions, WeightsError
from tryon.weights import checkpoint_path, save_tiny_weights

STEPS = 3


@pytest.fixture(scope="module")
def pipeline() -> LadiVtonPipeline:
    return LadiVtonPipeline.tiny(seed=0)


@pytest.fixture(scope="module")
def inputs(pipeline) -> TryOnInputs:
    h, w = pipeline.frame_hw
    rng = np.random.default_rng(0)
    mask = np.zeros((h, w), dtype=bool)
    mask[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = True
    return TryOnInputs(
        person=rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        garment=rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        pose_map=rng.random((18, h, w), dtype=np.float32),
        inpaint_mask=mask,
        category="upper_body",
    )


def _count_calls(module: torch.nn.Module) -> list[int]:
    calls = [0]

    def hook(*_):
        calls[0] += 1

    module.register_forward_hook(hook)
    return calls


def test_try_on_returns_a_uint8_image_of_the_frame(pipeline, inputs):
    out = pipeline(inputs, TryOnOptions(steps=STEPS))
    assert out.dtype == np.uint8
    assert out.shape == (*pipeline.frame_hw, 3)


def test_same_seed_gives_the_same_image_and_another_seed_a_different_one(pipeline, inputs):
    first = pipeline(inputs, TryOnOptions(steps=STEPS, seed=7))
    again = pipeline(inputs, TryOnOptions(steps=STEPS, seed=7))
    other = pipeline(inputs, TryOnOptions(steps=STEPS, seed=8))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_on_step_is_called_after_every_step(pipeline, inputs):
    seen = []
    pipeline(inputs, TryOnOptions(steps=4), on_step=lambda step, total: seen.append((step, total)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_cancelling_after_k_steps_raises_try_on_cancelled(pipeline, inputs):
    seen = []
    with pytest.raises(TryOnCancelled) as raised:
        pipeline(inputs, TryOnOptions(steps=5), on_step=lambda step, total: seen.append(step),
                 cancelled=lambda: len(seen) >= 2)
    assert seen == [1, 2]
    assert (raised.value.completed_steps, raised.value.total_steps) == (2, 5)


def test_dpm_solver_plus_plus_runs_and_differs_from_ddim(pipeline, inputs):
    dpmpp = pipeline(inputs, TryOnOptions(steps=STEPS, scheduler="dpmpp"))
    ddim = pipeline(inputs, TryOnOptions(steps=STEPS, scheduler="ddim"))
    assert dpmpp.shape == ddim.shape and dpmpp.dtype == np.uint8
    assert not np.array_equal(dpmpp, ddim)


def test_guidance_at_most_one_runs_the_conditional_branch_alone(pipeline, inputs):
    batches = []
    handle = pipeline.components.unet.register_forward_hook(lambda m, args, out: batches.append(args[0].shape[0]))
    try:
        pipeline(inputs, TryOnOptions(steps=2, guidance=1.0))
        pipeline(inputs, TryOnOptions(steps=2, guidance=2.0))
    finally:
        handle.remove()
    assert batches == [1, 1, 2, 2]


def test_repeated_garment_key_hits_the_cache_and_skips_clip_and_adapter():
    pipeline = LadiVtonPipeline.tiny(seed=0)
    h, w = pipeline.frame_hw
    rng = np.random.default_rng(1)
    inputs = TryOnInputs(person=rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
                         garment=rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
                         pose_map=np.zeros((18, h, w), np.float32), inpaint_mask=np.ones((h, w), bool),
                         category="dresses", garment_key="sku-1")
    clip_calls = _count_calls(pipeline.components.vision_encoder)
    adapter_calls = _count_calls(pipeline.components.inversion_adapter)

    first = pipeline(inputs, TryOnOptions(steps=2))
    second = pipeline(inputs, TryOnOptions(steps=2))
    assert (clip_calls[0], adapter_calls[0]) == (1, 1)
    assert (pipeline.conditioning_cache.hits, pipeline.conditioning_cache.misses) == (1, 1)
    np.testing.assert_array_equal(first, second)

    pipeline(dataclasses.replace(inputs, category="upper_body"), TryOnOptions(steps=2))  # key includes category
    pipeline(dataclasses.replace(inputs, garment_key=None), TryOnOptions(steps=2))  # no key: no caching
    assert (clip_calls[0], pipeline.conditioning_cache.hits) == (3, 1)


def test_saved_tiny_weights_load_into_the_same_pipeline(tmp_path, pipeline, inputs):
    save_tiny_weights(tmp_path, seed=0)
    loaded = LadiVtonPipeline.from_weights(tmp_path, dataset="dresscode")
    assert loaded.frame_hw == pipeline.frame_hw
    options = TryOnOptions(steps=STEPS, seed=3)
    np.testing.assert_array_equal(loaded(inputs, options), pipeline(inputs, options))


@pytest.mark.parametrize("change,match", [
    ({"person": np.zeros((64, 48, 3), np.uint8)}, "person must have shape"),
    ({"garment": np.zeros((128, 96, 3), np.float32)}, "garment must be uint8"),
    ({"pose_map": np.zeros((17, 128, 96), np.float32)}, "pose_map must have shape"),
    ({"pose_map": np.full((18, 128, 96), np.nan, np.float32)}, "NaN"),
    ({"inpaint_mask": np.zeros((128, 96), np.uint8)}, "inpaint_mask must be bool"),
    ({"category": "shoes"}, "category must be one of"),
])
def test_bad_inputs_raise_try_on_input_error(pipeline, inputs, change, match):
    with pytest.raises(TryOnInputError, match=match):
        pipeline(dataclasses.replace(inputs, **change), TryOnOptions(steps=1))


@pytest.mark.parametrize("options,match", [
    (TryOnOptions(steps=0), "steps"), (TryOnOptions(steps=1001), "steps"), (TryOnOptions(steps=2.5), "steps"),
    (TryOnOptions(guidance=-0.1), "guidance"), (TryOnOptions(guidance=float("nan")), "guidance"),
    (TryOnOptions(guidance=30.5), "guidance"),
    (TryOnOptions(scheduler="euler"), "scheduler"), (TryOnOptions(seed=-1), "seed"),
])
def test_bad_options_raise_try_on_input_error(pipeline, inputs, options, match):
    with pytest.raises(TryOnInputError, match=match):
        pipeline(inputs, options)


def test_try_on_input_error_is_a_value_error():
    assert issubclass(TryOnInputError, ValueError)


def test_missing_checkpoint_raises_weights_error_naming_the_file(tmp_path):
    save_tiny_weights(tmp_path)
    checkpoint_path(tmp_path, "emasc", "dresscode").unlink()
    with pytest.raises(WeightsError, match=r"missing checkpoint .*emasc_dresscode\.pth"):
        LadiVtonPipeline.from_weights(tmp_path)
    with pytest.raises(WeightsError, match=r"missing checkpoint .*_vitonhd\.pth"):
        LadiVtonPipeline.from_weights(tmp_path, dataset="vitonhd")


def test_missing_folder_raises_weights_error(tmp_path):
    with pytest.raises(WeightsError, match="missing folder"):
        LadiVtonPipeline.from_weights(tmp_path / "nowhere")
    save_tiny_weights(tmp_path)
    for path in sorted((tmp_path / "clip-vit-h-14").iterdir()):
        path.unlink()
    (tmp_path / "clip-vit-h-14").rmdir()
    with pytest.raises(WeightsError, match="missing folder .*clip-vit-h-14"):
        LadiVtonPipeline.from_weights(tmp_path)


def test_mismatched_state_dict_raises_weights_error_naming_file_and_keys(tmp_path):
    save_tiny_weights(tmp_path)
    path = checkpoint_path(tmp_path, "warping", "dresscode")
    warping = torch.load(path, weights_only=True)
    warping["refinement"]["outc.conv.weight"] = torch.zeros(3, 7, 1, 1)
    warping["refinement"]["extra.weight"] = torch.zeros(1)
    torch.save(warping, path)
    with pytest.raises(WeightsError, match=r"warping_dresscode\.pth \['refinement'\].*unexpected keys: extra\.weight"
                                           r".*wrong shapes: outc\.conv\.weight \[3, 7, 1, 1\]"):
        LadiVtonPipeline.from_weights(tmp_path)


def test_a_warping_checkpoint_saved_by_the_training_script_loads_despite_its_extra_entries(tmp_path):
    save_tiny_weights(tmp_path)
    path = checkpoint_path(tmp_path, "warping", "dresscode")
    warping = torch.load(path, weights_only=True)
    optimizer_state = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(2)}},
                       "param_groups": [{"lr": 1e-4, "betas": (0.5, 0.99), "params": [0]}]}
    torch.save({**warping, "epoch": 12, "optimizer_tps": optimizer_state, "optimizer_ref": optimizer_state}, path)
    pipeline = LadiVtonPipeline.from_weights(tmp_path)
    for name in ("tps", "refinement"):
        loaded = getattr(pipeline.components, name).state_dict()
        assert all(torch.equal(loaded[key], value) for key, value in warping[name].items())


def test_a_warping_checkpoint_without_one_of_its_networks_names_what_it_found(tmp_path):
    save_tiny_weights(tmp_path)
    path = checkpoint_path(tmp_path, "warping", "dresscode")
    warping = torch.load(path, weights_only=True)
    torch.save({"tps": warping["tps"], "epoch": 3}, path)
    with pytest.raises(WeightsError, match=r"keys 'tps' and 'refinement' \(found \['epoch', 'tps'\]\)"):
        LadiVtonPipeline.from_weights(tmp_path)


def test_clip_input_truncates_to_255_levels_as_the_checkpoints_training_code_did():
    from tryon.config import CLIP_MEAN, CLIP_STD
    from tryon.pipeline import clip_pixel_values

    # a flat 8x8 garment resizes to flat 4x4 pixels: x = (g + 1) / 2 in every channel
    levels = [0.0, 0.2012, 0.5, 0.99, 1.0, 0.003]  # away from the integer edges of 255 x
    garments = torch.stack([torch.full((3, 8, 8), 2 * x - 1) for x in levels])
    values = torch.cat([clip_pixel_values(g[None], 4) for g in garments])
    # known values: floor(255 x) = 0, 51, 127, 252, 255, 0
    for x, value, floor in zip(levels, values, [0, 51, 127, 252, 255, 0]):
        expected = [(floor / 255 - m) / s for m, s in zip(CLIP_MEAN, CLIP_STD)]
        assert value[:, 0, 0].tolist() == pytest.approx(expected, abs=1e-6), x
        assert (value == value[:, :1, :1]).all()
    # x = 0.5 lands 0.5 / 255 below the untruncated value in channel 0: (127/255 - 0.48145466) / 0.26862954
    assert values[2, 0, 0, 0].item() == pytest.approx(0.0617380, abs=1e-6)
    assert values[2, 0, 0, 0].item() < (0.5 - CLIP_MEAN[0]) / CLIP_STD[0] - 0.007
