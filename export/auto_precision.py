"""`--precision auto`: serve each model in int8 where the int8 gate (export.int8_gate) passes it, in fp32 otherwise.

Both precisions are exported into scratch repositories first (each still checked against torch), the gate compares
them on the demo catalog, and only then is the chosen file of each model installed into the real repository, with
the gate's figures in its parity.json (`int8_gate`). An int8 export that fails its own parity check against torch
counts as failing the gate. Nothing is installed when an fp32 export fails.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from export import onnx_io
from export.errors import ExportParityError
from export.int8_gate import THRESHOLDS, CatalogGate
from export.parity import ParityReport
from export.precision import Precision
from export.registry import EXPORTERS
from export.repository import copy_configs
from export.request import ExportRequest
from snapfit import contract
from snapfit.repository_layout import parity_file

log = logging.getLogger(__name__)

# the fp32 models a model's gate also runs (the other SAM half, the other CLIP tower)
COMPANIONS = {
    contract.SAM_ENCODER: (contract.SAM_DECODER,), contract.SAM_DECODER: (contract.SAM_ENCODER,),
    contract.CLIP_IMAGE: (contract.CLIP_TEXT,), contract.CLIP_TEXT: (contract.CLIP_IMAGE,),
}
GATE_METRICS = {contract.CLIP_IMAGE: "top10_overlap", contract.CLIP_TEXT: "top10_overlap",
                contract.TRYON_CLASSIFIER: "decision_agreement",
                contract.SAM_ENCODER: "best_mask_iou", contract.SAM_DECODER: "best_mask_iou"}

RunExporters = Callable[[ExportRequest, Sequence[str]], list[ParityReport]]
MakeGate = Callable[[Path, Path], CatalogGate]


def export_auto(request: ExportRequest, models: Sequence[str], run: RunExporters,
                make_gate: MakeGate = CatalogGate, say: Callable[[str], None] = log.info) -> list[ParityReport]:
    """Exports `models` into `request.repository`, each in the precision its int8 gate chooses.

    run(request, models): the exporters of `models` for `request`, returning their reports (export.runner).
    make_gate(fp32_repository, int8_repository): measures GateResults (tests inject failing ones).
    """
    with tempfile.TemporaryDirectory(prefix="snapfit-auto-precision-") as tmp:
        fp32 = replace(request, precision=Precision.fp32, repository=copy_configs(Path(tmp) / "fp32"))
        int8 = replace(request, precision=Precision.int8, repository=copy_configs(Path(tmp) / "int8"))
        references = [m for m in EXPORTERS if m in models or any(m in COMPANIONS.get(x, ()) for x in models)]
        fp32_reports = {r.model: r for r in run(fp32, references)}
        int8_reports, refused = {}, {}
        for model in models:
            try:
                int8_reports[model] = run(int8, [model])[0]
            except ExportParityError as error:
                refused[model] = str(error)
        gate = make_gate(fp32.repository, int8.repository)
        chosen = []
        for model in models:
            started = time.perf_counter()
            figures = _refused(model, refused[model]) if model in refused else gate.gate(model).to_dict()
            figures["seconds"] = round(time.perf_counter() - started, 1)
            source, report = (int8, int8_reports[model]) if figures["passed"] else (fp32, fp32_reports[model])
            say(f"{model}: int8 gate {_describe(figures)}; serving {report.precision}")
            report.int8_gate = {**figures, "served": report.precision}
            chosen.append((model, source, report))
        return [_install(request, model, source.repository, report) for model, source, report in chosen]


def _refused(model: str, message: str) -> dict:
    metric = GATE_METRICS[model]
    return {"metric": metric, "value": None, "threshold": THRESHOLDS[metric], "passed": False, "samples": 0,
            "measured": f"not measured: the int8 export failed its parity check against torch ({message})"}


def _describe(figures: dict) -> str:
    if figures["value"] is None:
        return "not measured (int8 export refused by its parity check)"
    verdict = "passed" if figures["passed"] else "FAILED"
    return f"{figures['metric']} {figures['value']:.4f} (needs >= {figures['threshold']}) {verdict}"


def _install(request: ExportRequest, model: str, source: Path, report: ParityReport) -> ParityReport:
    """Moves `model`'s chosen export from the scratch repository `source` into `request.repository`."""
    installed = onnx_io.install_files(parity_file(source, model).with_name("model.onnx"), request.version_dir(model))
    report.onnx_file = str(installed)
    report.write(request.version_dir(model) / "parity.json")
    if model == contract.CLIP_TEXT:  # clip_tokenizer must tokenise as the installed text tower was exported
        tokenizer = parity_file(source, contract.CLIP_TOKENIZER).with_name("tokenizer.json")
        request.version_dir(contract.CLIP_TOKENIZER).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tokenizer, request.version_dir(contract.CLIP_TOKENIZER) / "tokenizer.json")
    return report
