"""A Triton Python-based backend that serves any ONNX model with onnxruntime on the CPU.

The Triton build that installs from PyPI has only the Python backend, so every `configs/cpu.pbtxt` says
`backend: "onnxruntime_cpu"` and this one file serves the very `model.onnx` the GPU config serves with
Triton's onnxruntime backend. Nothing here is model-specific: tensor names and dtypes come from the
model's config, the file from `default_model_filename`, session knobs from `parameters`:

    intra_op_num_threads   threads for one inference (default: ORT's choice)
    inter_op_num_threads   threads across independent graph branches
    graph_optimization_level   disable_all | basic | extended | all (default all)
    allow_spinning         1 (ORT's default) lets idle intra-op threads spin for work; 0 makes them sleep, for
                           instances that share cores with other instances
    output_sets            ;-separated lists of ,-separated output names, e.g. "low_res_masks,iou_predictions":
                           a request asking for exactly one of these sets runs a copy of the graph pruned to
                           those outputs, so nodes that only feed other outputs are not computed (ONNX Runtime
                           runs every node of a graph whatever outputs a call names)

With max_batch_size > 0 the requests Triton's dynamic batcher hands over together are concatenated along
axis 0, run once, and split again; requests whose non-batch shapes differ run separately. A request that
fails (e.g. an image larger than the graph accepts) gets its own error; the others still succeed.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

_OPTIMIZATION_LEVELS = {
    "disable_all": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def _session_options(parameters: dict[str, str]) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    level = parameters.get("graph_optimization_level", "all")
    if level not in _OPTIMIZATION_LEVELS:
        raise ValueError(f"graph_optimization_level must be one of {sorted(_OPTIMIZATION_LEVELS)}, got {level!r}")
    options.graph_optimization_level = _OPTIMIZATION_LEVELS[level]
    for knob in ("intra_op_num_threads", "inter_op_num_threads"):
        if knob in parameters:
            setattr(options, knob, int(parameters[knob]))
    if "allow_spinning" in parameters:
        if parameters["allow_spinning"] not in ("0", "1"):
            raise ValueError(f"allow_spinning must be 0 or 1, got {parameters['allow_spinning']!r}")
        options.add_session_config_entry("session.intra_op.allow_spinning", parameters["allow_spinning"])
    return options


def _output_sets(parameters: dict[str, str], outputs: list[str]) -> list[frozenset[str]]:
    """The `output_sets` parameter as sets of output names, each a strict, non-empty subset of `outputs`."""
    sets = []
    for text in filter(None, (part.strip() for part in parameters.get("output_sets", "").split(";"))):
        names = frozenset(name.strip() for name in text.split(",") if name.strip())
        unknown = names - set(outputs)
        if unknown or not names or names == set(outputs):
            raise ValueError(f"output_sets entry {text!r} must name some, not all, of the outputs {outputs}"
                             + (f"; unknown: {sorted(unknown)}" if unknown else ""))
        sets.append(names)
    return sets


def _pruned_graph(path: str, inputs: list[str], outputs: list[str]) -> bytes:
    """The ONNX graph at `path` cut down to the nodes `outputs` depend on, serialised."""
    import onnx
    import onnx.utils

    model = onnx.load(path)
    return onnx.utils.Extractor(model).extract_model(inputs, outputs).SerializeToString()


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.model_name = config["name"]
        self.batched = config.get("max_batch_size", 0) > 0
        parameters = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        filename = config.get("default_model_filename") or "model.onnx"
        path = os.path.join(args["model_repository"], args["model_version"], filename)
        if not os.path.exists(path):
            raise pb_utils.TritonModelException(
                f"{self.model_name}: {path} does not exist; run `snapfit export` first")
        options = _session_options(parameters)
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input_names = [i["name"] for i in config["input"]]
        self.outputs = [(o["name"], pb_utils.triton_string_to_numpy(o["data_type"])) for o in config["output"]]
        graph_inputs = {i.name for i in self.session.get_inputs()}
        graph_outputs = {o.name for o in self.session.get_outputs()}
        missing = (set(self.input_names) - graph_inputs) | ({n for n, _ in self.outputs} - graph_outputs)
        if missing:
            raise pb_utils.TritonModelException(
                f"{self.model_name}: config names tensors the ONNX graph lacks: {sorted(missing)}")
        # {output names: (session of the graph pruned to them, the inputs that graph still reads)}
        self.pruned: dict[frozenset[str], tuple[ort.InferenceSession, list[str]]] = {}
        for names in _output_sets(parameters, [name for name, _ in self.outputs]):
            ordered = [name for name, _ in self.outputs if name in names]
            session = ort.InferenceSession(_pruned_graph(path, self.input_names, ordered), options,
                                           providers=["CPUExecutionProvider"])
            self.pruned[names] = (session, [i.name for i in session.get_inputs()])

    def execute(self, requests):
        feeds = [self._feeds(request) for request in requests]
        wanted = [self._wanted(request) for request in requests]
        responses = [None] * len(requests)
        for indices in self._groups(feeds):
            group = self._run_group([feeds[i] for i in indices], [wanted[i] for i in indices])
            for index, response in zip(indices, group):
                responses[index] = response
        return responses

    def _wanted(self, request) -> list[str]:
        """The outputs this request asked for, in config order (all of them when it named none): ORT computes
        and Triton ships only those (sam_decoder's full-size masks are megabytes a click that a caller
        wanting only the IoU scores would otherwise pay for)."""
        asked = set(request.requested_output_names())
        return [name for name, _ in self.outputs if not asked or name in asked]

    def _feeds(self, request) -> dict[str, np.ndarray]:
        return {name: pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in self.input_names}

    def _groups(self, feeds: list[dict[str, np.ndarray]]) -> list[list[int]]:
        """Request indices that can share one session run: same non-batch shapes (batched models only)."""
        if not self.batched:
            return [[i] for i in range(len(feeds))]
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, feed in enumerate(feeds):
            groups[tuple(feed[name].shape[1:] for name in self.input_names)].append(i)
        return list(groups.values())

    def _run_group(self, feeds: list[dict[str, np.ndarray]], wanted: list[list[str]]):
        if len(feeds) == 1:
            return [self._run_one(feeds[0], wanted[0])]
        merged = {name: np.concatenate([f[name] for f in feeds]) for name in self.input_names}
        names = [name for name, _ in self.outputs if any(name in w for w in wanted)]
        try:
            outputs = self._infer(merged, names)
        except Exception:  # one bad request must not fail its batch-mates: retry them one by one
            return [self._run_one(feed, w) for feed, w in zip(feeds, wanted)]
        sizes = np.cumsum([len(f[self.input_names[0]]) for f in feeds])[:-1]
        split = {name: np.split(value, sizes) for name, value in outputs.items()}
        return [self._response({name: split[name][i] for name in wanted[i]}) for i in range(len(feeds))]

    def _run_one(self, feed: dict[str, np.ndarray], wanted: list[str]):
        try:
            return self._response(self._infer(feed, wanted))
        except Exception as error:  # ORT rejects what the config's -1 dims let through
            message = f"{self.model_name}: inference failed for this request: {error}"
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, pb_utils.TritonError.INVALID_ARG))

    def _infer(self, feed: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
        pruned = self.pruned.get(frozenset(names))
        if pruned is None:
            return dict(zip(names, self.session.run(names, feed)))
        session, reads = pruned
        return dict(zip(names, session.run(names, {name: feed[name] for name in reads})))

    def _response(self, outputs: dict[str, np.ndarray]):
        tensors = [pb_utils.Tensor(name, np.ascontiguousarray(outputs[name].astype(dtype, copy=False)))
                   for name, dtype in self.outputs if name in outputs]
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def finalize(self):
        self.session = None
