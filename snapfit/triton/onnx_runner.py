"""Serving any ONNX model with ONNX Runtime on the CPU: the work of one Triton model instance, free of Triton.

The `onnxruntime_cpu` backend runs this inside Triton's own process (backends/onnxruntime_cpu/inprocess.cc, a C++
backend that embeds Python: request tensors become numpy views of Triton's buffers, no stub process in between);
where that backend cannot be built it runs in the Python backend's stub process instead (model.py next to it).
Nothing here is model-specific: tensor names and dtypes come from the model's config, the file from
`default_model_filename`, session knobs from `parameters`:

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

import os
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from snapfit.triton.graph_variants import specialised_graph

_OPTIMIZATION_LEVELS = {
    "disable_all": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
_SPIN_ENTRIES = {"allow_spinning": "session.intra_op.allow_spinning",
                 "stop_spinning_after_run": "session.force_spinning_stop"}
# Triton's config data types (TYPE_ prefix dropped) that an ONNX graph's tensors can have
NUMPY_DTYPES = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
                "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "FP16": np.float16,
                "FP32": np.float32, "FP64": np.float64}

Feeds = dict[str, np.ndarray]


class RunnerConfigError(ValueError):
    """The model's config or files do not allow serving it: the model does not load."""


@dataclass(frozen=True)
class Failure:
    """One request's error (the others of its batch still get their outputs); Triton answers INVALID_ARG."""

    message: str


def numpy_dtype(config_type: str) -> np.dtype:
    """numpy dtype of a config data type such as "TYPE_FP32"."""
    name = config_type.removeprefix("TYPE_")
    if name not in NUMPY_DTYPES:
        raise RunnerConfigError(f"data type {config_type} is not served by this runner")
    return np.dtype(NUMPY_DTYPES[name])


def session_options(parameters: dict[str, str]) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    level = parameters.get("graph_optimization_level", "all")
    if level not in _OPTIMIZATION_LEVELS:
        raise RunnerConfigError(f"graph_optimization_level must be one of {sorted(_OPTIMIZATION_LEVELS)}, "
                                f"got {level!r}")
    options.graph_optimization_level = _OPTIMIZATION_LEVELS[level]
    for knob in ("intra_op_num_threads", "inter_op_num_threads"):
        if knob in parameters:
            setattr(options, knob, int(parameters[knob]))
    for knob, entry in _SPIN_ENTRIES.items():
        if knob in parameters:
            if parameters[knob] not in ("0", "1"):
                raise RunnerConfigError(f"{knob} must be 0 or 1, got {parameters[knob]!r}")
            options.add_session_config_entry(entry, parameters[knob])
    return options


def output_sets(parameters: dict[str, str], outputs: list[str]) -> list[frozenset[str]]:
    """The `output_sets` parameter as sets of output names, each a strict, non-empty subset of `outputs`."""
    sets = []
    for text in filter(None, (part.strip() for part in parameters.get("output_sets", "").split(";"))):
        names = frozenset(name.strip() for name in text.split(",") if name.strip())
        unknown = names - set(outputs)
        if unknown or not names or names == set(outputs):
            raise RunnerConfigError(f"output_sets entry {text!r} must name some, not all, of the outputs {outputs}"
                                    + (f"; unknown: {sorted(unknown)}" if unknown else ""))
        sets.append(names)
    return sets


def zero_inputs(parameters: dict[str, str], config_inputs: list[dict]) -> Feeds:
    """The `zero_when_absent` parameter as {input name: its zeros}; each named input must be optional with fixed
    dims in the config."""
    by_name = {tensor["name"]: tensor for tensor in config_inputs}
    zeros = {}
    for name in filter(None, (part.strip() for part in parameters.get("zero_when_absent", "").split(","))):
        tensor = by_name.get(name)
        if tensor is None or not tensor.get("optional", False):
            raise RunnerConfigError(f"zero_when_absent names {name!r}, which is not an optional input of the config")
        dims = [int(d) for d in tensor["dims"]]
        if min(dims, default=0) < 0:
            raise RunnerConfigError(f"zero_when_absent input {name!r} needs fixed dims, got {dims}")
        zeros[name] = np.zeros(dims, dtype=numpy_dtype(tensor["data_type"]))
    return zeros


