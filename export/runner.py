"""Runs the registered exporters for one `snapfit export` invocation, with a progress bar per model."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from export.demo_models import DemoWeights
from export.errors import ExportError
from export.parity import ParityReport
from export.precision import Precision
from export.registry import EXPORTERS, resolve
from export.repository import DEMO_TRAINED_MODELS, SOURCE_REPOSITORY, copy_configs, exports_to_refresh
from export.request import PROFILES, ExportRequest
from export.tryon_weights import TRYON_MODEL, ensure_tryon_weights

# Upper bound of step() calls per exporter, so the bar moves smoothly; it is completed at the end anyway.
STEPS_PER_MODEL = 5
# the ONNX models, then the try-on model's PyTorch weights
ALL_MODELS = (*EXPORTERS, TRYON_MODEL)


PRECISIONS = ("auto", "fp32", "fp16", "int8")
# what a profile exports without --precision: the cpu profile serves int8 where export.int8_gate passes it
DEFAULT_PRECISION = {"cpu": "auto"}


def export_models(profile: str, repository: Path, only: list[str] | None = None, precision: str | None = None,
                  console: Console | None = None, make_gate=None, **choices) -> list[ParityReport]:
    """Exports the selected models (all by default) into `repository`; raises ExportError on the first failure.

    precision: fp32, fp16, int8, or auto (export.auto_precision, int8 where the int8 gate holds); None = the
    profile's DEFAULT_PRECISION, else fp32. make_gate: for auto, replaces export.int8_gate.CatalogGate (tests).
    """
    if profile not in PROFILES:
        raise ExportError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    precision = precision or DEFAULT_PRECISION.get(profile, "fp32")
    if precision not in PRECISIONS:
        raise ExportError(f"unknown precision {precision!r}; choose {', '.join(PRECISIONS)}")
    precision_value = Precision.fp32 if precision == "auto" else Precision(precision)
    from export.emulation import EMULATED_CPUS

    unknown_cpus = sorted(set(choices.get("emulated_cpus") or ()) - set(EMULATED_CPUS))
    if unknown_cpus:
        raise ExportError(f"unknown emulated CPU(s) {', '.join(unknown_cpus)}; choose from {', '.join(EMULATED_CPUS)}")
    if choices.get("emulated_cpus") and precision_value is Precision.fp16:
        raise ExportError("fp16 is for GPUs; --emulated-cpu checks CPU kernels (fp32 or int8)")
    unknown = sorted(set(only or []) - set(ALL_MODELS))
    if unknown:
        raise ExportError(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(ALL_MODELS)}")
    repository = Path(repository)
    if repository.resolve() != SOURCE_REPOSITORY.resolve():
        copy_configs(repository)
    request = ExportRequest.for_profile(profile, repository, precision=precision_value, **choices)
    models = [m for m in EXPORTERS if not only or m in only]
    with Progress(SpinnerColumn(), TextColumn("[bold]{task.fields[model]:<17}"), BarColumn(),
                  TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=False) as progress:
        def run(request: ExportRequest, models: list[str]) -> list[ParityReport]:
            return _run_exporters(request, models, progress)

        if precision == "auto" and models:
            from export.auto_precision import export_auto
            from export.int8_gate import CatalogGate

            reports = export_auto(request, models, run, make_gate or CatalogGate, say=progress.console.print)
        else:
            reports = run(request, models)
        if not only or TRYON_MODEL in only:
            task = progress.add_task("starting", total=3, model=TRYON_MODEL)
            ensure_tryon_weights(repository, profile,
                                 lambda description: progress.update(task, description=description, advance=1))
    return reports


def _run_exporters(request: ExportRequest, models: list[str], progress: Progress) -> list[ParityReport]:
    reports = []
    for model in models:
        task = progress.add_task("starting", total=STEPS_PER_MODEL, model=f"{model} {request.precision.value}")

        def step(description: str, task=task) -> None:
            progress.update(task, description=description, advance=1)

        started = time.perf_counter()
        report = resolve(model)(request, step)
        progress.update(task, completed=STEPS_PER_MODEL, description=f"done in {time.perf_counter() - started:.1f} s")
        reports.append(report)
    return reports


def export_for_serving(repository: Path, profile: str | None, console: Console | None = None,
                       default_profile: str = "tiny", demo: DemoWeights | None = None) -> dict[str, str]:
    """Exports what `repository` needs before it is served: the missing models, and with `profile` given, the
    models another profile wrote (export.repository.exports_to_refresh). Missing models use `profile`, else
    `default_profile`, in that profile's default precision (the cpu profile: int8 where the int8 gate holds).
    demo: weights trained on the demo catalog (export.demo_models): CLIP and the classifier are exported from them
    (fp32; small models), unless the repository holds the user's own checkpoint export. Returns
    {model: why it was exported}; raises ExportError, having changed nothing, when a model must not be overwritten."""
    refresh = exports_to_refresh(repository, profile, demo_weights=demo.key if demo else None)
    if refresh:
        console = console or Console(stderr=True)
        for model, reason in refresh.items():
            trained = demo is not None and model in DEMO_TRAINED_MODELS
            console.print(f"{model}: {reason}; exporting "
                          + ("the demo's trained weights" if trained else f"the {profile or default_profile} profile"))
        demo_models = [m for m in refresh if demo is not None and m in DEMO_TRAINED_MODELS]
        others = [m for m in refresh if m not in demo_models]
        if others:
            export_models(profile or default_profile, repository=repository, only=others, console=console)
        if demo_models:
            export_models(profile or default_profile, repository=repository, only=demo_models, console=console,
                          precision="fp32", **demo.export_choices())
    return refresh


def summary_table(reports: list[ParityReport]) -> Table:
    table = Table(title="exported models")
    for column in ("model", "precision", "weights", "size MB", "load s", "parity", "int8 gate"):
        table.add_column(column)
    for r in reports:
        metrics = ", ".join(f"{k}={m.value:.6g}" for k, m in r.metrics.items())
        table.add_row(r.model, r.precision, r.source, f"{r.onnx_bytes / 1e6:.1f}", f"{r.load_seconds:.2f}",
                      ("[green]ok[/] " if r.passed else "[red]FAILED[/] ") + metrics, _gate_cell(r.int8_gate))
    return table


def _gate_cell(gate: dict | None) -> str:
    if gate is None:
        return "-"
    if gate["value"] is None:
        return "[red]int8 refused by parity[/]"
    verdict = "[green]pass[/]" if gate["passed"] else "[red]fail[/]"
    return f"{verdict} {gate['metric']}={gate['value']:.4g} (>= {gate['threshold']:g})"
