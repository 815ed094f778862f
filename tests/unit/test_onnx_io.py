"""ONNX writing and installing: external data for large models, atomic installs, precision variants."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from export import onnx_io
from export.precision import Precision, convert


class TwoLayer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.GELU(), torch.nn.Linear(128, 8))

    def forward(self, x):
        return self.net(x)


class SmallConvNet(torch.nn.Module):
    """Bx3x32x32 float32 in, Bx4 float32 softmax out: the op mix of a convnet classifier, ~20k weights."""

    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.SiLU(), torch.nn.Conv2d(32, 64, 3, stride=2, padding=1),
            torch.nn.SiLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(64, 4))

    def forward(self, x):
        return torch.softmax(self.features(x), dim=1)


def exported(tmp_path, monkeypatch=None, external=False):
    if external:  # pretend the model is over protobuf's 2 GB limit
        monkeypatch.setattr(onnx_io, "EXTERNAL_DATA_THRESHOLD_BYTES", 0)
    torch.manual_seed(0)
    module = TwoLayer()
    path = onnx_io.export_module(module, (torch.randn(2, 64),), tmp_path / "stage" / "model.onnx",
                                 ["features"], ["scores"], {"features": {0: "batch"}, "scores": {0: "batch"}})
    return module, path


def run(path, x):
    session, _ = onnx_io.open_session(path)
    return onnx_io.run_session(session, {"features": x})["scores"]


def test_large_models_are_written_with_external_data_that_survives_installation(tmp_path, monkeypatch):
    module, staged = exported(tmp_path, monkeypatch, external=True)
    assert staged.with_name("model.onnx.data").exists()
    installed = onnx_io.install_files(staged, tmp_path / "repo" / "m" / "1")
    assert (installed.parent / "model.onnx.data").exists()
    locations = {e.value for t in onnx.load(str(installed), load_external_data=False).graph.initializer
                 for e in t.external_data if e.key == "location"}
    assert locations == {"model.onnx.data"}
    x = np.random.default_rng(1).standard_normal((3, 64)).astype(np.float32)
    np.testing.assert_allclose(run(installed, x), module(torch.from_numpy(x)).detach().numpy(), atol=1e-5)
    assert onnx_io.onnx_file_bytes(installed) > installed.stat().st_size


def test_installing_replaces_an_existing_model_and_leaves_no_temporary_file(tmp_path):
    _, staged = exported(tmp_path)
    destination = tmp_path / "repo" / "m" / "1"
    destination.mkdir(parents=True)
    (destination / "model.onnx").write_bytes(b"old")
    installed = onnx_io.install_files(staged, destination)
    assert installed.read_bytes() != b"old"
    assert sorted(p.name for p in destination.iterdir()) == ["model.onnx"]


@pytest.mark.parametrize("precision", [Precision.int8, Precision.fp16])
def test_reduced_precision_variants_keep_the_io_types_and_stay_close(tmp_path, precision):
    module, staged = exported(tmp_path)
    variant = convert(staged, precision, tmp_path / f"model.{precision.value}.onnx")
    graph = onnx.load(str(variant)).graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    x = np.random.default_rng(2).standard_normal((4, 64)).astype(np.float32)
    import onnxruntime as ort

    session, _ = onnx_io.open_session(variant, level=ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED)
    got = onnx_io.run_session(session, {"features": x})["scores"]
    np.testing.assert_allclose(got, module(torch.from_numpy(x)).detach().numpy(), atol=0.05)


def test_fp32_conversion_is_the_file_itself(tmp_path):
    _, staged = exported(tmp_path)
    assert convert(staged, Precision.fp32, tmp_path / "unused.onnx") == staged


def op_types(path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


def test_int8_with_calibration_is_static_qdq_that_keeps_io_types_and_stays_close(tmp_path):
    torch.manual_seed(0)
    module = SmallConvNet().eval()
    staged = onnx_io.export_module(module, (torch.randn(2, 3, 32, 32),), tmp_path / "stage" / "model.onnx",
                                   ["pixels"], ["probabilities"], {"pixels": {0: "batch"}, "probabilities": {0: "batch"}})
    rng = np.random.default_rng(3)
    calibration = [{"pixels": rng.standard_normal((4, 3, 32, 32)).astype(np.float32)} for _ in range(4)]

    variant = convert(staged, Precision.int8, tmp_path / "model.int8.onnx", calibration)

    assert {"QuantizeLinear", "DequantizeLinear"} <= op_types(variant)
    assert variant.stat().st_size < staged.stat().st_size / 2
    graph = onnx.load(str(variant)).graph
    assert [i.type.tensor_type.elem_type for i in graph.input] == [onnx.TensorProto.FLOAT]
    assert [o.type.tensor_type.elem_type for o in graph.output] == [onnx.TensorProto.FLOAT]
    assert [n.op_type for n in graph.node if "probabilities" in n.output] == ["Softmax"]  # not snapped to int8
    x = rng.standard_normal((5, 3, 32, 32)).astype(np.float32)
    session, _ = onnx_io.open_session(variant)
    got = onnx_io.run_session(session, {"pixels": x})["probabilities"]
    np.testing.assert_allclose(got, module(torch.from_numpy(x)).detach().numpy(), atol=0.02)


def test_int8_without_calibration_stays_dynamic(tmp_path):
    _, staged = exported(tmp_path)
    variant = convert(staged, Precision.int8, tmp_path / "model.int8.onnx")
    assert "QuantizeLinear" not in op_types(variant) and "DynamicQuantizeLinear" in op_types(variant)


def test_export_leaves_the_attention_fast_path_as_it_was(tmp_path):
    before = torch.backends.mha.get_fastpath_enabled()
    onnx_io.export_module(torch.nn.Linear(4, 2), (torch.randn(1, 4),), tmp_path / "model.onnx", ["x"], ["y"])
    assert torch.backends.mha.get_fastpath_enabled() == before