class OnnxRunner:
    """The ONNX Runtime sessions of one model instance, and the requests Triton hands it run on them.

    config: the model's config as Triton serves it (JSON); model_dir: the model's folder in the repository."""

    def __init__(self, config: dict, model_dir: str, version: str | int):
        self.model_name = config["name"]
        self.batched = config.get("max_batch_size", 0) > 0
        parameters = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        filename = config.get("default_model_filename") or "model.onnx"
        path = os.path.join(model_dir, str(version), filename)
        if not os.path.exists(path):
            raise RunnerConfigError(f"{self.model_name}: {path} does not exist; run `snapfit export` first")
        options = session_options(parameters)
        self.input_names = [i["name"] for i in config["input"]]
        self.outputs = [(o["name"], numpy_dtype(o["data_type"])) for o in config["output"]]
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        graph_inputs = {i.name for i in session.get_inputs()}
        graph_outputs = {o.name for o in session.get_outputs()}
        missing = (set(self.input_names) - graph_inputs) | ({n for n, _ in self.outputs} - graph_outputs)
        if missing:
            raise RunnerConfigError(f"{self.model_name}: config names tensors the ONNX graph lacks: {sorted(missing)}")
        zeros = zero_inputs(parameters, config["input"])
        self.zero_inputs = frozenset(zeros)
        # {(output names or None for all, inputs sent as zeros): (session, the inputs its graph still reads)}
        self.sessions: dict[tuple[frozenset[str] | None, bool], tuple[ort.InferenceSession, list[str]]] = {
            (None, False): (session, [i.name for i in session.get_inputs()])}
        self.output_sets = set(output_sets(parameters, [name for name, _ in self.outputs]))
        for names in [None, *self.output_sets]:
            ordered = None if names is None else [name for name, _ in self.outputs if name in names]
            for folded in (False, True) if zeros else (False,):
                if (names, folded) in self.sessions:
                    continue
                graph = specialised_graph(path, self.input_names, ordered, zeros if folded else None)
                variant = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
                self.sessions[(names, folded)] = (variant, [i.name for i in variant.get_inputs()])

    def execute(self, requests: list[tuple[Feeds, list[str]]]) -> list[dict[str, np.ndarray] | Failure]:
        """Runs the requests Triton handed over together. Each: (its inputs by name, optional ones it left out
        absent; the outputs it asked for, [] for all) -> its outputs in config order, each C-contiguous with the
        config's dtype, or its Failure."""
        feeds = [feed for feed, _ in requests]
        wanted = [self._wanted(asked) for _, asked in requests]
        results: list[dict[str, np.ndarray] | Failure | None] = [self._absent_error(feed) for feed in feeds]
        for indices in self._groups([f if r is None else None for f, r in zip(feeds, results)]):
            group = self._run_group([feeds[i] for i in indices], [wanted[i] for i in indices])
            for index, result in zip(indices, group):
                results[index] = result
        return results

    def _absent_error(self, feed: Feeds) -> Failure | None:
        absent = set(self.input_names) - set(feed)
        if absent and absent != self.zero_inputs:  # Triton lets any optional input be left out
            return Failure(f"{self.model_name}: send all or none of {sorted(self.zero_inputs)}; this request "
                           f"lacks {sorted(absent)}")
        return None

    def _wanted(self, asked: list[str]) -> list[str]:
        """The outputs a request asked for, in config order (all of them when it named none): ORT computes
        and Triton ships only those (sam_decoder's full-size masks are megabytes a click that a caller
        wanting only the IoU scores would otherwise pay for)."""
        return [name for name, _ in self.outputs if not asked or name in asked]

    def _groups(self, feeds: list[Feeds | None]) -> list[list[int]]:
        """Request indices that can share one session run: same inputs and non-batch shapes (batched models only).
        None marks a request already answered."""
        if not self.batched:
            return [[i] for i, feed in enumerate(feeds) if feed is not None]
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, feed in enumerate(feeds):
            if feed is not None:
                groups[tuple(feed[name].shape[1:] if name in feed else None for name in self.input_names)].append(i)
        return list(groups.values())

    def _run_group(self, feeds: list[Feeds], wanted: list[list[str]]) -> list[dict[str, np.ndarray] | Failure]:
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
        return [self._typed({name: split[name][i] for name in wanted[i]}) for i in range(len(feeds))]

    def _run_one(self, feed: Feeds, wanted: list[str]) -> dict[str, np.ndarray] | Failure:
        try:
            return self._typed(self._infer(feed, wanted))
        except Exception as error:  # ORT rejects what the config's -1 dims let through
            return Failure(f"{self.model_name}: inference failed for this request: {error}")

    def _infer(self, feed: Feeds, names: list[str]) -> dict[str, np.ndarray]:
        output_set = frozenset(names) if frozenset(names) in self.output_sets else None
        folded = bool(self.zero_inputs) and not self.zero_inputs & set(feed)
        session, reads = self.sessions[(output_set, folded)]
        return dict(zip(names, session.run(names, {name: feed[name] for name in reads})))

    def _typed(self, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The outputs in config order, C-contiguous, with the config's dtypes."""
        return {name: np.ascontiguousarray(outputs[name], dtype=dtype) for name, dtype in self.outputs
                if name in outputs}
