"""The onnxruntime_cpu backend's runner (snapfit/triton/onnx_runner.py) and the bridge the in-process backend
calls: pruned and folded graph variants, parameters, batching, per-request errors, raw Triton tensors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from snapfit.triton import inprocess_bridge
from snapfit.triton.graph_variants import specialised_graph
from snapfit.triton.onnx_runner import Failure, OnnxRunner, RunnerConfigError, output_sets, session_options, zero_inputs


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


def test_the_pruned_graph_keeps_only_the_nodes_of_its_outputs(two_output_graph):
    pruned = onnx.load_from_string(specialised_graph(str(two_output_graph), ["x"], ["small"]))
    assert [node.op_type for node in pruned.graph.node] == ["Add"]
    assert [output.name for output in pruned.graph.output] == ["small"]
    session = ort.InferenceSession(pruned.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.arange(4, dtype=np.float32)[None]
    np.testing.assert_array_equal(session.run(["small"], {"x": x})[0], x + 1)


def test_output_sets_parse_and_reject_unknown_empty_or_complete_sets():
    outputs = ["masks", "iou_predictions", "low_res_masks"]
    assert output_sets({}, outputs) == []
    assert output_sets({"output_sets": "low_res_masks, iou_predictions ; masks"}, outputs) == [
        frozenset({"low_res_masks", "iou_predictions"}), frozenset({"masks"})]
    for bad in ("nonexistent", "masks,iou_predictions,low_res_masks", ","):
        with pytest.raises(ValueError, match="output_sets"):
            output_sets({"output_sets": bad}, outputs)


@pytest.mark.parametrize("knob", ["allow_spinning", "stop_spinning_after_run"])
def test_spin_knobs_accept_only_0_or_1(knob):
    session_options({knob: "0"})
    session_options({knob: "1"})
    with pytest.raises(ValueError, match=knob):
        session_options({knob: "yes"})


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


def test_zero_when_absent_names_only_optional_inputs_with_fixed_dims():
    inputs = [{"name": "x", "data_type": "TYPE_FP32", "dims": [1, 4]},
              {"name": "m", "data_type": "TYPE_FP32", "dims": [1, 4], "optional": True},
              {"name": "v", "data_type": "TYPE_FP32", "dims": [-1], "optional": True}]
    zeros = zero_inputs({"zero_when_absent": "m"}, inputs)
    assert list(zeros) == ["m"] and zeros["m"].shape == (1, 4) and not zeros["m"].any()
    assert zero_inputs({}, inputs) == {}
    for bad in ("x", "v", "nonexistent"):
        with pytest.raises(ValueError, match="zero_when_absent"):
            zero_inputs({"zero_when_absent": bad}, inputs)


def masked_model(root, batched: bool) -> tuple[dict, str]:
    """A model folder: y = x + m * h and s = ReduceSum(x) (m, h optional and zero when absent; with `batched` a
    batch axis -1 first), and its config as Triton serves it."""
    batch = ["N"] if batched else []
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, batch + [4])
    m = helper.make_tensor_value_info("m", TensorProto.FLOAT, batch + [4])
    h = helper.make_tensor_value_info("h", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, batch + [4])
    total = helper.make_tensor_value_info("s", TensorProto.FLOAT, None)
    nodes = [helper.make_node("Mul", ["m", "h"], ["mh"]), helper.make_node("Add", ["x", "mh"], ["y"]),
             helper.make_node("ReduceSum", ["x"], ["s"], keepdims=1)]
    graph = helper.make_graph(nodes, "masked", [x, m, h], [y, total])
    (root / "1").mkdir(parents=True)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), root / "1" / "model.onnx")
    config = {"name": "masked", "max_batch_size": 8 if batched else 0,
              "input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [4]},
                        {"name": "m", "data_type": "TYPE_FP32", "dims": [4], "optional": True},
                        {"name": "h", "data_type": "TYPE_FP32", "dims": [1], "optional": True}],
              "output": [{"name": "y", "data_type": "TYPE_FP32", "dims": [4]},
                         {"name": "s", "data_type": "TYPE_FP32", "dims": [-1]}],
              "parameters": {"intra_op_num_threads": {"string_value": "1"},
                             "output_sets": {"string_value": "y"},
                             "zero_when_absent": {"string_value": "m,h"}}}
    return config, str(root)


def test_the_runner_answers_the_outputs_asked_for_with_or_without_the_optional_inputs(tmp_path):
    config, folder = masked_model(tmp_path / "masked", batched=False)
    runner = OnnxRunner(config, folder, 1)
    x = np.arange(4, dtype=np.float32)
    with_mask = {"x": x, "m": np.ones(4, np.float32), "h": np.array([2.0], np.float32)}
    results = runner.execute([({"x": x}, ["y"]), (with_mask, []), ({"x": x, "m": with_mask["m"]}, ["y"])])
    assert list(results[0]) == ["y"]
    np.testing.assert_array_equal(results[0]["y"], x)  # the folded, pruned variant
    assert list(results[1]) == ["y", "s"]  # all outputs, in config order
    np.testing.assert_array_equal(results[1]["y"], x + 2)
    assert isinstance(results[2], Failure) and "send all or none" in results[2].message
    assert {key for key, _ in runner.sessions} == {None, frozenset({"y"})}


def test_a_batch_runs_once_and_a_bad_request_fails_alone(tmp_path):
    config, folder = masked_model(tmp_path / "masked", batched=True)
    runner = OnnxRunner(config, folder, 1)
    runs = []
    for key, (session, reads) in list(runner.sessions.items()):
        runner.sessions[key] = (CountingSession(session, runs), reads)
    good = [({"x": np.full((n, 4), n, np.float32)}, ["y"]) for n in (1, 2)]
    wrong_width = ({"x": np.zeros((1, 5), np.float32)}, ["y"])
    results = runner.execute([good[0], wrong_width, good[1]])
    assert results[0]["y"].shape == (1, 4) and results[2]["y"].shape == (2, 4)
    np.testing.assert_array_equal(results[2]["y"], np.full((2, 4), 2, np.float32))
    assert isinstance(results[1], Failure) and "inference failed" in results[1].message
    assert sorted(runs) == [1, 3]  # the two good requests in one run of 3 rows; the bad one alone


class CountingSession:
    """An ORT session that records the batch size of each run."""

    def __init__(self, session, runs: list):
        self.session, self.runs = session, runs

    def run(self, names, feeds):
        self.runs.append(len(next(iter(feeds.values()))))
        return self.session.run(names, feeds)


def test_a_config_the_graph_does_not_match_does_not_load(tmp_path):
    config, folder = masked_model(tmp_path / "masked", batched=False)
    with pytest.raises(RunnerConfigError, match="lacks"):
        OnnxRunner({**config, "output": [*config["output"], {"name": "z", "data_type": "TYPE_FP32", "dims": [1]}]},
                   folder, 1)
    with pytest.raises(RunnerConfigError, match="does not exist"):
        OnnxRunner(config, folder, 2)


def test_the_bridge_reads_raw_triton_tensors_without_copying_and_answers_with_type_codes(tmp_path):
    config, folder = masked_model(tmp_path / "masked", batched=False)
    runner = inprocess_bridge.load(json.dumps(config), folder, 1)
    data = bytearray(np.arange(4, dtype=np.float32).tobytes())
    view = memoryview(data).toreadonly()
    answers = inprocess_bridge.run(runner, [([("x", 11, (4,), view)], ["y"]),
                                            ([("x", 11, (5,), view)], ["y"]),
                                            ([("x", 13, (4,), view)], []),
                                            ([("x", 11, (4,), view), ("m", 11, (4,), view)], [])])
    (outputs, error), too_short, strings, half = answers
    assert error is None and [(name, code, shape) for name, code, shape, _ in outputs] == [("y", 11, (4,))]
    np.testing.assert_array_equal(outputs[0][3], np.arange(4, dtype=np.float32))
    assert too_short[0] is None and "needs 20 bytes, got 16" in too_short[1]
    assert strings[0] is None and "data type 13" in strings[1]
    assert half[0] is None and "send all or none" in half[1]
    assert np.shares_memory(inprocess_bridge._array(11, (4,), view), np.frombuffer(view, np.uint8))  # no copy
    misaligned = memoryview(bytearray(17))[1:].toreadonly()  # 16 bytes starting at an odd address
    array = inprocess_bridge._array(11, (4,), misaligned)
    assert array.flags.aligned and not np.shares_memory(array, np.frombuffer(misaligned, np.uint8))
