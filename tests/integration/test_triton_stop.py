"""Stopping a tritonserver ends its Python-backend stubs too, also when the server itself was killed first."""

from __future__ import annotations

import os
import signal

import pytest

from snapfit.triton.launcher import TritonLaunch, TritonPorts, TritonServer, process_group_members
from tests.conftest import free_port

pytestmark = pytest.mark.integration


def started_server(repository, tmp_path) -> TritonServer:
    ports = TritonPorts(http=free_port(), grpc=free_port(), metrics=free_port())
    # the Python-backend runner, so that both models have a stub (in-process, clip_text runs in the server)
    launch = TritonLaunch(repository=repository, ports=ports, backend_dir=tmp_path / "backends",
                          cpu_runner="python-backend",
                          extra_args=("--model-control-mode=explicit", "--load-model=clip_tokenizer",
                                      "--load-model=clip_text"))
    server = TritonServer(launch, log_path=tmp_path / "tritonserver.log").start()
    server.wait_until_ready(timeout_s=300)
    return server


def stub_count(server: TritonServer) -> int:
    return len([pid for pid in process_group_members(server.process.pid) if pid != server.process.pid])


@pytest.mark.parametrize("killed_first", [False, True], ids=["stopped", "killed-then-stopped"])
def test_stop_leaves_no_process_of_the_servers_group(tiny_repository, tmp_path, killed_first):
    server = started_server(tiny_repository, tmp_path)
    try:
        assert stub_count(server) >= 2  # one stub per loaded Python-backend model
        if killed_first:  # a crash or an OOM kill: the stubs lose their parent but keep running
            os.kill(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=30)
            assert stub_count(server) >= 1
    finally:
        server.stop()
    assert process_group_members(server.process.pid) == []
