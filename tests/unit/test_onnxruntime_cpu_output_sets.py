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

from snapfit.triton.graph_variants import specialised_graph

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
    pruned = onnx.load_from_string(specialised_graph(str(two_output_graph), ["x"], ["small"]))
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


@pytest.mark.parametrize("knob", ["allow_spinning", "stop_spinning_after_run"])
def test_spin_knobs_accept_only_0_or_1(runner, knob):
    runner._session_options({knob: "0"})
    runner._session_options({knob: "1"})
    with pytest.raises(ValueError, match=knob):
        runner._session_options({knob: "yes"})


def test_constant_inputs_are_folded_into_the_graph(tmp_path):
    """y = x + m * h: with m and h constant zeros the graph reads only x and answers x."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    m = helper.make_tensor_value_info("m", TensorProto.FLOAT, [1, 4])
    h = helper.make_tensor_value_info("h", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes = [helper.make_node("Mul", ["m", "h"], ["mh"]), helper.make_node("Add", ["x", "mh"], ["y"])]
    graph = helper.make_graph(nodes, "masked", [x, m, h], [y])
    path = tmp_path / "model.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    zeros = {"m": np.zeros((1, 4), np.float32), "h": np.zeros(1, np.float32)}
    folded = ort.InferenceSession(specialised_graph(str(path), ["x", "m", "h"], None, zeros),
                                  providers=["CPUExecutionProvider"])
    assert [i.name for i in folded.get_inputs()] == ["x"]
    value = np.arange(4, dtype=np.float32)[None]
    np.testing.assert_array_equal(folded.run(["y"], {"x": value})[0], value)


def test_zero_when_absent_names_only_optional_inputs_with_fixed_dims(runner, monkeypatch):
    monkeypatch.setattr(runner, "pb_utils", types.SimpleNamespace(triton_string_to_numpy=lambda _: np.float32))
    inputs = [{"name": "x", "data_type": "TYPE_FP32", "dims": [1, 4]},
              {"name": "m", "data_type": "TYPE_FP32", "dims": [1, 4], "optional": True},
              {"name": "v", "data_type": "TYPE_FP32", "dims": [-1], "optional": True}]
    zeros = runner._zero_inputs({"zero_when_absent": "m"}, inputs)
    assert list(zeros) == ["m"] and zeros["m"].shape == (1, 4) and not zeros["m"].any()
    assert runner._zero_inputs({}, inputs) == {}
    for bad in ("x", "v", "nonexistent"):
        with pytest.raises(ValueError, match="zero_when_absent"):
            runner._zero_inputs({"zero_when_absent": bad}, inputs)
