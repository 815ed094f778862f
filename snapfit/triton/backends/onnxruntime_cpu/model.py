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
    stop_spinning_after_run   1 stops the spinning when a call returns (ONNX Runtime's session.force_spinning_stop):
                           threads still spin between the operators of a call, but do not go on taking cores
                           from the next model of a request, or from the orchestrator, after it
    output_sets            ;-separated lists of ,-separated output names, e.g. "low_res_masks,iou_predictions":
                           a request asking for exactly one of these sets runs a copy of the graph pruned to
                           those outputs, so nodes that only feed other outputs are not computed (ONNX Runtime
                           runs every node of a graph whatever outputs a call names)
    zero_when_absent       ,-separated input names, each `optional: true` in the config with fixed dims: a request
                           that omits all of them runs a copy of the graph in which they are constant zeros, so
                           ONNX Runtime folds away what depends only on them at load time (sam_decoder: the
                           mask_input branch, which a click without a previous mask multiplies by
                           has_mask_input = 0). A request must send all of them or none.

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

from snapfit.triton.graph_variants import specialised_graph

_OPTIMIZATION_LEVELS = {
    "disable_all": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


_SPIN_ENTRIES = {"allow_spinning": "session.intra_op.allow_spinning",
                 "stop_spinning_after_run": "session.force_spinning_stop"}


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
    for knob, entry in _SPIN_ENTRIES.items():
        if knob in parameters:
            if parameters[knob] not in ("0", "1"):
                raise ValueError(f"{knob} must be 0 or 1, got {parameters[knob]!r}")
            options.add_session_config_entry(entry, parameters[knob])
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


def _zero_inputs(parameters: dict[str, str], config_inputs: list[dict]) -> dict[str, np.ndarray]:
    """The `zero_when_absent` parameter as {input name: its zeros}; each named input must be optional with fixed
    dims in the config."""
    by_name = {tensor["name"]: tensor for tensor in config_inputs}
    zeros = {}
    for name in filter(None, (part.strip() for part in parameters.get("zero_when_absent", "").split(","))):
        tensor = by_name.get(name)
        if tensor is None or not tensor.get("optional", False):
            raise ValueError(f"zero_when_absent names {name!r}, which is not an optional input of the config")
        dims = [int(d) for d in tensor["dims"]]
        if min(dims, default=0) < 0:
            raise ValueError(f"zero_when_absent input {name!r} needs fixed dims, got {dims}")
        zeros[name] = np.zeros(dims, dtype=pb_utils.triton_string_to_numpy(tensor["data_type"]))
    return zeros


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
        self.input_names = [i["name"] for i in config["input"]]
        self.outputs = [(o["name"], pb_utils.triton_string_to_numpy(o["data_type"])) for o in config["output"]]
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        graph_inputs = {i.name for i in self.session.get_inputs()}
        graph_outputs = {o.name for o in self.session.get_outputs()}
        missing = (set(self.input_names) - graph_inputs) | ({n for n, _ in self.outputs} - graph_outputs)
        if missing:
            raise pb_utils.TritonModelException(
                f"{self.model_name}: config names tensors the ONNX graph lacks: {sorted(missing)}")
        zeros = _zero_inputs(parameters, config["input"])
        self.zero_inputs = frozenset(zeros)
        # {(output names or None for all, inputs sent as zeros): (session, the inputs its graph still reads)}
        self.sessions: dict[tuple[frozenset[str] | None, bool], tuple[ort.InferenceSession, list[str]]] = {
            (None, False): (self.session, [i.name for i in self.session.get_inputs()])}
        self.output_sets = set(_output_sets(parameters, [name for name, _ in self.outputs]))
        for names in [None, *self.output_sets]:
            ordered = None if names is None else [name for name, _ in self.outputs if name in names]
            for folded in (False, True) if zeros else (False,):
                if (names, folded) in self.sessions:
                    continue
                graph = specialised_graph(path, self.input_names, ordered, zeros if folded else None)
                session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
                self.sessions[(names, folded)] = (session, [i.name for i in session.get_inputs()])

    def execute(self, requests):
        feeds = [self._feeds(request) for request in requests]
        wanted = [self._wanted(request) for request in requests]
        responses = [None] * len(requests)
        for index, feed in enumerate(feeds):
            absent = set(self.input_names) - set(feed)
            if absent and absent != self.zero_inputs:  # Triton lets any optional input be left out
                message = (f"{self.model_name}: send all or none of {sorted(self.zero_inputs)}; this request "
                           f"lacks {sorted(absent)}")
                responses[index] = pb_utils.InferenceResponse(
                    error=pb_utils.TritonError(message, pb_utils.TritonError.INVALID_ARG))
        for indices in self._groups([f if r is None else None for f, r in zip(feeds, responses)]):
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
        """The request's inputs by name; optional ones it left out are absent."""
        tensors = {name: pb_utils.get_input_tensor_by_name(request, name) for name in self.input_names}
        return {name: tensor.as_numpy() for name, tensor in tensors.items() if tensor is not None}

    def _groups(self, feeds: list[dict[str, np.ndarray] | None]) -> list[list[int]]:
        """Request indices that can share one session run: same inputs and non-batch shapes (batched models only).
        None marks a request already answered."""
        if not self.batched:
            return [[i] for i, feed in enumerate(feeds) if feed is not None]
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, feed in enumerate(feeds):
            if feed is not None:
                groups[tuple(feed[name].shape[1:] if name in feed else None for name in self.input_names)].append(i)
        return list(groups.values())

    def _run_group(self, feeds: list[dict[str, np.ndarray]], wanted: list[list[str]]):
        if len(feeds) == 1:
            return [self._run_one(feeds[0], wanted[0])]
        merged = {name: np.concatenate([f[name] for f in feeds]) for name in feeds[0]}
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
        output_set = frozenset(names) if frozenset(names) in self.output_sets else None
        folded = bool(self.zero_inputs) and not self.zero_inputs & set(feed)
        session, reads = self.sessions[(output_set, folded)]
        return dict(zip(names, session.run(names, {name: feed[name] for name in reads})))

    def _response(self, outputs: dict[str, np.ndarray]):
        tensors = [pb_utils.Tensor(name, np.ascontiguousarray(outputs[name].astype(dtype, copy=False)))
                   for name, dtype in self.outputs if name in outputs]
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def finalize(self):
        self.session = None
        self.sessions = {}
