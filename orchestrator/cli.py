"""The `snapfit` command line: export models, serve them with Triton, train the classifier, run the demo."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

app = typer.Typer(
    help="snapfit: fashion visual search and virtual try-on, served by Triton.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False,
)
console = Console(stderr=True)
DEFAULT_REPOSITORY = Path(__file__).resolve().parent.parent / "model_repository"


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"snapfit {version('snapfit')}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="print the version and exit")] = False,
) -> None:
    """snapfit: fashion visual search and virtual try-on, served by Triton."""


def _setup_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    # third-party libraries (open_clip) log chatty INFO lines on the root logger: show only their warnings
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=console, show_path=False)], force=True)
    for ours in ("export", "orchestrator", "benchmarks"):
        logging.getLogger(ours).setLevel(logging.DEBUG if verbose else logging.INFO)


@app.command()
def export(
    profile: Annotated[str, typer.Option(help="tiny (small random models, for tests) or base (full-size architectures)")] = "base",
    repository: Annotated[Path, typer.Option(help="model repository to write into; configs are copied there if missing")] = DEFAULT_REPOSITORY,
    only: Annotated[Optional[list[str]], typer.Option(help="export just these Triton models (repeatable)")] = None,
    precision: Annotated[str, typer.Option(help="fp32, fp16 (GPU serving) or int8 (CPU serving; portable across x86 CPUs, see docs/models.md)")] = "fp32",
    sam_variant: Annotated[Optional[str], typer.Option(help="tiny, vit_b, vit_l or vit_h")] = None,
    sam_checkpoint: Annotated[Optional[Path], typer.Option(help="segment-anything checkpoint (.pth)")] = None,
    clip_model: Annotated[Optional[str], typer.Option(help="open_clip model name or hf-hub:ORG/NAME")] = None,
    clip_pretrained: Annotated[Optional[str], typer.Option(help="open_clip pretrained tag or a local checkpoint file")] = None,
    classifier_variant: Annotated[Optional[str], typer.Option(help="tiny or efficientnet_v2_s")] = None,
    classifier_checkpoint: Annotated[Optional[Path], typer.Option(help="checkpoint written by `snapfit train-classifier`")] = None,
    seed: Annotated[int, typer.Option(help="seed for random-init weights")] = 0,
    emulated_cpu: Annotated[Optional[list[str]], typer.Option(help="also check parity with ONNX Runtime on this QEMU CPU model (repeatable; Haswell = AVX2 without AVX-512/VNNI); needs qemu-user and is slow: tiny models, or patience")] = None,
    verbose: bool = False,
) -> None:
    """Export SAM, CLIP and the classifier to ONNX, check parity against torch, write model.onnx + parity.json."""
    _setup_logging(verbose)
    from export.errors import ExportError
    from export.runner import export_models

    try:
        reports = export_models(
            profile=profile, repository=repository, only=only, precision=precision, seed=seed,
            sam_variant=sam_variant, sam_checkpoint=sam_checkpoint, clip_model=clip_model,
            clip_pretrained=clip_pretrained, classifier_variant=classifier_variant,
            classifier_checkpoint=classifier_checkpoint, console=console,
            emulated_cpus=tuple(emulated_cpu or ()),
        )
    except ExportError as error:
        console.print(f"[bold red]export failed:[/] {error}")
        raise typer.Exit(1)
    from export.runner import summary_table

    console.print(summary_table(reports))


@app.command()
def triton(
    repository: Annotated[Path, typer.Option(help="model repository to serve")] = DEFAULT_REPOSITORY,
    http_port: Annotated[int, typer.Option("--http-port", help="Triton HTTP/REST port")] = 8000,
    grpc_port: Annotated[int, typer.Option("--grpc-port", help="Triton gRPC port")] = 8001,
    metrics_port: Annotated[int, typer.Option("--metrics-port", help="Prometheus metrics port")] = 8002,
    model_config_name: Annotated[str, typer.Option("--model-config-name", help="configs/NAME.pbtxt to use per model; 'cpu' here, 'default' for config.pbtxt (GPU, needs Triton's onnxruntime backend)")] = "cpu",
    ready_timeout_s: Annotated[float, typer.Option(help="seconds to wait for every model to load")] = 900.0,
    log_verbose: Annotated[int, typer.Option(help="tritonserver --log-verbose level")] = 0,
) -> None:
    """Start tritonserver on the repository, wait until every model is ready, stop cleanly on SIGTERM/SIGINT."""
    from orchestrator.serving.tritonserver import TritonLaunch, TritonLaunchError, TritonPorts, TritonServer

    launch = TritonLaunch(repository=repository, ports=TritonPorts(http_port, grpc_port, metrics_port),
                          config_name=None if model_config_name == "default" else model_config_name,
                          log_verbose=log_verbose)
    server = TritonServer(launch)
    with _recording_stop_signals() as stop_requested:
        try:
            server.start()
            console.print(f"starting tritonserver (pid {server.process.pid}) on {repository} ...")
            ready = server.wait_until_ready(ready_timeout_s, cancelled=lambda: bool(stop_requested))
        except TritonLaunchError as error:
            console.print(f"[bold red]{error}[/]")
            server.stop()
            raise typer.Exit(1)
        if ready:
            console.print(f"[green]Triton is serving every model[/]: HTTP {server.http_url}, "
                          f"gRPC {server.grpc_url}, metrics {server.metrics_url}")
        while not stop_requested and server.process.poll() is None:
            time.sleep(0.5)
    code = server.stop()
    console.print(f"tritonserver stopped (exit code {code})")
    raise typer.Exit(0 if stop_requested else (code or 1))


@contextlib.contextmanager
def _recording_stop_signals():
    """Turns SIGINT/SIGTERM into entries of the yielded list (so we stop the server we started), then restores."""
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: received.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@app.command()
def serve(
    host: Annotated[Optional[str], typer.Option(help="bind address (default: SNAPFIT_HOST or 0.0.0.0)")] = None,
    port: Annotated[Optional[int], typer.Option(help="HTTP port (default: SNAPFIT_PORT or 8080)")] = None,
) -> None:
    """Run the HTTP orchestrator (FastAPI) against a running Triton; settings come from SNAPFIT_* variables."""
    import uvicorn

    from orchestrator.app import create_app
    from orchestrator.settings import Settings

    settings = Settings()
    _setup_logging(False)
    uvicorn.run(create_app(settings), host=host or settings.host, port=port or settings.port,
                log_level="info", timeout_graceful_shutdown=10)


@app.command("train-classifier")
def train_classifier(
    data: Annotated[Path, typer.Argument(help="folder with usable/ and unusable/ subfolders, or a CSV with image,label columns")],
    output: Annotated[Path, typer.Option(help="where to write the checkpoint (.pt) and its metrics (.json)")] = Path("runs/tryon_classifier.pt"),
    variant: Annotated[str, typer.Option(help="efficientnet_v2_s or tiny")] = "efficientnet_v2_s",
    epochs: int = 5,
    batch_size: int = 16,
    lr: Annotated[float, typer.Option(help="AdamW learning rate")] = 3e-4,
    val_fraction: Annotated[float, typer.Option(help="held-out fraction for accuracy/precision")] = 0.2,
    init_checkpoint: Annotated[Optional[Path], typer.Option(help="start from these weights (e.g. ImageNet EfficientNetV2-S)")] = None,
    seed: int = 0,
) -> None:
    """Fine-tune the try-on-readiness classifier on labelled product photos; report held-out accuracy and precision."""
    _setup_logging(False)
    from export.train_classifier import train

    report = train(data=data, output=output, variant=variant, epochs=epochs, batch_size=batch_size, lr=lr,
                   val_fraction=val_fraction, seed=seed, init_checkpoint=init_checkpoint)
    console.print(report)


@app.command()
def up(
    profile: Annotated[str, typer.Option(help="export profile used when the repository has no models")] = "tiny",
    repository: Annotated[Path, typer.Option(help="model repository")] = DEFAULT_REPOSITORY,
    port: Annotated[int, typer.Option(help="orchestrator HTTP port")] = 8080,
    http_port: Annotated[int, typer.Option("--http-port", help="Triton HTTP port")] = 8000,
    grpc_port: Annotated[int, typer.Option("--grpc-port", help="Triton gRPC port")] = 8001,
    metrics_port: Annotated[int, typer.Option("--metrics-port", help="Triton metrics port")] = 8002,
    demo_catalog: Annotated[Optional[int], typer.Option(help="generate and import a synthetic catalog of N products")] = None,
) -> None:
    """Start Triton and the orchestrator together in the foreground; Ctrl-C / SIGTERM stops both."""
    import os

    import uvicorn

    from orchestrator.app import create_app
    from orchestrator.serving.tritonserver import (
        TritonLaunch, TritonLaunchError, TritonPorts, TritonServer, missing_exports,
    )
    from orchestrator.settings import Settings

    _setup_logging(False)
    missing = missing_exports(repository)
    if missing:
        console.print(f"exporting {', '.join(missing)} ({profile} profile) ...")
        export(profile=profile, repository=repository, only=missing, precision="fp32", sam_variant=None,
               sam_checkpoint=None, clip_model=None, clip_pretrained=None, classifier_variant=None,
               classifier_checkpoint=None, seed=0, emulated_cpu=None, verbose=False)
    server = TritonServer(TritonLaunch(repository=repository, ports=TritonPorts(http_port, grpc_port, metrics_port)),
                          log_path=Path("runs") / "tritonserver.log")
    Path("runs").mkdir(exist_ok=True)
    with _recording_stop_signals() as stop_requested:
        try:
            server.start()
            console.print(f"starting tritonserver (pid {server.process.pid}); log in runs/tritonserver.log ...")
            ready = server.wait_until_ready(900, cancelled=lambda: bool(stop_requested))
        except TritonLaunchError as error:
            console.print(f"[bold red]{error}[/]")
            server.stop()
            raise typer.Exit(1)
    if not ready:
        server.stop()
        raise typer.Exit(0)
    os.environ["SNAPFIT_TRITON__GRPC_URL"] = server.grpc_url
    settings = Settings(port=port)
    if demo_catalog:
        _import_demo_catalog_when_ready(settings, demo_catalog)
    console.print(f"[green]snapfit is up[/]: API http://localhost:{port} (docs at /docs), "
                  f"Triton gRPC {server.grpc_url}, metrics {server.metrics_url}")
    # uvicorn shuts down on SIGTERM and then re-raises the signal with the handler that was installed before it;
    # with the default handler that kills this process before `finally` could stop tritonserver
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        uvicorn.run(create_app(settings), host=settings.host, port=port, log_level="warning",
                    timeout_graceful_shutdown=10)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
        code = server.stop()
        console.print(f"stopped the orchestrator and tritonserver (exit code {code})")


def _raise_keyboard_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _import_demo_catalog_when_ready(settings, count: int) -> None:
    """Generates runs/demo_catalog (once) and imports it through the API as soon as the orchestrator is ready."""
    import threading

    from orchestrator.catalog.synthetic import generate_catalog

    folder = Path("runs") / "demo_catalog"
    csv_path = folder / "catalog.csv"
    if not csv_path.exists():
        console.print(f"generating a synthetic demo catalog of {count} products in {folder} ...")
        generate_catalog(folder, count=count)
    if settings.catalog.image_root is None:
        settings.catalog.image_root = folder.resolve()
    threading.Thread(target=_upload_and_follow, args=(f"http://127.0.0.1:{settings.port}", csv_path),
                     daemon=True).start()


@app.command("import")
def import_catalog(
    csv_file: Annotated[Path, typer.Argument(help="catalog CSV (id, name, image, link, brand, price, tags, category)")],
    url: Annotated[str, typer.Option(help="orchestrator base URL")] = "http://localhost:8080",
    mapping: Annotated[Optional[Path], typer.Option(help="JSON column mapping for other CSV layouts")] = None,
) -> None:
    """Import a catalog CSV into a running orchestrator, with a progress bar and a per-row error report."""
    job = _upload_and_follow(url, csv_file, mapping)
    if job is None or job["status"] != "succeeded":
        raise typer.Exit(1)


def _upload_and_follow(base_url: str, csv_file: Path, mapping: Path | None = None) -> dict | None:
    import httpx

    try:
        return _upload_and_follow_unchecked(base_url, csv_file, mapping)
    except httpx.HTTPError as error:
        console.print(f"[bold red]lost contact with the orchestrator at {base_url}[/]: {error}")
        return None


def _upload_and_follow_unchecked(base_url: str, csv_file: Path, mapping: Path | None) -> dict | None:
    import httpx
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with httpx.Client(base_url=base_url, timeout=60) as client:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                if client.get("/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        data = {"base_dir": str(csv_file.resolve().parent)}
        if mapping:
            data["mapping"] = mapping.read_text()
        response = client.post("/v1/catalog/imports", files={"file": (csv_file.name, csv_file.read_bytes())}, data=data)
        if response.status_code != 202:
            console.print(f"[bold red]import refused[/]: {response.json().get('error', response.text)}")
            return None
        job = response.json()
        with Progress(TextColumn("importing {task.fields[name]}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[rate]:.1f} rows/s"), TimeRemainingColumn(), console=console) as bar:
            task = bar.add_task("import", total=job["total_rows"], name=csv_file.name, rate=0.0)
            while job["status"] in ("queued", "running"):
                time.sleep(0.5)
                job = client.get(f"/v1/catalog/imports/{job['job_id']}").json()
                bar.update(task, completed=job["processed_rows"], rate=job["rows_per_second"])
    console.print(f"import {job['status']}: {job['inserted']} inserted, {job['updated']} updated, "
                  f"{job['unchanged']} unchanged, {job['failed']} failed")
    for error in job["errors"][:20]:
        console.print(f"  line {error['line']} ({error['product_id']}): {error['message']}")
    return job


@app.command("tryon")
def tryon_command(
    photo: Annotated[Path, typer.Argument(help="full-body photo of the person (JPEG, PNG or WebP)")],
    product: Annotated[str, typer.Option(help="product id from the catalog")],
    out: Annotated[Path, typer.Option(help="where to write the dressed photo (PNG)")] = Path("tryon.png"),
    url: Annotated[str, typer.Option(help="orchestrator base URL")] = "http://localhost:8080",
    category: Annotated[Optional[str], typer.Option(help="upper_body | lower_body | dresses (default: the product's)")] = None,
    steps: Annotated[Optional[int], typer.Option(help="denoising steps (server default 50)")] = None,
    guidance: Annotated[Optional[float], typer.Option(help="classifier-free guidance (server default 7.5)")] = None,
    seed: Annotated[int, typer.Option(help="noise seed: same seed and inputs, same image")] = 1234,
    scheduler: Annotated[Optional[str], typer.Option(help="ddim or dpmpp (DPM-Solver++, good at ~20 steps)")] = None,
    force: Annotated[bool, typer.Option(help="try even if the product photo was classified as unusable")] = False,
) -> None:
    """Dress the person in PHOTO in a catalog product through a running orchestrator, with a progress bar."""
    import httpx
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    form = {"product_id": product, "seed": str(seed), "force": str(force).lower()}
    for key, value in (("category", category), ("steps", steps), ("guidance", guidance), ("scheduler", scheduler)):
        if value is not None:
            form[key] = str(value)
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            response = client.post("/v1/tryon", data=form, files={"file": (photo.name, photo.read_bytes())})
            if response.status_code != 202:
                error = response.json().get("error", {})
                hint = " (the CLI option is --force)" if error.get("code") == "not_tryon_ready" else ""
                console.print(f"[bold red]try-on refused ({response.status_code})[/]: "
                              f"{error.get('message', response.text)}{hint}")
                raise typer.Exit(1)
            job = response.json()
            with Progress(TextColumn("dressing {task.fields[status]}"), BarColumn(), MofNCompleteColumn(),
                          TimeRemainingColumn(), console=console) as bar:
                task = bar.add_task("tryon", total=job["total_steps"], status=job["status"])
                with client.stream("GET", f"/v1/tryon/{job['job_id']}/events", timeout=None) as events:
                    for line in events.iter_lines():
                        if line.startswith("data:"):
                            job = json.loads(line[5:])
                            bar.update(task, completed=job["step"], total=job["total_steps"], status=job["status"])
            if job["status"] != "succeeded":
                console.print(f"[bold red]try-on {job['status']}[/]: {(job.get('error') or {}).get('message', '')}")
                raise typer.Exit(1)
            out.write_bytes(client.get(job["result_url"]).content)
    except httpx.HTTPError as error:
        console.print(f"[bold red]lost contact with the orchestrator at {url}[/]: {error}")
        raise typer.Exit(1)
    console.print(f"wrote {out}")


@app.command("generate-catalog")
def generate_demo_catalog(
    out_dir: Annotated[Path, typer.Argument(help="folder for images/ and catalog.csv")] = Path("runs/demo_catalog"),
    count: Annotated[int, typer.Option(help="number of rows")] = 1000,
    seed: int = 0,
) -> None:
    """Write a synthetic catalog (rendered product photos + non-product photos + CSV in the crawl's layout)."""
    from orchestrator.catalog.synthetic import generate_catalog

    console.print(f"wrote {generate_catalog(out_dir, count=count, seed=seed)}")


@app.command()
def bench(
    quick: Annotated[bool, typer.Option(help="smoke run (a few minutes); its report goes to runs/bench/<machine-id>-quick/")] = False,
    only: Annotated[Optional[list[str]], typer.Option(help="run just these steps (repeatable): peaks, models, triton, http, faiss")] = None,
    profile: Annotated[str, typer.Option(help="model sizes: base (full-size architectures) or tiny (tests)")] = "base",
    repository: Annotated[Path, typer.Option(help="model repository with the served fp32 models (exported here if missing)")] = DEFAULT_REPOSITORY,
    out: Annotated[Optional[Path], typer.Option(help="results folder (default: benchmarks/results/<machine-id>/, quick: runs/bench/<machine-id>-quick/)")] = None,
    device: Annotated[str, typer.Option(help="cpu, or cuda: torch fp32/fp16/bf16 on the GPU (steps peaks and models only)")] = "cpu",
) -> None:
    """Benchmark torch vs ONNX Runtime vs Triton per model, Triton and the HTTP API under load, FAISS at scale.

    Writes results.json, report.md and PNG plots; see docs/benchmarks.md. Triton and the orchestrator are started on
    free loopback ports for the run and stopped afterwards.
    """
    _setup_logging(False)
    from benchmarks.suite import BenchRun, run_bench

    run = BenchRun(quick=quick, profile=profile, repository=repository, out=out, only=tuple(only or ()), device=device)
    try:
        run.steps()
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--only")
    run_bench(run, console)


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
