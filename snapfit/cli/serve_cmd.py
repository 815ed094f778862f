"""`snapfit triton`, `snapfit serve` and `snapfit up`: Triton and the orchestrator in the foreground."""

from __future__ import annotations

import contextlib
import signal
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from snapfit import contract
from snapfit.cli.app import DEFAULT_REPOSITORY, app, console, setup_logging
from snapfit.cli.catalog_cmd import upload_and_follow
from snapfit.cli.signals import hang_up_as_terminate, raise_keyboard_interrupt
from snapfit.triton.launcher import CPU_RUNNERS

# `snapfit triton` and `snapfit up`: how the CPU configs' ONNX models run (docs/serving.md); typer lists the
# choices in --help and refuses others with a usage error before anything starts
CpuRunner = Enum("CpuRunner", {runner: runner for runner in CPU_RUNNERS}, type=str)
CpuRunnerOption = Annotated[CpuRunner, typer.Option(
    "--cpu-runner",
    help="how the CPU configs' onnxruntime_cpu backend runs the ONNX models: in-process (inside Triton's process, "
         "built with g++ on first start; where it cannot be built, python-backend with a warning) or python-backend "
         "(in the Python backend's stub processes: an input copy and a hand-over more a call, ~1 ms on the SAM "
         "decoder)")]


@app.command()
def triton(
    repository: Annotated[Path, typer.Option(help="model repository to serve")] = DEFAULT_REPOSITORY,
    http_port: Annotated[int, typer.Option("--http-port", help="Triton HTTP/REST port")] = contract.TRITON_HTTP_PORT,
    grpc_port: Annotated[int, typer.Option("--grpc-port", help="Triton gRPC port")] = contract.TRITON_GRPC_PORT,
    metrics_port: Annotated[int, typer.Option("--metrics-port", help="Prometheus metrics port")] = contract.TRITON_METRICS_PORT,
    model_config_name: Annotated[str, typer.Option("--model-config-name", help="configs/NAME.pbtxt to use per model; 'cpu' here, 'default' for config.pbtxt (GPU, needs Triton's onnxruntime backend)")] = "cpu",
    ready_timeout_s: Annotated[float, typer.Option(help="seconds to wait for every model to load")] = 900.0,
    log_verbose: Annotated[int, typer.Option(help="tritonserver --log-verbose level")] = 0,
    cpu_runner: CpuRunnerOption = CpuRunner("in-process"),
) -> None:
    """Start tritonserver on the repository, wait until every model is ready, stop cleanly on SIGTERM/SIGINT/SIGHUP."""
    from snapfit.triton.launcher import TritonLaunch, TritonLaunchError, TritonPorts, TritonServer

    launch = TritonLaunch(repository=repository, ports=TritonPorts(http_port, grpc_port, metrics_port),
                          config_name=None if model_config_name == "default" else model_config_name,
                          log_verbose=log_verbose, cpu_runner=cpu_runner.value)
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
    """Turns SIGINT/SIGTERM/SIGHUP into entries of the yielded list (so we stop the server we started), then
    restores."""
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: received.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@app.command()
def serve(
    host: Annotated[Optional[str], typer.Option(help="bind address (default: SNAPFIT_HOST or 0.0.0.0)")] = None,
    port: Annotated[Optional[int], typer.Option(help=f"HTTP port (default: SNAPFIT_PORT or {contract.API_PORT})")] = None,
) -> None:
    """Run the HTTP orchestrator (FastAPI) against a running Triton; settings come from SNAPFIT_* variables
    (SNAPFIT_WORKERS worker processes, SNAPFIT_ADMIN_TOKEN for the catalog-changing endpoints)."""
    import uvicorn

    from orchestrator.app import create_app
    from orchestrator.settings import Settings

    settings = Settings()
    setup_logging(False)
    if settings.admin_token is None:
        console.print("[yellow]SNAPFIT_ADMIN_TOKEN is not set: imports, product updates and deletions are "
                      "refused (403)[/]")
    if settings.workers > 1:  # uvicorn's workers import the app themselves, each building it from SNAPFIT_*
        uvicorn.run("orchestrator.app:create_app", factory=True, workers=settings.workers,
                    host=host or settings.host, port=port or settings.port, log_level="info",
                    timeout_graceful_shutdown=10, timeout_keep_alive=settings.keep_alive_s)
        return
    uvicorn.run(create_app(settings), host=host or settings.host, port=port or settings.port,
                log_level="info", timeout_graceful_shutdown=10, timeout_keep_alive=settings.keep_alive_s)


