"""`snapfit bench`: the benchmark suite behind benchmarks/results/<machine-id>/."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from snapfit.cli.app import DEFAULT_REPOSITORY, app, console, setup_logging


@app.command()
def bench(
    quick: Annotated[bool, typer.Option(help="smoke run (a few minutes); its report goes to runs/bench/<machine-id>-quick/")] = False,
    only: Annotated[Optional[list[str]], typer.Option(help="run just these steps (repeatable): peaks, models, triton, http, import, faiss")] = None,
    profile: Annotated[str, typer.Option(help="model sizes: base (full-size architectures, SAM ViT-B), cpu (base with the light SAM encoder) or tiny (tests). Each profile's results go under its own key in the same machine folder, so `--profile cpu` then `--profile base` gives one report with both side by side")] = "base",
    repository: Annotated[Path, typer.Option(help="model repository with the served fp32 models (exported here if missing)")] = DEFAULT_REPOSITORY,
    out: Annotated[Optional[Path], typer.Option(help="results folder (default: benchmarks/results/<machine-id>/, quick: runs/bench/<machine-id>-quick/)")] = None,
    device: Annotated[str, typer.Option(help="cpu, or cuda: torch fp32/fp16/bf16 on the GPU (steps peaks and models only)")] = "cpu",
) -> None:
    """Benchmark torch vs ONNX Runtime vs Triton per model, Triton and the HTTP API under load, catalog import, FAISS at scale, and judge issue 12's targets from the run's own rows.

    Writes results.json, report.md and PNG plots (docs/benchmarks.md); the report opens with the targets table, one measured / met column per profile in the folder.

    Both profiles side by side: `snapfit bench --profile cpu`, then `snapfit bench --profile base` (about 45 min together on a 2-core CPU, exports included). Both write to the same machine folder, each replacing only its own profile's results; the cpu profile skips the FAISS step and the try-on UNet step, which do not depend on the SAM encoder.

    Triton and the orchestrator are started on free loopback ports for the run and stopped afterwards.
    """
    setup_logging(False)
    from benchmarks.suite import BenchRun, run_bench
    from snapfit.cli.signals import stop_signals_interrupt

    run = BenchRun(quick=quick, profile=profile, repository=repository, out=out, only=tuple(only or ()), device=device)
    try:
        run.steps()
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--only")
    from export.errors import ExportError

    try:
        with stop_signals_interrupt():  # SIGTERM/SIGHUP unwind the run, which stops the servers it started
            run_bench(run, console)
    except ExportError as error:  # e.g. the repository holds another profile's export of a user's checkpoint
        console.print(f"[bold red]{error}[/]")
        raise typer.Exit(1)
    except KeyboardInterrupt:
        console.print("bench stopped; the servers it started are stopped")
        raise typer.Exit(130)

