"""The onnxruntime_cpu runner's output_sets: a graph pruned to some outputs computes only what they need."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

RUNNER = Path(__file__).resolve().parents[2] / "snapfit" / "triton" / "backends" / "onnxruntime_cpu" / "model.py"


@pytest.fixture(scope="module")
def runner():
    """The runner module, imported with a stand-in for the Python backend's pb_utils (only Triton provides it)."""
    stand_in = "triton_python_backend_utils" not in sys.modules
    sys.modules.setdefault("triton_python_backend_utils", types.SimpleNamespace())
    try:
        spec = importlib.util.spec_from_file_location("onnxruntime_cpu_runner", RUNNER)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if stand_in:
            del sys.modules["triton_python_backend_utils"]
    return module


@pytest.fixture
def two_output_graph(tmp_path) -> Path:
    """x -> small = x + 1 ; big = Tile(x, 1000): a cheap output and one only an expensive node feeds."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    small = helper.make_tensor_value_info("small", TensorProto.FLOAT, [1, 4])
    big = helper.make_tensor_value_info("big", TensorProto.FLOAT, [1, 4000])
    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    repeats = helper.make_tensor("repeats", TensorProto.INT64, [2], [1, 1000])
    graph = helper.make_graph([helper.make_node("Add", ["x", "one"], ["small"]),
                               helper.make_node("Tile", ["x", "repeats"], ["big"])],
                              "two_outputs", [x], [small, big], [one, repeats])
    path = tmp_path / "model.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_the_pruned_graph_keeps_only_the_nodes_of_its_outputs(runner, two_output_graph):
    pruned = onnx.load_from_string(runner._pruned_graph(str(two_output_graph), ["x"], ["small"]))
    assert [node.op_type for node in pruned.graph.node] == ["Add"]
    assert [output.name for output in pruned.graph.output] == ["small"]
    session = ort.InferenceSession(pruned.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.arange(4, dtype=np.float32)[None]
    np.testing.assert_array_equal(session.run(["small"], {"x": x})[0], x + 1)


def test_output_sets_parse_and_reject_unknown_empty_or_complete_sets(runner):
    outputs = ["masks", "iou_predictions", "low_res_masks"]
    assert runner._output_sets({}, outputs) == []
    assert runner._output_sets({"output_sets": "low_res_masks, iou_predictions ; masks"}, outputs) == [
        frozenset({"low_res_masks", "iou_predictions"}), frozenset({"masks"})]
    for bad in ("nonexistent", "masks,iou_predictions,low_res_masks", ","):
        with pytest.raises(ValueError, match="output_sets"):
            runner._output_sets({"output_sets": bad}, outputs)


def test_allow_spinning_accepts_only_0_or_1(runner):
    runner._session_options({"allow_spinning": "0"})
    with pytest.raises(ValueError, match="allow_spinning"):
        runner._session_options({"allow_spinning": "yes"})
