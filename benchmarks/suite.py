"""`snapfit bench`: every benchmark in one run, one results.json + report.md with plots.

    snapfit bench --quick            # smoke run, a few minutes; report under runs/bench/<machine-id>-quick/
    snapfit bench                    # full run; report under benchmarks/results/<machine-id>/

Steps, in order (each can be picked with `only`):
  peaks   the machine's matmul peak per precision (benchmarks.flops)
  models  per-model latency: torch fp32 / bf16, ONNX Runtime fp32 / int8, Triton-served fp32; FLOP efficiency
          (benchmarks.model_latency), plus the serving overhead Triton adds over in-process ONNX Runtime
  triton  gRPC concurrency sweep of each served model with perf_analyzer (benchmarks.perf_analyzer)
  http    the orchestrator's HTTP API under load for the original project's scenarios, and the comparison with
          its torch -> ONNX table (benchmarks.http_load, benchmarks.original)
  faiss   FAISS search latency, memory and recall for 10k / 100k / 1M vectors (benchmarks.faiss_scale)

The served fp32 models come from the model repository (`make demo` has exported them; missing ones are exported
here), int8 ones from a repository under runs/bench/ that the first full run fills (a quick run uses them when
present and reports their rows as not exported otherwise: exporting them takes minutes). Triton and the orchestrator are started on free
loopback ports for the run and stopped by PID afterwards. On a CUDA device only `peaks` and `models` run (torch
fp32 / fp16 / bf16 on the GPU).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from benchmarks import flops, model_latency, original
from benchmarks.machine import machine_id, machine_info
from benchmarks.report import RESULTS_FILE, load_results, write_report
from snapfit import contract

STEPS = ("peaks", "models", "triton", "http", "faiss")
GPU_STEPS = ("peaks", "models")
REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_ROOT = REPO_ROOT / "benchmarks" / "results"
SCRATCH_ROOT = REPO_ROOT / "runs" / "bench"


@dataclass(frozen=True)
class Budget:
    """How much each step measures: the quick smoke run or the full run."""

    peak_sizes: tuple[int, ...]
    peak_seconds: float
    models: tuple[str, ...]
    batches: tuple[int, ...]
    iterations: int
    max_seconds: float
    warmup: int  # untimed calls before each per-model measurement
    perf_models: tuple[str, ...]
    perf_concurrency: tuple[int, ...]
    perf_measurement_ms: int
    http_concurrency: tuple[int, ...]
    http_requests: int
    http_seconds: float
    http_warmup: int  # untimed requests per scenario
    catalog_size: int
    faiss_sizes: tuple[int, ...]
    faiss_iterations: int
    faiss_seconds: float


# every step and every served model once, as little of each as still gives numbers: a smoke run, not a report
QUICK = Budget(peak_sizes=(1024,), peak_seconds=1.0, models=model_latency.ONNX_MODELS, batches=(1,), iterations=3,
               max_seconds=2.0, warmup=0, perf_models=(contract.CLIP_TEXT,), perf_concurrency=(1, 2),
               perf_measurement_ms=2000, http_concurrency=(1,), http_requests=5, http_seconds=5.0, http_warmup=1,
               catalog_size=1_000, faiss_sizes=(10_000,), faiss_iterations=50, faiss_seconds=2.0)
FULL = Budget(peak_sizes=(1024, 2048), peak_seconds=3.0, models=model_latency.MODELS, batches=(1, 8, 32),
              iterations=30, max_seconds=15.0, warmup=1,
              perf_models=(contract.CLIP_TEXT, contract.CLIP_IMAGE, contract.TRYON_CLASSIFIER, contract.SAM_DECODER),
              perf_concurrency=(1, 2, 4, 8),
              perf_measurement_ms=5_000, http_concurrency=(1, 2, 4, 8), http_requests=100, http_seconds=30.0,
              http_warmup=2, catalog_size=10_000, faiss_sizes=(10_000, 100_000, 1_000_000), faiss_iterations=200,
              faiss_seconds=10.0)

# GPU calls take milliseconds: more calls per measurement, a shorter budget each, the sizes a GPU needs to peak
GPU = Budget(**{**FULL.__dict__, "peak_sizes": flops.GPU_SIZES, "peak_seconds": 2.0, "iterations": 50,
                "max_seconds": 5.0})


@dataclass
class BenchRun:
    """One `snapfit bench` invocation."""

    quick: bool = False
    profile: str = "base"
    repository: Path = REPO_ROOT / "model_repository"
    out: Path | None = None
    only: Sequence[str] = ()
    device: str = "cpu"
    budget: Budget | None = None  # None: QUICK, or FULL (GPU on a CUDA device)
    scratch: Path = field(default=SCRATCH_ROOT)
    render: bool = True  # False: results.json only (a GPU machine without matplotlib); render it later

    def steps(self) -> tuple[str, ...]:
        unknown = sorted(set(self.only) - set(STEPS))
        if unknown:
            raise ValueError(f"unknown step(s) {', '.join(unknown)}; choose from {', '.join(STEPS)}")
        allowed = GPU_STEPS if self.device.startswith("cuda") else STEPS
        return tuple(s for s in STEPS if (not self.only or s in self.only) and s in allowed)

    def sizes(self) -> Budget:
        if self.budget:
            return self.budget
        return QUICK if self.quick else (GPU if self.device.startswith("cuda") else FULL)

    def out_dir(self, info: dict) -> Path:
        """The committed folder for full runs; an ignored scratch folder for quick ones, so a smoke run never
        overwrites a full report."""
        if self.out:
            return Path(self.out)
        return (self.scratch / f"{machine_id(info)}-quick") if self.quick else RESULTS_ROOT / machine_id(info)

    def int8_repository(self) -> Path:
        return self.scratch / f"{self.profile}-int8-repository"


def ensure_exports(run: BenchRun, console: Console) -> None:
    """Makes the served repository hold the run's profile: exports missing models (and the try-on weights Triton's
    repository check wants) and those another profile wrote, so rows labelled with a profile time its models."""
    from export.runner import export_for_serving

    export_for_serving(run.repository, run.profile, console)


class Recorder:
    """Keeps the run's results and rewrites results.json + report.md after every step, so a run that is stopped
    half-way still leaves the steps it finished."""

    def __init__(self, out_dir: Path, info: dict, keep_other_sections: bool, render: bool = True):
        self.out_dir, self.render = out_dir, render
        previous = load_results(out_dir) if keep_other_sections else {}
        self.results = {"machine": info, "sections": previous.get("sections", {})}

    def save(self, section: str, rows: list[dict]) -> Path:
        self.results["sections"][section] = rows
        if self.render:
            return write_report(self.results, self.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / RESULTS_FILE
        path.write_text(json.dumps(self.results, indent=2) + "\n")
        return path


def run_bench(run: BenchRun, console: Console | None = None, show_progress: bool = True) -> Path:
    """Runs the selected steps; returns the report.md path."""
    console = console or Console()
    steps = run.steps()
    budget = run.sizes()
    info = machine_info()
    out_dir = run.out_dir(info)
    recorder = Recorder(out_dir, info, keep_other_sections=bool(run.only), render=run.render)
    console.print(f"snapfit bench ({'quick' if run.quick else 'full'}, {run.profile} profile, {run.device}): "
                  f"{', '.join(steps)} -> {out_dir}")
    cpu = not run.device.startswith("cuda")
    if cpu and {"models", "triton", "http"} & set(steps):
        ensure_exports(run, console)
    peaks: dict[str, float] = {}
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="snapfit-bench-")))
        if "peaks" in steps:
            _step(console, "matmul peaks")
            peak_rows = flops.measure_peaks(run.device, budget.peak_sizes, budget.peak_seconds)
            peaks = flops.best_peaks(peak_rows)
            recorder.save(flops.PEAK_SECTION, peak_rows)
        triton = None
        if cpu and {"models", "triton", "http"} & set(steps):
            from benchmarks.stack import serving_triton

            _step(console, f"starting Triton on {run.repository}")
            triton = stack.enter_context(serving_triton(run.repository, log_path=logs / "tritonserver.log"))
        if "models" in steps:
            _step(console, "per-model latency")
            rows = model_latency.run(
                budget.models, run.profile, budget.batches, budget.iterations, budget.max_seconds,
                show_progress=show_progress, sam_encoder_max_batch=1 if cpu else model_latency.SAM_ENCODER_MAX_BATCH,
                device=run.device, onnx_repositories={"fp32": run.repository, "int8": run.int8_repository()}
                if cpu else {}, triton_grpc_url=triton.grpc_url if triton else None, peaks=peaks, warmup=budget.warmup,
                export_missing=("fp32",) if run.quick else ("fp32", "int8"))
            recorder.save(model_latency.SECTION, rows)
        if "triton" in steps:
            _step(console, "Triton gRPC concurrency sweep (perf_analyzer)")
            recorder.save(*_perf_analyzer(triton.grpc_url, budget))
        if "http" in steps:
            _step(console, "orchestrator HTTP load")
            http_section, http_rows = _http_load(run, triton.grpc_url, budget, logs, show_progress)
            recorder.save(http_section, http_rows)
            recorder.save(original.SECTION, original.compare(http_rows))
    if "faiss" in steps:
        from benchmarks import faiss_scale  # imports faiss, which a GPU machine running only `models` may lack

        _step(console, "FAISS scale")
        recorder.save(faiss_scale.SECTION, faiss_scale.run(
            budget.faiss_sizes, iterations=budget.faiss_iterations, max_seconds=budget.faiss_seconds,
            show_progress=show_progress))
    # a run of some steps adds its row to the earlier runs whose sections the report still shows
    earlier = recorder.results["sections"].get("run", []) if run.only else []
    report = recorder.save("run", [*earlier, {"mode": "quick" if run.quick else "full", "profile": run.profile,
                                              "device": run.device, "steps": " ".join(steps),
                                              "wall_s": round(time.perf_counter() - started, 1)}])
    console.print(f"[green]report[/]: {report}")
    return report


def _step(console: Console, what: str) -> None:
    console.print(f"[bold]•[/] {what} ...")


def _perf_analyzer(grpc_url: str, budget: Budget) -> tuple[str, list[dict]]:
    from benchmarks import perf_analyzer

    # Three windows per level, accepted whatever their spread (recorded as spread_pct): on a shared 2-core CPU the
    # windows rarely agree within perf_analyzer's usual 10-25 %, and a rejected level would leave no numbers.
    # sam_encoder (seconds per call on a CPU) would need minute-long windows; the HTTP load's new-image click
    # covers it under concurrency.
    rows: list[dict] = []
    for model in budget.perf_models:
        rows += perf_analyzer.sweep(grpc_url, model, concurrencies=budget.perf_concurrency,
                                    measurement_ms=budget.perf_measurement_ms, max_trials=3,
                                    stability_pct=perf_analyzer.ANY_STABILITY_PCT)
    return perf_analyzer.SECTION, rows


def _http_load(run: BenchRun, grpc_url: str, budget: Budget, workdir: Path, show_progress: bool
               ) -> tuple[str, list[dict]]:
    from benchmarks import http_load
    from benchmarks.stack import serving_orchestrator

    catalog_dir = workdir / "catalog"
    store_url = f"sqlite:///{catalog_dir / 'catalog.db'}"
    http_load.seed_catalog(store_url, budget.catalog_size, dim=_embedding_dim(run.repository), seed=0)
    with serving_orchestrator(grpc_url, catalog_dir, store_url) as base_url:
        rows = http_load.run(base_url, concurrencies=budget.http_concurrency, max_requests=budget.http_requests,
                             max_seconds=budget.http_seconds, warmup=budget.http_warmup, show_progress=show_progress)
    return http_load.SECTION, rows


def _embedding_dim(repository: Path) -> int:
    """The CLIP embedding size the repository serves (clip_image's `embeddings` output)."""
    import re

    config = (Path(repository) / contract.CLIP_IMAGE / "configs" / "cpu.pbtxt").read_text()
    match = re.search(r'name:\s*"embeddings".*?dims:\s*\[\s*(\d+)\s*\]', config, re.S)
    return int(match.group(1)) if match else contract.CLIP_EMBEDDING_DIM

