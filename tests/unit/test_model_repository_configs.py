"""The committed model repository: every config parses and declares exactly snapfit.contract's tensors, and a
model's CPU and GPU configs declare one contract."""

from __future__ import annotations

import pytest
from tritonclient.grpc import model_config_pb2

from export.registry import EXPORTERS
from export.repository import SOURCE_REPOSITORY, config_files, load_config
from snapfit import contract

ONNX_MODELS = list(contract.ONNX_MODELS)
ALL_MODELS = list(contract.MODELS)


def test_the_repository_holds_exactly_the_contract_models_and_every_onnx_model_has_an_exporter():
    folders = {p.name for p in SOURCE_REPOSITORY.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    assert folders == set(contract.MODELS)
    assert tuple(EXPORTERS) == contract.ONNX_MODELS
    assert set(contract.SERVED_MODELS) <= set(contract.MODELS)


def _declared(tensors) -> list[tuple]:
    return [(t.name, model_config_pb2.DataType.Name(t.data_type), tuple(t.dims), getattr(t, "optional", False))
            for t in tensors]  # outputs have no `optional`


def _contracted(tensors, optional_here: frozenset[str] = frozenset()) -> list[tuple]:
    return [(t.name, t.data_type, t.dims, t.optional or t.name in optional_here) for t in tensors]


def _zero_when_absent(config) -> frozenset[str]:
    """Inputs the CPU runner folds as zeros when a request leaves them out: optional in that config only (the GPU
    config's onnxruntime backend needs every graph input)."""
    parameter = config.parameters["zero_when_absent"].string_value if "zero_when_absent" in config.parameters else ""
    return frozenset(name.strip() for name in parameter.split(",") if name.strip())


@pytest.mark.parametrize("model", ALL_MODELS)
def test_every_config_declares_the_contracts_tensors_batching_and_transaction_policy(model):
    expected = contract.MODELS[model]
    for path in config_files(SOURCE_REPOSITORY / model):
        config = load_config(path)
        optional_here = _zero_when_absent(config)
        assert not optional_here or path.name == "cpu.pbtxt", path
        assert _declared(config.input) == _contracted(expected.inputs, optional_here), path
        assert _declared(config.output) == _contracted(expected.outputs), path
        assert (config.max_batch_size > 0) == expected.batched, path
        assert config.model_transaction_policy.decoupled == expected.decoupled, path


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
    # spinning threads left behind by one call take the cores of the next model a request calls
    assert config.parameters["stop_spinning_after_run"].string_value == "1"


# CPU configs whose queue the orchestrator bounds: Triton 2.51's queue policy makes some of their requests wait ~500 ms
# (docs/serving.md), so they have none at all
ADMISSION_BOUNDED_ON_CPU = {contract.CLIP_TEXT, contract.CLIP_IMAGE, contract.TRYON_CLASSIFIER, contract.SAM_DECODER,
                            contract.SAM_ENCODER}


@pytest.mark.parametrize("model", ALL_MODELS)
def test_dynamic_batching_queues_are_bounded(model):
    for path in config_files(SOURCE_REPOSITORY / model):
        config = load_config(path)
        if not config.HasField("dynamic_batching"):
            continue
        if model in ADMISSION_BOUNDED_ON_CPU and path.name == "cpu.pbtxt":
            assert not config.dynamic_batching.HasField("default_queue_policy"), f"{path}: brings back the 500 ms wait"
            assert not config.dynamic_batching.priority_queue_policy, f"{path}: brings back the 500 ms wait"
        else:
            assert config.dynamic_batching.default_queue_policy.max_queue_size > 0, f"{path}: unbounded queue"
