"""`snapfit triton` starts the server, reports readiness, and exits cleanly on SIGTERM."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from snapfit.triton.launcher import process_group_members
from tests.conftest import free_port
from tests.support.process_stats import ProcessIdentity, children, command_line, identities, still_running

pytestmark = pytest.mark.integration


def wait_ready(port: int, process: subprocess.Popen, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, "snapfit triton exited early"
        try:
            with urllib.request.urlopen(f"http://localhost:{port}/v2/health/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError("server never became ready")


def test_snapfit_triton_serves_and_stops_on_sigterm(tiny_repository, tmp_path):
    # a one-model repository keeps this second server quick to start
    repository = tmp_path / "repo"
    shutil.copytree(tiny_repository / "tryon_classifier", repository / "tryon_classifier")
    http, grpc, metrics = free_port(), free_port(), free_port()
    snapfit = Path(sys.executable).with_name("snapfit")
    process = subprocess.Popen(
        [str(snapfit), "triton", "--repository", str(repository), "--http-port", str(http),
         "--grpc-port", str(grpc), "--metrics-port", str(metrics)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ, COLUMNS="200"),
    )
    servers: list[ProcessIdentity] = []
    try:
        wait_ready(http, process)
        servers = identities(children(process.pid))
        with urllib.request.urlopen(f"http://localhost:{metrics}/metrics", timeout=5) as r:
            assert "nv_inference_request_success" in r.read().decode()
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        outlived = [server for server in servers if still_running(server)]
        for server in outlived:  # stop exactly what this test started, then fail
            os.kill(server.pid, signal.SIGKILL)
    assert not outlived, "tritonserver outlived `snapfit triton` after SIGTERM"
    assert process.returncode == 0, output
    assert "Triton is serving every model" in output
    assert "tritonserver stopped" in output


def start_snapfit_up(tiny_repository: Path, tmp_path: Path, **env_overrides: str):
    """`snapfit up` on a one-model copy of the tiny repository (quick to start) on free ports, in tmp_path;
    returns the process and its (api, triton http) ports."""
    repository = tmp_path / "repo"
    shutil.copytree(tiny_repository / "tryon_classifier", repository / "tryon_classifier")
    api, http, grpc, metrics = free_port(), free_port(), free_port(), free_port()
    snapfit = Path(sys.executable).with_name("snapfit")
    env = dict(os.environ, COLUMNS="200", SNAPFIT_HOST="127.0.0.1", SNAPFIT_CATALOG__URL=f"sqlite:///{tmp_path}/c.db",
               SNAPFIT_CATALOG__INDEX_PATH=str(tmp_path / "index"), **env_overrides)
    env.pop("SNAPFIT_ADMIN_TOKEN", None)  # so snapfit up generates one
    process = subprocess.Popen(
        [str(snapfit), "up", "--repository", str(repository), "--port", str(api), "--http-port", str(http),
         "--grpc-port", str(grpc), "--metrics-port", str(metrics)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path,
    )
    return process, api, http


def test_snapfit_up_stops_tritonserver_on_sigterm(tiny_repository, tmp_path):
    process, api, http = start_snapfit_up(tiny_repository, tmp_path)
    servers: list[ProcessIdentity] = []
    try:
        wait_ready(http, process)
        wait_api(api, process)
        servers = identities(pid for pid in children(process.pid)
                             if "tritonserver" in command_line(pid))
        assert len(servers) == 1
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for server in servers:  # if it outlived snapfit up, stop exactly that process (and fail below)
            if still_running(server):
                os.kill(server.pid, signal.SIGKILL)
                pytest.fail("tritonserver outlived `snapfit up` after SIGTERM")
    assert "stopped the orchestrator and tritonserver" in output, output
    tokens = re.findall(r"^admin token: (\S+)$", output, re.M)
    assert len(tokens) == 1 and len(tokens[0]) >= 40, output  # generated for this start, printed once
    assert re.search(rf"^shop page: http://localhost:{api}/$", output, re.M), output
    assert re.search(rf"^admin page: http://localhost:{api}/admin ", output, re.M), output
    assert not still_running(servers[0])


def wait_api(port: int, process: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            assert time.monotonic() < deadline and process.poll() is None, "the API never answered"
            time.sleep(0.3)


def test_snapfit_up_restarts_a_killed_tritonserver_and_stops_everything_on_sighup(tiny_repository, tmp_path):
    """The supervision a process manager would give: Triton killed -> started again on the same ports while the
    API stays up; a closed terminal (SIGHUP) then stops the API and the restarted server."""
    process, api, http = start_snapfit_up(tiny_repository, tmp_path)
    seen: list[ProcessIdentity] = []

    def tritons() -> list[ProcessIdentity]:
        return identities(pid for pid in children(process.pid)
                          if "tritonserver" in command_line(pid))

    try:
        wait_ready(http, process)
        wait_api(api, process)  # a crash while serving
        seen += tritons()
        assert len(seen) == 1
        os.kill(seen[0].pid, signal.SIGKILL)
        killed_at = time.monotonic()
        while not (restarted := [server for server in tritons() if server not in seen]):
            if process.poll() is not None:
                pytest.fail(f"snapfit up exited ({process.returncode}): {process.communicate()[0]}")
            assert time.monotonic() - killed_at < 60, "tritonserver was not restarted"
            time.sleep(0.2)
        seen += restarted
        wait_ready(http, process)
        print(f"\nTriton serving again {time.monotonic() - killed_at:.1f} s after SIGKILL")
        with urllib.request.urlopen(f"http://127.0.0.1:{api}/healthz", timeout=5) as r:
            assert r.status == 200  # the API stayed up throughout
        process.send_signal(signal.SIGHUP)
        output, _ = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        outlived = [server for server in seen if still_running(server)]
        for server in outlived:  # stop exactly what this test's snapfit up started, then fail
            os.kill(server.pid, signal.SIGKILL)
    assert not outlived, "a tritonserver outlived `snapfit up` after SIGHUP"
    assert "tritonserver exited unexpectedly" in output and "tritonserver is back" in output, output
    assert "stopped the orchestrator and tritonserver" in output, output
    assert process_group_members(seen[-1].pid) == []  # no stub of the restarted server either
