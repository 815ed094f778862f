"""Writing ONNX files (incl. >2 GB external data), opening ORT sessions, and installing files atomically."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

DEFAULT_OPSET = 17
# protobuf cannot serialise a single message over 2 GiB; SAM vit_h's encoder needs external data.
EXTERNAL_DATA_THRESHOLD_BYTES = 1_800_000_000


def export_module(
    module: torch.nn.Module,
    args: tuple[torch.Tensor, ...],
    path: Path,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_axes: Mapping[str, Mapping[int, str]] | None = None,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Exports `module` in eval mode with named tensors to `path` (TorchScript-based exporter).

    Models whose weights exceed ~1.8 GB are re-saved with their tensors in `<path>.data` beside the graph.
    """
    module.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    # the MHA fast path swaps in fused kernels whose ONNX export differs from eager numerics; off for the export
    # only, so torch code running later in this process (parity references, benchmarks) keeps its default
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    param_bytes = sum(p.numel() * p.element_size() for p in module.parameters())
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings about Python-side shape math are expected here
            torch.onnx.export(
                module,
                args,
                str(path),
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_axes={k: dict(v) for k, v in (dynamic_axes or {}).items()},
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    if param_bytes > EXTERNAL_DATA_THRESHOLD_BYTES:
        model = onnx.load(str(path), load_external_data=True)
        for stale in path.parent.glob(path.name + "*"):
            if stale != path:
                stale.unlink()
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=path.name + ".data", size_threshold=1024)
    return path


def open_session(path: Path, threads: int | None = None,
                 level: ort.GraphOptimizationLevel = ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
                 ) -> tuple[ort.InferenceSession, float]:
    """Returns an ORT session for `path` (CUDA when onnxruntime-gpu is installed, else CPU) and its load seconds."""
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    start = time.perf_counter()
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    session = ort.InferenceSession(str(path), options, providers=providers)
    return session, time.perf_counter() - start


def run_session(session: ort.InferenceSession, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, dict(feeds))))


def onnx_file_bytes(path: Path) -> int:
    """Size of the graph plus any external data files written beside it."""
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())


def install_files(staged_model: Path, destination_dir: Path, filename: str = "model.onnx") -> Path:
    """Moves a staged model (and its external data) into `destination_dir` without a window where it is half-written."""
    destination_dir.mkdir(parents=True, exist_ok=True)
    final = destination_dir / filename
    for stale in destination_dir.glob(filename + ".data"):
        stale.unlink()
    data = staged_model.with_name(staged_model.name + ".data")
    if data.exists():
        # the graph refers to its data by file name, so rename it to match the installed graph
        model = onnx.load(str(staged_model), load_external_data=False)
        for tensor in model.graph.initializer:
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = filename + ".data"
        onnx.save_model(model, str(staged_model))
        shutil.move(str(data), str(destination_dir / (filename + ".data")))
    tmp = destination_dir / f".{filename}.tmp"
    shutil.move(str(staged_model), str(tmp))
    os.replace(tmp, final)
    return final


def staging_dir(prefix: str) -> tempfile.TemporaryDirectory:
    """A scratch folder for one export; removed when the export ends, pass or fail."""
    return tempfile.TemporaryDirectory(prefix=f"snapfit-{prefix}-")
