"""The serving stack a benchmark measures, started on free loopback ports and stopped by PID.

    with serving_triton(Path("model_repository"), models=BENCH_MODELS, log_path=out / "tritonserver.log") as triton:
        with serving_orchestrator(triton.grpc_url, workdir, store_url) as api:   # "http://127.0.0.1:PORT"
            ...

Only processes started here are stopped here, each by its own PID (never by name).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from snapfit import contract
from snapfit.triton.launcher import TritonLaunch, TritonPorts, TritonServer

# what search, segmentation and the import need; the try-on model is left unloaded (it is timed on its own)
BENCH_MODELS = tuple(model for model in contract.MODELS if model != contract.LADI_VTON)


class StackError(RuntimeError):
    """A benchmark's server did not start or answer."""


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving_triton(repository: Path, models: Sequence[str] = BENCH_MODELS, log_path: Path | None = None,
                   ready_timeout_s: float = 900.0) -> Iterator[TritonServer]:
    """tritonserver on `repository` (CPU configs) loading only `models`, ready on free ports; stopped on exit."""
    load = tuple(f"--load-model={model}" for model in models)
    launch = TritonLaunch(repository=Path(repository),
                          ports=TritonPorts(http=free_port(), grpc=free_port(), metrics=free_port()),
                          extra_args=("--model-control-mode=explicit", *load))
    server = TritonServer(launch, log_path=log_path)
    server.start()
    try:
        server.wait_until_ready(ready_timeout_s)
        yield server
    finally:
        server.stop()


@contextmanager
def serving_orchestrator(grpc_url: str, workdir: Path, store_url: str, extra_env: dict[str, str] | None = None,
                         loaded_models: Sequence[str] = BENCH_MODELS, ready_timeout_s: float = 120.0) -> Iterator[str]:
    """`snapfit serve` on a free loopback port against `grpc_url`, with its catalog at `store_url` and its index
    under `workdir`; yields "http://127.0.0.1:PORT" once /readyz passes every check except those of Triton models
    outside `loaded_models` (the try-on model is not loaded for benchmarks); SIGTERMs exactly that process."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    # the load comes from one client (this machine): the per-client rate limit would measure itself
    env = dict(os.environ, SNAPFIT_TRITON__GRPC_URL=grpc_url, SNAPFIT_CATALOG__URL=store_url,
               SNAPFIT_CATALOG__INDEX_PATH=str(workdir / "index"), SNAPFIT_HOST="127.0.0.1",
               SNAPFIT_RATE_LIMIT__PER_CLIENT_PER_MINUTE="0",
               # Triton runs on this host, as with `snapfit up`, which sends large inputs through shared memory
               SNAPFIT_TRITON__SHARED_MEMORY="true", **(extra_env or {}))
    base = f"http://127.0.0.1:{port}"
    with open(workdir / "orchestrator.log", "wb") as log:
        process = subprocess.Popen([str(Path(sys.executable).with_name("snapfit")), "serve", "--port", str(port)],
                                   env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_ready(base, process, ready_timeout_s, workdir / "orchestrator.log", set(loaded_models))
            yield base
        finally:
            stop_process(process)


def stop_process(process: subprocess.Popen, timeout_s: float = 30.0) -> int:
    """SIGTERM exactly `process` (if still running), SIGKILL it after `timeout_s`; returns its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def _wait_ready(base: str, process: subprocess.Popen, timeout_s: float, log_path: Path, loaded: set[str]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(f"the orchestrator exited with code {process.returncode}; see {log_path}")
        try:
            checks = httpx.get(f"{base}/readyz", timeout=2).json().get("checks") or {}
            needed = {k: ok for k, ok in checks.items() if not k.startswith("triton:") or k[7:] in loaded}
            if needed and all(needed.values()):
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.3)
    raise StackError(f"the orchestrator was not ready after {timeout_s:.0f} s; see {log_path}")
