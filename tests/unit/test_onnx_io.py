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