@app.command()
def up(
    profile: Annotated[Optional[str], typer.Option(help="serve this profile's models: tiny (tests), base (full-size) or cpu (base with MobileSAM's light SAM image encoder), exporting those the repository lacks or another profile wrote (random weights only; a checkpoint's export is never overwritten). Without it: serve what the repository holds, exporting only missing models (tiny)")] = None,
    repository: Annotated[Path, typer.Option(help="model repository")] = DEFAULT_REPOSITORY,
    port: Annotated[int, typer.Option(help="orchestrator HTTP port")] = contract.API_PORT,
    http_port: Annotated[int, typer.Option("--http-port", help="Triton HTTP port")] = contract.TRITON_HTTP_PORT,
    grpc_port: Annotated[int, typer.Option("--grpc-port", help="Triton gRPC port")] = contract.TRITON_GRPC_PORT,
    metrics_port: Annotated[int, typer.Option("--metrics-port", help="Triton metrics port")] = contract.TRITON_METRICS_PORT,
    demo_catalog: Annotated[Optional[int], typer.Option(help="generate and import a synthetic catalog of N products")] = None,
    cpu_runner: CpuRunnerOption = CpuRunner("in-process"),
    demo_training: Annotated[bool, typer.Option(help="with --demo-catalog: train a small CLIP and the try-on classifier on that catalog (once, cached in runs/demo_models; about 4-5 minutes on 2 CPU cores) and serve them instead of the profile's random-weight ones, so that searches find things. They know only the synthetic catalog")] = True,
) -> None:
    """Start Triton and the orchestrator together in the foreground; Ctrl-C / SIGTERM / SIGHUP stops both.

    Triton is supervised: if it exits unexpectedly it is started again (backoff 1 s doubling to 30 s) while the API
    stays up, answering 503 until Triton is back. Prints `admin token: <token>`: SNAPFIT_ADMIN_TOKEN if set, else
    one generated for this start."""
    import os
    import secrets

    import uvicorn
    from pydantic import ValidationError

    from orchestrator.app import create_app
    from orchestrator.settings import Settings
    from snapfit.triton.launcher import TritonLaunch, TritonLaunchError, TritonPorts, TritonServer
    from snapfit.triton.supervisor import TritonSupervisor

    setup_logging(False)
    server = TritonServer(TritonLaunch(repository=repository, ports=TritonPorts(http_port, grpc_port, metrics_port),
                                       cpu_runner=cpu_runner.value),
                          log_path=Path("runs") / "tritonserver.log")
    os.environ["SNAPFIT_TRITON__GRPC_URL"] = server.grpc_url
    # Triton runs on this host: large inputs (a click's 4 MB SAM embedding) go through shared memory
    os.environ.setdefault("SNAPFIT_TRITON__SHARED_MEMORY", "true")
    # the catalog-changing endpoints need a token: the caller's, or a fresh one for this start
    os.environ["SNAPFIT_ADMIN_TOKEN"] = os.environ.get("SNAPFIT_ADMIN_TOKEN") or secrets.token_urlsafe(32)
    try:  # settings are checked before anything starts, so a bad SNAPFIT_* variable leaves nothing running
        settings = Settings(port=port)
    except ValidationError as error:
        console.print(f"[bold red]invalid settings (SNAPFIT_* variables):[/] {error}")
        raise typer.Exit(2)
    demo_csv = _demo_catalog(demo_catalog) if demo_catalog else None
    demo = _demo_weights(demo_csv) if demo_csv is not None and demo_training else None
    exported = _export_what_the_profile_lacks(profile, repository, demo)
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
    # uvicorn shuts down on SIGTERM and then re-raises the signal with the handler that was installed before it;
    # with the default handler that kills this process before `finally` could stop tritonserver. SIGHUP (a closed
    # terminal), which uvicorn leaves alone, would end it the same way: it is sent on as SIGTERM.
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, raise_keyboard_interrupt),
                signal.SIGHUP: signal.signal(signal.SIGHUP, hang_up_as_terminate)}
    supervisor = TritonSupervisor(server, report=lambda line: console.print(f"[yellow]{line}[/]")).watch()
    try:
        if demo_csv is not None:
            from export.repository import DEMO_TRAINED_MODELS

            # stored products keep the embeddings of the models they were imported with: new models embed them again
            _import_demo_catalog_when_ready(settings, demo_csv, reembed=bool(set(exported) & set(DEMO_TRAINED_MODELS)))
        console.print(f"[green]snapfit is up[/]: API http://localhost:{port} (docs at /docs), "
                      f"Triton gRPC {server.grpc_url}, metrics {server.metrics_url}")
        if settings.web_pages:  # plain print, one line each: scripts read them
            print(f"shop page: http://localhost:{port}/", flush=True)
            print(f"admin page: http://localhost:{port}/admin (sign in with the admin token)", flush=True)
        # plain print, one line, no markup: scripts read it
        print(f"admin token: {settings.admin_token.get_secret_value()}", flush=True)
        uvicorn.run(create_app(settings), host=settings.host, port=port, log_level="warning",
                    timeout_graceful_shutdown=10, timeout_keep_alive=settings.keep_alive_s)
    except KeyboardInterrupt:
        pass
    finally:  # whatever ended the API (a signal, a failed start), the server we started stops with it
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        code = supervisor.stop()
        console.print(f"stopped the orchestrator and tritonserver (exit code {code})")


