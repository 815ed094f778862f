"""Starting and stopping a real `tritonserver` process on a model repository.

The server binary (2.51, Python backend only) is unpacked from the nvidia-pytriton wheel into `.tools/` by
`make env`. Its backend directory is assembled here: `python/` is a symlink to the wheel's Python backend
(a copy would lose the stub's bundled libraries), and `onnxruntime_cpu/`, the backend every `configs/cpu.pbtxt`
names, holds our generic ONNX runner twice: `libtriton_onnxruntime_cpu.so`, which runs it inside the server's
process (built here, snapfit/triton/inprocess_build.py), and `model.py`, which runs it in the Python backend's
stub process. Triton prefers the library; without it (CPU_RUNNERS "python-backend", or no compiler) the stub
serves. Each runner gets its own backend directory under `.tools/triton_backends/`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from snapfit import contract
from snapfit.repository_layout import missing_exports
from snapfit.triton.inprocess_build import LIBRARY_NAME, InprocessBuildError, build

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS_DIR = REPO_ROOT / ".tools"
PYTRITON_VERSION = "0.7.0"
SERVER_ROOT = TOOLS_DIR / f"pytriton-{PYTRITON_VERSION}" / "pytriton" / "tritonserver"
RUNNER_SOURCE = Path(__file__).resolve().parent / "backends" / "onnxruntime_cpu" / "model.py"
# how the onnxruntime_cpu backend runs: inside Triton's process, or in the Python backend's stub process
CPU_RUNNERS = ("in-process", "python-backend")

log = logging.getLogger(__name__)


class TritonLaunchError(RuntimeError):
    """tritonserver could not be found, set up, or brought to readiness."""


@dataclass(frozen=True)
class TritonPorts:
    http: int = contract.TRITON_HTTP_PORT
    grpc: int = contract.TRITON_GRPC_PORT
    metrics: int = contract.TRITON_METRICS_PORT


@dataclass(frozen=True)
class TritonLaunch:
    """How to start one server. `config_name` "cpu" selects each model's configs/cpu.pbtxt (None: config.pbtxt)."""

    repository: Path
    ports: TritonPorts = field(default_factory=TritonPorts)
    config_name: str | None = "cpu"
    server_root: Path = SERVER_ROOT
    # None: .tools/triton_backends/<cpu_runner>, one folder per runner; a folder given here is used as it is
    backend_dir: Path | None = None
    cache_size_bytes: int = 64 * 1024 * 1024
    log_verbose: int = 0
    extra_args: tuple[str, ...] = ()
    cpu_runner: str = "in-process"


def backend_directory(launch: TritonLaunch) -> Path:
    """The folder tritonserver's --backend-directory names: launch.backend_dir, or by default one per cpu_runner
    under .tools/triton_backends/, so that a python-backend launch never removes the library an in-process one is
    serving with, nor loads it."""
    if launch.cpu_runner not in CPU_RUNNERS:
        raise TritonLaunchError(f"cpu_runner must be one of {', '.join(CPU_RUNNERS)}, got {launch.cpu_runner!r}")
    return launch.backend_dir or TOOLS_DIR / "triton_backends" / launch.cpu_runner


def prepare_backends(launch: TritonLaunch) -> Path:
    """Builds (idempotently) the backend directory tritonserver is pointed at, and returns it."""
    binary = launch.server_root / "bin" / "tritonserver"
    if not binary.exists():
        raise TritonLaunchError(f"tritonserver not found at {binary}; run `make env` to unpack it")
    python_backend = launch.server_root / "backends" / "python"
    stub = python_backend / "triton_python_backend_stub"
    if not stub.exists():
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        source = launch.server_root / "python_backend_stubs" / version / "triton_python_backend_stub"
        if not source.exists():
            raise TritonLaunchError(f"the Triton wheel has no Python backend stub for Python {version}")
        shutil.copy2(source, stub)
    backends = backend_directory(launch)
    runner_dir = backends / "onnxruntime_cpu"
    runner_dir.mkdir(parents=True, exist_ok=True)
    _symlink(backends / "python", python_backend)
    _symlink(runner_dir / "model.py", RUNNER_SOURCE)
    if launch.cpu_runner == "in-process":
        _place_inprocess_runner(runner_dir)
    return backends


def _place_inprocess_runner(runner_dir: Path) -> None:
    """Builds the in-process library into `runner_dir`; where it cannot be built, removes it there and logs why
    (the stub then serves the same runner)."""
    try:
        build(runner_dir)
    except InprocessBuildError as error:
        log.warning("the in-process onnxruntime_cpu backend cannot be built (%s); Triton serves the ONNX models "
                    "through its Python backend instead, ~1 ms slower a call", error)
        (runner_dir / LIBRARY_NAME).unlink(missing_ok=True)


def _symlink(link: Path, target: Path) -> None:
    if link.is_symlink() and link.resolve() == target.resolve():
        return
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)


