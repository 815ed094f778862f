"""The last steps every exporter shares: precision variant, parity check, config check, atomic install."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import onnxruntime as ort

from export import emulation, onnx_io, precision
from export.instruction_set import describe_cpu
from export.parity import ParityReport, check_thresholds, software_versions
from export.recorded_session import RecordingSession
from export.repository import check_config_matches
from export.request import ExportRequest

log = logging.getLogger(__name__)

MeasureParity = Callable[[ort.InferenceSession, ParityReport], None]


def publish(
    request: ExportRequest,
    model: str,
    fp32_path: Path,
    report: ParityReport,
    measure: MeasureParity,
    export_started: float,
    calibration: Sequence[precision.Feeds] | None = None,
) -> ParityReport:
    """Turns a staged fp32 export into `<repository>/<model>/1/model.onnx` plus `parity.json`.

    `measure(session, report)` runs the candidate (of the requested precision) next to torch and adds
    metrics to `report`; it runs again on every emulated CPU of `request.emulated_cpus` (on the outputs ONNX
    Runtime computes there), and nothing is installed unless every metric passes its threshold everywhere.
    `calibration`: input batches for static int8 quantisation (see `precision.convert`); ignored by other precisions.
    """
    out_path = fp32_path.with_name(f"model.{request.precision.value}.onnx")
    overrides = dict(request.int8_overrides)
    candidate = precision.convert(fp32_path, request.precision, out_path, calibration, overrides)
    level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if request.precision is precision.Precision.fp16 and "CUDAExecutionProvider" not in ort.get_available_providers():
        # ORT 1.32's CPU layout optimisations segfault on fp16 transformer graphs; GPUs run them at ALL.
        level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        log.warning("%s: fp16 parity is measured with ONNX Runtime on the CPU, an estimate of GPU numerics", model)
    session, load_seconds = onnx_io.open_session(candidate, level=level)
    report.precision = request.precision.value
    report.profile = request.profile
    report.demo_weights = request.demo_weights
    report.load_seconds = round(load_seconds, 3)
    report.versions = software_versions()
    report.quantization = precision.description(request.precision, bool(calibration), overrides)
    report.exporting_cpu = describe_cpu()
    recorder = RecordingSession(session)
    measure(recorder, report)
    for cpu in request.emulated_cpus:
        report.cpu_checks.append(emulation.emulated_parity(candidate, recorder, measure, cpu))
    del session, recorder
    check_thresholds(report)
    model_dir = request.repository / model
    check_config_matches(model_dir, candidate)
    installed = onnx_io.install_files(candidate, request.version_dir(model))
    report.onnx_file = str(installed)
    report.onnx_bytes = onnx_io.onnx_file_bytes(installed)
    report.export_seconds = round(time.perf_counter() - export_started, 2)
    report.write(request.version_dir(model) / "parity.json")
    log.info("%s: %s, %.1f MB, loads in %.2f s", model, "passed parity", report.onnx_bytes / 1e6, load_seconds)
    return report