def _export_what_the_profile_lacks(profile: str | None, repository: Path, demo=None) -> dict[str, str]:
    """Exports what `repository` lacks to serve `profile` (export.runner.export_for_serving), with the demo's
    trained CLIP and classifier when `demo` (export.demo_models.DemoWeights) is given; returns {model: why} of the
    exported ones. Exits with the message when a model must not be overwritten or an export fails."""
    from export.errors import ExportError
    from export.runner import export_for_serving

    try:
        return export_for_serving(repository, profile, console, demo=demo)
    except ExportError as error:
        console.print(f"[bold red]{error}[/]")
        raise typer.Exit(1)


DEMO_CATALOG_FOLDER = Path("runs") / "demo_catalog"


def _demo_catalog(count: int) -> Path:
    """runs/demo_catalog/catalog.csv with `count` products, generated when it is missing, of another size or drawn by
    another version of snapfit.demo_catalog."""
    from snapfit.demo_catalog import ensure_catalog

    console.print(f"demo catalog: {count} products in {DEMO_CATALOG_FOLDER} (generated unless already there) ...")
    csv_path, generated = ensure_catalog(DEMO_CATALOG_FOLDER, count)
    if generated:
        console.print(f"generated {csv_path}")
    return csv_path


def _demo_weights(csv_path: Path):
    """The demo's trained CLIP and classifier (export.demo_models), trained now unless cached; exits on failure."""
    from export.demo_models import ensure_demo_weights
    from export.errors import ExportError

    try:
        return ensure_demo_weights(csv_path, say=lambda line: console.print(line, markup=False, highlight=False))
    except (ExportError, ValueError) as error:  # DatasetError is a ValueError
        console.print(f"[bold red]training the demo's models failed:[/] {error}")
        raise typer.Exit(1)
    except KeyboardInterrupt:
        console.print("stopped while training the demo's models; nothing was cached, the next start trains again")
        raise typer.Exit(130)


def _import_demo_catalog_when_ready(settings, csv_path: Path, reembed: bool) -> None:
    """Imports the demo catalog through the API as soon as the orchestrator is ready (`reembed`: run the models on
    rows stored unchanged too)."""
    import threading

    if settings.catalog.image_root is None:
        settings.catalog.image_root = csv_path.parent.resolve()
    threading.Thread(target=upload_and_follow, daemon=True,
                     args=(f"http://127.0.0.1:{settings.port}", csv_path, settings.admin_token.get_secret_value()),
                     kwargs={"reembed": reembed}).start()