def command(launch: TritonLaunch) -> list[str]:
    args = [
        str(launch.server_root / "bin" / "tritonserver"),
        f"--model-repository={launch.repository.resolve()}",
        f"--backend-directory={backend_directory(launch).resolve()}",
        f"--http-port={launch.ports.http}",
        f"--grpc-port={launch.ports.grpc}",
        f"--metrics-port={launch.ports.metrics}",
        "--strict-readiness=true",
        "--exit-on-error=true",
        f"--log-verbose={launch.log_verbose}",
        # models that enable response_cache (the CLIP text ensemble) use this in-memory cache
        f"--cache-config=local,size={launch.cache_size_bytes}",
        f"--cache-directory={(launch.server_root / 'caches').resolve()}",
    ]
    if launch.config_name:
        args.append(f"--model-config-name={launch.config_name}")
    return args + list(launch.extra_args)


def server_environment() -> dict[str, str]:
    """Python-backend models import packages from the venv whose bin/ comes first on PATH; the in-process
    onnxruntime_cpu backend embeds the interpreter SNAPFIT_PYTHON names (this one).

    The stub links `libpython3.11.so.1.0`; when our interpreter has its own shared libpython (pyenv builds
    with --enable-shared) that one goes first on LD_LIBRARY_PATH, so the stub runs the same patch release as
    the venv's standard library. (A Debian 3.11.2 libpython with a pyenv 3.11.7 stdlib fails to import `ssl`,
    which diffusers needs: undefined symbol _PyModule_Add.)
    """
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["SNAPFIT_PYTHON"] = sys.executable
    libdir = sysconfig.get_config_var("LIBDIR")
    if sysconfig.get_config_var("Py_ENABLE_SHARED") and libdir and (Path(libdir) / "libpython3.11.so.1.0").exists():
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libdir, env.get("LD_LIBRARY_PATH", "")) if p)
    return env


def port_is_free(port: int) -> bool:
    """True when a TCP listener could bind `port` on every interface, as tritonserver does."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def process_group_members(pgid: int) -> list[int]:
    """PIDs of the live (not zombie) processes in process group `pgid`, from /proc (pgrp: the 5th stat field)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


def stop_process_group(pgid: int, timeout_s: float = 10.0) -> list[int]:
    """SIGKILLs the members left in process group `pgid` (a server's group, after the server exited) and waits up
    to `timeout_s` for them to go; returns the PIDs it found."""
    left = process_group_members(pgid)
    if not left:
        return []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + timeout_s
    while process_group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


class TritonServer:
    """One tritonserver child process; `stop()` ends exactly that process."""

    def __init__(self, launch: TritonLaunch, log_path: Path | None = None):
        self.launch = launch
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self._log_file = None

    @property
    def http_url(self) -> str:
        return f"localhost:{self.launch.ports.http}"

    @property
    def grpc_url(self) -> str:
        return f"localhost:{self.launch.ports.grpc}"

    @property
    def metrics_url(self) -> str:
        return f"http://localhost:{self.launch.ports.metrics}/metrics"

    def start(self) -> "TritonServer":
        missing = missing_exports(self.launch.repository)
        if missing:
            raise TritonLaunchError(f"no exported model.onnx for {', '.join(missing)} in {self.launch.repository}; "
                                    "run `snapfit export` first")
        busy = [port for port in (self.launch.ports.http, self.launch.ports.grpc, self.launch.ports.metrics)
                if not port_is_free(port)]
        if busy:  # else this server would fail to bind while another one answered our readiness checks
            raise TritonLaunchError(f"port {', '.join(map(str, busy))} already in use (another tritonserver?); "
                                    "stop it or choose other ports (--http-port, --grpc-port, --metrics-port)")
        prepare_backends(self.launch)
        if self.log_path:
            self._log_file = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            command(self.launch), env=server_environment(), stdout=self._log_file, stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in our terminal reaches us; we then stop the server ourselves
        )
        return self

    def wait_until_ready(self, timeout_s: float = 600.0, cancelled: Callable[[], bool] = lambda: False) -> bool:
        """Polls /v2/health/ready until ready (True) or `cancelled()` (False); raises TritonLaunchError if the
        server exits or times out."""
        deadline = time.monotonic() + timeout_s
        url = f"http://{self.http_url}/v2/health/ready"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise TritonLaunchError(f"tritonserver exited with code {self.process.returncode} before it was "
                                        f"ready{self._log_hint()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if cancelled():  # checked after the poll, so a server that is already ready is reported as such
                return False
            time.sleep(0.5)
        self.stop()
        raise TritonLaunchError(f"tritonserver was not ready after {timeout_s:.0f} s{self._log_hint()}")

    def _log_hint(self) -> str:
        return f"; see {self.log_path}" if self.log_path else ""

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM (Triton drains in-flight requests), then SIGKILL after `timeout_s`; returns the exit code.

        Then SIGKILLs whatever is left of the server's process group: its Python-backend stubs outlive a server
        that was killed (or crashed), each holding a model in memory. The group is the one `start` created (its id
        is the server's PID, which Linux does not reuse while any member lives), so nothing else is touched."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        stop_process_group(self.process.pid)
        if self._log_file:
            self._log_file.close()
            self._log_file = None
        return self.process.returncode

    def __enter__(self) -> "TritonServer":
        self.start()
        self.wait_until_ready()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
