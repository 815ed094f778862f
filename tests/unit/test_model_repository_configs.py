"""The committed model repository: every config parses, and a model's CPU and GPU configs declare one contract."""

from __future__ import annotations

import pytest
from tritonclient.grpc import model_config_pb2

from export.registry import EXPORTERS
from export.repository import SOURCE_REPOSITORY, config_files, load_config

ONNX_MODELS = list(EXPORTERS)
ALL_MODELS = ONNX_MODELS + ["clip_tokenizer", "clip_text_embed"]


def signature(config) -> dict:
    return {
        "max_batch_size": config.max_batch_size,
        "inputs": {(t.name, t.data_type, tuple(t.dims)) for t in config.input},
        "outputs": {(t.name, t.data_type, tuple(t.dims)) for t in config.output},
    }


@pytest.mark.parametrize("model", ALL_MODELS)
def test_every_config_parses_and_names_its_folder(model):
    files = config_files(SOURCE_REPOSITORY / model)
    assert files, f"{model} has no config"
    for path in files:
        assert load_config(path).name == model, path


@pytest.mark.parametrize("model", ONNX_MODELS)
def test_gpu_tensorrt_and_cpu_configs_declare_the_same_tensors(model):
    folder = SOURCE_REPOSITORY / model
    gpu = load_config(folder / "config.pbtxt")
    for variant in ("configs/cpu.pbtxt", "configs/tensorrt.pbtxt"):
        if (folder / variant).exists():
            other = load_config(folder / variant)
            assert signature(other)["inputs"] == signature(gpu)["inputs"], variant
            assert signature(other)["outputs"] == signature(gpu)["outputs"], variant


@pytest.mark.parametrize("model", ONNX_MODELS)
def test_gpu_config_uses_the_onnxruntime_backend_on_gpus(model):
    config = load_config(SOURCE_REPOSITORY / model / "config.pbtxt")
    assert config.backend == "onnxruntime"
    assert config.instance_group and all(g.kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
                                         for g in config.instance_group)


@pytest.mark.parametrize("model", ONNX_MODELS)
def test_cpu_config_uses_the_generic_onnxruntime_runner(model):
    config = load_config(SOURCE_REPOSITORY / model / "configs" / "cpu.pbtxt")
    assert config.backend == "onnxruntime_cpu"
    assert config.default_model_filename == "model.onnx"
    assert all(g.kind == model_config_pb2.ModelInstanceGroup.KIND_CPU for g in config.instance_group)


@pytest.mark.parametrize("model", ALL_MODELS)
def test_dynamic_batching_queues_are_bounded(model):
    for path in config_files(SOURCE_REPOSITORY / model):
        config = load_config(path)
        if config.HasField("dynamic_batching"):
            policy = config.dynamic_batching.default_queue_policy
            assert policy.max_queue_size > 0, f"{path}: unbounded queue"
